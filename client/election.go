package client

import (
	"context"
	"net/http"
)

// Leader is one agent's view of the coordinator election (GET /v1/leader).
type Leader struct {
	// Node is the agent that answered.
	Node string `json:"node"`
	// Coordinator is the coordinator this agent names; "" when none is known.
	Coordinator string `json:"coordinator"`
	// Term is the coordinator's term (0 when none is known).
	Term uint64 `json:"term"`
	// Priority is the coordinator's priority, as this agent knows it.
	Priority int `json:"priority"`
	// Acting is true when this agent is the coordinator and may act now.
	Acting bool `json:"acting"`
	// IsSelf is true when this agent names itself (it may not act yet).
	IsSelf bool `json:"is_self"`
	// Since is when this agent started naming Coordinator (RFC 3339).
	Since string `json:"since"`
	// QuorumSeen is how many members of the committed set this agent sees
	// alive, counting itself; QuorumNeeded how many it needs to act.
	QuorumSeen   int `json:"quorum_seen"`
	QuorumNeeded int `json:"quorum_needed"`
	// Electing is true while an election runs or waits for a quorum here.
	Electing bool `json:"electing"`
	// Holding is true while this agent won its term but holds no lease
	// yet (or no longer): it does not act.
	Holding bool `json:"holding,omitempty"`
	// LeaseUntil is when this agent's lease runs out by its clock
	// (RFC 3339, UTC), while it acts.
	LeaseUntil string `json:"lease_until,omitempty"`
}

// LeaderAction is one action an agent attempted as coordinator, with the
// lease it acted under (POST /v1/leader/act; the action log).
type LeaderAction struct {
	// Node is the agent that acted; Holder, Priority and Term its lease.
	Node     string `json:"node"`
	Holder   string `json:"holder"`
	Priority int    `json:"priority"`
	Term     uint64 `json:"term"`
	// Time is when the agent acted (RFC 3339 with nanoseconds).
	Time string `json:"time"`
	// Seq numbers the agent's actions from 1.
	Seq uint64 `json:"seq"`
}

// ActResponse answers POST /v1/leader/act: Acted is false (and Action nil)
// when the agent is not the acting coordinator.
type ActResponse struct {
	Acted  bool          `json:"acted"`
	Action *LeaderAction `json:"action,omitempty"`
	Reason string        `json:"reason,omitempty"`
}

// Leader returns the agent's view of the coordinator election.
func (c *Client) Leader(ctx context.Context) (Leader, error) {
	var out Leader
	return out, c.do(ctx, http.MethodGet, "/v1/leader", nil, nil, &out)
}

// Elect asks the agent for a coordinator: an election starts if none is
// known. It returns at once with the agent's view; poll Leader to wait.
func (c *Client) Elect(ctx context.Context) (Leader, error) {
	var out Leader
	return out, c.do(ctx, http.MethodPost, "/v1/leader/elect", nil, struct{}{}, &out)
}

// Act asks the agent to attempt one (no-op) action as coordinator. It is
// recorded in the agent's action log only if the agent acts.
func (c *Client) Act(ctx context.Context) (ActResponse, error) {
	var out ActResponse
	return out, c.do(ctx, http.MethodPost, "/v1/leader/act", nil, struct{}{}, &out)
}

// Actions returns the agent's action log, oldest first.
func (c *Client) Actions(ctx context.Context) ([]LeaderAction, error) {
	var out []LeaderAction
	return out, c.do(ctx, http.MethodGet, "/v1/leader/actions", nil, nil, &out)
}
