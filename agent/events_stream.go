package agent

// The monitor stream: the agent's log records and mesh events, as
// Server-Sent Events on GET /v1/monitor (shoal monitor). The agent's logger
// is teed into a broadcaster; publishing never blocks the logger: with no
// listener it costs an atomic load, and a listener that falls behind loses
// entries (counted, and told so in the stream) instead of slowing the agent.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// streamBuffer is how many entries a listener may fall behind by before
// entries are dropped for it.
const streamBuffer = 512

// StreamEntry is one entry of the monitor stream: a log record or an event.
type StreamEntry struct {
	// Kind is "log" or "event".
	Kind  string    `json:"kind"`
	Time  time.Time `json:"time"`
	Node  string    `json:"node"`
	Level string    `json:"level,omitempty"` // log: DEBUG, INFO, WARN, ERROR
	Msg   string    `json:"msg,omitempty"`   // log
	// Attrs are the log record's attributes, in order, as key/value pairs.
	Attrs []StreamAttr `json:"attrs,omitempty"`
	// Type, Member and Detail describe an event (see Event).
	Type   string `json:"type,omitempty"`
	Member string `json:"member,omitempty"`
	Detail string `json:"detail,omitempty"`

	level slog.Level // for filtering; events pass every level
}

// StreamAttr is one attribute of a streamed log record.
type StreamAttr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type listener struct {
	ch      chan StreamEntry
	level   slog.Level
	logs    bool
	events  bool
	dropped atomic.Uint64
}

// broadcaster fans entries out to listeners without blocking.
type broadcaster struct {
	mu        sync.RWMutex
	listeners map[*listener]struct{}
	minLevel  atomic.Int64 // lowest level any log listener wants; MaxInt64 with none
	n         atomic.Int64 // listeners
	published atomic.Uint64
	dropped   atomic.Uint64
	closed    chan struct{}
	closeOnce sync.Once
	hooked    sync.Once
}

func newBroadcaster() *broadcaster {
	b := &broadcaster{listeners: map[*listener]struct{}{}, closed: make(chan struct{})}
	b.minLevel.Store(int64(^uint64(0) >> 1))
	return b
}

func (b *broadcaster) subscribe(level slog.Level, logs, events bool) *listener {
	l := &listener{ch: make(chan StreamEntry, streamBuffer), level: level, logs: logs, events: events}
	b.mu.Lock()
	b.listeners[l] = struct{}{}
	b.recomputeLocked()
	b.mu.Unlock()
	return l
}

func (b *broadcaster) unsubscribe(l *listener) {
	b.mu.Lock()
	delete(b.listeners, l)
	b.recomputeLocked()
	b.mu.Unlock()
}

func (b *broadcaster) recomputeLocked() {
	min := int64(^uint64(0) >> 1)
	for l := range b.listeners {
		if l.logs && int64(l.level) < min {
			min = int64(l.level)
		}
	}
	b.minLevel.Store(min)
	b.n.Store(int64(len(b.listeners)))
}

// wantsLog reports whether any listener wants log records at level.
func (b *broadcaster) wantsLog(level slog.Level) bool { return int64(level) >= b.minLevel.Load() }

func (b *broadcaster) publish(e StreamEntry) {
	if b.n.Load() == 0 {
		return
	}
	b.published.Add(1)
	b.mu.RLock()
	defer b.mu.RUnlock()
	for l := range b.listeners {
		if e.Kind == "log" && (!l.logs || e.level < l.level) || e.Kind == "event" && !l.events {
			continue
		}
		select {
		case l.ch <- e:
		default:
			l.dropped.Add(1)
			b.dropped.Add(1)
		}
	}
}

func (b *broadcaster) close() { b.closeOnce.Do(func() { close(b.closed) }) }

// publishEvent streams an event to monitors.
func (a *Agent) publishEvent(e Event) {
	if a.dash == nil {
		return
	}
	a.dash.stream.publish(StreamEntry{Kind: "event", Time: e.Time, Node: a.cfg.NodeName, Type: e.Type, Member: e.Member, Detail: e.Detail})
}

// teeLogger returns a logger that writes to l's handler and, when someone
// listens, to b.
func teeLogger(l *slog.Logger, b *broadcaster, node string) *slog.Logger {
	return slog.New(&teeHandler{inner: l.Handler(), b: b, node: node})
}

