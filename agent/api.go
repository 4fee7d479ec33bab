package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/shoalmesh/shoal/client"
	prometheus "github.com/shoalmesh/shoal/internal/prom"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
)

// Handler returns the agent's HTTP API, /metrics included, behind the
// guard of api_auth.go: tokens and their scopes, backoff, body limits.
func (a *Agent) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}), newCollector(agentCollectorDeps(a)), a.authz) // prom.go
	if a.mesh != nil && a.mesh.P2PStats() != nil {
		reg.MustRegister(newP2PCollector(agentP2PCollectorDeps(a))) // prom.go
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", a.handleHealth)
	mux.HandleFunc("GET /v1/info", a.handleInfo)
	mux.HandleFunc("GET /v1/members", a.handleMembers)
	mux.HandleFunc("GET /v1/load", a.handleLoad)
	mux.HandleFunc("GET /v1/events", a.handleEvents)
	mux.HandleFunc("POST /v1/join", a.handleJoin)
	mux.HandleFunc("POST /v1/leave", a.handleLeave)
	mux.HandleFunc("POST /v1/force-leave", a.handleForceLeave)
	mux.HandleFunc("GET /v1/keys", a.handleKeys)
	mux.HandleFunc("POST /v1/keys/{op}", a.handleKeys)
	a.registerElectionRoutes(mux, reg)
	a.registerPickRoutes(mux, reg)
	a.registerScaleRoutes(mux, reg)
	a.registerDashboardRoutes(mux, reg)
	if a.cfg.EnableDebug {
		// Go's profiler: admin scope (api_auth.go); not in the build for
		// small devices (pprof.go).
		registerProfiler(mux)
	}
	mux.Handle("GET /metrics", prometheus.HandlerFor(reg, prometheus.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return a.guard(mux) // api_auth.go
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, client.ErrorBody{Error: err.Error()})
}

// readJSON decodes the request body, one JSON object of v's type and
// nothing after it; the guard has bounded the body (maxAPIBody). Answer
// its error with bodyStatus.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON object")
			if terr != nil && !isSyntaxErr(terr) {
				err = terr
			}
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return fmt.Errorf("request body is over the API's limit of %d bytes: %w", mbe.Limit, err)
	case errors.Is(err, io.EOF):
		return errors.New("request body is empty: want a JSON object")
	}
	return fmt.Errorf("request body: %w", err)
}

func isSyntaxErr(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se)
}

// bodyStatus is the status for a readJSON error: 413 past the size limit,
// 400 otherwise.
func bodyStatus(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

func toClientLoad(l *metrics.Load) *client.Load {
	if l == nil {
		return nil
	}
	return &client.Load{CPUPercent: l.CPUPercent, MemPercent: l.MemPercent, MemAvailable: l.MemAvailable,
		NetRxBps: l.NetRxBps, NetTxBps: l.NetTxBps, Load1: l.Load1, Cores: l.Cores}
}

func toClientMember(m mesh.Member, now time.Time) client.Member {
	cm := client.Member{Name: m.Name, Addr: m.Addr, Port: int(m.Port), Status: m.Status, Tags: m.Tags, Self: m.Self,
		Load: toClientLoad(m.Load), LoadAgeSeconds: -1}
	if m.Load != nil {
		cm.LoadAgeSeconds = m.LoadAge(now).Seconds()
	}
	return cm
}

// filterMembers applies ?status= and ?tag=k=v (repeatable) filters.
func filterMembers(ms []mesh.Member, status string, tags []string, now time.Time) ([]client.Member, error) {
	want := map[string]string{}
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("tag filter %q: want key=value", t)
		}
		want[k] = v
	}
	switch status {
	case "", mesh.StatusAlive, mesh.StatusLeaving, mesh.StatusLeft, mesh.StatusFailed:
	default:
		return nil, fmt.Errorf("status filter %q: use alive, leaving, left or failed", status)
	}
	out := []client.Member{}
	for _, m := range ms {
		if status != "" && m.Status != status {
			continue
		}
		ok := true
		for k, v := range want {
			if m.Tags[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, toClientMember(m, now))
		}
	}
	return out, nil
}

