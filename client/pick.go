package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// PickRequest asks the agent where work should go (GET /v1/pick).
type PickRequest struct {
	// Service selects members with the tag service=<Service>; their
	// address is their gossip host with the "port" tag. Empty means every
	// member, with the "port" tag when it has one.
	Service string
	// N is how many distinct members to pick; 0 means 1. Fewer come back
	// when fewer are eligible.
	N int
	// Strategy names the picker ("" is the agent's default, p2c).
	Strategy string
	// Tags further restrict the members (key=value, all must match).
	Tags map[string]string
}

// Picked is one member chosen by /v1/pick.
type Picked struct {
	Name string `json:"name"`
	// Addr is where to send the work: host:port of the service (the
	// member's address and its "port" tag), or the bare host when the
	// member has no port tag and no service was asked for.
	Addr string `json:"addr"`
	// Weight is the member's weight (capacity × headroom, blended toward
	// capacity as its load information ages).
	Weight float64 `json:"weight"`
	// Load is the fraction of the member's capacity in use (0 idle, >1
	// queued), as loadshare.Load computes it.
	Load float64 `json:"load"`
	// Capacity is the member's relative capacity ("capacity" tag, else its
	// cores).
	Capacity float64 `json:"capacity"`
	// LoadAgeSeconds is how old the member's load information is; -1 if none.
	LoadAgeSeconds float64 `json:"load_age_seconds"`
	Self           bool    `json:"self"`
}

// Pick asks the agent to pick members for a piece of work. An unknown
// strategy or a malformed request is a 400, an unknown service a 404, and
// no eligible member a 503; all come back as errors wrapping ErrAPI with
// the agent's message.
func (c *Client) Pick(ctx context.Context, r PickRequest) ([]Picked, error) {
	q := url.Values{}
	if r.Service != "" {
		q.Set("service", r.Service)
	}
	if r.N != 0 {
		q.Set("n", strconv.Itoa(r.N))
	}
	if r.Strategy != "" {
		q.Set("strategy", r.Strategy)
	}
	for k, v := range r.Tags {
		q.Add("tag", k+"="+v)
	}
	var out []Picked
	return out, c.do(ctx, http.MethodGet, "/v1/pick", q, nil, &out)
}
