package mesh

import (
	"container/heap"
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"
)

// SimConfig describes a simulated mesh for the load dissemination scheme
// (the relay and its wants; see the package doc). The simulation applies
// the rules of Table (Merge, MergeRelay, Relay, Wants, Answer) and of the
// gossip round (injection, wall-clock rounds) to dense arrays, so that
// 10,000 nodes fit in about 2 GB, and counts bytes with the real entry and
// packet sizes. Only the network (per-link latency, loss, nodes whose
// packets wait) and time are modelled; TestSimMatchesTheRealMesh checks it
// against in-process meshes, and docs/benchmarks.md against the large-N
// harness.
type SimConfig struct {
	Nodes int
	// GossipInterval is the round; ConfirmInterval as in Config (0: by N,
	// ConfirmIntervalFor).
	GossipInterval  time.Duration
	ConfirmInterval time.Duration
	PacketBudget    int
	// Loss is the probability a packet is lost. Each directed link has its
	// own one-way latency, drawn once uniformly from [LatencyMin,
	// LatencyMax], plus up to Jitter per packet.
	Loss                   float64
	LatencyMin, LatencyMax time.Duration
	Jitter                 time.Duration
	// Starved is the share of nodes whose packets, in and out, wait up to
	// StarvedDelay more (a process short of CPU reading and sending late).
	Starved      float64
	StarvedDelay time.Duration
	// Skew: each node's clock is off by up to ±Skew (rounds are cut on it).
	Skew time.Duration
	// Duration is the simulated time; ages are measured after Warmup.
	Duration, Warmup time.Duration
	// Encrypted adds the AES-GCM framing overhead to every packet.
	Encrypted bool
	Seed      uint64
	// ChangeRate is how often, per second, each node's load moves past a
	// bucket and it publishes a new state.
	ChangeRate float64
}

// SimResult holds the figures of one simulation.
type SimResult struct {
	// BytesPerNodePerSec is the mean bytes a node sends per second after
	// the warm-up, packet framing and IP/UDP headers (28 bytes) included;
	// PacketsPerNodePerSec the packets. The other rates are after the
	// warm-up too.
	BytesPerNodePerSec, PacketsPerNodePerSec float64
	// WantsPerNodePerSec are the members a node asks for per second;
	// AnswersPerNodePerSec the entries it sends in answer.
	WantsPerNodePerSec, AnswersPerNodePerSec float64
	// FullsPerNodePerSec are the entries sent in full.
	FullsPerNodePerSec float64
	// AgeP50/P99/Max are over (observer, member) pairs sampled every
	// 100 ms after the warm-up.
	AgeP50, AgeP99, AgeMax time.Duration
	// Missing counts sampled pairs where the observer had no entry at all.
	Missing int
	// Wrong is the share of sampled pairs where the observer held a state
	// other than the member's current one.
	Wrong float64
	// ConfirmInterval is the one used.
	ConfirmInterval time.Duration
}

// simEnt is an entry in flight; versions and times in the simulation's
// units (versions: VersionUnits since the start plus simV0; times: ms).
type simEnt struct {
	o      int32
	ver    uint32
	origin int32 // sender's estimate of when the origin published it, ms
	tag    uint16
	full   bool
}

type simGroup struct {
	mask uint32
	es   []simEnt
}

type simWant struct {
	o          int32
	age        int32 // ms, as on the wire
	full, none bool
}

type simPkt struct {
	at       int64 // µs
	seq      uint64
	from, to int32
	groups   []simGroup
	wants    []simWant
	reply    []simEnt
}

type simQueue []*simPkt

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(*simPkt)) }
func (q *simQueue) Pop() any {
	o := *q
	p := o[len(o)-1]
	o[len(o)-1] = nil
	*q = o[:len(o)-1]
	return p
}

type simRec struct {
	o      int32
	ver    uint32
	origin int32
	tag    uint16
	full   bool
	mask   uint32
}

