package providers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/scale"
)

// WebhookName is the webhook provider's name.
const WebhookName = "webhook"

// Headers the webhook sends.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
	// under the shared secret (option secret), as GitHub's webhooks do.
	SignatureHeader = "X-Shoal-Signature"
	// TermHeader and HolderHeader repeat the lease, so that the receiver
	// can fence without parsing the body: it should answer 409 Conflict to
	// a term lower than the last it acted on.
	TermHeader   = "X-Shoal-Term"
	HolderHeader = "X-Shoal-Holder"
	// DeliveryHeader identifies the decision; retries repeat it, so the
	// receiver can drop duplicates.
	DeliveryHeader = "X-Shoal-Delivery"
)

// WebhookPayload is the JSON body the webhook POSTs.
type WebhookPayload struct {
	Node     string         `json:"node"`
	Holder   string         `json:"holder"`
	Priority int            `json:"priority"`
	Term     uint64         `json:"term"`
	Current  int            `json:"current"`
	Desired  int            `json:"desired"`
	Action   string         `json:"action"`
	Reason   string         `json:"reason"`
	Time     time.Time      `json:"time"`
	Decision scale.Decision `json:"decision"`
}

// Webhook POSTs each decision as JSON to a URL (the resource), signed with
// HMAC-SHA256, retrying on network errors and 5xx answers with doubling
// backoff. A 409 answer means the receiver fenced the term (the error wraps
// fence.ErrStaleTerm); other 4xx answers are not retried. Options:
// secret (required), retries (default 3), backoff (first wait, 200ms),
// timeout (per attempt, 10s), current_url (GET answering {"current": N},
// for Current, or {"current": N, "ready": M} with the instances that
// serve, for Counts), fence_file.
type Webhook struct {
	url, currentURL string
	secret          []byte
	retries         int
	backoff         time.Duration
	node            string
	hc              *http.Client
	fence           *scale.FileFence
	log             *slog.Logger
}

var (
	_ scale.Provider         = (*Webhook)(nil)
	_ scale.LastActionReader = (*Webhook)(nil)
	_ scale.ReadyReader      = (*Webhook)(nil)
)

// NewWebhook is the webhook provider's factory.
func NewWebhook(cfg scale.ProviderConfig) (scale.Provider, error) {
	if err := cfg.CheckOptions("secret", "retries", "backoff", "timeout", "current_url", OptFenceFile); err != nil {
		return nil, err
	}
	if err := CheckURL(cfg, "resource", cfg.Resource); err != nil {
		return nil, err
	}
	cur := cfg.Opt("current_url", "")
	if cur != "" {
		if err := CheckURL(cfg, "current_url", cur); err != nil {
			return nil, err
		}
	}
	secret := cfg.Opt("secret", "")
	if secret == "" {
		return nil, fmt.Errorf("%w: provider webhook: option secret is empty: set --scale-opt secret=... (the receiver checks %s with it)", scale.ErrProviderConfig, SignatureHeader)
	}
	retries, err := OptInt(cfg, "retries", 3, 0)
	if err != nil {
		return nil, err
	}
	backoff, err := OptDuration(cfg, "backoff", 200*time.Millisecond)
	if err != nil {
		return nil, err
	}
	timeout, err := OptDuration(cfg, "timeout", 10*time.Second)
	if err != nil {
		return nil, err
	}
	f, err := OpenFence(cfg)
	if err != nil {
		return nil, err
	}
	return &Webhook{url: cfg.Resource, currentURL: cur, secret: []byte(secret), retries: retries, backoff: backoff,
		node: cfg.Node, hc: &http.Client{Timeout: timeout}, fence: f, log: cfg.Logger.With("component", "scale-webhook")}, nil
}

// CheckURL checks that option what holds an http:// or https:// URL.
func CheckURL(cfg scale.ProviderConfig, what, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: provider %s: %s %q: want an http:// or https:// URL", scale.ErrProviderConfig, cfg.Name, what, s)
	}
	return nil
}

// Sign returns the SignatureHeader value for body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a SignatureHeader value in constant time: what a
// receiver does before trusting the body.
func VerifySignature(secret, body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	b, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(b, m.Sum(nil))
}

// Name returns "webhook".
func (p *Webhook) Name() string { return WebhookName }

// Authoritative is true with current_url: it reads the resource.
func (p *Webhook) Authoritative() bool { return p.currentURL != "" }

// Current asks current_url, or returns scale.ErrCountUnknown: the count in
// this node's fence is only its own last action, which another node may
// have superseded (LastAction returns it with its lease).
func (p *Webhook) Current(ctx context.Context) (int, error) {
	c, err := p.Counts(ctx)
	return c.Current, err
}

