package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client asks one agent. The zero value is not usable; use New.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// ErrAPI is wrapped by errors the agent answered with.
var ErrAPI = errors.New("agent answered with an error")

// New returns a client for the agent at addr (host:port or a URL).
func New(addr, token string) *Client {
	base := addr
	if !strings.Contains(addr, "://") {
		base = "http://" + addr
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Timeout: 30 * time.Second}}
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
		return fmt.Errorf("cannot reach the agent at %s (is 'shoal agent' running? set --http-addr or SHOAL_HTTP_ADDR): %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			return fmt.Errorf("%w (%d): %s", ErrAPI, resp.StatusCode, eb.Error)
		}
		return fmt.Errorf("%w (%d): %s", ErrAPI, resp.StatusCode, strings.TrimSpace(string(b)))
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
