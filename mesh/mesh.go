package mesh

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/shoalmesh/shoal/metrics"
)

// Event is a membership change.
type Event struct {
	Type   string // member-join, member-leave, member-failed, member-update, member-reap
	Member string
	Addr   string
	Time   time.Time
}

// Mesh is this node's membership (serf on memberlist) and load dissemination.
// Its methods are safe for concurrent use.
type Mesh struct {
	cfg    Config
	log    *slog.Logger
	serf   *serf.Serf
	ml     *memberlist.Config
	trans  memberlist.NodeAwareTransport
	sealer *Sealer
	stats  Stats
	vclock *VersionClock

	mu      sync.Mutex
	table   *Table
	members map[string]*memberState // serf's view, kept from its events
	ids     map[uint32]string       // NameID -> name of known members
	collide map[uint32]bool         // IDs shared by two known members
	heard   map[string]*heard       // decoded load per member, beside table
	before  map[string]*heard       // the state each member held before its current one
	evSeq   uint64                  // membership events applied (see reconcile)

	// ownTags are this node's tags; tagMu serialises changes to them (the
	// one owner of the node's tags: see AnnounceScale).
	tagMu   sync.Mutex
	ownTags map[string]string

	view atomic.Pointer[View]

	events chan serf.Event
	stop   chan struct{}
	wg     sync.WaitGroup
	bgMu   sync.Mutex // orders background's wg.Add before Shutdown's Wait
	rng    *rand.Rand // owned by the gossip goroutine
	closed sync.Once

	// The relay's order (m.mu): NameIDs of the alive Shoal members, this
	// node included, sorted; positions by ID; their names. Rebuilt when
	// orderDirty says membership changed.
	order      []uint32
	orderPos   map[uint32]int
	orderNames []string
	orderDirty bool
	// loadsDirty: a member's load changed since the last View. Loads
	// received are published once a round (gossipOnce), not once a
	// packet: at N members each changing every 10 s, a View a change cost
	// a node N/10 rebuilds of N members a second (at N = 200 in one
	// process, most of two cores); a round's wait adds nothing to the ages,
	// which count from the origin.
	loadsDirty bool

	// wake tells a sleeping gossip loop that the relay received something
	// or membership changed: it runs the next round. asleep (m.mu) says
	// that the loop sleeps past the next round (nextRoundLocked), so that
	// packets that arrive while it is awake do not wake it again.
	wake   chan struct{}
	asleep bool

	// A rejoin (m.mu) runs when a packet comes from a member serf holds
	// failed (see noteFailedSenderLocked): one at a time, at most one a
	// rejoinSpacing.
	rejoining  bool
	rejoinNext time.Time

	// Owned by the gossip goroutine.
	published  bool
	pubLoad    metrics.Load
	pubState   []byte
	injState   []byte       // the state of the last broadcast of our own
	injLoad    metrics.Load // and its load
	injectedAt time.Time    // when it began
	lastRound  int64        // the last round run (rounds of GossipInterval since the epoch)
	idleTo     int64        // the last round the loop slept through with nothing to do
	wantsRound int64        // the last round wants were looked for
	reconRound int64        // the last round of a reconciliation
}

type memberState struct {
	addr   memberlist.Address
	status serf.MemberStatus
	shoal  bool
	mem    Member // as Views show it, without its load
}

// New creates the node, binds its gossip port and starts gossiping. It does
// not join anyone: call Join (or rely on the snapshot to rejoin).
func New(cfg Config) (*Mesh, error) {
	cfg.withDefaults()
	var ident any
	if nt, ok := cfg.Transport.(namingTransport); ok {
		// The transport decides the name (p2p: the peer ID of its key).
		id, err := nt.identify(&cfg, cfg.Logger.With("component", "mesh"))
		if err != nil {
			return nil, err
		}
		ident = id
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Mesh{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "mesh"),
		table:   newTableFor(cfg),
		members: map[string]*memberState{},
		ids:     map[uint32]string{},
		collide: map[uint32]bool{},
		heard:   map[string]*heard{},
		before:  map[string]*heard{},
		events:  make(chan serf.Event, 1024),
		stop:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		rng:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	sc := serf.DefaultConfig()
	prof := profiles[cfg.Profile] // validate checked it; profile.go
	mc := prof.memberlist(cfg, sc)
	mc.DeadNodeReclaimTime = prof.deadNodeReclaim
	// memberlist LZW-compresses every packet by default, allocating a fresh
	// coder (tens of KB) for a 30-byte ping; the profile of an idle mesh
	// showed it near the top. Receivers take either form, stock serf too.
	mc.EnableCompression = false
	stdlog := newStdLogger(m.log, &m.stats)
	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	mc.Label = cfg.Label
	mc.Logger = stdlog
	guard := &nameGuard{name: cfg.NodeName}
	mc.Merge = guard
	sc.MemberlistConfig = mc
	sc.NodeName = cfg.NodeName
	sc.Logger = stdlog
	sc.EventCh = m.events
	sc.RejoinAfterLeave = cfg.RejoinAfterLeave
	if cfg.ReconnectTimeout > 0 {
		sc.ReconnectTimeout = cfg.ReconnectTimeout
	}
	tags := map[string]string{}
	for k, v := range cfg.Tags {
		tags[k] = v
	}
	tags[TagShoal] = strconv.Itoa(StateVersion >> 4)
	tags[TagPriority] = strconv.Itoa(cfg.Priority)
	m.ownTags = tags
	sc.Tags = maps.Clone(tags)

	keys := cfg.Keys
	var err error
	m.vclock, err = NewVersionClock("", nil)
	if err != nil {
		return nil, err
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
		}
		sc.SnapshotPath = filepath.Join(cfg.DataDir, "serf.snapshot")
		if m.vclock, err = NewVersionClock(cfg.DataDir, nil); err != nil {
			return nil, err
		}
		kf := filepath.Join(cfg.DataDir, "keyring.json")
		if _, err := os.Stat(kf); err == nil {
			stored, err := ReadKeyringFile(kf)
			if err != nil {
				return nil, err
			}
			keys = mergeKeys(stored, cfg.Keys)
		}
		if len(keys) > 0 {
			if err := writeKeyring(kf, keys); err != nil {
				return nil, err
			}
			sc.KeyringFile = kf
		}
	}
	if len(keys) > 0 {
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		mc.Keyring = kr
	}
	m.ml = mc
	m.sealer = &Sealer{Label: cfg.Label, Keys: func() ([]byte, [][]byte) {
		if mc.Keyring == nil {
			return nil, nil
		}
		return mc.Keyring.GetPrimaryKey(), mc.Keyring.GetKeys()
	}}

	tr, err := cfg.Transport.open(&transportEnv{
		cfg: &cfg, ident: ident, stats: &m.stats, handle: m.handlePacket, log: m.log,
		keys: func() [][]byte {
			if mc.Keyring == nil {
				return nil
			}
			return mc.Keyring.GetKeys()
		},
	})
	if err != nil {
		return nil, err
	}
	m.trans = tr
	mc.Transport = tr
	if p, ok := tr.(interface{ Port() int }); ok {
		// memberlist's default port for join addresses without one.
		mc.BindPort = p.Port()
	}

	s, err := serf.Create(sc)
	if err != nil {
		m.trans.Shutdown()
		return nil, fmt.Errorf("start serf: %w", err)
	}
	m.serf = s
	if ln := s.Memberlist().LocalNode(); ln != nil {
		self := net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
		guard.self.Store(&self)
	}
	m.mu.Lock()
	for _, mem := range s.Members() {
		m.updateMemberLocked(mem)
	}
	m.orderDirty = true
	m.publishLocked(time.Now())
	m.mu.Unlock()
	if x, ok := m.trans.(p2pExtras); ok {
		// Bootstrap and mDNS peers, once connected, are joined through.
		x.setOnPeer(func(addr string) {
			if _, err := s.Join([]string{addr}, true); err != nil {
				m.log.Warn("p2p: join through peer failed", "addr", addr, "err", err)
			}
		})
	}
	m.wg.Add(2)
	go m.eventLoop()
	go m.gossipLoop()
	return m, nil
}

