package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
)

// Version is the build's version, set with -ldflags "-X ...agent.Version=v1".
var Version = "dev"

// Agent is one Shoal node: load sampling, the mesh, and the HTTP API. It is
// the one place where the parts are started and stopped.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	monitor *metrics.Monitor
	// loadChanged tells the mesh that the monitor's Latest moved (a sample,
	// or a synthetic load): its relay sleeps through idle rounds otherwise.
	loadChanged chan struct{}
	mesh        *mesh.Mesh
	http        *http.Server
	httpLn      net.Listener
	started     time.Time
	events      *eventLog

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	done     chan struct{}
	leaveReq chan struct{}
	// leaving is set once Stop begins: from then on no component acts
	// (the scaler checks it before every evaluation and provider call).
	leaving atomic.Bool

	// Options for tests and the dev mesh.
	reader    metrics.Reader
	p2pFast   bool
	transport mesh.Transport

	// The API's guard and TLS (api_auth.go, api_tls.go); joinHook, when
	// set, stands in for the mesh's join (the API fuzz test).
	authz    *apiAuth
	tls      *apiTLS
	joinHook func([]string) (int, error)

	// Components wired in their own files. Each gets what it uses from
	// the agent through its deps struct, built in one place
	// (agentElectionDeps, agentLoadshareDeps, agentScaleDeps,
	// agentDashDeps; the /metrics collectors' agentCollectorDeps,
	// agentOperatorCollectorDeps, agentP2PCollectorDeps and
	// agentShareCollectorDeps; GET /v1/monitor's agentMonitorDeps); Start
	// starts their goroutines under its context and wg, and shutdown stops
	// them and waits.
	elect atomic.Pointer[electionRunner] // election_adapter.go; read with runner()
	proxy *proxyRunner                   // loadshare_adapter.go
	scale *scaleRunner                   // scale_adapter.go
	dash  *dashboard                     // dashboard.go, events_stream.go
	// shares counts picks and proxied requests per member and tracks
	// uptime and availability (share.go); nil before Start.
	shares *shares
}

// Option adjusts an Agent at construction.
type Option func(*Agent)

// WithReader samples load through r instead of the host (tests, dev).
func WithReader(r metrics.Reader) Option { return func(a *Agent) { a.reader = r } }

// WithP2PFastTimings runs memberlist with the local profile's fast timings
// on the p2p profile (the dev mesh, tests); other profiles ignore it.
func WithP2PFastTimings() Option { return func(a *Agent) { a.p2pFast = true } }

// WithTransport carries the mesh on t instead of the transport the profile
// names (UDP/TCP, or libp2p on p2p): mesh.MemoryTransport runs agents in one
// process on an in-memory network whose links tests shape and partition.
func WithTransport(t mesh.Transport) Option { return func(a *Agent) { a.transport = t } }

// WithLogger sets the logger (default: a text logger on stderr at cfg.LogLevel).
func WithLogger(l *slog.Logger) Option { return func(a *Agent) { a.log = l } }

// NewLogger builds the logger a Config asks for.
func NewLogger(w io.Writer, level string, asJSON bool) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	o := &slog.HandlerOptions{Level: lv}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// New validates cfg and builds an agent; Start brings it up.
func New(cfg Config, opts ...Option) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, done: make(chan struct{}), leaveReq: make(chan struct{}, 1), events: newEventLog(512), authz: newAPIAuth(cfg)}
	for _, o := range opts {
		o(a)
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.log = a.log.With("node", cfg.NodeName)
	a.initDashboard() // dashboard.go: tees the log into the monitor stream
	return a, nil
}

