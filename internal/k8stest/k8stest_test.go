package k8stest

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The versions here must be the ones scripts/k8s-build builds, which it reads
// from the wrapper modules.
func TestVersionsMatchWrapperModules(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, c := range []struct{ gomod, module, want string }{
		{"k8s/apiserver/go.mod", "k8s.io/kubernetes", KubernetesVersion},
		{"k8s/etcd/go.mod", "go.etcd.io/etcd/server/v3", EtcdVersion},
	} {
		b, err := os.ReadFile(filepath.Join(root, c.gomod))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "require" {
				f = f[1:]
			}
			if len(f) >= 2 && f[0] == c.module {
				found = true
				if f[1] != c.want {
					t.Errorf("%s requires %s %s, k8stest looks for %s", c.gomod, c.module, f[1], c.want)
				}
			}
		}
		if !found {
			t.Errorf("%s does not require %s", c.gomod, c.module)
		}
	}
}

func TestStartServesVersionAndStops(t *testing.T) {
	t0 := time.Now()
	c := Start(t, Options{Users: []User{{Name: "alice"}}})
	t.Logf("etcd and kube-apiserver ready in %v at %s", time.Since(t0).Round(time.Millisecond), c.URL)

	client, err := c.httpClient()
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, user string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, c.URL+path, nil)
		if user != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token(user))
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}

	code, body := get("/version", AdminUser)
	if code != 200 {
		t.Fatalf("/version: %d %s", code, body)
	}
	var v struct{ GitVersion string }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != KubernetesVersion {
		t.Errorf("gitVersion %q, want %q (the -X ldflags in scripts/k8s-build)", v.GitVersion, KubernetesVersion)
	}
	if code, body := get("/api/v1/namespaces/default", "alice"); code != 200 {
		t.Errorf("alice under AlwaysAllow: %d %s", code, body)
	}
	for _, f := range []string{c.AdminKubeconfig, c.Kubeconfig("alice"), c.CAFile} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}

	c.Stop()
	for _, p := range c.procs {
		if !p.exited() {
			t.Errorf("%s still running after Stop", p.name)
		}
	}
}

func TestRBACDeniesUnboundUser(t *testing.T) {
	c := Start(t, Options{RBAC: true, Users: []User{{Name: "nobody"}}})
	client, err := c.httpClient()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, c.URL+"/api/v1/namespaces/default/pods", nil)
	req.Header.Set("Authorization", "Bearer "+c.Token("nobody"))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unbound user under RBAC: %d, want 403", resp.StatusCode)
	}
}
