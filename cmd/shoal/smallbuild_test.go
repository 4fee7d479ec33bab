package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmallBuildDropsLibrariesAndSaysSo builds the binary for small devices
// (-tags nolibp2p,nok8s,noaws): asking for what libp2p, client-go and the
// AWS SDK did fails with a message naming the build. That they are not
// linked is pinned by TestDeps.
func TestSmallBuildDropsLibrariesAndSaysSo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a second binary")
	}
	bin := filepath.Join(t.TempDir(), "shoal-small")
	if out, err := exec.Command("go", "build", "-tags", "nolibp2p,nok8s,noaws", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("small build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--profile", "p2p", "--encrypt", "1R21WRLv3doDNL4w9stIkI/rvujyKuivWufHlEnBpkw="}, "nolibp2p"},
		{[]string{"--scale-provider", "kubernetes", "--scale-resource", "default/deployment/web"}, "nok8s"},
		{[]string{"--scale-provider", "aws", "--scale-resource", "web-asg"}, "noaws"},
	} {
		args := append([]string{"agent", "--bind", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", dir}, c.args...)
		// An agent that starts runs until killed: the timeout ends it.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		if err == nil {
			t.Errorf("shoal %s: started in a build without it", strings.Join(c.args, " "))
			continue
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("shoal %s: %v, output %q; want a message naming -tags %s", strings.Join(c.args, " "), err, out, c.want)
		}
	}
}