// simV0 offsets versions so that skewed clocks stay positive.
const simV0 = 1 << 20

// SimulateDissemination runs the load gossip of cfg.Nodes nodes.
func SimulateDissemination(cfg SimConfig) SimResult {
	n := cfg.Nodes
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	T := cfg.GossipInterval
	P := cfg.ConfirmInterval
	if P == 0 {
		P = ConfirmIntervalFor(n, T)
	}
	budget := cfg.PacketBudget
	if budget == 0 {
		budget = 1400
	}
	d := RelayBits(n)
	wantAge := int32(wantAgeFor(P, T, d) / time.Millisecond)
	retry := int32(wantRetryRounds * T / time.Millisecond)
	margin := int32(T / time.Millisecond)
	Tms := int64(T / time.Millisecond)
	// Per (observer, origin) pair, flattened observer*n+origin.
	ver := make([]uint32, n*n) // 0: none
	origin := make([]int32, n*n)
	tag := make([]uint16, n*n)
	fwd := make([]uint32, n*n)
	askedAt := make([]int32, n*n)
	askedN := make([]uint8, n*n) // bit 7: needs the full state
	const needFullBit = 0x80
	// Want wheel: per node, buckets of origins to look at, by round.
	const wheel = 256
	buckets := make([][][]int32, n)
	for i := range buckets {
		buckets[i] = make([][]int32, wheel)
	}
	var curRound int64
	// schedule puts origin o on node i's wheel for the first round at or
	// after r in which it sends wants (every wantEveryRounds rounds), and
	// within the wheel's reach.
	schedule := func(i int, r int64, o int32) {
		r = min(r, curRound+wheel-wantEveryRounds)
		r += (wantEveryRounds - (r+int64(i))%wantEveryRounds) % wantEveryRounds
		b := &buckets[i][r%wheel]
		*b = append(*b, o)
	}
	// At the start nothing is held: a node first asks for each member
	// about when the relay would have brought it, spread over that time.
	initRounds := int64(wantAge)/int64(T/time.Millisecond) + 1
	for i := range buckets {
		for o := 0; o < n; o++ {
			if o != i {
				schedule(i, 1+rng.Int64N(initRounds), int32(o))
			}
		}
	}
	pending := make([][]simRec, n)
	gen := make([]uint16, n)
	injGen := make([]uint16, n)
	injected := make([]bool, n)
	injAt := make([]int64, n)
	clock := make([]uint32, n) // last version handed out
	skew := make([]int64, n)   // µs
	starved := make([]bool, n)
	for i := range skew {
		if cfg.Skew > 0 {
			skew[i] = rng.Int64N(2*int64(cfg.Skew/time.Microsecond)+1) - int64(cfg.Skew/time.Microsecond)
		}
		starved[i] = rng.Float64() < cfg.Starved
	}
	linkLat := func(a, b int32) int64 {
		h := fnv.New64a()
		var buf [16]byte
		binary.BigEndian.PutUint64(buf[:], cfg.Seed)
		binary.BigEndian.PutUint32(buf[8:], uint32(a))
		binary.BigEndian.PutUint32(buf[12:], uint32(b))
		h.Write(buf[:])
		span := int64(cfg.LatencyMax-cfg.LatencyMin) / 1000
		l := int64(cfg.LatencyMin) / 1000
		if span > 0 {
			l += int64(h.Sum64() % uint64(span+1))
		}
		return l
	}
	overhead := 3 + 28
	if cfg.Encrypted {
		overhead = 2 + nonceSize + 16 + 28
	}
	// A date of this decade, so versions have their real size on the wire.
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	vStart := VersionAt(start)
	wireVer := func(v uint32) uint64 { return vStart + uint64(v) - simV0 }
	entSize := func(e simEnt, nowMs int64, base uint64) int {
		age := time.Duration(nowMs-int64(e.origin)) * time.Millisecond
		x := Entry{Age: clampAge(age), Version: wireVer(e.ver), Full: e.full}
		if e.full {
			x.State = make([]byte, stateMinLen)
		}
		return entrySize(x, base)
	}
	var q simQueue
	var seq uint64
	var bytes, pkts, wants, answers, fulls float64
	counting := false
	send := func(nowUs int64, p *simPkt, size int) {
		if counting {
			bytes += float64(size + overhead)
			pkts++
		}
		if rng.Float64() < cfg.Loss {
			return
		}
		at := nowUs + linkLat(p.from, p.to)
		if cfg.Jitter > 0 {
			at += rng.Int64N(int64(cfg.Jitter/time.Microsecond) + 1)
		}
		if starved[p.from] || starved[p.to] {
			at += rng.Int64N(int64(cfg.StarvedDelay/time.Microsecond) + 1)
		}
		seq++
		p.at, p.seq = at, seq
		heap.Push(&q, p)
	}
	// merge is Table.Merge on pair k; it reports whether it took the entry.
	merge := func(i int, e simEnt) bool {
		k := i*n + int(e.o)
		if int(e.o) == i {
			return false
		}
		cur := ver[k]
		switch {
		case cur != 0 && e.ver < cur:
			return false
		case cur != 0 && e.ver == cur:
			if e.origin < origin[k] && (!e.full || tag[k] == e.tag) {
				origin[k] = e.origin
			}
			return false
		}
		if !e.full && (cur == 0 || tag[k] != e.tag) {
			if askedN[k]&needFullBit == 0 {
				askedN[k] |= needFullBit
				schedule(i, curRound+1, e.o)
			}
			return false
		}
		if e.full {
			askedN[k] = 0
		} else {
			askedN[k] &= needFullBit
		}
		askedAt[k] = 0
		ver[k], origin[k], tag[k] = e.ver, e.origin, e.tag
		return true
	}
	round := func(i int, r int64, nowMs int64) {
		nowUs := nowMs * 1000
		k0 := i * n
		if cfg.ChangeRate > 0 && rng.Float64() < cfg.ChangeRate*T.Seconds() {
			gen[i]++
		}
		// The node's version clock and its own entry (SetSelf).
		v := uint32(simV0 + (nowMs*1000+skew[i])/int64(VersionUnit/time.Microsecond))
		v = max(v, clock[i]+1)
		clock[i] = v
		ver[k0+i], origin[k0+i], tag[k0+i] = v, int32(nowMs), gen[i]
		bit := uint8(r % int64(d))
		changed := !injected[i] || injGen[i] != gen[i]
		if changed || !injected[i] || confirmDue(r, time.Duration(nowMs-injAt[i])*time.Millisecond, P, T) {
			pending[i] = append(pending[i], simRec{o: int32(i), ver: v, origin: int32(nowMs), tag: gen[i], full: changed, mask: fullMask(d)})
			injected[i], injGen[i], injAt[i] = true, gen[i], nowMs
		}
		// Relay step (Table.Relay): the round's bit of every broadcast
		// that has it left.
		out := map[uint32][]simEnt{}
		bm := uint32(1) << bit
		keep := pending[i][:0]
		for _, rec := range pending[i] {
			if rec.mask&bm != 0 {
				rec.mask &^= bm
				if delta := (i - int(rec.o) + n) % n; delta+1<<bit < n {
					out[rec.mask] = append(out[rec.mask], simEnt{o: rec.o, ver: rec.ver, origin: rec.origin, tag: rec.tag, full: rec.full})
				}
			}
			if rec.mask != 0 {
				keep = append(keep, rec)
			}
		}
		pending[i] = keep
		// Wants (Table.Wants, by a wheel instead of a scan).
		slot := &buckets[i][r%wheel]
		var ws []simWant
		items := *slot
		// A slot's items are put back elsewhere: give its memory back.
		*slot = nil
		for _, o := range items {
			k := k0 + int(o)
			full := askedN[k]&needFullBit != 0 || ver[k] == 0
			when := int64(origin[k]) + int64(wantAge) + 1
			if full {
				when = nowMs
			}
			if an := askedN[k] &^ needFullBit; an > 0 || askedAt[k] != 0 {
				when = max(when, int64(askedAt[k])+int64(retry)<<min(an, maxWantBackoff))
			}
			if when > nowMs {
				schedule(i, r+max(1, (when-nowMs+Tms-1)/Tms), o)
				continue
			}
			age := min(int32(nowMs)-origin[k], wantMaxAge*int32(wantAgeUnit/time.Millisecond))
			age -= age % int32(wantAgeUnit/time.Millisecond)
			if ver[k] == 0 {
				age = 0
			}
			ws = append(ws, simWant{o: o, age: age, full: full, none: ver[k] == 0})
		}
		slices.SortFunc(ws, func(a, b simWant) int {
			if a.full != b.full {
				if a.full {
					return -1
				}
				return 1
			}
			return int(b.age - a.age)
		})
		for x, w := range ws {
			k := k0 + int(w.o)
			if x >= maxWantsPerRound {
				schedule(i, r+1, w.o)
				continue
			}
			if askedAt[k] != 0 || askedN[k]&^needFullBit != 0 {
				askedN[k]++
			}
			askedAt[k] = int32(nowMs)
			an := askedN[k] &^ needFullBit
			schedule(i, r+max(1, (int64(retry)<<min(an, maxWantBackoff)+Tms-1)/Tms), w.o)
		}
		if len(ws) > maxWantsPerRound {
			ws = ws[:maxWantsPerRound]
		}
		if counting {
			wants += float64(len(ws))
		}
		// Packets: one to the round's bit (split by the budget); the wants
		// go on their own to a random node.
		masks := make([]uint32, 0, len(out))
		for m := range out {
			masks = append(masks, m)
		}
		slices.Sort(masks)
		base := vStart + uint64(v) - simV0
		var cur *simPkt
		var used int
		flush := func() {
			if cur != nil {
				send(nowUs, cur, used)
				cur = nil
			}
		}
		to := int32((i + 1<<bit) % n)
		for _, mk := range masks {
			es := out[mk]
			for len(es) > 0 {
				if cur != nil && len(cur.groups) == MaxRelayGroups {
					flush() // DecodeRelay's bound (packRelay)
				}
				if cur == nil {
					cur = &simPkt{from: int32(i), to: to}
					used = relayHeaderSize(base)
				}
				sz := relayGroupSize(mk, len(es))
				m := 0
				for m < len(es) {
					es1 := entSize(es[m], nowMs, base)
					if used+sz+es1 > budget && (m > 0 || len(cur.groups) > 0) {
						break
					}
					sz += es1
					if es[m].full && counting {
						fulls++
					}
					m++
				}
				if m == 0 {
					flush()
					continue
				}
				cur.groups = append(cur.groups, simGroup{mask: mk, es: es[:m]})
				used += sz
				es = es[m:]
				if len(es) > 0 {
					flush()
				}
			}
		}
		flush()
		if len(ws) > 0 {
			j := int32(rng.IntN(n - 1))
			if int(j) >= i {
				j++
			}
			send(nowUs, &simPkt{from: int32(i), to: j, wants: ws}, relayHeaderSize(base)+wantSize*len(ws))
		}
	}
	deliver := func(p *simPkt) {
		i := int(p.to)
		nowMs := p.at / 1000
		k0 := i * n
		for _, g := range p.groups {
			for _, e := range g.es {
				merge(i, e)
				k := k0 + int(e.o)
				if int(e.o) != i && g.mask != 0 && e.ver > fwd[k] {
					fwd[k] = e.ver
					pending[i] = append(pending[i], simRec{o: e.o, ver: e.ver, origin: e.origin, tag: e.tag, full: e.full, mask: g.mask})
				}
			}
		}
		for _, e := range p.reply {
			merge(i, e)
		}
		if len(p.wants) == 0 {
			return
		}
		base := vStart + uint64(clock[i])
		used := 1 + 5 + 2
		var rep []simEnt
		for _, w := range p.wants {
			k := k0 + int(w.o)
			if ver[k] == 0 || int(w.o) == int(p.from) {
				continue
			}
			age := int32(nowMs) - origin[k]
			if !w.none && int(w.o) != i && age+margin > w.age {
				continue
			}
			e := simEnt{o: w.o, ver: ver[k], origin: origin[k], tag: tag[k], full: w.full}
			sz := entSize(e, nowMs, base)
			if used+sz > budget {
				break
			}
			used += sz
			if e.full && counting {
				fulls++
			}
			rep = append(rep, e)
		}
		if len(rep) > 0 {
			if counting {
				answers += float64(len(rep))
			}
			send(p.at, &simPkt{from: int32(i), to: p.from, reply: rep}, used)
		}
	}
	var ages []time.Duration
	missing, wrong, sampled := 0, 0, 0
	durUs := int64(cfg.Duration / time.Microsecond)
	warmUs := int64(cfg.Warmup / time.Microsecond)
	nextSample := warmUs
	Tus := int64(T / time.Microsecond)
	// Node rounds: node i's round r falls at r·T on its own clock.
	type nodeRound struct {
		at int64
		r  int64
		i  int32
	}
	rounds := make([]nodeRound, 0, n)
	for r := int64(1); r*Tus < durUs; r++ {
		curRound = r
		counting = r*Tus >= warmUs
		rounds = rounds[:0]
		for i := 0; i < n; i++ {
			rounds = append(rounds, nodeRound{at: r*Tus - skew[i], r: r, i: int32(i)})
		}
		slices.SortFunc(rounds, func(a, b nodeRound) int {
			if a.at != b.at {
				if a.at < b.at {
					return -1
				}
				return 1
			}
			return int(a.i - b.i)
		})
		for _, nr := range rounds {
			for q.Len() > 0 && q[0].at <= nr.at {
				deliver(heap.Pop(&q).(*simPkt))
			}
			at := nr.at
			if starved[nr.i] {
				at += rng.Int64N(int64(cfg.StarvedDelay/time.Microsecond) + 1)
			}
			round(int(nr.i), nr.r, max(at, 0)/1000)
		}
		for nextSample <= r*Tus {
			nowMs := nextSample / 1000
			nextSample += 100_000
			for s := 0; s < 200; s++ {
				o, m := rng.IntN(n), rng.IntN(n)
				if o == m {
					continue
				}
				k := o*n + m
				if ver[k] == 0 {
					missing++
					continue
				}
				sampled++
				if tag[k] != gen[m] {
					wrong++
				}
				ages = append(ages, time.Duration(nowMs-int64(origin[k]))*time.Millisecond)
			}
		}
	}
	secs := (cfg.Duration - cfg.Warmup).Seconds()
	res := SimResult{
		BytesPerNodePerSec: bytes / float64(n) / secs, PacketsPerNodePerSec: pkts / float64(n) / secs,
		WantsPerNodePerSec: wants / float64(n) / secs, AnswersPerNodePerSec: answers / float64(n) / secs,
		FullsPerNodePerSec: fulls / float64(n) / secs, Missing: missing, ConfirmInterval: P,
	}
	if sampled > 0 {
		res.Wrong = float64(wrong) / float64(sampled)
	}
	if len(ages) > 0 {
		slices.Sort(ages)
		res.AgeP50 = ages[len(ages)/2]
		res.AgeP99 = ages[len(ages)*99/100]
		res.AgeMax = ages[len(ages)-1]
	}
	return res
}
