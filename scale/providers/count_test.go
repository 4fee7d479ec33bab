package providers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/shoalmesh/shoal/scale"
)

// TestExecCountIsBounded: a current_command that prints a count above
// scale.MaxCount, or prints without end, is refused with a short error.
func TestExecCountIsBounded(t *testing.T) {
	for _, tc := range []struct{ cmd, want string }{
		{"echo 9223372036854775807", "want a count from 0 to 1048576"},
		{"echo 1048577", "want a count from 0 to 1048576"},
		{"yes 1 | head -c 10000000", "… (65535 bytes)"}, // the first 64 KiB kept, trimmed
	} {
		p := newProvider(t, scale.ProviderConfig{Name: ExecName, Resource: "true", Options: map[string]string{"current_command": tc.cmd}})
		_, err := p.Current(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) || len(err.Error()) > 4*maxQuoted+512 {
			t.Errorf("current_command %q: %d bytes: …%.200s; want an error of at most %d bytes saying %q", tc.cmd, len(fmt.Sprint(err)), fmt.Sprint(err)[max(0, len(fmt.Sprint(err))-200):], 4*maxQuoted+512, tc.want)
		}
	}
	p := newProvider(t, scale.ProviderConfig{Name: ExecName, Resource: "true", Options: map[string]string{"current_command": "echo 1048576"}})
	if n, err := p.Current(context.Background()); err != nil || n != scale.MaxCount {
		t.Errorf("current_command printing scale.MaxCount: %d %v", n, err)
	}
}