func (a *Agent) handleMembers(w http.ResponseWriter, r *http.Request) {
	out, err := filterMembers(a.mesh.View().Members(), r.URL.Query().Get("status"), r.URL.Query()["tag"], time.Now())
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	a.markCoordinator(out) // election_adapter.go
	for i := range out {
		if !out[i].Self {
			out[i].P2PConn = a.mesh.PeerConn(out[i].Name)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Agent) handleHealth(w http.ResponseWriter, r *http.Request) {
	ms := a.mesh.View().Members()
	alive := 0
	for _, m := range ms {
		if m.Status == mesh.StatusAlive {
			alive++
		}
	}
	writeJSON(w, http.StatusOK, client.Health{Status: "ok", Node: a.cfg.NodeName, Alive: alive, Members: len(ms)})
}

func (a *Agent) gossipStats() client.GossipStats {
	s := a.mesh.Stats()
	return client.GossipStats{
		PacketsIn: s.PacketsIn.Load(), PacketsOut: s.PacketsOut.Load(), BytesIn: s.BytesIn.Load(), BytesOut: s.BytesOut.Load(),
		LoadPacketsIn: s.ShoalPacketsIn.Load(), LoadPacketsOut: s.ShoalPacketsOut.Load(),
		LoadBytesIn: s.ShoalBytesIn.Load(), LoadBytesOut: s.ShoalBytesOut.Load(),
		Dropped: s.Dropped.Load(), SendErrors: s.SendErrors.Load(),
	}
}

func (a *Agent) handleInfo(w http.ResponseWriter, r *http.Request) {
	addr, port := a.mesh.LocalAddr()
	counts := map[string]int{}
	var tags map[string]string
	for _, m := range a.mesh.View().Members() {
		counts[m.Status]++
		if m.Self {
			tags = m.Tags
		}
	}
	info := client.Info{
		Node: a.cfg.NodeName, Version: Version, Profile: a.cfg.Profile,
		Gossip: fmt.Sprintf("%s:%d", addr, port), HTTP: a.HTTPAddr(),
		UptimeSeconds: time.Since(a.started).Seconds(), Tags: tags,
		Encrypted: a.mesh.Serf().EncryptionEnabled(), Members: counts, Traffic: a.gossipStats(),
	}
	if ps := a.mesh.P2PStats(); ps != nil {
		info.P2P = &client.P2PInfo{Addrs: a.mesh.P2PAddrs(),
			RefusedKey: ps.AuthRefused.Load(), RefusedGater: ps.GaterRefused.Load(),
			QueueDrops: ps.QueueDrops.Load(), DialFailures: ps.DialFailures.Load(), BootstrapFailures: ps.BootstrapFailures.Load(),
			PacketsDirect: ps.PacketsDirect.Load(), PacketsRelayed: ps.PacketsRelayed.Load(),
			HolePunches: ps.HolePunches.Load(), HolePunchesDirect: ps.HolePunchesDirect.Load(), Upgrades: ps.Upgrades.Load(), PunchRetries: ps.PunchRetries.Load(), Relays: []client.RelaySlot{}}
		for _, r := range a.mesh.Reservations() {
			info.P2P.Relays = append(info.P2P.Relays, client.RelaySlot{Relay: r.Relay, Expires: r.Expires.UTC().Format(time.RFC3339),
				CircuitLimitSeconds: r.CircuitLimit.Seconds(), CircuitLimitBytes: r.CircuitBytes})
		}
	}
	if l, ok := a.monitor.Latest(); ok {
		info.Load = toClientLoad(&l)
	}
	writeJSON(w, http.StatusOK, info)
}

// Aggregate computes the mesh's aggregate load over alive members with
// load, ages taken at now.
func Aggregate(ms []mesh.Member, now time.Time) client.Aggregate {
	var ag client.Aggregate
	for _, m := range ms {
		if m.Status != mesh.StatusAlive || m.Load == nil {
			continue
		}
		ag.Members++
		ag.CPUMean += m.Load.CPUPercent
		ag.MemMean += m.Load.MemPercent
		ag.CPUMax = max(ag.CPUMax, m.Load.CPUPercent)
		ag.MemMax = max(ag.MemMax, m.Load.MemPercent)
		ag.NetRxBps += m.Load.NetRxBps
		ag.NetTxBps += m.Load.NetTxBps
		ag.Cores += m.Load.Cores
		ag.MaxAgeSecs = max(ag.MaxAgeSecs, m.LoadAge(now).Seconds())
	}
	if ag.Members > 0 {
		ag.CPUMean /= float64(ag.Members)
		ag.MemMean /= float64(ag.Members)
	}
	return ag
}

func (a *Agent) handleLoad(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	ms := a.mesh.View().Members()
	out, _ := filterMembers(ms, "", nil, now)
	sort.SliceStable(out, func(i, j int) bool {
		li, lj := out[i].Load, out[j].Load
		if (li == nil) != (lj == nil) {
			return lj == nil
		}
		return li != nil && li.CPUPercent > lj.CPUPercent
	})
	rep := client.LoadReport{Members: out, Aggregate: Aggregate(ms, now)}
	a.addMeasured(&rep, ms, now) // share.go
	writeJSON(w, http.StatusOK, rep)
}

func (a *Agent) handleEvents(w http.ResponseWriter, r *http.Request) {
	evs := a.events.list()
	out := make([]client.Event, len(evs))
	for i, e := range evs {
		out[i] = client.Event{Time: e.Time.Format(time.RFC3339Nano), Type: e.Type, Member: e.Member, Detail: e.Detail}
	}
	writeJSON(w, http.StatusOK, out)
}

// maxJoinAddrs bounds the addresses one join request names.
const maxJoinAddrs = 256

func (a *Agent) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req client.JoinRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, bodyStatus(err), err)
		return
	}
	if len(req.Addrs) == 0 {
		writeErr(w, http.StatusBadRequest, errors.New("no addresses to join"))
		return
	}
	if len(req.Addrs) > maxJoinAddrs {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("%d addresses to join: at most %d", len(req.Addrs), maxJoinAddrs))
		return
	}
	for _, ad := range req.Addrs {
		if ad == "" || len(ad) > 512 || strings.ContainsFunc(ad, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("join address %q: want host, host:port or a multiaddr, without spaces, at most 512 bytes", clip(ad)))
			return
		}
	}
	join := a.mesh.Join
	if a.joinHook != nil {
		join = a.joinHook
	}
	n, err := join(req.Addrs)
	if n == 0 {
		writeErr(w, http.StatusBadGateway, fmt.Errorf("could not join any of %v: %v", req.Addrs, err))
		return
	}
	writeJSON(w, http.StatusOK, client.JoinResponse{Joined: n})
}

