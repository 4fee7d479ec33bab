package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// ScaleStatus is one agent's view of autoscaling (GET /v1/scale/status).
type ScaleStatus struct {
	// Node is the agent that answered; Enabled is false when it runs no
	// scale provider.
	Node     string `json:"node"`
	Enabled  bool   `json:"enabled"`
	Provider string `json:"provider,omitempty"`
	Resource string `json:"resource,omitempty"`
	// Mode is "target" (HPA rule) or "thresholds"; Metric, Target, Min,
	// Max and DryRun are the policy's settings.
	Mode   string  `json:"mode,omitempty"`
	Metric string  `json:"metric,omitempty"`
	Target float64 `json:"target,omitempty"`
	Min    int     `json:"min"`
	Max    int     `json:"max"`
	DryRun bool    `json:"dry_run,omitempty"`
	// Value is the metric's aggregate over Members alive members with
	// load; ValueValid is false when none had figures.
	Value      float64 `json:"value"`
	ValueValid bool    `json:"value_valid"`
	Members    int     `json:"members"`
	// Current is the count the policy started from, and CurrentSource
	// where it came from: provider, last action, or mesh (alive members).
	Current       int    `json:"current"`
	CurrentSource string `json:"current_source,omitempty"`
	// Desired, Recommendation, Action and Reasons are the last evaluation.
	Desired        int      `json:"desired"`
	Recommendation int      `json:"recommendation"`
	Action         string   `json:"action,omitempty"`
	Reasons        []string `json:"reasons,omitempty"`
	// Acting is true when this agent acts as coordinator; Coordinator and
	// Term are the coordinator it names.
	Acting      bool   `json:"acting"`
	Coordinator string `json:"coordinator"`
	Term        uint64 `json:"term"`
	// LastDecision is the latest recorded decision (this agent's, or one
	// learnt from the coordinator).
	LastDecision *ScaleRecord `json:"last_decision,omitempty"`
	// Decisions counts recorded decisions by outcome.
	Decisions map[string]uint64 `json:"decisions,omitempty"`
	// UpdatedAt is the last evaluation's time (RFC 3339); Error the last
	// provider error, if the last evaluation met one.
	UpdatedAt string `json:"updated_at,omitempty"`
	Error     string `json:"error,omitempty"`
}

// ScaleRecord is one entry of an agent's scale history.
type ScaleRecord struct {
	// Time is when it was recorded; Node by whom; Provider through which.
	Time     string `json:"time"`
	Node     string `json:"node"`
	Provider string `json:"provider"`
	// Outcome is applied, refused (fencing, or the lease was lost), failed,
	// dry-run, or observed (another coordinator's action); Error says why.
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Holder, Priority and Term are the lease it was taken under.
	Holder   string `json:"holder"`
	Priority int    `json:"priority"`
	Term     uint64 `json:"term"`
	// The decision: when, from which count to which, and why.
	DecidedAt string   `json:"decided_at"`
	Current   int      `json:"current"`
	Desired   int      `json:"desired"`
	Action    string   `json:"action"`
	Metric    string   `json:"metric,omitempty"`
	Value     float64  `json:"value"`
	Target    float64  `json:"target,omitempty"`
	DryRun    bool     `json:"dry_run,omitempty"`
	Reasons   []string `json:"reasons,omitempty"`
}

// DebugLoad is the synthetic load POST /v1/debug/load sets (a test hook,
// served with --enable-debug or in the local profile); Clear removes it.
type DebugLoad struct {
	CPUPercent float64 `json:"cpu_percent"`
	MemPercent float64 `json:"mem_percent"`
	NetRxBps   float64 `json:"net_rx_bps"`
	NetTxBps   float64 `json:"net_tx_bps"`
	Load1      float64 `json:"load1"`
	Cores      float64 `json:"cores"`
	Clear      bool    `json:"clear,omitempty"`
}

// ScaleStatus returns the agent's autoscaling view.
func (c *Client) ScaleStatus(ctx context.Context) (ScaleStatus, error) {
	var out ScaleStatus
	return out, c.do(ctx, http.MethodGet, "/v1/scale/status", nil, nil, &out)
}

// ScaleHistory returns up to limit of the latest history records, oldest
// first (limit 0: all the agent keeps).
func (c *Client) ScaleHistory(ctx context.Context, limit int) ([]ScaleRecord, error) {
	var out []ScaleRecord
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return out, c.do(ctx, http.MethodGet, "/v1/scale/history", q, nil, &out)
}

// SetDebugLoad sets (or clears) the agent's synthetic load.
func (c *Client) SetDebugLoad(ctx context.Context, l DebugLoad) error {
	return c.do(ctx, http.MethodPost, "/v1/debug/load", nil, l, nil)
}
