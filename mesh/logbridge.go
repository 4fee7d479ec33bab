package mesh

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// newStdLogger returns a *log.Logger (what serf and memberlist take) that
// hands each line to l at the level named in its "[LEVEL]" prefix. Lines in
// which memberlist reports a packet or stream it dropped are counted in
// stats (memberlist keeps no counters of its own) and logged at most once
// per dropLogEvery for each reason, so that a flood of garbage at the
// gossip port does not become a flood of log lines.
func newStdLogger(l *slog.Logger, stats *Stats) *log.Logger {
	return log.New(&logBridge{l: l, stats: stats}, "", 0)
}

// dropLogEvery is the most often one reason's drop line is logged.
const dropLogEvery = 10 * time.Second

type logBridge struct {
	l     *slog.Logger
	stats *Stats

	mu         sync.Mutex
	lastLogged [NumDropReasons]time.Time
	suppressed [NumDropReasons]uint64
}

func (b *logBridge) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for _, lv := range []struct {
		tag string
		l   slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}} {
		if i := strings.Index(msg, lv.tag); i >= 0 {
			level = lv.l
			msg = strings.TrimSpace(msg[i+len(lv.tag):])
			break
		}
	}
	// serf logs every member event at info ("serf: EventMemberJoin: n2
	// 10.0.0.2"); mesh logs the same event once more with structured
	// attributes, so serf's copy goes to debug: one info line per event.
	if level == slog.LevelInfo && strings.HasPrefix(msg, "serf: EventMember") {
		level = slog.LevelDebug
	}
	if r, ok := memberlistDrop(msg); ok && level >= slog.LevelWarn {
		if b.stats != nil {
			b.stats.drop(r)
		}
		now := time.Now()
		b.mu.Lock()
		if now.Sub(b.lastLogged[r]) < dropLogEvery {
			b.suppressed[r]++
			b.mu.Unlock()
			return len(p), nil
		}
		n := b.suppressed[r]
		b.lastLogged[r], b.suppressed[r] = now, 0
		b.mu.Unlock()
		if n > 0 {
			b.l.Log(context.Background(), level, msg, "reason", r.String(), "suppressed", n)
			return len(p), nil
		}
		b.l.Log(context.Background(), level, msg, "reason", r.String())
		return len(p), nil
	}
	b.l.Log(context.Background(), level, msg)
	return len(p), nil
}
