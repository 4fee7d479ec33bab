package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/internal/testpki"
)

// startAPIAgent starts one in-process agent (local profile, API on
// 127.0.0.1) with cfg adjusted by mut.
func startAPIAgent(t testing.TB, mut func(*Config), opts ...Option) *Agent {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeName = "api-1"
	cfg.Bind = "127.0.0.1:0"
	cfg.Profile = "local"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.SampleInterval = Duration(100 * time.Millisecond)
	if mut != nil {
		mut(&cfg)
	}
	a, err := New(cfg, append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(false) })
	return a
}

// httpFrom is an HTTP client whose connections come from source address ip
// (any of 127.0.0.0/8), so a test can be several clients to the backoff.
func httpFrom(t testing.TB, ip string, tc *tls.Config) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: tc, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

type answer struct {
	code int
	hdr  http.Header
	body string
}

func call(t testing.TB, hc *http.Client, method, url, token string, body io.Reader) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// metricValue reads one sample of the agent's /metrics, e.g.
// `shoal_api_auth_failures_total{reason="scope"}`.
func metricValue(t testing.TB, hc *http.Client, base, token, sample string) float64 {
	t.Helper()
	ans := call(t, hc, http.MethodGet, base+"/metrics", token, nil)
	if ans.code != 200 {
		t.Fatalf("GET /metrics: %d %s", ans.code, ans.body)
	}
	sc := bufio.NewScanner(strings.NewReader(ans.body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", sample)
	return 0
}

func TestAPITokenScopes(t *testing.T) {
	key := "Y2hhbmdlbWVjaGFuZ2VtZWNoYW5nZW1lY2hhbmdlbWU=" // 32 bytes
	a := startAPIAgent(t, func(c *Config) {
		c.APIToken, c.APIReadToken, c.EncryptKey, c.EnableDebug = "admin-tok", "read-tok", key, true
	})
	base := "http://" + a.HTTPAddr()
	hc := httpFrom(t, "127.0.0.1", nil)
	reads := []string{"GET /v1/health", "GET /v1/info", "GET /v1/members", "GET /v1/load", "GET /v1/events", "GET /v1/leader",
		"GET /v1/dashboard", "GET /v1/history", "GET /metrics", "GET /v1/leader/actions"}
	admins := []string{"POST /v1/leader/elect", "POST /v1/leader/act", "GET /v1/keys", "GET /debug/pprof/", "POST /v1/debug/load",
		"POST /v1/force-leave", "POST /v1/keys/install", "POST /v1/join"}
	for _, ep := range reads {
		method, p, _ := strings.Cut(ep, " ")
		for _, tok := range []string{"read-tok", "admin-tok"} {
			if ans := call(t, hc, method, base+p, tok, nil); ans.code != 200 {
				t.Errorf("%s with %s: %d %s, want 200", ep, tok, ans.code, ans.body)
			}
		}
		if ans := call(t, hc, method, base+p, "", nil); ans.code != 401 {
			t.Errorf("%s without a token: %d, want 401", ep, ans.code)
		}
	}
	for _, ep := range admins {
		method, p, _ := strings.Cut(ep, " ")
		ans := call(t, hc, method, base+p, "read-tok", strings.NewReader(`{}`))
		if ans.code != 403 || !strings.Contains(ans.body, "needs the admin scope") || !strings.Contains(ans.hdr.Get("WWW-Authenticate"), `scope="admin"`) {
			t.Errorf("%s with the read token: %d %q (WWW-Authenticate %q), want 403 naming the admin scope", ep, ans.code, ans.body, ans.hdr.Get("WWW-Authenticate"))
		}
		if ans := call(t, hc, method, base+p, "", strings.NewReader(`{}`)); ans.code != 401 {
			t.Errorf("%s without a token on loopback: %d, want 401", ep, ans.code)
		}
	}
	// The admin token does what the read token may not.
	if ans := call(t, hc, "POST", base+"/v1/leader/elect", "admin-tok", strings.NewReader(`{}`)); ans.code != 200 {
		t.Errorf("elect with the admin token: %d %s", ans.code, ans.body)
	}
	if ans := call(t, hc, "GET", base+"/v1/keys", "admin-tok", nil); ans.code != 200 || !strings.Contains(ans.body, key) {
		t.Errorf("keys list with the admin token: %d %s", ans.code, ans.body)
	}
	if ans := call(t, hc, "POST", base+"/v1/debug/load", "admin-tok", strings.NewReader(`{"cpu_percent": 42}`)); ans.code != 200 {
		t.Errorf("debug load with the admin token: %d %s", ans.code, ans.body)
	}
	if ans := call(t, hc, "GET", base+"/debug/pprof/", "admin-tok", nil); profilerBuilt && ans.code != 200 {
		t.Errorf("pprof with the admin token: %d", ans.code)
	} else if !profilerBuilt && (ans.code != 501 || !strings.Contains(ans.body, "nolibp2p")) {
		t.Errorf("pprof with the admin token in the small build: %d %q, want 501 naming the tag", ans.code, ans.body)
	}
	// The dashboard page holds no data: no token needed.
	if ans := call(t, hc, "GET", base+"/", "", nil); ans.code != 200 || !strings.Contains(ans.body, "/ui/app.js") {
		t.Errorf("dashboard page without a token: %d", ans.code)
	}
	if got := metricValue(t, hc, base, "read-tok", `shoal_api_auth_failures_total{reason="scope"}`); got != float64(len(admins)) {
		t.Errorf("scope refusals counted %v, want %d", got, len(admins))
	}
	if got := metricValue(t, hc, base, "read-tok", `shoal_api_auth_failures_total{reason="missing"}`); got != float64(len(reads)+len(admins)) {
		t.Errorf("missing-token refusals counted %v, want %d", got, len(reads)+len(admins))
	}
}

func TestAPIReadTokenAloneTurnsAdminOff(t *testing.T) {
	a := startAPIAgent(t, func(c *Config) { c.APIReadToken = "read-only" })
	hc := httpFrom(t, "127.0.0.1", nil)
	ans := call(t, hc, "POST", "http://"+a.HTTPAddr()+"/v1/leader/elect", "read-only", strings.NewReader(`{}`))
	if ans.code != 403 || !strings.Contains(ans.body, "no admin token") {
		t.Fatalf("elect on an agent with only a read token: %d %s", ans.code, ans.body)
	}
	if ans := call(t, hc, "GET", "http://"+a.HTTPAddr()+"/v1/members", "", nil); ans.code != 401 {
		t.Fatalf("members without a token on an agent with a read token: %d, want 401", ans.code)
	}
}

// Without any token, reads stay open and writes are served to loopback
// clients only. A real socket can only come from loopback here (tests
// reach 127.0.0.0/8 only), so the other host is a request handed to the
// agent's handler with another RemoteAddr.
func TestAPINoTokenRefusesWritesFromOtherHosts(t *testing.T) {
	a := startAPIAgent(t, nil)
	hc := httpFrom(t, "127.0.0.1", nil)
	if ans := call(t, hc, "POST", "http://"+a.HTTPAddr()+"/v1/leader/elect", "", strings.NewReader(`{}`)); ans.code != 200 {
		t.Fatalf("elect from loopback without a token: %d %s", ans.code, ans.body)
	}
	h := a.http.Handler
	for _, c := range []struct {
		method, path, from string
		verified           bool
		want               int
	}{
		{"GET", "/v1/members", "192.0.2.10:40000", false, 200},
		{"POST", "/v1/leader/elect", "192.0.2.10:40000", false, 403},
		{"GET", "/v1/keys", "[2001:db8::7]:40000", false, 403},
		{"POST", "/v1/leader/elect", "[::1]:40000", false, 200},
		{"POST", "/v1/leader/elect", "192.0.2.10:40000", true, 200}, // a client certificate the agent verified
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(`{}`))
		req.RemoteAddr = c.from
		if c.verified {
			req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %s from %s (client cert %v): %d %s, want %d", c.method, c.path, c.from, c.verified, rec.Code, rec.Body, c.want)
		}
		if rec.Code == 403 && !strings.Contains(rec.Body.String(), "loopback") {
			t.Errorf("refusal does not say who may: %s", rec.Body)
		}
	}
	if got := metricValue(t, hc, "http://"+a.HTTPAddr(), "", `shoal_api_auth_failures_total{reason="not_loopback"}`); got != 2 {
		t.Errorf("not_loopback refusals counted %v, want 2", got)
	}
}

func TestAPIBodyLimit(t *testing.T) {
	a := startAPIAgent(t, func(c *Config) { c.APIToken = "tok" }, withJoinHook(func([]string) (int, error) { return 1, nil }))
	hc := httpFrom(t, "127.0.0.1", nil)
	big := `{"addrs": ["` + strings.Repeat("a", 100<<10) + `"]}`
	// With a Content-Length the guard refuses before the handler runs;
	// chunked (no length) the handler's reader stops at the limit.
	for name, body := range map[string]io.Reader{"sized": strings.NewReader(big), "chunked": io.MultiReader(strings.NewReader(big))} {
		ans := call(t, hc, "POST", "http://"+a.HTTPAddr()+"/v1/join", "tok", body)
		if ans.code != 413 || !strings.Contains(ans.body, strconv.Itoa(maxAPIBody)) {
			t.Errorf("%s %d-byte join body: %d %s, want 413 naming the limit %d", name, len(big), ans.code, ans.body, maxAPIBody)
		}
	}
	if ans := call(t, hc, "POST", "http://"+a.HTTPAddr()+"/v1/join", "tok", strings.NewReader(`{"addrs": ["127.0.0.1:1"]}`)); ans.code != 200 {
		t.Errorf("small join body: %d %s", ans.code, ans.body)
	}
}

func TestAPIAuthBackoff(t *testing.T) {
	a := startAPIAgent(t, func(c *Config) { c.APIToken = "right" })
	base := "http://" + a.HTTPAddr()
	guesser, other := httpFrom(t, "127.0.0.2", nil), httpFrom(t, "127.0.0.1", nil)
	for i := 1; i <= authFailLimit; i++ {
		if ans := call(t, guesser, "GET", base+"/v1/members", fmt.Sprintf("guess-%d", i), nil); ans.code != 401 {
			t.Fatalf("wrong token %d: %d, want 401", i, ans.code)
		}
	}
	// Blocked now, even with the right token: the backoff checks no token.
	ans := call(t, guesser, "GET", base+"/v1/members", "right", nil)
	retry, _ := strconv.Atoi(ans.hdr.Get("Retry-After"))
	if ans.code != 429 || retry < 1 || retry > int(authFailWindow/time.Second) {
		t.Fatalf("after %d wrong tokens: %d, Retry-After %q, want 429 with 1..%d s", authFailLimit, ans.code, ans.hdr.Get("Retry-After"), int(authFailWindow/time.Second))
	}
	// Another address is not blocked.
	if ans := call(t, other, "GET", base+"/v1/members", "right", nil); ans.code != 200 {
		t.Fatalf("another client with the right token: %d %s", ans.code, ans.body)
	}
	if got := metricValue(t, other, base, "right", `shoal_api_auth_failures_total{reason="wrong_token"}`); got != authFailLimit {
		t.Errorf("wrong_token counted %v, want %d", got, authFailLimit)
	}
	if got := metricValue(t, other, base, "right", `shoal_api_auth_failures_total{reason="throttled"}`); got != 1 {
		t.Errorf("throttled counted %v, want 1", got)
	}
}

func TestAuthThrottleWindowsAndBound(t *testing.T) {
	th := newAuthThrottle(3, time.Minute, 100)
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < 3; i++ {
		th.fail("a", t0.Add(time.Duration(i)*time.Second))
	}
	if wait, ok := th.blocked("a", t0.Add(10*time.Second)); !ok || wait != 50*time.Second {
		t.Fatalf("3 failures in the window: blocked %v for %v, want blocked for 50s", ok, wait)
	}
	if _, ok := th.blocked("a", t0.Add(time.Minute)); ok {
		t.Fatal("still blocked after the window")
	}
	// An attacker with many addresses cannot grow the table past its bound.
	for i := 0; i < 10_000; i++ {
		th.fail(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&0xff, i&0xff), t0.Add(2*time.Minute+time.Duration(i)*time.Millisecond))
	}
	if n := th.size(); n > 100 {
		t.Fatalf("throttle remembers %d clients, bound 100", n)
	}
	// One IPv6 host rotating through its /64 is one client.
	for i := 0; i < 3; i++ {
		th.fail(clientKey(fmt.Sprintf("[2001:db8:1:2::%x]:5000", i+1)), t0.Add(3*time.Minute))
	}
	if _, ok := th.blocked(clientKey("[2001:db8:1:2::ffff]:1"), t0.Add(3*time.Minute)); !ok {
		t.Fatal("a /64 that failed 3 times is not blocked")
	}
}

