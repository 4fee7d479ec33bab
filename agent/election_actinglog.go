package agent

// The acting log (--acting-log FILE): one JSON line per change of this
// node's acting state and per lease renewal, for fault tests that check
// that acting intervals of different holders never overlap, and for audits.

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// actingRecord is one line of the acting log. While acting, Until is the
// lease expiry by this node's clock; End marks the end of acting.
type actingRecord struct {
	Node  string `json:"node"`
	Term  uint64 `json:"term"`
	At    string `json:"at"`
	Until string `json:"until,omitempty"`
	End   bool   `json:"end,omitempty"`
}

// actingLog appends records to a file. Used by the election runner's
// goroutine only. Write errors are counted by the caller, not fatal: the
// log is a record, not a precondition of acting.
type actingLog struct {
	node string
	f    *os.File
	// What the last line said, so that only changes and renewals are written.
	acting bool
	term   uint64
	until  time.Time
}

func openActingLog(path, node string) (*actingLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("acting log %s: %w", path, err)
	}
	return &actingLog{node: node, f: f}, nil
}

// note records the acting state at now: acting under term until the given
// lease expiry, or not acting. It writes a line when acting starts or ends,
// the term changes, or the expiry moves (a renewal).
func (l *actingLog) note(now time.Time, acting bool, term uint64, until time.Time) error {
	if l == nil {
		return nil
	}
	var rec actingRecord
	switch {
	case acting && (!l.acting || term != l.term || !until.Equal(l.until)):
		rec = actingRecord{Node: l.node, Term: term, At: now.UTC().Format(time.RFC3339Nano), Until: until.UTC().Format(time.RFC3339Nano)}
		l.acting, l.term, l.until = true, term, until
	case !acting && l.acting:
		rec = actingRecord{Node: l.node, Term: l.term, At: now.UTC().Format(time.RFC3339Nano), End: true}
		l.acting, l.until = false, time.Time{}
	default:
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = l.f.Write(append(b, '\n'))
	return err
}

func (l *actingLog) close() {
	if l != nil {
		l.f.Close()
	}
}
