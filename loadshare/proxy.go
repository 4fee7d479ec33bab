package loadshare

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for ProxyConfig.
const (
	DefaultMaxAttempts           = 3
	DefaultCoolOff               = 10 * time.Second
	DefaultDialTimeout           = 2 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultMaxIdleConnsPerHost   = 32
)

// ProxyConfig configures a Proxy. Only Members is required.
type ProxyConfig struct {
	// Members returns the current candidates (typically the mesh View,
	// already filtered by service tag). It is called once per attempt and
	// must be safe for concurrent use.
	Members func() []Candidate
	// Picker chooses a member per attempt; nil means New(Default) with a
	// time-seeded random source.
	Picker Picker
	// Scheme is the scheme spoken to members: "http" (default) or "https".
	Scheme string
	// MaxAttempts bounds the members tried per request (default
	// DefaultMaxAttempts).
	MaxAttempts int
	// CoolOff is how long a member that failed is left out (default
	// DefaultCoolOff).
	CoolOff time.Duration
	// DialTimeout bounds connecting to a member (default DefaultDialTimeout).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a member's response headers
	// after the request is written (default DefaultResponseHeaderTimeout).
	ResponseHeaderTimeout time.Duration
	// MaxIdleConnsPerHost sizes the connection pool per member (default
	// DefaultMaxIdleConnsPerHost).
	MaxIdleConnsPerHost int
	// Transport overrides the pooled transport built from the settings
	// above (for tests).
	Transport http.RoundTripper
	// Now is the clock for cool-offs; nil means time.Now.
	Now func() time.Time
	// Logger receives member failures; nil means slog.Default().
	Logger *slog.Logger
}

// Proxy forwards each HTTP request to a member picked from ProxyConfig.Members
// by the configured Picker. It is built on httputil.ReverseProxy with a pooled
// http.Transport, and:
//
//   - sets X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto;
//   - when a member cannot be reached (connection refused, dial timeout), or
//     fails an idempotent request before any of the request body was sent,
//     removes it for CoolOff and tries another member, up to MaxAttempts;
//   - answers 503 Service Unavailable when no member is eligible, and 502 Bad
//     Gateway when every member tried failed, with a message saying which;
//   - never waits without bound: dialling and response headers have timeouts.
//
// A Proxy is safe for concurrent use.
type Proxy struct {
	cfg   ProxyConfig
	rp    *httputil.ReverseProxy
	tr    http.RoundTripper
	log   *slog.Logger
	mu    sync.Mutex
	until map[string]time.Time // member name → end of cool-off
}

var _ http.Handler = (*Proxy)(nil)

// NewProxy returns a Proxy, or an error naming a bad setting.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Members == nil {
		return nil, errors.New("loadshare: ProxyConfig.Members is nil; pass a function returning the mesh's candidates")
	}
	if cfg.Scheme == "" {
		cfg.Scheme = "http"
	}
	if cfg.Scheme != "http" && cfg.Scheme != "https" {
		return nil, fmt.Errorf("loadshare: ProxyConfig.Scheme %q is not http or https", cfg.Scheme)
	}
	for name, d := range map[string]*time.Duration{"CoolOff": &cfg.CoolOff, "DialTimeout": &cfg.DialTimeout, "ResponseHeaderTimeout": &cfg.ResponseHeaderTimeout} {
		if *d < 0 {
			return nil, fmt.Errorf("loadshare: ProxyConfig.%s %v is negative", name, *d)
		}
	}
	if cfg.MaxAttempts < 0 || cfg.MaxIdleConnsPerHost < 0 {
		return nil, fmt.Errorf("loadshare: ProxyConfig.MaxAttempts %d and MaxIdleConnsPerHost %d must not be negative", cfg.MaxAttempts, cfg.MaxIdleConnsPerHost)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.CoolOff, DefaultCoolOff)
	def(&cfg.DialTimeout, DefaultDialTimeout)
	def(&cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxIdleConnsPerHost == 0 {
		cfg.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Picker == nil {
		p, err := New(Default, Options{Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))})
		if err != nil {
			return nil, err
		}
		cfg.Picker = p
	}
	p := &Proxy{cfg: cfg, until: map[string]time.Time{}}
	p.log = cfg.Logger
	if p.log == nil {
		p.log = slog.Default()
	}
	p.log = p.log.With("component", "loadshare.proxy")
	p.tr = cfg.Transport
	if p.tr == nil {
		p.tr = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          4 * cfg.MaxIdleConnsPerHost,
			MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   cfg.DialTimeout,
			ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
			ExpectContinueTimeout: time.Second,
		}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.URL.Scheme = cfg.Scheme
			pr.Out.URL.Host = "" // chosen per attempt
			pr.Out.Host = ""     // the member's own host:port
		},
		Transport:    (*attempts)(p),
		ErrorHandler: p.fail,
	}
	return p, nil
}

