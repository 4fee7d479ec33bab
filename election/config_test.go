package election

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Name = "n1"
	good.Rand = rand.New(rand.NewPCG(1, 2))
	if _, err := New(good); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	fast := FastConfig()
	fast.Name, fast.Rand = "n1", good.Rand
	if _, err := New(fast); err != nil {
		t.Fatalf("FastConfig: %v", err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"Name", func(c *Config) { c.Name = "" }},
		{"Name", func(c *Config) { c.Name = strings.Repeat("x", MaxNameLen+1) }},
		{"Quorum", func(c *Config) { c.Quorum = -1 }},
		{"PreemptDelay", func(c *Config) { c.PreemptDelay = -1 }},
		{"AnswerTimeout", func(c *Config) { c.AnswerTimeout = 0 }},
		{"ProbeAttempts", func(c *Config) { c.ProbeAttempts = 0 }},
		{"ClaimAttempts", func(c *Config) { c.ClaimAttempts = 0 }},
		{"RetransmitTicks", func(c *Config) { c.RetransmitTicks = 0 }},
		{"ClaimTimeout", func(c *Config) { c.ClaimTimeout = c.RetransmitTicks }},
		{"Jitter", func(c *Config) { c.Jitter = -1 }},
		{"Rand", func(c *Config) { c.Rand = nil }},
	} {
		c := good
		tc.edit(&c)
		_, err := New(c)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: got %v, want ErrInvalidConfig naming %s", tc.field, err, tc.field)
		}
	}
}

func TestRank(t *testing.T) {
	for _, tc := range []struct {
		a, b Rank
		want int
	}{
		{Rank{2, "a"}, Rank{1, "z"}, 1},   // priority first
		{Rank{1, "b"}, Rank{1, "a"}, 1},   // then the greater name
		{Rank{1, "a"}, Rank{1, "ab"}, -1}, // byte-wise
		{Rank{-1, "x"}, Rank{0, "a"}, -1},
		{Rank{1, "a"}, Rank{1, "a"}, 0},
	} {
		if got := tc.a.Compare(tc.b); got != tc.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestStepRejects(t *testing.T) {
	c := FastConfig()
	c.Name, c.Jitter = "n1", 0
	n, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	n.SetMembers([]Member{{Name: "n1", Alive: true}, {Name: "n2", Alive: true}})
	if err := n.Step(Message{Type: MsgAck, From: "n2", To: "n3"}); !errors.Is(err, ErrWrongRecipient) {
		t.Errorf("wrong recipient: %v", err)
	}
	if err := n.Step(Message{Type: MsgAck, From: "stranger", To: "n1"}); !errors.Is(err, ErrUnknownMember) {
		t.Errorf("unknown member: %v", err)
	}
	if err := n.Step(Message{Type: 42, From: "n2", To: "n1"}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("bad type: %v", err)
	}
}

// TestSingleNode: a mesh of one is its own quorum.
func TestSingleNode(t *testing.T) {
	c := FastConfig()
	c.Name, c.Jitter = "solo", 0
	n, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	n.Request()
	l, ok := n.Lease()
	if !ok || l.Term != 1 || l.Holder != "solo" {
		t.Fatalf("lease %v %t", l, ok)
	}
	if msgs := n.Messages(); len(msgs) != 0 {
		t.Fatalf("sent %v", msgs)
	}
}
