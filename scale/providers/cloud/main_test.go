package cloud

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/leakcheck"
	"github.com/shoalmesh/shoal/internal/testbin"
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
	t.Setenv(providers.HelperEnv, testbin.Build(t, testbin.Provider))
}