func newTableFor(cfg Config) *Table {
	return NewTable(cfg.NodeName)
}

func mergeKeys(stored, given [][]byte) [][]byte {
	out := append([][]byte(nil), stored...)
	for _, g := range given {
		found := false
		for _, s := range stored {
			if string(s) == string(g) {
				found = true
			}
		}
		if !found {
			out = append(out, g)
		}
	}
	return out
}

func writeKeyring(path string, keys [][]byte) error {
	ks := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = base64.StdEncoding.EncodeToString(k)
	}
	b, _ := json.MarshalIndent(ks, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	return os.Rename(tmp, path)
}

// LocalName returns this node's name.
func (m *Mesh) LocalName() string { return m.cfg.NodeName }

// LocalAddr returns the address and port other members use to reach us.
func (m *Mesh) LocalAddr() (string, int) {
	lm := m.serf.LocalMember()
	return lm.Addr.String(), int(lm.Port)
}

// Stats returns the live traffic counters.
func (m *Mesh) Stats() *Stats { return &m.stats }

// Serf exposes the underlying serf instance (key manager, queries).
func (m *Mesh) Serf() *serf.Serf { return m.serf }

// Join contacts the given addresses (host or host:port) and joins their mesh.
// It returns how many it reached.
func (m *Mesh) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	var rerr error
	if x, ok := m.trans.(p2pExtras); ok {
		addrs, rerr = x.resolveJoin(addrs)
		if len(addrs) == 0 {
			return 0, rerr
		}
	}
	n, err := m.serf.Join(addrs, true)
	if err == nil {
		err = rerr
	}
	if n > 0 {
		return n, nil
	}
	if isNameInUse(err) {
		return n, nameInUse(err)
	}
	return n, explainJoin(err)
}

// ErrWrongKey is wrapped by a join error whose cause is that the members
// asked and this node do not share a gossip key.
var ErrWrongKey = errors.New("gossip keys differ")

// explainJoin adds what a person can do to memberlist's words for a key
// mismatch, which say only what the receiving code could not do.
func explainJoin(err error) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "no installed keys could decrypt"):
		return fmt.Errorf("the mesh at %s did not accept our gossip key: %w (check --encrypt, or the keyring in --data-dir, against a member's 'shoal keys list'): %v",
			joinTarget(s), ErrWrongKey, err)
	case strings.Contains(s, "remote state is encrypted and encryption is not configured"):
		return fmt.Errorf("the mesh at %s uses a gossip key and we have none: %w (start with --encrypt KEY): %v", joinTarget(s), ErrWrongKey, err)
	case strings.Contains(s, "encryption is configured but remote state is not encrypted"):
		return fmt.Errorf("the mesh at %s gossips without a key and we have one: %w (drop --encrypt, or install the key there first): %v", joinTarget(s), ErrWrongKey, err)
	}
	return err
}

// joinTarget picks the address out of memberlist's "Failed to join ADDR: ..."
// (case varies by version), or says "the address given".
func joinTarget(s string) string {
	ls := strings.ToLower(s)
	const p = "failed to join "
	i := strings.Index(ls, p)
	if i < 0 {
		return "the address given"
	}
	rest := s[i+len(p):]
	if k := strings.Index(rest, ": "); k > 0 {
		return rest[:k]
	}
	return rest
}

// RetryOptions bounds JoinRetry.
type RetryOptions struct {
	// Attempts is how many times to try; 0 means until ctx ends.
	Attempts int
	// Initial and Max bound the backoff between attempts (doubling, with
	// up to 20% jitter).
	Initial, Max time.Duration
}

// ErrClosed is returned by Wait once the mesh has shut down.
var ErrClosed = errors.New("mesh: shut down")

// ErrJoin is wrapped when no join address could be reached.
var ErrJoin = errors.New("could not join the mesh")

