package mesh

// Shoal's member tags: their names, the keys Shoal reserves for itself, and
// the one parser. Every other package reads a member's tags through
// Member.Shoal (parsed once, when the member's tags change), never by key.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Tag names Shoal gives meaning to.
const (
	// TagShoal marks a member as a Shoal agent (its value is the node state
	// major version). Members without it (a stock serf agent) are listed
	// but are not sent load packets and are no election candidates.
	TagShoal = "shoal"
	// TagPriority carries the node's election priority.
	TagPriority = "priority"
	// TagScale carries the coordinator's last scale action to every member:
	// "TERM/PRIORITY/UNIXNANO/FROM/TO" (see ScaleTag).
	TagScale = "scale"
	// TagService names the service a member offers (service=web).
	TagService = "service"
	// TagPort is the port the member's service listens on, on the member's
	// gossip address.
	TagPort = "port"
	// TagCapacity is the member's relative capacity (a positive number);
	// without it the member's cores count.
	TagCapacity = "capacity"
)

// reservedTags are the keys Shoal sets itself. A user tag with one of them
// would be read by other nodes as Shoal's own (a user tag scale=... as a
// coordinator's scale action), so they are refused.
var reservedTags = []string{TagShoal, TagPriority, TagScale}

// ErrReservedTag is wrapped by the error for a user tag with a reserved key.
var ErrReservedTag = errors.New("reserved")

// ReservedTags returns the keys Shoal sets itself.
func ReservedTags() []string { return append([]string(nil), reservedTags...) }

// CheckUserTag returns an error wrapping ErrReservedTag, naming the key, if
// key is one Shoal reserves for itself.
func CheckUserTag(key string) error {
	for _, r := range reservedTags {
		if key == r {
			return fmt.Errorf("tag key %q is %w: Shoal sets it itself (reserved keys: %s)", key, ErrReservedTag, strings.Join(reservedTags, ", "))
		}
	}
	return nil
}

// ShoalTags is what Shoal reads from a member's tags, parsed once.
type ShoalTags struct {
	// Agent is true for a Shoal agent (TagShoal present), false for a stock
	// serf agent in the pool.
	Agent bool
	// Priority is the election priority (0 when missing or not a number).
	Priority int
	// Service is the service the member offers ("" for none).
	Service string
	// Port is the service port, 0 when missing or not a port number.
	Port int
	// Capacity is the relative capacity, 0 when missing, not positive or
	// not finite.
	Capacity float64
	// Scale is the last scale action the member announced; ScaleOK is
	// false when it announced none (or the tag does not parse).
	Scale   ScaleTag
	ScaleOK bool
	// Numeric holds every tag whose value is a number (NaN excluded), for
	// the scale policy's tag:NAME metric; nil when there is none.
	Numeric map[string]float64
}

// ScaleTag is a scale action as a coordinator announces it in TagScale.
type ScaleTag struct {
	Term     uint64
	Priority int
	Time     time.Time
	From, To int
}

// String is the tag's value: "TERM/PRIORITY/UNIXNANO/FROM/TO".
func (s ScaleTag) String() string {
	return fmt.Sprintf("%d/%d/%d/%d/%d", s.Term, s.Priority, s.Time.UnixNano(), s.From, s.To)
}

// ParseScaleTag parses a TagScale value; errors name the value.
func ParseScaleTag(s string) (ScaleTag, error) {
	p := strings.Split(s, "/")
	if len(p) != 5 {
		return ScaleTag{}, fmt.Errorf("scale tag %q: want TERM/PRIORITY/UNIXNANO/FROM/TO", s)
	}
	term, e1 := strconv.ParseUint(p[0], 10, 64)
	prio, e2 := strconv.Atoi(p[1])
	ns, e3 := strconv.ParseInt(p[2], 10, 64)
	from, e4 := strconv.Atoi(p[3])
	to, e5 := strconv.Atoi(p[4])
	if err := errors.Join(e1, e2, e3, e4, e5); err != nil {
		return ScaleTag{}, fmt.Errorf("scale tag %q: %w", s, err)
	}
	return ScaleTag{Term: term, Priority: prio, Time: time.Unix(0, ns), From: from, To: to}, nil
}

// ParseTags reads Shoal's tags from a member's tags. It never fails: a
// value that does not parse counts as missing.
func ParseTags(tags map[string]string) ShoalTags {
	var t ShoalTags
	_, t.Agent = tags[TagShoal]
	t.Priority, _ = strconv.Atoi(tags[TagPriority])
	t.Service = tags[TagService]
	if p, err := strconv.Atoi(tags[TagPort]); err == nil && p > 0 && p <= 65535 {
		t.Port = p
	}
	if v, err := strconv.ParseFloat(tags[TagCapacity], 64); err == nil && v > 0 && !math.IsInf(v, 0) {
		t.Capacity = v
	}
	if v, ok := tags[TagScale]; ok {
		if s, err := ParseScaleTag(v); err == nil {
			t.Scale, t.ScaleOK = s, true
		}
	}
	for k, v := range tags {
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) {
			if t.Numeric == nil {
				t.Numeric = map[string]float64{}
			}
			t.Numeric[k] = f
		}
	}
	return t
}