// teeHandler is a slog.Handler that passes records to inner (at inner's
// level) and to the broadcaster (at the listeners' level, which may be
// lower: shoal monitor --level debug sees debug records of an agent that
// logs at info).
type teeHandler struct {
	inner  slog.Handler
	b      *broadcaster
	node   string
	prefix string       // group prefix for attributes added later
	attrs  []StreamAttr // attributes added with WithAttrs
}

func (h *teeHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level) || h.b.wantsLog(level)
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.inner.Enabled(ctx, r.Level) {
		err = h.inner.Handle(ctx, r)
	}
	if h.b.wantsLog(r.Level) {
		e := StreamEntry{Kind: "log", Time: r.Time, Node: h.node, Level: r.Level.String(), Msg: r.Message, level: r.Level,
			Attrs: slices.Clip(h.attrs)}
		r.Attrs(func(a slog.Attr) bool {
			e.Attrs = appendAttr(e.Attrs, h.prefix, a)
			return true
		})
		h.b.publish(e)
	}
	return err
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.inner = h.inner.WithAttrs(as)
	n.attrs = slices.Clip(h.attrs)
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.prefix, a)
	}
	return &n
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.inner = h.inner.WithGroup(name)
	n.prefix = h.prefix + name + "."
	return &n
}

func appendAttr(out []StreamAttr, prefix string, a slog.Attr) []StreamAttr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			out = appendAttr(out, p, g)
		}
		return out
	}
	if a.Key == "" {
		return out
	}
	return append(out, StreamAttr{Key: prefix + a.Key, Value: v.String()})
}

// ParseLevel parses debug, info, warn or error (any case).
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// monitorDeps is what GET /v1/monitor needs from the agent, and all it
// reaches: the agent builds it in one place (agentMonitorDeps).
type monitorDeps struct {
	// node is this agent's name, told in the stream's first line.
	node func() string
	// stream is the broadcaster the agent's log and events go through.
	stream *broadcaster
	// server returns the agent's API server, nil while there is none (the
	// handler served elsewhere, or before Start makes it); the stream is
	// closed when it shuts down.
	server func() *http.Server
	// done is closed when the agent stops: streams end then.
	done <-chan struct{}
}

// agentMonitorDeps wires the monitor handler to the agent's stream, API
// server and lifetime. The name and the server are read at each request:
// the handler is built before Start sets the server, and may be built
// before Start renames the node (p2p).
func agentMonitorDeps(a *Agent) monitorDeps {
	return monitorDeps{
		node:   func() string { return a.cfg.NodeName },
		stream: a.dashState().stream,
		server: func() *http.Server { return a.http },
		done:   a.done,
	}
}

// handleMonitor streams log records and events as Server-Sent Events:
//
//	GET /v1/monitor?level=info&logs=true&events=true
//
// Each entry is "event: log" or "event: event" with a StreamEntry as JSON
// data; "event: dropped" with {"dropped": n} says n entries were lost
// because this listener fell behind. A comment line goes out every 15 s.
func handleMonitor(deps monitorDeps, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	level := slog.LevelInfo
	if s := q.Get("level"); s != "" {
		l, err := ParseLevel(s)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		level = l
	}
	flag := func(name string) (bool, error) {
		s := q.Get(name)
		if s == "" {
			return true, nil
		}
		v, err := strconv.ParseBool(s)
		if err != nil {
			return false, fmt.Errorf("%s=%q: want true or false", name, s)
		}
		return v, nil
	}
	logs, err := flag("logs")
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	events, err := flag("events")
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, http.StatusInternalServerError, fmt.Errorf("streaming unsupported"))
		return
	}
	b := deps.stream
	if srv := deps.server(); srv != nil {
		b.hooked.Do(func() { srv.RegisterOnShutdown(b.close) })
	}
	l := b.subscribe(level, logs, events)
	defer b.unsubscribe(l)

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": shoal monitor of %s, level %s\n\n", deps.node(), strings.ToLower(level.String()))
	fl.Flush()

	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	var reported uint64
	for {
		select {
		case e := <-l.ch:
			if d := l.dropped.Load(); d > reported {
				fmt.Fprintf(w, "event: dropped\ndata: {\"dropped\":%d}\n\n", d-reported)
				reported = d
			}
			data, _ := json.Marshal(e)
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Kind, data); err != nil {
				return
			}
			// Write what is already queued before flushing.
			for n := len(l.ch); n > 0; n-- {
				e := <-l.ch
				data, _ := json.Marshal(e)
				fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Kind, data)
			}
			fl.Flush()
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-r.Context().Done():
			return
		case <-b.closed:
			return
		case <-deps.done:
			return
		}
	}
}