func (a *Agent) handleLeave(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "leaving"})
	select {
	case a.leaveReq <- struct{}{}:
	default:
	}
}

func (a *Agent) handleForceLeave(w http.ResponseWriter, r *http.Request) {
	var req client.ForceLeaveRequest
	if err := readJSON(r, &req); err != nil {
		writeErr(w, bodyStatus(err), err)
		return
	}
	if _, found := a.mesh.View().Member(req.Node); !found {
		writeErr(w, http.StatusNotFound, fmt.Errorf("no member named %q", req.Node))
		return
	}
	if err := a.mesh.ForceLeave(req.Node, req.Prune); err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *Agent) handleKeys(w http.ResponseWriter, r *http.Request) {
	s := a.mesh.Serf()
	if !s.EncryptionEnabled() {
		writeErr(w, http.StatusConflict, errors.New("gossip encryption is off on this agent: start agents with --encrypt to use a keyring"))
		return
	}
	km := s.KeyManager()
	op := r.PathValue("op")
	var resp *serf.KeyResponse
	var err error
	if r.Method == http.MethodGet {
		op = "list"
		resp, err = km.ListKeys()
	} else {
		var req client.KeyRequest
		if err := readJSON(r, &req); err != nil {
			writeErr(w, bodyStatus(err), err)
			return
		}
		if _, perr := mesh.ParseKey(req.Key); perr != nil {
			writeErr(w, http.StatusBadRequest, perr)
			return
		}
		switch op {
		case "install":
			resp, err = km.InstallKey(req.Key)
		case "use":
			resp, err = km.UseKey(req.Key)
		case "remove":
			resp, err = km.RemoveKey(req.Key)
		default:
			writeErr(w, http.StatusNotFound, fmt.Errorf("keyring operation %q: use list, install, use or remove", op))
			return
		}
	}
	out := client.KeysResponse{}
	if resp != nil {
		out = client.KeysResponse{Messages: resp.Messages, NumNodes: resp.NumNodes, NumResp: resp.NumResp, NumErr: resp.NumErr, Keys: resp.Keys, PrimaryKeys: resp.PrimaryKeys}
	}
	if err != nil {
		msg := fmt.Errorf("keyring %s: %v (%d of %d nodes answered, %d errors)", op, err, out.NumResp, out.NumNodes, out.NumErr)
		writeJSON(w, http.StatusInternalServerError, struct {
			client.ErrorBody
			client.KeysResponse
		}{client.ErrorBody{Error: msg.Error()}, out})
		return
	}
	writeJSON(w, http.StatusOK, out)
}
