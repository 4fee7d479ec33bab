package election

import (
	"flag"
	"strings"
	"testing"
)

var zzFrom = flag.Int("zz-from", 0, "")

func TestZZSeeds(t *testing.T) {
	bad := 0
	for seed := uint64(*zzFrom); seed < uint64(*zzFrom+*propertyRuns); seed++ {
		for _, preempt := range []bool{true, false} {
			err := propertyRun(seed, preempt)
			if err != nil && err != errNoMajority {
				bad++
				msg := err.Error()
				if i := strings.Index(msg, ";"); i > 0 {
					msg = msg[:i]
				}
				t.Logf("seed %d preempt=%t: %s", seed, preempt, msg)
			}
		}
	}
	t.Logf("%d bad", bad)
}