// JoinRetry joins, retrying with exponential backoff until at least one
// address answers, the attempts run out, or ctx ends.
func (m *Mesh) JoinRetry(ctx context.Context, addrs []string, o RetryOptions) (int, error) {
	if o.Initial <= 0 {
		o.Initial = time.Second
	}
	if o.Max < o.Initial {
		o.Max = 30 * time.Second
	}
	wait := o.Initial
	var last error
	for attempt := 1; o.Attempts == 0 || attempt <= o.Attempts; attempt++ {
		n, err := m.Join(addrs)
		if n > 0 {
			m.log.Info("joined the mesh", "reached", n, "attempt", attempt)
			return n, nil
		}
		last = err
		if errors.Is(err, ErrNameInUse) {
			// Waiting will not free the name; say so now.
			return 0, err
		}
		if o.Attempts != 0 && attempt == o.Attempts {
			break
		}
		m.log.Warn("join failed, retrying", "addrs", addrs, "attempt", attempt, "retry_in", wait, "err", err)
		jitter := time.Duration(rand.Int64N(int64(wait)/5 + 1))
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w via %v: %v (last error: %v)", ErrJoin, addrs, ctx.Err(), last)
		case <-time.After(wait + jitter):
		}
		wait *= 2
		if wait > o.Max {
			wait = o.Max
		}
	}
	return 0, fmt.Errorf("%w: none of %v answered after %d attempts: %v", ErrJoin, addrs, o.Attempts, last)
}

// Leave announces a graceful departure; the node stays up until Shutdown.
func (m *Mesh) Leave() error { return m.serf.Leave() }

// ForceLeave marks a failed member as left (prune: forget it at once).
//
// A plain force-leave spreads like any leave: serf keeps the member in its
// left list and push/pull carries it to whoever missed the gossip. A
// pruned member is in nobody's list any more, so its leave intent has
// only gossip, and serf sends an intent a bounded number of times
// (RetransmitMult × log10 n a node). A member that missed every copy kept
// the failed member until its own reaper ran (ReconnectTimeout: 24 h on
// the lan profile); on five nodes of the local profile, one mesh in 16 had
// one. So a prune is sent again pruneRepeats times, pruneSpacing apart,
// each a new intent that every node passes on afresh, unless this node
// sees the member alive again in the meantime.
func (m *Mesh) ForceLeave(name string, prune bool) error {
	if !prune {
		return m.serf.RemoveFailedNode(name)
	}
	if err := m.serf.RemoveFailedNodePrune(name); err != nil {
		return err
	}
	m.background(func() { m.repeatPrune(name) })
	return nil
}

const (
	pruneRepeats = 3
	pruneSpacing = time.Second
)

func (m *Mesh) repeatPrune(name string) {
	t := time.NewTimer(pruneSpacing)
	defer t.Stop()
	for range pruneRepeats {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		if mem, ok := m.View().Member(name); ok && mem.Status == StatusAlive {
			return // back under its name: a new prune would remove a live node
		}
		if err := m.serf.RemoveFailedNodePrune(name); err != nil {
			m.log.Warn("force-leave: sending the prune again", "member", name, "err", err)
			return
		}
		t.Reset(pruneSpacing)
	}
}

