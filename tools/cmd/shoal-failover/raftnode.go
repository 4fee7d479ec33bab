package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// raftLeader is what a raft node answers on GET /leader.
type raftLeader struct {
	ID     string `json:"id"`
	Leader string `json:"leader"`
	Term   string `json:"term"`
	State  string `json:"state"`
}

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnap{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }
func (nopSnap) Persist(s raft.SnapshotSink) error  { return s.Close() }
func (nopSnap) Release()                           {}

type nopSnap struct{}

// runRaftNode is the hidden 'raft-node' subcommand: one hashicorp/raft
// voter over raft's TCP transport on loopback, with in-memory log, stable
// and snapshot stores, raft.DefaultConfig timings, bootstrapped with every
// peer as a voter. GET /leader on -http reports whom it follows.
func runRaftNode(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("raft-node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "server ID")
	bind := fs.String("bind", "", "raft TCP transport address, ip:port")
	httpAddr := fs.String("http", "", "status address, ip:port")
	peers := fs.String("peers", "", "comma-separated id=ip:port of every voter, this one included")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *id == "" || *bind == "" || *httpAddr == "" || *peers == "" {
		fmt.Fprintln(stderr, "raft-node: -id, -bind, -http and -peers are required")
		return 2
	}
	var servers []raft.Server
	for _, p := range strings.Split(*peers, ",") {
		pid, addr, ok := strings.Cut(p, "=")
		if !ok {
			fmt.Fprintf(stderr, "raft-node: peer %q: want id=ip:port\n", p)
			return 2
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(pid), Address: raft.ServerAddress(addr)})
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(*id)
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: stderr})
	adv, err := net.ResolveTCPAddr("tcp", *bind)
	if err != nil {
		fmt.Fprintf(stderr, "raft-node: %v\n", err)
		return 1
	}
	trans, err := raft.NewTCPTransport(*bind, adv, 3, 10*time.Second, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "raft-node: transport: %v\n", err)
		return 1
	}
	store := raft.NewInmemStore()
	r, err := raft.NewRaft(conf, nopFSM{}, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		fmt.Fprintf(stderr, "raft-node: %v\n", err)
		return 1
	}
	if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		fmt.Fprintf(stderr, "raft-node: bootstrap: %v\n", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /leader", func(w http.ResponseWriter, _ *http.Request) {
		_, lid := r.LeaderWithID()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(raftLeader{ID: *id, Leader: string(lid), Term: r.Stats()["term"], State: r.State().String()})
	})
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintf(stderr, "raft-node: %v\n", err)
		return 1
	}
	go func() { _ = http.Serve(ln, mux) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	_ = r.Shutdown().Error()
	return 0
}
