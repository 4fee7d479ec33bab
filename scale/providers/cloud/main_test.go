package cloud

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/shoalmesh/shoal/internal/leakcheck"
	"github.com/shoalmesh/shoal/scale/providers"
)

// TestMain fails the package's tests if any goroutine is still running when
// they end: whatever the code under test starts, it must stop.
func TestMain(m *testing.M) {
	leakcheck.VerifyTestMain(m)
}

// useHelper builds cmd/shoal-provider and points the agent's side of the
// helper protocol (providers.HelperFactory) at it for this test.
func useHelper(t *testing.T) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), providers.HelperName)
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/shoalmesh/shoal/cmd/shoal-provider").CombinedOutput(); err != nil {
		t.Fatalf("building the helper: %v\n%s", err, out)
	}
	t.Setenv(providers.HelperEnv, bin)
}