// ServeHTTP forwards r to a member.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.rp.ServeHTTP(w, r) }

// CoolingOff returns the names of members left out after a failure, sorted.
func (p *Proxy) CoolingOff() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now()
	var out []string
	for name, t := range p.until {
		if now.Before(t) {
			out = append(out, name)
		} else {
			delete(p.until, name)
		}
	}
	sort.Strings(out)
	return out
}

// NoMemberError is the error behind a 503: no member was eligible.
type NoMemberError struct {
	// Known is how many members the source offered, CoolingOff how many of
	// them were left out after failures, Tried how many this request had
	// already tried.
	Known, CoolingOff, Tried int
	// Err wraps ErrNoCandidate.
	Err error
}

func (e *NoMemberError) Error() string {
	return fmt.Sprintf("loadshare: no eligible member: %d known, %d cooling off after failures, %d already tried; the rest are not alive or their load information is too old", e.Known, e.CoolingOff, e.Tried)
}

func (e *NoMemberError) Unwrap() error { return e.Err }

// AllFailedError is the error behind a 502: every member tried failed.
type AllFailedError struct {
	// Tried lists the members tried, in order.
	Tried []string
	// Last is the last member's error.
	Last error
}

func (e *AllFailedError) Error() string {
	return fmt.Sprintf("loadshare: all %d members tried failed (%v); last error: %v", len(e.Tried), e.Tried, e.Last)
}

func (e *AllFailedError) Unwrap() error { return e.Last }

func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	var nm *NoMemberError
	if errors.As(err, &nm) {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	if r.Context().Err() != nil {
		p.log.Debug("client went away", "err", err)
	}
	http.Error(w, err.Error(), status)
}

// candidates returns the members that may be tried now.
func (p *Proxy) candidates(tried []string) (cands []Candidate, known, cooling int) {
	all := p.cfg.Members()
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
next:
	for _, c := range all {
		if t, ok := p.until[c.Name]; ok {
			if now.Before(t) {
				cooling++
				continue
			}
			delete(p.until, c.Name)
		}
		for _, n := range tried {
			if n == c.Name {
				continue next
			}
		}
		cands = append(cands, c)
	}
	return cands, len(all), cooling
}

func (p *Proxy) coolOff(name string, err error) {
	p.mu.Lock()
	p.until[name] = p.cfg.Now().Add(p.cfg.CoolOff)
	p.mu.Unlock()
	p.log.Warn("member failed; cooling off", "member", name, "for", p.cfg.CoolOff, "err", err)
}

// attempts is the Proxy's RoundTripper: it picks a member, sends, and on a
// retryable failure cools the member off and tries another.
type attempts Proxy

func (a *attempts) RoundTrip(req *http.Request) (*http.Response, error) {
	p := (*Proxy)(a)
	var body *trackedBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &trackedBody{rc: req.Body}
	}
	var tried []string
	var last error
	for len(tried) < p.cfg.MaxAttempts {
		cands, known, cooling := p.candidates(tried)
		c, err := p.cfg.Picker.Pick(cands)
		if err != nil {
			if len(tried) > 0 {
				break
			}
			return nil, &NoMemberError{Known: known, CoolingOff: cooling, Tried: len(tried), Err: err}
		}
		tried = append(tried, c.Name)
		out := req.Clone(req.Context())
		out.URL.Host = c.Addr
		if body != nil {
			out.Body = body
		}
		resp, err := p.tr.RoundTrip(out)
		if err == nil {
			return resp, nil
		}
		last = fmt.Errorf("member %s at %s: %w", c.Name, c.Addr, err)
		if req.Context().Err() != nil { // the client gave up: not the member's fault
			return nil, last
		}
		p.coolOff(c.Name, err)
		sent := body != nil && body.started()
		if sent || !(isDialError(err) || idempotent(req)) {
			break
		}
	}
	return nil, &AllFailedError{Tried: tried, Last: last}
}

// idempotent reports whether req may be sent twice (RFC 9110 §9.2.2, or an
// Idempotency-Key header).
func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// isDialError reports a failure to connect: nothing was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// trackedBody lets one request body go to several attempts: Close is a no-op
// (the server closes the real body), and it records whether any byte was read.
type trackedBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.read.Store(true) // a read in progress may consume bytes
	return b.rc.Read(p)
}

func (b *trackedBody) Close() error { return nil }

func (b *trackedBody) started() bool { return b.read.Load() }
