package agent

// Who may call the API (docs/threat-model.md, "Local user" and "API").
//
// Two scopes: read (GETs of status, members, load, pick, leader, metrics,
// events and the dashboard's data) and admin (anything that is not a GET,
// and the GETs that give away secrets or cost: /v1/keys, /debug/). The
// dashboard page itself holds no data and is public (dashboardPublic).
//
//   - No token configured: reads are open, as before; admin requests are
//     served only to clients on loopback or with a verified client
//     certificate (--tls-client-ca).
//   - Any token configured: every request but the page needs one, on
//     loopback too. The admin token (--api-token) has both scopes; the read
//     token (--api-read-token) reads only: an admin request with it is
//     refused 403 naming the scope it lacks.
//
// Tokens are compared in constant time (as SHA-256 digests, so not even
// their length shows). Wrong tokens count per client address (IPv6 by /64):
// after authFailLimit in authFailWindow the address gets 429 with
// Retry-After, whatever it sends, until the window ends. The table of
// addresses is bounded (authFailClients). Every refusal is counted in
// shoal_api_auth_failures_total{reason}. Request bodies are bounded by
// maxAPIBody (413, naming the limit).

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	prometheus "github.com/shoalmesh/shoal/internal/prom"
)

// maxAPIBody bounds every request body the API reads.
const maxAPIBody = 64 << 10

// Failed-token backoff: authFailLimit wrong tokens from one address within
// authFailWindow block it until the window ends; authFailClients bounds the
// addresses remembered.
const (
	authFailLimit   = 5
	authFailWindow  = time.Minute
	authFailClients = 4096
)

// Refusal reasons, the values of shoal_api_auth_failures_total's label.
const (
	authMissing     = "missing"      // no Authorization header where a token is needed
	authMalformed   = "malformed"    // an Authorization header that is not "Bearer <token>"
	authWrong       = "wrong_token"  // a token that matches none configured
	authScope       = "scope"        // the read token on an admin request
	authNotLoopback = "not_loopback" // no token configured: an admin request from another host
	authThrottled   = "throttled"    // refused by the backoff, token unchecked
)

type apiScope int

const (
	scopePublic apiScope = iota // the dashboard page: no data
	scopeRead
	scopeAdmin
)

func (s apiScope) String() string {
	return [...]string{"public", "read", "admin"}[s]
}

// requestScope classifies a request. Anything not a GET or HEAD is admin,
// whatever the path, so a new write endpoint is admin by default.
func requestScope(r *http.Request) apiScope {
	if dashboardPublic(r) { // dashboard.go
		return scopePublic
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return scopeAdmin
	}
	p := path.Clean("/" + r.URL.Path)
	if p == "/v1/keys" || strings.HasPrefix(p, "/v1/keys/") || p == "/debug" || strings.HasPrefix(p, "/debug/") {
		return scopeAdmin // the keyring (secrets) and the profiler
	}
	return scopeRead
}

// apiAuth is the agent's API guard: tokens, backoff, the refusal counter.
type apiAuth struct {
	admin, read       [sha256.Size]byte
	hasAdmin, hasRead bool
	throttle          *authThrottle
	failures          map[string]*atomic.Uint64 // by reason; the keys are authReasons, fixed at start
	failuresDesc      *prometheus.Desc
	now               func() time.Time
}

// authReasons are every value of the failure counter's label.
var authReasons = []string{authMissing, authMalformed, authWrong, authScope, authNotLoopback, authThrottled}

// Describe and Collect make the guard the collector of
// shoal_api_auth_failures_total, every reason shown from the start at 0.
func (g *apiAuth) Describe(ch chan<- *prometheus.Desc) { ch <- g.failuresDesc }
func (g *apiAuth) Collect(ch chan<- prometheus.Metric) {
	for _, r := range authReasons {
		ch <- prometheus.MustNewConstMetric(g.failuresDesc, prometheus.CounterValue, float64(g.failures[r].Load()), r)
	}
}

func newAPIAuth(cfg Config) *apiAuth {
	g := &apiAuth{throttle: newAuthThrottle(authFailLimit, authFailWindow, authFailClients), now: time.Now,
		failures: make(map[string]*atomic.Uint64, len(authReasons)),
		failuresDesc: prometheus.NewDesc("shoal_api_auth_failures_total",
			"API requests refused by authentication or authorization, by reason.", []string{"reason"}, nil)}
	for _, r := range authReasons {
		g.failures[r] = new(atomic.Uint64)
	}
	if cfg.APIToken != "" {
		g.admin, g.hasAdmin = sha256.Sum256([]byte(cfg.APIToken)), true
	}
	if cfg.APIReadToken != "" {
		g.read, g.hasRead = sha256.Sum256([]byte(cfg.APIReadToken)), true
	}
	return g
}