// Start samples load, binds the gossip port and the API, and joins the
// mesh (retrying with backoff when RetryJoin is set). A failure leaves
// nothing running.
func (a *Agent) Start(ctx context.Context) (err error) {
	cfg := a.cfg
	a.started = time.Now()
	a.loadChanged = make(chan struct{}, 1)
	mon, err := metrics.NewMonitor(metrics.Config{
		Interval: time.Duration(cfg.SampleInterval),
		HalfLife: time.Duration(cfg.HalfLife),
		Reader:   a.reader,
		Logger:   a.log,
		OnSample: func(metrics.Load) { a.signalLoad() },
	})
	if err != nil {
		return err
	}
	a.monitor = mon
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	defer func() {
		if err != nil {
			a.shutdown()
		}
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		_ = mon.Run(runCtx)
	}()

	keys, err := a.keys()
	if err != nil {
		return err
	}
	bhost, bport, _ := splitHostPort("bind", cfg.Bind)
	if bhost == "" {
		bhost = "0.0.0.0"
	}
	var ahost string
	var aport int
	if cfg.Advertise != "" {
		ahost, aport, _ = splitHostPort("advertise", cfg.Advertise)
	}
	preset := cfg.preset()
	tr := a.transport
	if tr == nil && preset.P2P {
		tr = mesh.P2PTransport(mesh.P2PConfig{Bootstrap: cfg.P2PBootstrap, Relay: cfg.Relay, MDNS: cfg.MDNS,
			AllowPeers: cfg.P2PAllowPeers, MaxPeers: cfg.P2PMaxPeers, PublicNets: cfg.P2PPublicNets,
			IdleConnTimeout: time.Duration(cfg.P2PIdleConnTimeout), WorkingSet: cfg.P2PWorkingSet,
			FastTimings: a.p2pFast || cfg.P2PFastTimings})
	}
	m, err := mesh.New(mesh.Config{
		NodeName:         cfg.NodeName,
		BindAddr:         bhost,
		BindPort:         bport,
		AdvertiseAddr:    ahost,
		AdvertisePort:    aport,
		Profile:          preset.Mesh,
		Tags:             cfg.Tags,
		Priority:         cfg.Priority,
		DataDir:          cfg.DataDir,
		RejoinAfterLeave: cfg.RejoinAfterLeave,
		ReconnectTimeout: time.Duration(cfg.ReconnectTimeout),
		Keys:             keys,
		Label:            cfg.Label,
		Transport:        tr,
		Load:             mon.Latest,
		LoadChanged:      a.loadChanged,
		OnEvent:          a.onMeshEvent,
		OnElection:       a.onElectionMessage,
		Logger:           a.log,
	})
	if err != nil {
		return err
	}
	a.mesh = m
	if preset.P2P && m.LocalName() != a.cfg.NodeName {
		// On p2p the node name is the peer ID.
		a.log.Info("p2p: node name is the peer ID", "peer_id", m.LocalName(), "addrs", m.P2PAddrs())
		a.cfg.NodeName = m.LocalName()
	}

	a.startShares(runCtx) // share.go: before the proxy, which counts into it
	if err := a.startElection(runCtx); err != nil {
		return err
	}
	if err := a.startProxy(runCtx); err != nil {
		return err
	}
	if err := a.startScale(runCtx); err != nil {
		return err
	}
	a.startDashboard(runCtx) // dashboard.go: after the election, which it watches

	if cfg.TLSCert != "" {
		if a.tls, err = newAPITLS(cfg); err != nil { // api_tls.go
			return err
		}
		warnCertTimes(a, a.tls.cur.Load().leaf)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http-addr %s: %w", cfg.HTTPAddr, err)
	}
	a.httpLn = ln
	a.http = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
	serve := func() error { return a.http.Serve(ln) }
	if a.tls != nil {
		a.http.TLSConfig = a.tls.serverConfig()
		serve = func() error { return a.http.ServeTLS(ln, "", "") }
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "err", err)
		}
	}()
	if h, _, _ := net.SplitHostPort(cfg.HTTPAddr); !isLoopback(h) && a.tls == nil {
		a.log.Warn("the API listens on an address other than loopback without TLS: its tokens and answers cross the network in clear (set --tls-cert and --tls-key)", "http", ln.Addr().String())
	}
	addr, port := m.LocalAddr()
	a.log.Info("agent started", "gossip", net.JoinHostPort(addr, strconv.Itoa(port)), "http", ln.Addr().String(), "profile", cfg.Profile, "version", Version)
	if len(keys) == 0 && !preset.P2P && !isLoopback(bhost) {
		a.log.Warn("gossip is not encrypted on an address other than loopback (--insecure-gossip): anyone who reaches it can join the mesh, publish load and be picked", "bind", cfg.Bind)
	}

	if len(cfg.Join) > 0 {
		attempts := 1
		if cfg.RetryJoin {
			attempts = cfg.RetryMax
		}
		if _, err := m.JoinRetry(ctx, cfg.Join, mesh.RetryOptions{Attempts: attempts, Initial: time.Duration(cfg.RetryInterval), Max: 30 * time.Second}); err != nil {
			return err
		}
	}
	return nil
}

