package mesh

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// ErrNameInUse is wrapped when a join finds this node's name held by a live
// member at another address. The node must not stay: serf's own conflict
// resolution makes both nodes of a one-to-one conflict quit gossip while
// their processes run on, and a newcomer that loses in a larger mesh runs on
// as a zombie that believes everyone is alive.
var ErrNameInUse = errors.New("name conflict")

// nameGuard is memberlist's merge delegate: on every push-pull (a join is
// one) it looks at the peer's member list before merging it. A live or
// suspect member with this node's name at another address means the name
// is taken: the merge is refused on both sides, so the newcomer's join
// fails with the holder's address and the established node keeps its
// membership untouched. A dead entry is left to memberlist, which lets a
// node that moved reclaim its name after DeadNodeReclaimTime.
//
// It is set on memberlist's config directly (serf's Config.Merge is left
// nil), because serf's wrapper hides whether a member is alive or dead.
type nameGuard struct {
	name string
	self atomic.Pointer[string] // "ip:port" this node advertises, once known
}

var _ memberlist.MergeDelegate = (*nameGuard)(nil)

// NotifyMerge is called by memberlist from its stream goroutines.
func (g *nameGuard) NotifyMerge(peers []*memberlist.Node) error {
	self := g.self.Load()
	if self == nil {
		return nil
	}
	for _, n := range peers {
		if n.Name != g.name || (n.State != memberlist.StateAlive && n.State != memberlist.StateSuspect) {
			continue
		}
		addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
		if addr == *self {
			continue
		}
		return fmt.Errorf("%w: node name %q is already used by %s (names must be unique: pick another --node)", ErrNameInUse, g.name, addr)
	}
	return nil
}

// isNameInUse reports whether a join error came from a nameGuard; memberlist
// flattens the cause to text on its way out of Join.
func isNameInUse(err error) bool {
	return err != nil && (errors.Is(err, ErrNameInUse) || strings.Contains(err.Error(), ErrNameInUse.Error()+": node name"))
}

// nameInUse turns memberlist's multi-error text into one ErrNameInUse
// that says who holds the name.
func nameInUse(err error) error {
	msg := err.Error()
	i := strings.Index(msg, `node name "`)
	if i < 0 {
		return fmt.Errorf("%w: %v", ErrNameInUse, err)
	}
	line := msg[i:]
	if j := strings.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	return fmt.Errorf("%w: %s", ErrNameInUse, line)
}
