package agent

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoalmesh/shoal/election"
)

// FuzzHardStateFile feeds the election state file's decoder (what
// loadHardState reads from the data directory) arbitrary bytes: it never
// panics, takes at most maxHardStateFile bytes, and a state it takes
// restores a node that keeps its promises: the next term it claims is
// above every term it remembers.
func FuzzHardStateFile(f *testing.F) {
	// Seeds: states a node writes (as in TestElectionStateSurvivesRestart),
	// the edges of the term range, and broken files.
	for _, hs := range []election.HardState{
		{},
		{Term: 3, Holder: "el-3", MaxTerm: 4, MaxHolder: "el-2"},
		{Term: 1 << 40, Holder: "x", MaxTerm: 1 << 40},
		{Term: 1<<64 - 1, Holder: "el-1", MaxTerm: 1<<64 - 1, MaxHolder: "el-1"},
		{MaxTerm: 1<<64 - 1},
		{Holder: strings.Repeat("h", election.MaxNameLen+1)},
	} {
		b, err := json.Marshal(hs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Term":-1}`))
	f.Add([]byte(`{"Term":18446744073709551616}`))
	f.Add([]byte(`{"Term":1,"Term":2}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := parseHardState(b)
		if err != nil {
			if len(b) <= maxHardStateFile && strings.Contains(err.Error(), "over") {
				t.Fatalf("a file of %d bytes refused for its size: %v", len(b), err)
			}
			return
		}
		if len(b) > maxHardStateFile {
			t.Fatalf("took a file of %d bytes", len(b))
		}
		cfg := election.FastConfig()
		cfg.Name, cfg.Jitter, cfg.Restore = "self", 0, hs
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
		n, err := election.New(cfg)
		if err != nil {
			return // refused at restore: fine, the agent does not start
		}
		// Alone at the top of a mesh of two that it sees whole, asked for
		// a coordinator: it claims at once.
		n.SetMembers([]election.Member{{Name: "self", Alive: true}, {Name: "other", Alive: true}})
		n.Request()
		claimed := false
		for _, m := range n.Messages() {
			if m.Type != election.MsgCoordinator || m.Acting {
				continue
			}
			claimed = true
			if m.Term <= hs.Term || m.Term <= hs.MaxTerm {
				t.Fatalf("restored from %+v, the node claims term %d: not above what it remembers", hs, m.Term)
			}
			if _, err := election.Unmarshal(mustMarshal(t, m)); err != nil {
				t.Fatalf("its claim %v does not decode: %v", m, err)
			}
		}
		if !claimed {
			t.Fatalf("restored from %+v, the node did not claim", hs)
		}
	})
}

func mustMarshal(t *testing.T, m election.Message) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatalf("marshal %v: %v", m, err)
	}
	return b
}

// TestHardStateFileIsBounded: a state file above maxHardStateFile is
// refused with its path, without reading it all.
func TestHardStateFileIsBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), electionStateFile)
	big := `{"Term":1,"Holder":"` + strings.Repeat("x", 10<<20) + `"}`
	if err := os.WriteFile(p, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadHardState(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "over 4096 bytes") {
		t.Fatalf("a 10 MB state file: %v", err)
	}
}