// withJoinHook makes POST /v1/join call join instead of the mesh's join.
func withJoinHook(join func([]string) (int, error)) Option {
	return func(a *Agent) { a.joinHook = join }
}

func TestAPITLSAndReload(t *testing.T) {
	ca := testpki.NewCA(t, "api")
	first, second := ca.Server(t, "first"), ca.Server(t, "second")
	cert, key := t.TempDir()+"/api.pem", t.TempDir()+"/api-key.pem"
	first.WriteTo(t, cert, key)
	a := startAPIAgent(t, func(c *Config) { c.TLSCert, c.TLSKey, c.APIToken = cert, key, "tok" })
	tc, err := client.LoadTLS(ca.File, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cl := client.NewTLS(a.HTTPAddr(), "tok", tc)
	if _, err := cl.Info(context.Background()); err != nil {
		t.Fatalf("info over TLS: %v", err)
	}
	if _, err := client.New(a.HTTPAddr(), "tok").Info(context.Background()); err == nil || !strings.Contains(err.Error(), "--ca") {
		t.Fatalf("plain HTTP to a TLS agent: %v, want an error that says to pass --ca", err)
	}
	served := func() string {
		conn, err := tls.Dial("tcp", a.HTTPAddr(), &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("serves %q, want first", got)
	}
	second.WriteTo(t, cert, key)
	if err := a.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "second" {
		t.Fatalf("after reload serves %q, want second", got)
	}
	// A reload that fails keeps the certificate in use.
	first.WriteTo(t, cert, t.TempDir()+"/unused")
	if err := a.ReloadTLS(); err == nil {
		t.Fatal("reload of a certificate with another's key succeeded")
	}
	if got := served(); got != "second" {
		t.Fatalf("after a failed reload serves %q, want second", got)
	}
}

func TestAPIMutualTLS(t *testing.T) {
	ca := testpki.NewCA(t, "mtls")
	srv, cli := ca.Server(t, "agent"), ca.Client(t, "operator")
	stranger := testpki.NewCA(t, "other").Client(t, "stranger")
	a := startAPIAgent(t, func(c *Config) { c.TLSCert, c.TLSKey, c.TLSClientCA = srv.CertFile, srv.KeyFile, ca.File })
	for _, c := range []struct {
		name      string
		cert, key string
		ok        bool
	}{
		{"no client certificate", "", "", false},
		{"certificate of another CA", stranger.CertFile, stranger.KeyFile, false},
		{"certificate of the CA", cli.CertFile, cli.KeyFile, true},
	} {
		tc, err := client.LoadTLS(ca.File, c.cert, c.key)
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.NewTLS(a.HTTPAddr(), "", tc).Info(context.Background())
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok %v", c.name, err, c.ok)
		}
		if !c.ok && err != nil && !strings.Contains(err.Error(), "--cert") {
			t.Errorf("%s: %v does not say to pass --cert and --key", c.name, err)
		}
	}
	// With mutual TLS and no token, a verified client may act.
	tc, _ := client.LoadTLS(ca.File, cli.CertFile, cli.KeyFile)
	if _, err := client.NewTLS(a.HTTPAddr(), "", tc).Elect(context.Background()); err != nil {
		t.Fatalf("elect with a client certificate: %v", err)
	}
}