// guard wraps the API: it refuses what the caller may not do and bounds
// the request body of what it lets through.
func (a *Agent) guard(next http.Handler) http.Handler {
	g := a.authz
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scope := requestScope(r)
		if scope == scopePublic {
			next.ServeHTTP(w, r)
			return
		}
		who := clientKey(r.RemoteAddr)
		if wait, blocked := g.throttle.blocked(who, g.now()); blocked {
			g.failures[authThrottled].Add(1)
			secs := int((wait + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeErr(w, http.StatusTooManyRequests, fmt.Errorf("too many wrong API tokens from %s (%d within %v): try again in %ds", who, authFailLimit, authFailWindow, secs))
			return
		}
		if code, reason, err := g.check(r, scope); err != nil {
			g.failures[reason].Add(1)
			if reason == authWrong || reason == authMalformed {
				g.throttle.fail(who, g.now())
			}
			switch code {
			case http.StatusUnauthorized:
				w.Header().Set("WWW-Authenticate", `Bearer realm="shoal"`)
			case http.StatusForbidden:
				if reason == authScope {
					w.Header().Set("WWW-Authenticate", `Bearer realm="shoal", error="insufficient_scope", scope="admin"`)
				}
			}
			writeErr(w, code, err)
			return
		}
		if r.ContentLength > maxAPIBody {
			writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body of %d bytes is over the API's limit of %d bytes", r.ContentLength, maxAPIBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxAPIBody)
		next.ServeHTTP(w, r)
	})
}

// check decides one request: 0 and nil to serve it, or the status, the
// refusal reason and the error to answer.
func (g *apiAuth) check(r *http.Request, scope apiScope) (int, string, error) {
	what := r.Method + " " + clip(r.URL.Path)
	if !g.hasAdmin && !g.hasRead {
		if scope == scopeAdmin && !trustedWithoutToken(r) {
			return http.StatusForbidden, authNotLoopback, fmt.Errorf("%s changes the agent or reads its secrets, and this agent has no API token: "+
				"only clients on its host (loopback) or with a client certificate it verifies may; set --api-token to allow others", what)
		}
		return 0, "", nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return http.StatusUnauthorized, authMissing, fmt.Errorf("%s needs an API token (send Authorization: Bearer <token>)", what)
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return http.StatusUnauthorized, authMalformed, errors.New("missing or wrong API token: the Authorization header is not 'Bearer <token>'")
	}
	sum := sha256.Sum256([]byte(tok))
	// Both comparisons always run: the time taken does not say which matched.
	isAdmin := subtle.ConstantTimeCompare(sum[:], g.admin[:]) & boolInt(g.hasAdmin)
	isRead := subtle.ConstantTimeCompare(sum[:], g.read[:]) & boolInt(g.hasRead)
	switch {
	case isAdmin == 1:
		return 0, "", nil
	case isRead == 1:
		if scope != scopeAdmin {
			return 0, "", nil
		}
		why := ""
		if !g.hasAdmin {
			why = "; this agent has no admin token, so its admin endpoints are off"
		}
		return http.StatusForbidden, authScope, fmt.Errorf("%s needs the admin scope (the --api-token token); the token sent has the read scope (--api-read-token) only%s", what, why)
	}
	return http.StatusUnauthorized, authWrong, errors.New("missing or wrong API token (send Authorization: Bearer <token>)")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// trustedWithoutToken: with no token configured, admin requests are served
// to clients on this host and to clients whose certificate the agent
// verified (mutual TLS).
func trustedWithoutToken(r *http.Request) bool {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clientKey is the backoff's key for a client: its IP address, or its /64
// for IPv6 (one host commonly holds a whole /64).
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return clip(host)
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// authThrottle counts wrong tokens per client in fixed windows: limit
// failures within window from one client block it until the window ends.
// At most max clients are remembered; a new one past that evicts the
// expired windows, then the oldest.
type authThrottle struct {
	limit  int
	window time.Duration
	max    int

	mu      sync.Mutex
	clients map[string]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

func newAuthThrottle(limit int, window time.Duration, max int) *authThrottle {
	return &authThrottle{limit: limit, window: window, max: max, clients: map[string]*failWindow{}}
}

// blocked reports whether key is blocked at now, and for how much longer.
func (t *authThrottle) blocked(key string, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.clients[key]
	if f == nil {
		return 0, false
	}
	if now.Sub(f.start) >= t.window {
		delete(t.clients, key)
		return 0, false
	}
	if f.n < t.limit {
		return 0, false
	}
	return f.start.Add(t.window).Sub(now), true
}

// fail records one failure of key at now.
func (t *authThrottle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.clients[key]; f != nil && now.Sub(f.start) < t.window {
		f.n++
		return
	}
	if _, known := t.clients[key]; !known && len(t.clients) >= t.max {
		t.evict(now)
	}
	t.clients[key] = &failWindow{start: now, n: 1}
}

func (t *authThrottle) evict(now time.Time) {
	oldest, at := "", now
	for k, f := range t.clients {
		if now.Sub(f.start) >= t.window {
			delete(t.clients, k)
			continue
		}
		if !f.start.After(at) {
			oldest, at = k, f.start
		}
	}
	if len(t.clients) >= t.max {
		delete(t.clients, oldest)
	}
}

// size is how many clients are remembered.
func (t *authThrottle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.clients)
}

// checkAPISecurity validates the API's tokens and TLS settings; host is
// the API's listen host.
func (c *Config) checkAPISecurity(host string) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("%w: tls-cert %q and tls-key %q go together: set both (PEM files) to serve the API over TLS, or neither", ErrConfig, clip(c.TLSCert), clip(c.TLSKey))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return fmt.Errorf("%w: tls-client-ca %q needs tls-cert and tls-key: client certificates are checked only over TLS", ErrConfig, clip(c.TLSClientCA))
	}
	if c.APIToken != "" && c.APIToken == c.APIReadToken {
		return fmt.Errorf("%w: api-read-token is the same as api-token: the read token would be an admin token; use two different tokens", ErrConfig)
	}
	for name, tok := range map[string]string{"api-token": c.APIToken, "api-read-token": c.APIReadToken} {
		if strings.ContainsFunc(tok, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("%w: %s holds a control character (a newline from a file?), which an Authorization header cannot carry", ErrConfig, name)
		}
	}
	if !isLoopback(host) && c.APIToken == "" && c.APIReadToken == "" && c.TLSClientCA == "" {
		return fmt.Errorf("%w: http-addr %s is not loopback: set an API token (--api-token or SHOAL_API_TOKEN) or require client certificates (--tls-client-ca) so the API is not open to the network", ErrConfig, c.HTTPAddr)
	}
	return nil
}
