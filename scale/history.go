package scale

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/shoalmesh/shoal/fence"
)

// HistoryFile is the history's file name in the agent's data directory.
const HistoryFile = "scale-history.jsonl"

// Outcomes of a Record.
const (
	// OutcomeApplied: the provider carried the decision out.
	OutcomeApplied = "applied"
	// OutcomeRefused: the provider refused the lease (fencing: a deposed
	// coordinator), or the node lost its lease before the call.
	OutcomeRefused = "refused"
	// OutcomeFailed: the provider failed (unreachable, forbidden, missing
	// resource...); Error says why.
	OutcomeFailed = "failed"
	// OutcomeDryRun: dry-run; nothing was called.
	OutcomeDryRun = "dry-run"
	// OutcomeObserved: another coordinator's action, learnt from the mesh
	// or the provider (kept so cooldowns survive a restart of this node).
	OutcomeObserved = "observed"
	// OutcomeHeld: the policy would have acted, but the scaler decided
	// nothing because it had no load figures and no count read from the
	// resource (HoldWithoutFigures). Recorded once per such episode.
	OutcomeHeld = "held"
)

// Record is one entry of the history: a decision, the lease it was taken
// under, and what came of it.
type Record struct {
	Time     time.Time   `json:"time"`
	Node     string      `json:"node"`
	Provider string      `json:"provider"`
	Outcome  string      `json:"outcome"`
	Error    string      `json:"error,omitempty"`
	Lease    fence.Lease `json:"lease"`
	Decision Decision    `json:"decision"`
}

// Action returns the action the record stands for, and false for outcomes
// that changed nothing (refused, failed). Dry-run decisions count, so that
// a dry run paces itself as a real one would.
func (r Record) Action() (Action, bool) {
	switch r.Outcome {
	case OutcomeApplied, OutcomeDryRun, OutcomeObserved:
		return Action{Time: r.Decision.Time, From: r.Decision.Current, To: r.Decision.Desired}, true
	}
	return Action{}, false
}

// Known returns the action the record stands for with its lease, learnt
// from source.
func (r Record) Known(source string) (Known, bool) {
	a, ok := r.Action()
	return Known{Lease: r.Lease, Action: a, Source: source}, ok
}

// History appends records to a JSON-lines file, fsyncing each, and keeps
// the most recent ones in memory. With an empty path it is memory only.
// It is safe for concurrent use.
type History struct {
	mu     sync.Mutex
	f      *os.File
	recent []Record
	keep   int
}

// OpenHistory opens (creating if needed) the history at path and reads it
// back, keeping the last keep records in memory (however long the file).
// A torn last line (the process died while writing it) is skipped.
func OpenHistory(path string, keep int) (*History, error) {
	h := &History{keep: max(keep, 1)}
	if path == "" {
		return h, nil
	}
	recs, err := readHistory(path, h.keep)
	if err != nil {
		return nil, err
	}
	h.recent = recs
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("scale history: %w", err)
	}
	h.f = f
	return h, nil
}

// ReadHistory reads every record at path (none if the file is missing).
func ReadHistory(path string) ([]Record, error) { return readHistory(path, 0) }

func readHistory(path string, keep int) ([]Record, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return []Record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scale history: %w", err)
	}
	defer f.Close()
	out, err := DecodeHistory(f, keep)
	if err != nil {
		return nil, fmt.Errorf("scale history %s: %w", path, err)
	}
	return out, nil
}

// MaxHistoryLine bounds one line of the history file.
const MaxHistoryLine = 1 << 20

// DecodeHistory reads history records, one JSON object a line, and returns
// the last keep of them (keep ≤ 0: all), holding no more than keep in
// memory. Lines that are not a record (a torn last line) are skipped; a
// line over MaxHistoryLine bytes is an error.
func DecodeHistory(r io.Reader, keep int) ([]Record, error) {
	out := []Record{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), MaxHistoryLine)
	for sc.Scan() {
		var rec Record
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if keep > 0 && len(out) == 2*keep {
			// Drop the older half at once: amortised O(1) a record.
			out = append(out[:0], out[keep:]...)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if keep > 0 && len(out) > keep {
		out = append([]Record(nil), out[len(out)-keep:]...)
	}
	return out, nil
}

// Append writes r and fsyncs before returning.
func (h *History) Append(r Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recent = append(h.recent, r)
	if len(h.recent) > h.keep {
		h.recent = append(h.recent[:0], h.recent[len(h.recent)-h.keep:]...)
	}
	if h.f == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := h.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("scale history: %w", err)
	}
	if err := h.f.Sync(); err != nil {
		return fmt.Errorf("scale history: %w", err)
	}
	return nil
}

// Recent returns up to n of the latest records, oldest first (n ≤ 0: all
// kept in memory).
func (h *History) Recent(n int) []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.recent
	if n > 0 && len(s) > n {
		s = s[len(s)-n:]
	}
	return append([]Record(nil), s...)
}

// LastAction returns the latest record that stands for an action.
func (h *History) LastAction() (Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.recent) - 1; i >= 0; i-- {
		if _, ok := h.recent[i].Action(); ok {
			return h.recent[i], true
		}
	}
	return Record{}, false
}

// NewestAction returns the record of the newest action kept, ordered by
// term (Known.Newer), not by when it was appended: an action learnt late
// from an older term does not hide a newer one.
func (h *History) NewestAction() (Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var best Record
	var bestK Known
	found := false
	for _, r := range h.recent {
		k, ok := r.Known("history")
		if ok && (!found || k.Newer(bestK)) {
			best, bestK, found = r, k, true
		}
	}
	return best, found
}

// Close closes the file.
func (h *History) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		return nil
	}
	err := h.f.Close()
	h.f = nil
	return err
}