func (a *Agent) keys() ([][]byte, error) {
	var keys [][]byte
	if a.cfg.KeyringFile != "" {
		ks, err := mesh.ReadKeyringFile(a.cfg.KeyringFile)
		if err != nil {
			return nil, err
		}
		keys = ks
	}
	if a.cfg.EncryptKey != "" {
		k, err := mesh.ParseKey(a.cfg.EncryptKey)
		if err != nil {
			return nil, err
		}
		keys = append([][]byte{k}, keys...)
	}
	return keys, nil
}

// Mesh returns the running mesh (nil before Start).
func (a *Agent) Mesh() *mesh.Mesh { return a.mesh }

// meshView returns the mesh's current View, nil before Start makes the mesh.
func (a *Agent) meshView() *mesh.View {
	if a.mesh == nil {
		return nil
	}
	return a.mesh.View()
}

// Monitor returns the load monitor (nil before Start).
func (a *Agent) Monitor() *metrics.Monitor { return a.monitor }

// HTTPAddr returns the API's bound address (useful with port 0).
func (a *Agent) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// Done is closed once the agent has shut down.
func (a *Agent) Done() <-chan struct{} { return a.done }

// LeaveRequested fires when the API asked the agent to leave and stop.
func (a *Agent) LeaveRequested() <-chan struct{} { return a.leaveReq }

// Stop shuts the agent down, leaving the mesh gracefully first if leave is
// true. Safe to call more than once.
func (a *Agent) Stop(leave bool) {
	a.stopOnce.Do(func() {
		// No scale action while leaving or shutting down: the scaler stops
		// before the leave begins (a leave makes this node "leaving", so
		// the mesh counts one instance fewer and the bounds would ask for
		// one more), and the lease is given up before the leave starts, so
		// nothing is decided while leaving or shutting down.
		a.leaving.Store(true)
		a.stopScale()
		a.leaveElection()
		if leave && a.mesh != nil {
			if err := a.mesh.Leave(); err != nil {
				a.log.Warn("leave", "err", err)
			} else {
				a.log.Info("left the mesh")
			}
		}
		a.shutdown()
	})
}

func (a *Agent) shutdown() {
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = a.http.Shutdown(ctx)
		cancel()
	}
	a.stopScale()
	a.stopProxy()
	a.stopElection()
	if a.mesh != nil {
		_ = a.mesh.Shutdown()
	}
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	select {
	case <-a.done:
	default:
		close(a.done)
	}
	a.log.Info("agent stopped")
}

func (a *Agent) onMeshEvent(e mesh.Event) {
	a.events.add(Event{Time: e.Time, Type: e.Type, Member: e.Member, Detail: e.Addr})
	a.publishEvent(Event{Time: e.Time, Type: e.Type, Member: e.Member, Detail: e.Addr}) // events_stream.go
}

// Event is one entry of the agent's recent events (joins, failures, ...).
type Event struct {
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	Member string    `json:"member,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// eventLog keeps the most recent events.
type eventLog struct {
	mu    sync.Mutex
	buf   []Event
	next  int
	full  bool
	added uint64 // every event ever added, the ones overwritten too
}

func newEventLog(n int) *eventLog { return &eventLog{buf: make([]Event, n)} }

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf[l.next] = e
	l.added++
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
}

// total returns how many events were ever added: the log keeps only the
// newest len(buf).
func (l *eventLog) total() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.added
}

func (l *eventLog) list() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]Event(nil), l.buf[:l.next]...)
	}
	return append(append([]Event(nil), l.buf[l.next:]...), l.buf[:l.next]...)
}

// signalLoad tells the mesh that this node's load may have moved. It
// never blocks.
func (a *Agent) signalLoad() {
	select {
	case a.loadChanged <- struct{}{}:
	default:
	}
}
