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
// (-tags nolibp2p,nok8s,noaws): libp2p, client-go and the AWS SDK are not in
// it, and asking for what they did fails with a message naming the build.
func TestSmallBuildDropsLibrariesAndSaysSo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a second binary")
	}
	bin := filepath.Join(t.TempDir(), "shoal-small")
	if out, err := exec.Command("go", "build", "-tags", "nolibp2p,nok8s,noaws", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("small build: %v\n%s", err, out)
	}
	deps, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, deps)
	}
	for _, mod := range []string{"github.com/libp2p/go-libp2p", "k8s.io/client-go", "github.com/aws/aws-sdk-go-v2/service/autoscaling"} {
		if strings.Contains(string(deps), "\t"+mod+"\t") {
			t.Errorf("the small build still links %s", mod)
		}
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
