//go:build containers

package containers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/internal/testenv"
)

// TestSystemdUnitVerifies runs systemd-analyze verify on deploy/systemd's
// unit. verify checks that ExecStart's program exists, so the unit is
// checked with ExecStart pointed at a freshly built binary; anything verify
// prints (unknown keys, bad values) fails the test, not only its exit code.
func TestSystemdUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.RequireOrSkip(t, "systemd unit check: no systemd-analyze on this machine (Debian: apt-get install systemd)")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildBinary(t, root)
	unit, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", "shoal.service"))
	if err != nil {
		t.Fatal(err)
	}
	const execPath = "/usr/local/bin/shoal"
	if !strings.Contains(string(unit), "ExecStart="+execPath+" agent") {
		t.Fatalf("the unit's ExecStart is not %s agent", execPath)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=shoal", "Restart=on-failure", "ProtectSystem=strict",
		"ProtectHome=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "EnvironmentFile=-/etc/shoal/shoal.env"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	p := filepath.Join(dir, "shoal.service")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(unit), execPath, bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(time.Minute, "sh", "-c", "'"+sa+"' verify '"+p+"' 2>&1")
	if err != nil || out != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	t.Logf("systemd-analyze verify deploy/systemd/shoal.service: clean")
}