// background runs f on a goroutine that Shutdown waits for, unless the
// node is shutting down.
func (m *Mesh) background(f func()) {
	m.bgMu.Lock()
	defer m.bgMu.Unlock()
	select {
	case <-m.stop:
		return
	default:
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// AnnounceScale puts a scale action in this node's TagScale, for every
// member to read. The node's tags have one owner, the mesh: changes are
// serialised here, so no caller reads, edits and writes them back.
func (m *Mesh) AnnounceScale(st ScaleTag) error {
	return m.setOwnTag(TagScale, st.String())
}

func (m *Mesh) setOwnTag(key, value string) error {
	m.tagMu.Lock()
	defer m.tagMu.Unlock()
	if m.ownTags[key] == value {
		return nil
	}
	tags := maps.Clone(m.ownTags)
	tags[key] = value
	if err := m.serf.SetTags(maps.Clone(tags)); err != nil {
		return fmt.Errorf("set tag %s: %w", key, err)
	}
	m.ownTags = tags
	// serf reports our own update as an event too; publish now so that a
	// caller reads its tag in the next View whatever the event's timing.
	lm := m.serf.LocalMember() // before m.mu: see reconcile on lock order
	m.mu.Lock()
	defer m.mu.Unlock()
	if ms, ok := m.members[m.cfg.NodeName]; ok {
		if m.setMemberLocked(ms, lm) {
			m.publishLocked(time.Now())
		}
	}
	return nil
}

// Shutdown stops the node without leaving: peers will see it fail. Safe to
// call more than once.
func (m *Mesh) Shutdown() error {
	var err error
	m.closed.Do(func() {
		m.bgMu.Lock() // no background goroutine starts after this
		close(m.stop)
		m.bgMu.Unlock()
		err = m.serf.Shutdown()
		m.wg.Wait()
	})
	return err
}

func statusString(s serf.MemberStatus) string {
	switch s {
	case serf.StatusAlive:
		return StatusAlive
	case serf.StatusLeaving:
		return StatusLeaving
	case serf.StatusLeft:
		return StatusLeft
	case serf.StatusFailed:
		return StatusFailed
	}
	return "unknown"
}

// updateMemberLocked takes serf's word on a member; it reports whether
// anything a View shows changed.
func (m *Mesh) updateMemberLocked(s serf.Member) bool {
	ms, ok := m.members[s.Name]
	if !ok {
		ms = &memberState{}
		m.members[s.Name] = ms
		id := NameID(s.Name)
		if other, taken := m.ids[id]; taken && other != s.Name {
			m.collide[id] = true
			m.log.Warn("two members share a load ID; their load is not shown here", "a", other, "b", s.Name)
		}
		m.ids[id] = s.Name
	}
	return m.setMemberLocked(ms, s) || !ok
}

func (m *Mesh) setMemberLocked(ms *memberState, s serf.Member) bool {
	ms.addr = memberlist.Address{Addr: net.JoinHostPort(s.Addr.String(), strconv.Itoa(int(s.Port))), Name: s.Name}
	ms.status = s.Status
	_, ms.shoal = s.Tags[TagShoal]
	old := ms.mem
	mem := Member{Name: s.Name, Addr: s.Addr.String(), Port: s.Port, Status: statusString(s.Status),
		Self: s.Name == m.cfg.NodeName, Tags: old.Tags, Shoal: old.Shoal}
	tagsChanged := old.Name == "" || !maps.Equal(old.Tags, s.Tags)
	if tagsChanged {
		// Parsed once per change; cloned, since the View shares it.
		mem.Tags = maps.Clone(s.Tags)
		if mem.Tags == nil {
			mem.Tags = map[string]string{}
		}
		mem.Shoal = ParseTags(mem.Tags)
	}
	ms.mem = mem
	return tagsChanged || old.Addr != mem.Addr || old.Port != mem.Port || old.Status != mem.Status
}

func (m *Mesh) eventLoop() {
	defer m.wg.Done()
	var batch []serf.MemberEvent
	for {
		select {
		case <-m.stop:
			return
		case ev := <-m.events:
			// Take every event already queued, then publish one View.
			batch = batch[:0]
			if me, ok := ev.(serf.MemberEvent); ok {
				batch = append(batch, me)
			}
		drain:
			for len(batch) < 256 {
				select {
				case ev := <-m.events:
					if me, ok := ev.(serf.MemberEvent); ok {
						batch = append(batch, me)
					}
				default:
					break drain
				}
			}
			if len(batch) == 0 {
				continue
			}
			now := time.Now()
			m.mu.Lock()
			changed := false
			for _, me := range batch {
				m.evSeq++
				for _, mem := range me.Members {
					if me.Type == serf.EventMemberReap {
						delete(m.members, mem.Name)
						delete(m.heard, mem.Name)
						delete(m.before, mem.Name)
						m.table.Remove(mem.Name)
						m.rebuildIDsLocked()
						changed = true
						continue
					}
					if m.updateMemberLocked(mem) {
						changed = true
					}
				}
			}
			if changed {
				m.orderDirty = true
				m.publishLocked(now)
				m.wakeLocked() // a new member may be wanted at once
			}
			m.mu.Unlock()
			for _, me := range batch {
				for _, mem := range me.Members {
					m.log.Info(me.Type.String(), "member", mem.Name, "addr", mem.Addr.String())
					if m.cfg.OnEvent != nil {
						m.cfg.OnEvent(Event{Type: me.Type.String(), Member: mem.Name, Addr: mem.Addr.String(), Time: now})
					}
				}
			}
		}
	}
}

// reconcileRounds is how many gossip rounds pass between reconciliations:
// about 1 s on the local profile, 3 s on the others (serf.Members copies
// every member, which at thousands of members is not free).
func (m *Mesh) reconcileRounds() int64 {
	every := 3 * time.Second
	if m.cfg.Profile == ProfileLocal {
		every = time.Second
	}
	return max(1, int64(every/m.cfg.GossipInterval))
}

// reconcile compares serf's member list with the members the View shows and
// publishes a new View if they differ. Events carry almost every change;
// a member's leave intent (status leaving) comes without one. It runs on
// the gossip goroutine: serf sends events while holding its member lock, so
// the event goroutine must never wait for that lock, and serf is never
// called with m.mu held. A round that raced with an event is skipped (its
// copy may be older than what the event applied).
func (m *Mesh) reconcile(now time.Time) {
	m.mu.Lock()
	seq := m.evSeq
	m.mu.Unlock()
	sm := m.serf.Members()
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq != m.evSeq {
		return
	}
	changed := false
	for _, s := range sm {
		if _, ok := m.members[s.Name]; !ok {
			continue // its join event is on the way
		}
		if m.updateMemberLocked(s) {
			changed = true
		}
	}
	if changed {
		m.orderDirty = true
		m.publishLocked(now)
	}
}

func (m *Mesh) gossipLoop() {
	defer m.wg.Done()
	// Rounds are cut on the wall clock, so that members whose clocks agree
	// take the same step of the relay in the same round (see Relay).
	every := int64(m.cfg.GossipInterval)
	until := func(r int64) time.Duration { return time.Until(time.Unix(0, r*every)) }
	next := time.Now().UnixNano()/every + 1
	t := time.NewTimer(until(next))
	defer t.Stop()
	var buf []byte
	var prev int64 // the last round run
	loadChanged := m.cfg.LoadChanged
	for {
		select {
		case <-m.stop:
			return
		case _, ok := <-loadChanged:
			if !ok {
				loadChanged = nil // closed: no more signals
				continue
			}
			// A sample that did not move past a bucket (see Moved) has
			// nothing for the next round to send: the wave confirms it.
			// Most samples of an idle host are such, and each woke the
			// relay for a round of its own.
			m.stats.LoadSignals.Add(1)
			if !m.loadMoved() {
				m.stats.SignalsUnmoved.Add(1)
				continue
			}
		case <-m.wake:
		case <-t.C:
			now := time.Now()
			ri := now.UnixNano() / every
			// A wall clock stepped back leaves the marks of rounds ahead
			// of it: without this no want or reconciliation would be
			// due until it caught up.
			prev, m.idleTo, m.lastRound = min(prev, ri-1), min(m.idleTo, ri-1), min(m.lastRound, ri-1)
			m.wantsRound, m.reconRound = min(m.wantsRound, ri-1), min(m.reconRound, ri-1)
			if slept := min(m.idleTo, ri-1) - prev; prev > 0 && slept > 0 {
				m.stats.RoundsSlept.Add(uint64(slept))
			}
			prev = ri
			m.lastRound = max(m.lastRound, m.idleTo)
			m.stats.Rounds.Add(1)
			var due int64
			buf, due = m.gossipOnce(now, ri, buf[:0])
			if ri-m.reconRound >= m.reconcileRounds() {
				m.reconRound = ri
				m.reconcile(now)
			}
			// The rounds before due have nothing to do unless something
			// arrives (a signal). The round may have ended meanwhile: a
			// late timer's rounds are caught up (firstRound).
			due = min(due, m.reconRound+m.reconcileRounds())
			m.idleTo = max(m.idleTo, due-1)
			next = max(time.Now().UnixNano()/every+1, due)
			t.Reset(until(next))
			continue
		}
		// A signal: run the next round, unless the loop does anyway. The
		// rounds slept through before this one had nothing to do. This one
		// may not be the round the signal was sent in (the loop may be
		// scheduled late), so it is caught up with the next (firstRound):
		// an entry that arrived in time has no step of it left, one that
		// arrived in the round before does.
		if ri := time.Now().UnixNano() / every; next > ri+1 {
			m.idleTo, next = ri-1, ri+1
			t.Reset(until(next))
		}
	}
}

// loadMoved says whether Load returns a load that the next round would
// publish as a new state: none published yet, or one that moved past a
// bucket since. Called from the gossip loop, which owns pubLoad.
func (m *Mesh) loadMoved() bool {
	if !m.published || m.cfg.Load == nil {
		return true
	}
	l, ok := m.cfg.Load()
	return ok && m.newState(l)
}

// newState says whether l is published as a new state rather than
// confirming the last one: none published yet, or l moved past a bucket
// (see Moved). Called from the gossip loop, which owns pubLoad.
func (m *Mesh) newState(l metrics.Load) bool {
	return !m.published || Moved(m.pubLoad, l)
}

// ConfirmIntervalFor is the default ConfirmInterval for n members and a
// round of gossip: max(2 rounds, 1 s, 0.6 s × (n/100)^0.37). Bytes per node
// grow about as n/interval, so as n^0.63 past 400 members, while the time a
// confirmation takes to reach everyone grows as log2 n rounds. The 1 s
// floor: below 400 members a shorter interval buys ages younger than
// anyone reads (p99 1.2 s instead of 1.7 s at 100 processes) for a
// quarter more bytes and a tenth more idle CPU (docs/benchmarks.md).
func ConfirmIntervalFor(n int, gossip time.Duration) time.Duration {
	p := time.Duration(float64(600*time.Millisecond) * math.Pow(float64(max(n, 1))/100, 0.37))
	return max(p, 2*gossip, minConfirmInterval)
}

// minConfirmInterval is ConfirmIntervalFor's floor.
const minConfirmInterval = time.Second

// confirmDue says whether a node confirms its state in round ri (rounds of
// every since the epoch), its last broadcast since ago. Confirmations go
// out in waves, on the rounds that are a multiple of the confirm interval,
// so that every member whose clock agrees confirms in the same round and
// the relay passes the whole wave on together: a node sends about d
// packets a wave, instead of one nearly every round when each member
// confirms on rounds of its own. When a late timer skipped the wave's
// round, the node confirms once an interval and a round have passed. (A
// wave shortly after an urgent change, see Urgent, still goes: skipping
// it left states unconfirmed for up to 1.5 intervals, and load age p99 at
// 100 processes went from 1.5 s to 2.0 s.)
func confirmDue(ri int64, ago, confirm, every time.Duration) bool {
	if ago >= confirm+every {
		return true
	}
	wave := max(1, int64((confirm+every/2)/every))
	return ri%wave == 0 && ago >= every/2
}

// wantAgeFor is the age past which a member's load is asked for: a
// confirmation reaches everyone within d rounds of being sent, and the next
// follows a confirm interval later; one round more of slack. (A step a
// late node holds waits for its bit, up to d rounds more: such a load is
// asked for early, and the answer costs a want and an entry.)
func wantAgeFor(confirm, gossip time.Duration, d int) time.Duration {
	return confirm + time.Duration(d+1)*gossip
}

const (
	// maxWantsPerRound bounds the wants a node sends in a round.
	maxWantsPerRound = 64
	// wantRetryRounds: a member asked for is not asked for again within
	// this many rounds (doubling while no newer version arrives).
	wantRetryRounds = 5
	// wantEveryRounds: a node sends its wants, in a packet of their own to
	// a random member, every this many rounds.
	wantEveryRounds = 3
)

// rebuildOrderLocked rebuilds the relay's order from the members if
// membership changed.
func (m *Mesh) rebuildOrderLocked() {
	if !m.orderDirty && m.orderPos != nil {
		return
	}
	m.orderDirty = false
	m.order = m.order[:0]
	m.orderNames = m.orderNames[:0]
	for name, ms := range m.members {
		id := NameID(name)
		if ms.shoal && ms.status == serf.StatusAlive && !m.collide[id] {
			m.order = append(m.order, id)
		}
	}
	slices.Sort(m.order)
	if m.orderPos == nil {
		m.orderPos = map[uint32]int{}
	}
	clear(m.orderPos)
	for i, id := range m.order {
		m.orderPos[id] = i
		m.orderNames = append(m.orderNames, m.ids[id])
	}
}

// gossipOnce runs round ri: it publishes this node's load, starts a
// broadcast of it when it changed or a confirm interval passed, makes one
// relay step, and asks a peer for what it lacks. due is the next round
// with something to do (see nextRoundLocked).
func (m *Mesh) gossipOnce(now time.Time, ri int64, buf []byte) (_ []byte, due int64) {
	haveLoad := false
	if m.cfg.Load != nil {
		if l, ok := m.cfg.Load(); ok {
			haveLoad = true
			// Publish a new state only when the load moved past a bucket
			// (see Moved); otherwise re-confirm the last one.
			fresh := m.newState(l)
			if fresh {
				m.pubLoad, m.pubState, m.published = l, EncodeState(nil, l), true
			}
			v, err := m.vclock.Next()
			if err != nil {
				m.log.Warn("persist the version floor", "err", err)
			}
			m.mu.Lock()
			m.table.SetSelf(m.pubState, v, now)
			if h := m.heard[m.cfg.NodeName]; fresh || h == nil {
				// Decoded, not copied: the View shows this node's load as
				// the others receive it (a small move reaches them with the
				// next wave; until then a peer's want is answered with it).
				m.stats.LoadDecodes.Add(1)
				if dl, err := DecodeState(m.pubState); err == nil {
					m.stats.LoadChanges.Add(1)
					m.heard[m.cfg.NodeName] = newHeard(dl, now)
					m.publishLocked(now)
				}
			} else {
				h.at.Store(now.UnixNano())
			}
			m.mu.Unlock()
		}
	}
	m.mu.Lock()
	if m.loadsDirty {
		m.publishLocked(now)
	}
	m.mu.Unlock()
	every := m.cfg.GossipInterval
	m.mu.Lock()
	m.rebuildOrderLocked()
	n := len(m.order)
	self, inOrder := m.orderPos[NameID(m.cfg.NodeName)]
	if n < 2 || !inOrder {
		// Out of the order (joining, or no peers): nothing to pass on, and
		// what arrives meanwhile is not kept for later.
		m.table.DropPending()
		m.asleep = false
		m.mu.Unlock()
		return buf, ri + 1
	}
	d := RelayBits(n)
	first := firstRound(m.lastRound, ri, d)
	m.lastRound = ri
	confirm := m.cfg.ConfirmInterval
	if confirm == 0 {
		confirm = ConfirmIntervalFor(n, every)
	}
	if haveLoad {
		// Confirmations go out in waves: every member on the same rounds
		// of the wall clock (see confirmDue).
		// A state that moved a little waits for the wave (Urgent).
		changed := !bytes.Equal(m.injState, m.pubState)
		urgent := changed && (m.injState == nil || Urgent(m.injLoad, m.pubLoad))
		if urgent || confirmDue(ri, now.Sub(m.injectedAt), confirm, every) {
			m.table.Inject(d, changed || m.injState == nil)
			m.injState, m.injLoad, m.injectedAt = m.pubState, m.pubLoad, now
		}
	}
	type dest struct {
		addr   memberlist.Address
		groups []RelayGroup
	}
	var dests []dest
	dist := func(name string) (int, bool) {
		p, ok := m.orderPos[NameID(name)]
		return (self - p + n) % n, ok
	}
	for r := first; r <= ri; r++ {
		bit := int(r % int64(d))
		out := m.table.Relay(now, n, bit, dist)
		if len(out.Groups) == 0 {
			continue
		}
		if ms, ok := m.members[m.orderNames[(self+1<<bit)%n]]; ok {
			dests = append(dests, dest{ms.addr, out.Groups})
		}
	}
	// Every third round, the wants go in a packet of their own to a random
	// member: not along the relay, whose next members tend to have missed
	// what this node missed.
	var wants []Want
	var wantTo memberlist.Address
	wantAge := wantAgeFor(confirm, every, d)
	if ri-m.wantsRound >= wantEveryRounds {
		m.wantsRound = ri
		wants = m.table.Wants(now, m.orderNames, wantAge, wantRetryRounds*every, maxWantsPerRound)
		for tries := 0; len(wants) > 0 && tries < 3; tries++ {
			if name := m.orderNames[m.rng.IntN(n)]; name != m.cfg.NodeName {
				wantTo = m.members[name].addr
				break
			}
		}
		if wantTo.Addr == "" {
			wants = nil
		}
	}
	due = m.nextRoundLocked(now, ri, haveLoad, confirm, wantAge)
	m.mu.Unlock()
	for _, dt := range dests {
		buf = m.sendRelay(dt.addr, dt.groups, nil, buf, now)
	}
	if len(wants) > 0 {
		m.stats.WantsSent.Add(uint64(len(wants)))
		buf = m.sendRelay(wantTo, nil, wants, buf, now)
	}
	return buf, due
}

// nextRoundLocked is the next round after ri with something to do: the
// next while the relay holds steps to take (or Load must be read every
// round: no Config.LoadChanged); else the first of the next wave (this
// node's confirmation, when it has a load) and the first wants round at
// or after a want falls due, or confirmDue's fallback after a missed
// wave; at most a wave on. The loop sleeps through the rounds between
// (45% of an idle agent's rounds in a mesh of 30, whose wakeups were a
// large part of its CPU); a received entry, a membership change or a new
// load wakes it for the next round.
func (m *Mesh) nextRoundLocked(now time.Time, ri int64, haveLoad bool, confirm, wantAge time.Duration) int64 {
	due := ri + 1
	if m.cfg.LoadChanged != nil && m.table.Pending() == 0 {
		due = m.idleUntil(now, ri, haveLoad, confirm, wantAge)
	}
	m.asleep = due > ri+1
	return due
}

// idleUntil is nextRoundLocked's round for a node with no steps pending.
func (m *Mesh) idleUntil(now time.Time, ri int64, haveLoad bool, confirm, wantAge time.Duration) int64 {
	every := int64(m.cfg.GossipInterval)
	ceil := func(t time.Time) int64 { return (t.UnixNano() + every - 1) / every }
	wave := max(1, (int64(confirm)+every/2)/every)
	due := ri + wave // a node without a load wakes as often
	if haveLoad {
		due = (ri/wave + 1) * wave // confirmDue's rounds
		// A wave missed by a late timer: confirmDue's fallback, an
		// interval and a round after the last broadcast.
		if !m.injectedAt.IsZero() {
			due = min(due, ceil(m.injectedAt.Add(confirm+time.Duration(every))))
		}
	}
	if at, ok := m.table.NextWant(now, m.orderNames, wantAge, time.Duration(wantRetryRounds*every)); ok {
		due = min(due, max(m.wantsRound+wantEveryRounds, ceil(at)))
	}
	return max(due, ri+1)
}

// ageEntries adds to every entry's age the time since at, when the ages
// were taken: a round's or a packet's work waits for the mesh's lock and
// the sealing, and under a loaded CPU that wait passed 100 ms
// (TestFiftyMeshesLearnEveryLoadHonestly saw a load 126 ms fresher than
// its origin had confirmed it). The entries are this send's own.
func ageEntries(groups []RelayGroup, at time.Time) {
	late := time.Since(at)
	if late <= 0 {
		return
	}
	for _, g := range groups {
		for i := range g.Entries {
			g.Entries[i].Age = clampAge(g.Entries[i].Age + late)
		}
	}
}

// sendRelay sends groups (split over as many packets as the budget, and
// DecodeRelay's bounds of MaxRelayGroups groups and MaxEntries entries a
// packet, need) and wants to addr.
func (m *Mesh) sendRelay(addr memberlist.Address, groups []RelayGroup, wants []Want, buf []byte, agesAt time.Time) []byte {
	budget := m.cfg.PacketBudget
	ageEntries(groups, agesAt)
	for {
		base, err := m.vclock.Next()
		if err != nil {
			m.log.Warn("persist the version floor", "err", err)
		}
		var p RelayPacket
		p, groups = packRelay(base, groups, wants, budget)
		wants = nil
		pkt, err := m.sealer.Seal(buf[:0], AppendRelay(nil, m.cfg.NodeName, p))
		if err != nil {
			m.log.Warn("seal relay packet", "err", err)
			return buf
		}
		_, _ = m.trans.WriteToAddress(pkt, addr)
		buf = pkt
		if len(groups) == 0 {
			return buf
		}
	}
}

// firstRound is the first of the rounds a node runs the relay's steps of
// at round ri, the last it ran being last (0: none): every round since
// the last, at most d of them. A node whose timer fires late would
// otherwise skip those rounds' bits, and one whose rounds come two apart
// with an even d would never take the odd bits: the broadcasts it holds
// would never reach the members behind them.
func firstRound(last, ri int64, d int) int64 {
	if last <= 0 || ri-last <= 1 {
		return ri
	}
	return max(ri-int64(d)+1, last+1)
}

// packRelay makes one relay packet under base: the wants, then as many of
// the groups' entries as fit in budget bytes, MaxRelayGroups groups and
// MaxEntries entries (at least one entry, whatever its size); it returns
// the groups left for further packets.
func packRelay(base uint64, groups []RelayGroup, wants []Want, budget int) (RelayPacket, []RelayGroup) {
	p := RelayPacket{Base: base, Wants: wants}
	used := relayHeaderSize(base) + wantSize*len(wants)
	nent := 0
	for len(groups) > 0 && len(p.Groups) < MaxRelayGroups {
		g := groups[0]
		k, sz := 0, relayGroupSize(g.Mask, len(g.Entries))
		for k < len(g.Entries) && nent+k < MaxEntries {
			es := entrySize(g.Entries[k], base)
			if used+sz+es > budget && (k > 0 || len(p.Groups) > 0) {
				break
			}
			sz += es
			k++
		}
		if k == 0 {
			break
		}
		p.Groups = append(p.Groups, RelayGroup{Mask: g.Mask, Entries: g.Entries[:k]})
		used += sz
		nent += k
		if k < len(g.Entries) {
			rest := append([]RelayGroup{{Mask: g.Mask, Entries: g.Entries[k:]}}, groups[1:]...)
			return p, rest
		}
		groups = groups[1:]
	}
	return p, groups
}

func (m *Mesh) rebuildIDsLocked() {
	clear(m.ids)
	clear(m.collide)
	for name := range m.members {
		id := NameID(name)
		if _, taken := m.ids[id]; taken {
			m.collide[id] = true
		}
		m.ids[id] = name
	}
}

func (m *Mesh) aliveLocked(name string) bool {
	ms, ok := m.members[name]
	return ok && ms.status == serf.StatusAlive
}

// handlePacket takes one Shoal packet from the transport. Whatever is wrong
// with it, it is dropped and counted.
func (m *Mesh) handlePacket(buf []byte, from net.Addr) {
	body, err := m.sealer.Open(buf)
	if err != nil || len(body) == 0 {
		r := DropDecode
		if err != nil {
			r = openDropReason(err)
		}
		m.stats.drop(r)
		m.log.Debug("dropped packet", "from", from.String(), "reason", r.String(), "err", err)
		return
	}
	switch body[0] {
	case KindLoad:
		// Answers to our wants (and, from agents before the relay, pushes).
		entries, _, err := DecodeEntries(body)
		if err != nil {
			m.stats.drop(DropDecode)
			m.log.Debug("dropped load packet", "from", from.String(), "err", err)
			return
		}
		now := time.Now()
		m.mu.Lock()
		changed := false
		merge := func(e Entry) MergeResult { return m.table.Merge(e, now) }
		for _, e := range entries {
			if name, ok := m.loadNameLocked(e.ID); ok {
				e.Name = name
				changed = m.takeLocked(e, now, merge) || changed
			}
		}
		m.loadsDirty = m.loadsDirty || changed
		if changed {
			m.wakeLocked() // a View to publish
		}
		m.mu.Unlock()
	case KindRelay:
		p, err := DecodeRelay(body)
		if err != nil {
			m.stats.drop(DropDecode)
			m.log.Debug("dropped relay packet", "from", from.String(), "err", err)
			return
		}
		now := time.Now()
		m.mu.Lock()
		m.rebuildOrderLocked()
		d := RelayBits(len(m.order))
		changed, needFull := false, m.table.NeedFull()
		for _, g := range p.Groups {
			merge := func(e Entry) MergeResult { return m.table.MergeRelay(e, g.Mask, d, now) }
			for _, e := range g.Entries {
				if name, ok := m.loadNameLocked(e.ID); ok {
					e.Name = name
					changed = m.takeLocked(e, now, merge) || changed
				}
			}
		}
		m.loadsDirty = m.loadsDirty || changed
		if changed || m.table.Pending() > 0 || m.table.NeedFull() > needFull {
			// A View to publish, steps to take, or a state to ask for in
			// full (a refresh of one not held): the next round does it.
			// (A copy that only confirms what is held needs no round.)
			m.wakeLocked()
		}
		if name, ok := m.ids[p.From]; ok && !m.collide[p.From] {
			m.noteFailedSenderLocked(name, now)
		}
		var answer []Entry
		var to memberlist.Address
		requester, ok := m.loadNameLocked(p.From)
		if ok && len(p.Wants) > 0 {
			ws := p.Wants[:0]
			for _, w := range p.Wants {
				if name, known := m.ids[w.ID]; known && !m.collide[w.ID] {
					w.Name = name
					ws = append(ws, w)
				}
			}
			var fresh bool
			answer, fresh = m.table.Answer(requester, p.Base, ws, now, m.cfg.GossipInterval, m.cfg.PacketBudget)
			if !fresh {
				m.stats.StaleWants.Add(1)
			}
			to = m.members[requester].addr
		}
		m.mu.Unlock()
		if len(answer) > 0 {
			m.stats.WantsAnswered.Add(uint64(len(answer)))
			ageEntries([]RelayGroup{{Entries: answer}}, now)
			pkt, err := m.sealer.Seal(nil, AppendEntries(nil, VersionAt(now), answer))
			if err != nil {
				m.log.Warn("seal load packet", "err", err)
				return
			}
			_, _ = m.trans.WriteToAddress(pkt, to)
		}
	case KindElection:
		from, ver, msg, err := DecodeElection(body)
		if err != nil {
			m.stats.drop(DropDecode)
			return
		}
		m.mu.Lock()
		_, member := m.members[from]
		res := ElectionStale
		if member && from != m.cfg.NodeName {
			res = m.table.AcceptElection(from, ver)
			if res == ElectionFresh {
				m.noteFailedSenderLocked(from, time.Now())
			}
		}
		m.mu.Unlock()
		if !member || from == m.cfg.NodeName {
			m.stats.drop(DropNotMember)
			return
		}
		if res != ElectionFresh {
			m.stats.drop(DropReplay)
			m.stats.StaleElections.Add(1)
			m.log.Debug("refused an election message", "from", from, "version", ver, "replayed", res == ElectionReplayed)
			return
		}
		if m.cfg.OnElection != nil {
			// The read buffer is reused: hand over a copy.
			m.cfg.OnElection(from, append([]byte(nil), msg...))
		}
	default:
		m.stats.drop(DropDecode)
	}
}

// rejoinSpacing is the least time between two rejoins of a node.
const rejoinSpacing = time.Second

// noteFailedSenderLocked is told that a packet of ours came from name
// (sealed with the mesh's key; an election message also fresh). If serf
// holds name failed, the path from it is back (a healed partition, one way
// or both) but nothing would tell either side soon: memberlist no longer
// probes a dead member, and its own gossip about the death was spent during
// the cut, so serf waited for its reconnect (ReconnectInterval, 30 s on
// lan, and only with the odds failed/alive) or a push-pull (30 s). In the
// meantime an election can miss its quorum. A rejoin is what serf's
// reconnect does: a push-pull with the member, which learns that it is held
// dead, refutes it, and is alive everywhere within a gossip round or two.
// One at a time and at most one a rejoinSpacing, so that a large partition
// that heals costs each node one push-pull a second, not one per member of
// the other side.
func (m *Mesh) noteFailedSenderLocked(name string, now time.Time) {
	ms := m.members[name]
	if ms == nil || ms.status != serf.StatusFailed || m.rejoining || now.Before(m.rejoinNext) {
		return
	}
	m.rejoining, m.rejoinNext = true, now.Add(rejoinSpacing)
	addr := ms.addr
	m.background(func() {
		defer func() {
			m.mu.Lock()
			m.rejoining = false
			m.mu.Unlock()
		}()
		m.stats.Rejoins.Add(1)
		// "name/host:port", as serf's reconnect names a failed member.
		if _, err := m.serf.Memberlist().Join([]string{name + "/" + addr.Addr}); err != nil {
			m.stats.RejoinsFailed.Add(1)
			m.log.Debug("rejoin of a member held failed", "member", name, "addr", addr.Addr, "err", err)
			return
		}
		m.log.Info("rejoined a member held failed: a packet came from it", "member", name, "addr", addr.Addr)
	})
}

// wakeLocked wakes the gossip loop for the next round if it sleeps past
// it (see nextRoundLocked). It never blocks.
func (m *Mesh) wakeLocked() {
	if !m.asleep {
		return
	}
	m.asleep = false
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// loadNameLocked maps a load entry's NameID to an alive member other than
// this node, unless two members share it.
func (m *Mesh) loadNameLocked(id uint32) (string, bool) {
	name, ok := m.ids[id]
	if !ok || m.collide[id] || !m.aliveLocked(name) || name == m.cfg.NodeName {
		return "", false
	}
	return name, true
}

// takeLocked takes one received entry (e.Name set) into the table through
// merge (Table.Merge, or MergeRelay for entries on the relay, each called
// once per entry), and keeps the decoded load and its time beside it. It
// reports whether the View must be published anew (a new state).
func (m *Mesh) takeLocked(e Entry, now time.Time, merge func(Entry) MergeResult) bool {
	name := e.Name
	cur, _, held := m.table.Get(name)
	if held && e.Version <= m.table.VersionOf(name) {
		// Not above the version held (a late copy, or a replay): Merge
		// refuses it, or for the same version may only move the
		// estimate of when it was published earlier.
		switch merge(e) {
		case Older:
			m.stats.StaleEntries.Add(1)
		case Same:
			m.stats.SameEntries.Add(1)
			if h := m.heard[name]; h != nil {
				_, origin, _ := m.table.Get(name)
				h.at.Store(origin.UnixNano())
			}
		}
		return false
	}
	// A state is decoded once, when it is new here; a copy of a state
	// already held (forwarded, or resent in full) only confirms it. A
	// state that flips back to the one before (an older copy that looks
	// fresher after slow hops) is not decoded again.
	var dl metrics.Load
	fresh := e.Full && (!held || !bytes.Equal(cur, e.State))
	if b := m.before[name]; fresh && b != nil && bytes.Equal(b.state, e.State) {
		dl = b.load
	} else if fresh {
		m.stats.LoadDecodes.Add(1)
		var err error
		if dl, err = DecodeState(e.State); err != nil {
			m.stats.drop(DropDecode)
			return false
		}
	}
	if merge(e) != Taken {
		return false
	}
	_, origin, _ := m.table.Get(name)
	if h := m.heard[name]; !fresh && h != nil {
		h.at.Store(origin.UnixNano())
		return false
	}
	if !fresh {
		return false
	}
	if old := m.heard[name]; old != nil {
		m.before[name] = old
	}
	h := newHeard(dl, origin)
	h.state = e.State
	m.heard[name] = h
	m.stats.LoadChanges.Add(1)
	return true
}

// SendElection sends an election message body to the named member.
func (m *Mesh) SendElection(to string, msg []byte) error {
	m.mu.Lock()
	ms, ok := m.members[to]
	var addr memberlist.Address
	if ok {
		addr = ms.addr // copied under the lock: events rewrite it
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("no member named %q", to)
	}
	v, err := m.vclock.Next()
	if err != nil {
		m.log.Warn("persist the version floor", "err", err)
	}
	pkt, err := m.sealer.Seal(nil, AppendElection(nil, m.cfg.NodeName, v, msg))
	if err != nil {
		return err
	}
	_, err = m.trans.WriteToAddress(pkt, addr)
	return err
}
