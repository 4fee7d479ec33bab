package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Client asks one agent. The zero value is not usable; use New.
type Client struct {
	base      string
	token     string
	hc        *http.Client
	certAsked atomic.Bool // the agent asked for a client certificate we lack
}

// ErrAPI is wrapped by errors the agent answered with.
var ErrAPI = errors.New("agent answered with an error")

// New returns a client for the agent at addr (host:port or a URL).
func New(addr, token string) *Client { return NewTLS(addr, token, nil) }

// NewTLS returns a client for an agent that serves TLS, checked with tc
// (LoadTLS builds one). An addr without a scheme then means https://;
// with tc nil NewTLS is New (an https:// addr uses the system's roots).
func NewTLS(addr, token string, tc *tls.Config) *Client {
	c := &Client{base: BaseURL(addr, tc != nil), token: token}
	if tc != nil && tc.GetClientCertificate == nil {
		// Note when the agent asks for a client certificate: under TLS 1.3
		// its refusal of ours (or of none) may reach us as a broken pipe
		// rather than as its alert, so the error alone does not say why.
		tc = tc.Clone()
		certs := tc.Certificates
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c.certAsked.Store(true)
			if len(certs) > 0 {
				return &certs[0], nil
			}
			return &tls.Certificate{}, nil
		}
	}
	c.hc = &http.Client{Timeout: 30 * time.Second, Transport: Transport(tc)}
	return c
}

// BaseURL is addr as a URL: an addr without a scheme gets https:// when
// tlsOn, http:// otherwise.
func BaseURL(addr string, tlsOn bool) string {
	base := addr
	if !strings.Contains(addr, "://") {
		base = "http://" + addr
		if tlsOn {
			base = "https://" + addr
		}
	}
	return strings.TrimRight(base, "/")
}

// Transport is an HTTP transport that checks the agent with tc (nil: Go's
// default transport).
func Transport(tc *tls.Config) http.RoundTripper {
	if tc == nil {
		return http.DefaultTransport
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return tr
}

// maxPEMFile bounds a CA, certificate or key file read into memory.
const maxPEMFile = 1 << 20

func readPEM(what, name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err == nil && len(b) > maxPEMFile {
		err = fmt.Errorf("over %d bytes: not a PEM file", maxPEMFile)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	return b, nil
}

// LoadTLS builds the TLS config for an agent serving TLS: caFile (PEM)
// holds the CA that signed the agent's certificate ("" trusts the system's
// roots), certFile and keyFile a client certificate for an agent that
// requires one (mutual TLS); both or neither.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := readPEM("CA file", caFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("client certificate %q and key %q go together: give both or neither", certFile, keyFile)
	}
	if certFile != "" {
		cb, err := readPEM("client certificate", certFile)
		if err != nil {
			return nil, err
		}
		kb, err := readPEM("client key", keyFile)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(cb, kb)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s and key %s: %w", certFile, keyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// tlsHint says what to change when a request failed for a TLS reason.
func tlsHint(err error, body string) string {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	s := err.Error() + body
	switch {
	case errors.As(err, &ua):
		return " (the agent's certificate is not signed by a CA this client trusts: pass that CA with --ca or SHOAL_CA)"
	case errors.As(err, &hn):
		return " (the agent's certificate does not name the address asked: use an address it names)"
	case strings.Contains(s, "certificate required"), strings.Contains(s, "bad certificate"), strings.Contains(s, "remote error: tls: unknown certificate authority"):
		return " (the agent requires a client certificate its CA signed: pass --cert and --key, or SHOAL_CERT and SHOAL_KEY)"
	case strings.Contains(s, "server gave HTTP response to HTTPS client"):
		return " (the agent serves plain HTTP: leave out --ca, --cert, --key and https://)"
	case strings.Contains(s, "Client sent an HTTP request to an HTTPS server"):
		return " (the agent serves HTTPS: pass its CA with --ca, or an https:// address)"
	}
	return ""
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if c.certAsked.Load() {
			return fmt.Errorf("agent at %s: %w (the agent requires a client certificate signed by the CA it trusts: pass --cert and --key, or SHOAL_CERT and SHOAL_KEY)", c.base, err)
		}
		if h := tlsHint(err, ""); h != "" {
			return fmt.Errorf("agent at %s: %w%s", c.base, err, h)
		}
		return fmt.Errorf("cannot reach the agent at %s (is 'shoal agent' running? set --http-addr or SHOAL_HTTP_ADDR): %w", c.base, err)
	}
	defer resp.Body.Close()
	c.certAsked.Store(false) // the agent took our certificate, if it asked
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			return fmt.Errorf("%w (%d): %s", ErrAPI, resp.StatusCode, eb.Error)
		}
		txt := strings.TrimSpace(string(b))
		return fmt.Errorf("%w (%d): %s%s", ErrAPI, resp.StatusCode, txt, tlsHint(errors.New(""), txt))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("agent's answer to %s: %w", path, err)
	}
	return nil
}

// MemberFilter selects members by status and tags.
type MemberFilter struct {
	Status string
	Tags   map[string]string
}

// Members lists members matching f.
func (c *Client) Members(ctx context.Context, f MemberFilter) ([]Member, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	for k, v := range f.Tags {
		q.Add("tag", k+"="+v)
	}
	var out []Member
	return out, c.do(ctx, http.MethodGet, "/v1/members", q, nil, &out)
}

// Info describes the agent.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var out Info
	return out, c.do(ctx, http.MethodGet, "/v1/info", nil, nil, &out)
}

// Health asks whether the agent is up.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var out Health
	return out, c.do(ctx, http.MethodGet, "/v1/health", nil, nil, &out)
}

// Load returns the mesh's load table and aggregate.
func (c *Client) Load(ctx context.Context) (LoadReport, error) {
	var out LoadReport
	return out, c.do(ctx, http.MethodGet, "/v1/load", nil, nil, &out)
}

// Join asks the agent to join addrs.
func (c *Client) Join(ctx context.Context, addrs []string) (int, error) {
	var out JoinResponse
	err := c.do(ctx, http.MethodPost, "/v1/join", nil, JoinRequest{Addrs: addrs}, &out)
	return out.Joined, err
}

// Leave asks the agent to leave the mesh gracefully and stop.
func (c *Client) Leave(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/leave", nil, struct{}{}, nil)
}

// ForceLeave marks a failed member as left.
func (c *Client) ForceLeave(ctx context.Context, node string, prune bool) error {
	return c.do(ctx, http.MethodPost, "/v1/force-leave", nil, ForceLeaveRequest{Node: node, Prune: prune}, nil)
}

// Keys runs a keyring operation: list, install, use or remove.
func (c *Client) Keys(ctx context.Context, op, key string) (KeysResponse, error) {
	var out KeysResponse
	if op == "list" {
		return out, c.do(ctx, http.MethodGet, "/v1/keys", nil, nil, &out)
	}
	return out, c.do(ctx, http.MethodPost, "/v1/keys/"+op, nil, KeyRequest{Key: key}, &out)
}

// Events returns the agent's recent events.
func (c *Client) Events(ctx context.Context) ([]Event, error) {
	var out []Event
	return out, c.do(ctx, http.MethodGet, "/v1/events", nil, nil, &out)
}