// Counts asks current_url: {"current": N} and, optionally, "ready": M.
func (p *Webhook) Counts(ctx context.Context) (scale.Counts, error) {
	if p.currentURL == "" {
		return scale.Counts{}, scale.ErrCountUnknown
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.currentURL, nil)
	if err != nil {
		return scale.Counts{}, err
	}
	req.Header.Set(SignatureHeader, Sign(p.secret, nil))
	resp, err := p.hc.Do(req)
	if err != nil {
		return scale.Counts{}, fmt.Errorf("webhook current_url: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	return parseCurrentAnswer(p.currentURL, resp.Status, resp.StatusCode, b)
}

// maxAnswer bounds the response body a webhook reads.
const maxAnswer = 1 << 16

// parseCurrentAnswer decodes current_url's answer: status 200 and
// {"current": N} or {"current": N, "ready": M}, each from 0 to
// scale.MaxCount, within maxAnswer bytes. Errors name the URL and quote at
// most maxQuoted bytes of the body.
func parseCurrentAnswer(url, status string, code int, b []byte) (scale.Counts, error) {
	if code != http.StatusOK {
		return scale.Counts{}, fmt.Errorf("webhook current_url %s answered %s: %s", url, status, quoteAnswer(b))
	}
	var out struct {
		Current *int `json:"current"`
		Ready   *int `json:"ready"`
	}
	if len(b) > maxAnswer || json.Unmarshal(b, &out) != nil || out.Current == nil {
		return scale.Counts{}, fmt.Errorf("webhook current_url %s: want {\"current\": N} or {\"current\": N, \"ready\": M}, got %s", url, quoteAnswer(b))
	}
	c := scale.Counts{Current: *out.Current}
	if out.Ready != nil {
		c.Ready, c.ReadyKnown = *out.Ready, true
	}
	if c.Current < 0 || c.Current > scale.MaxCount || (c.ReadyKnown && (c.Ready < 0 || c.Ready > scale.MaxCount)) {
		return scale.Counts{}, fmt.Errorf("webhook current_url %s: current %d, ready %d: want counts from 0 to %d", url, c.Current, c.Ready, scale.MaxCount)
	}
	return c, nil
}

// Scale fences the lease and POSTs the decision.
func (p *Webhook) Scale(ctx context.Context, desired int, lease fence.Lease, d scale.Decision) error {
	return p.fence.Do(lease, func(st *scale.FenceState) error {
		pl := WebhookPayload{Node: p.node, Holder: lease.Holder, Priority: lease.Priority, Term: lease.Term,
			Current: d.Current, Desired: desired, Action: d.Action, Reason: d.Reason(), Time: ActionTime(d), Decision: d}
		body, err := json.Marshal(pl)
		if err != nil {
			return err
		}
		delivery := fmt.Sprintf("%d-%s-%d-%d", lease.Term, lease.Holder, pl.Time.UnixNano(), desired)
		if err := p.post(ctx, body, lease, delivery); err != nil {
			return err
		}
		st.Count, st.Known = desired, true
		st.Last = &scale.Applied{Time: pl.Time, From: d.Current, To: desired, Lease: lease}
		return nil
	})
}

// errPermanent marks an answer not worth retrying.
type errPermanent struct{ error }

func (p *Webhook) post(ctx context.Context, body []byte, lease fence.Lease, delivery string) error {
	wait := p.backoff
	var last error
	for attempt := 0; attempt <= p.retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("webhook %s: %w (after %v)", p.url, ctx.Err(), last)
			case <-t.C:
			}
			wait *= 2
		}
		err := p.postOnce(ctx, body, lease, delivery)
		if err == nil {
			return nil
		}
		var perm errPermanent
		if errors.As(err, &perm) {
			return perm.error
		}
		last = err
		p.log.Warn("webhook attempt failed", "attempt", attempt+1, "of", p.retries+1, "err", err)
	}
	return fmt.Errorf("webhook %s: %d attempts failed, last: %w", p.url, p.retries+1, last)
}

func (p *Webhook) postOnce(ctx context.Context, body []byte, lease fence.Lease, delivery string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return errPermanent{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "shoal-scale-webhook")
	req.Header.Set(SignatureHeader, Sign(p.secret, body))
	req.Header.Set(TermHeader, strconv.FormatUint(lease.Term, 10))
	req.Header.Set(HolderHeader, lease.Holder)
	req.Header.Set(DeliveryHeader, delivery)
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return postAnswer(p.url, lease, resp.Status, resp.StatusCode, b)
}

// postAnswer turns the receiver's answer to a POST into the outcome: nil
// for 2xx, fence.ErrStaleTerm for 409, a permanent error for the other
// 4xx, a retryable one otherwise. Errors quote at most maxQuoted bytes of
// the body.
func postAnswer(url string, lease fence.Lease, status string, code int, b []byte) error {
	msg := quoteAnswer(b)
	switch {
	case code/100 == 2:
		return nil
	case code == http.StatusConflict:
		return errPermanent{fmt.Errorf("%w: the webhook receiver refused term %d from %q: %s", fence.ErrStaleTerm, lease.Term, lease.Holder, msg)}
	case code/100 == 4:
		return errPermanent{fmt.Errorf("webhook %s answered %s: %s", url, status, msg)}
	}
	return fmt.Errorf("webhook %s answered %s: %s", url, status, msg)
}

// LastAction returns the last action this provider's fence recorded.
func (p *Webhook) LastAction(ctx context.Context) (scale.Applied, bool, error) {
	st, err := p.fence.Read()
	if err != nil {
		return scale.Applied{}, false, err
	}
	a, ok := LastFromState(st)
	return a, ok, nil
}
