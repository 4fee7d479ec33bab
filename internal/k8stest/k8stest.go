// Package k8stest starts a real kube-apiserver, backed by a real etcd, on
// loopback for tests (tier 5 in DESIGN.md), and tears both down when the test
// ends. No controller-manager, scheduler or kubelet runs: objects are stored
// and served, nothing reconciles them (the scale subresource still changes a
// Deployment's spec.replicas, which is what the scale provider needs).
//
// The binaries come from scripts/k8s-build, which builds them from the Go
// module proxy into a cache directory keyed by version:
//
//	${SHOAL_K8S_CACHE:-$HOME/.cache/shoal-k8s}/kube-apiserver-v1.37.2/kube-apiserver
//	${SHOAL_K8S_CACHE:-$HOME/.cache/shoal-k8s}/etcd-v3.7.3/etcd
//
// SHOAL_K8S_APISERVER and SHOAL_K8S_ETCD name other binaries. When a binary is
// missing, Start skips the test and says how to build it; with
// SHOAL_REQUIRE_K8S=1 or CI=true it fails the test instead.
//
// Each Cluster has its own etcd (data in the test's temporary directory, no
// fsync), random loopback ports, a CA and serving certificate made for it, a
// service-account signing key, and a static token file: an admin user in
// system:masters plus any users the test names. Authorization is AlwaysAllow
// unless Options.RBAC is set (then only what RBAC grants; system:masters is
// bound to cluster-admin by the apiserver's bootstrap policy).
//
// The package uses the standard library only (and internal/testenv, which
// does too), so that it stays cheap to import; tests build their clients
// from the kubeconfig files it writes.
package k8stest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/internal/testenv"
)

// Versions the helper looks for; scripts/k8s-build reads the same ones from
// k8s/apiserver/go.mod and k8s/etcd/go.mod (a test checks they agree).
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.7.3"
)

// AdminUser is the name of the token user in system:masters that every
// Cluster has.
const AdminUser = "shoal-admin"

// User is a static-token user of the test apiserver.
type User struct {
	Name   string
	Groups []string
	// Token is filled in by Start when empty.
	Token string
}

// Options for Start.
type Options struct {
	// RBAC selects --authorization-mode=Node,RBAC instead of AlwaysAllow.
	RBAC bool
	// Users are added to the token file next to AdminUser.
	Users []User
	// ExtraArgs are appended to kube-apiserver's command line.
	ExtraArgs []string
	// ReadyTimeout bounds the wait for etcd and the apiserver (default 90s).
	ReadyTimeout time.Duration
}

// Cluster is a running etcd and kube-apiserver pair.
type Cluster struct {
	// URL of the apiserver, https://127.0.0.1:port.
	URL string
	// CAFile is the PEM file of the CA that signed the serving certificate.
	CAFile string
	// Dir holds the certificates, token file, kubeconfigs, etcd data and
	// the two processes' logs.
	Dir string
	// AdminKubeconfig is a kubeconfig for AdminUser (system:masters).
	AdminKubeconfig string

	users    map[string]User
	caPEM    []byte
	procs    []*proc
	stopOnce sync.Once
}

// Binaries returns the paths of kube-apiserver and etcd, and an error that
// says how to build them if either is missing.
func Binaries() (apiserver, etcd string, err error) {
	cache := os.Getenv("SHOAL_K8S_CACHE")
	if cache == "" {
		home, herr := os.UserHomeDir()
		if herr != nil {
			return "", "", fmt.Errorf("k8stest: no SHOAL_K8S_CACHE and no home directory: %v", herr)
		}
		cache = filepath.Join(home, ".cache", "shoal-k8s")
	}
	apiserver = os.Getenv("SHOAL_K8S_APISERVER")
	if apiserver == "" {
		apiserver = filepath.Join(cache, "kube-apiserver-"+KubernetesVersion, "kube-apiserver")
	}
	etcd = os.Getenv("SHOAL_K8S_ETCD")
	if etcd == "" {
		etcd = filepath.Join(cache, "etcd-"+EtcdVersion, "etcd")
	}
	var missing []string
	for _, p := range []string{apiserver, etcd} {
		if fi, serr := os.Stat(p); serr != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return apiserver, etcd, fmt.Errorf("k8stest: real Kubernetes binaries not built (%s); run scripts/k8s-build "+
			"(about 7-20 minutes cold), or set SHOAL_K8S_CACHE / SHOAL_K8S_APISERVER / SHOAL_K8S_ETCD",
			strings.Join(missing, ", "))
	}
	return apiserver, etcd, nil
}

// Required reports whether the real-Kubernetes tests fail rather than skip
// when the binaries are missing: SHOAL_REQUIRE_K8S asks for it, and so does
// CI=true (internal/testenv).
func Required() bool {
	v := os.Getenv("SHOAL_REQUIRE_K8S")
	return (v != "" && v != "0" && v != "false") || testenv.CI()
}

// Start starts etcd and kube-apiserver for t and stops them when t ends. It
// skips t when the binaries are missing (fails it with SHOAL_REQUIRE_K8S=1).
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	apiserverBin, etcdBin, err := Binaries()
	if err != nil {
		if Required() {
			t.Fatalf("%v (SHOAL_REQUIRE_K8S or CI=true is set)", err)
		}
		t.Skipf("%v; skipping (set SHOAL_REQUIRE_K8S=1 to fail instead)", err)
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	// Ports are found free and then handed over, so another process can
	// take one in between; a second attempt on fresh ports covers that.
	var c *Cluster
	for attempt := 1; ; attempt++ {
		c, err = start(t, apiserverBin, etcdBin, opts)
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatalf("k8stest: %v", err)
		}
		t.Logf("k8stest: start attempt %d failed, retrying on new ports: %v", attempt, err)
	}
	t.Cleanup(c.Stop)
	return c
}

func start(t testing.TB, apiserverBin, etcdBin string, opts Options) (c *Cluster, err error) {
	dir, err := os.MkdirTemp("", "shoal-k8stest-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir, users: map[string]User{}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("k8stest: keeping %s (logs: etcd.log, kube-apiserver.log)", dir)
			return
		}
		os.RemoveAll(dir)
	})

	ports, err := freePorts(3)
	if err != nil {
		return c, err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	securePort := ports[2]
	c.URL = fmt.Sprintf("https://127.0.0.1:%d", securePort)

	if err := c.writeCerts(); err != nil {
		return c, err
	}
	saKey, err := writeRSAKey(filepath.Join(dir, "sa.key"))
	if err != nil {
		return c, err
	}

	// Token file: token,user,uid,"group1,group2".
	users := append([]User{{Name: AdminUser, Groups: []string{"system:masters"}}}, opts.Users...)
	var tokens bytes.Buffer
	for i, u := range users {
		if u.Name == "" {
			return c, errors.New("a User without a Name")
		}
		if _, dup := c.users[u.Name]; dup {
			return c, fmt.Errorf("user %q named twice", u.Name)
		}
		if u.Token == "" {
			u.Token = randomHex(16)
		}
		fmt.Fprintf(&tokens, "%s,%s,uid-%d,%q\n", u.Token, u.Name, i, strings.Join(u.Groups, ","))
		c.users[u.Name] = u
	}
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, tokens.Bytes(), 0o600); err != nil {
		return c, err
	}
	if c.AdminKubeconfig, err = c.writeKubeconfig(AdminUser); err != nil {
		return c, err
	}

	deadline := time.Now().Add(opts.ReadyTimeout)
	etcd, err := startProc(dir, "etcd", etcdBin,
		"--name=default",
		"--data-dir="+filepath.Join(dir, "etcd-data"),
		"--listen-client-urls="+etcdClient,
		"--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer,
		"--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=default="+etcdPeer,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return c, err
	}
	c.procs = append(c.procs, etcd)
	if err := waitHTTP(etcd, etcdClient+"/health", nil, deadline, func(code int, body []byte) bool {
		return code == 200 && bytes.Contains(body, []byte(`"health":"true"`))
	}); err != nil {
		return c, fmt.Errorf("etcd not healthy: %w", err)
	}

	authz := "AlwaysAllow"
	if opts.RBAC {
		authz = "Node,RBAC"
	}
	args := []string{
		"--etcd-servers=" + etcdClient,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// Needed on loopback with 1.37: no endpoint reconciling for the
		// kubernetes service.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(securePort),
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file=" + filepath.Join(dir, "serving.crt"),
		"--tls-private-key-file=" + filepath.Join(dir, "serving.key"),
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=" + authz,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	}
	args = append(args, opts.ExtraArgs...)
	api, err := startProc(dir, "kube-apiserver", apiserverBin, args...)
	if err != nil {
		return c, err
	}
	c.procs = append(c.procs, api)
	client, err := c.httpClient()
	if err != nil {
		return c, err
	}
	hdr := http.Header{"Authorization": {"Bearer " + c.users[AdminUser].Token}}
	if err := waitHTTPHeader(api, c.URL+"/readyz", client, hdr, deadline, func(code int, body []byte) bool { return code == 200 }); err != nil {
		return c, fmt.Errorf("kube-apiserver not ready: %w", err)
	}
	// The default namespace is made by a controller inside the apiserver,
	// which may come a moment after /readyz.
	if err := waitHTTPHeader(api, c.URL+"/api/v1/namespaces/default", client, hdr, deadline, func(code int, body []byte) bool { return code == 200 }); err != nil {
		return c, fmt.Errorf("kube-apiserver has no default namespace: %w", err)
	}
	return c, nil
}

// Token returns the bearer token of a user named in Options.Users (or
// AdminUser).
func (c *Cluster) Token(user string) string {
	u, ok := c.users[user]
	if !ok {
		panic("k8stest: unknown user " + user)
	}
	return u.Token
}

// Kubeconfig writes (once) and returns the path of a kubeconfig that
// authenticates as user, a name from Options.Users or AdminUser.
func (c *Cluster) Kubeconfig(user string) string {
	p, err := c.writeKubeconfig(user)
	if err != nil {
		panic("k8stest: " + err.Error())
	}
	return p
}

// Stop stops kube-apiserver and then etcd (SIGTERM, then SIGKILL after a few
// seconds). Start registers it with t.Cleanup; calling it again is harmless.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].stop(10 * time.Second)
		}
	})
}

// LogTail returns the last n bytes of a process log ("etcd" or
// "kube-apiserver"), for failure messages.
func (c *Cluster) LogTail(name string, n int) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, name+".log"))
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (c *Cluster) writeKubeconfig(user string) (string, error) {
	u, ok := c.users[user]
	if !ok {
		return "", fmt.Errorf("unknown user %q", user)
	}
	p := filepath.Join(c.Dir, "kubeconfig-"+user)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: k8stest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: k8stest
  context:
    cluster: k8stest
    user: %s
    namespace: default
current-context: k8stest
`, c.URL, c.CAFile, yamlQuote(user), u.Token, yamlQuote(user))
	return p, os.WriteFile(p, []byte(cfg), 0o600)
}

func yamlQuote(s string) string { return strconv.Quote(s) }

func (c *Cluster) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.caPEM) {
		return nil, errors.New("bad CA PEM")
	}
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

// writeCerts makes a CA and a serving certificate for 127.0.0.1/localhost.
func (c *Cluster) writeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "shoal-k8stest-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	c.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	c.CAFile = filepath.Join(c.Dir, "ca.crt")
	files := map[string][]byte{
		c.CAFile:                            c.caPEM,
		filepath.Join(c.Dir, "serving.crt"): pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		filepath.Join(c.Dir, "serving.key"): pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func writeRSAKey(path string) (string, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	return path, os.WriteFile(path, b, 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// proc is a child process with its output in dir/name.log.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // valid after done
}

func startProc(dir, name, bin string, args ...string) (*proc, error) {
	lf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group, and killed if the test binary dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log.Name())
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func waitHTTP(p *proc, url string, client *http.Client, deadline time.Time, ok func(int, []byte) bool) error {
	return waitHTTPHeader(p, url, client, nil, deadline, ok)
}

func waitHTTPHeader(p *proc, url string, client *http.Client, hdr http.Header, deadline time.Time, ok func(int, []byte) bool) error {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	var last string
	for {
		if p.exited() {
			return fmt.Errorf("%s exited (%v); log tail:\n%s", p.name, p.err, p.tail(3000))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if ok(resp.StatusCode, body.Bytes()) {
				cancel()
				return nil
			}
			last = fmt.Sprintf("%s: %d %s", url, resp.StatusCode, truncate(body.String(), 300))
		} else {
			last = err.Error()
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out (last: %s); %s log tail:\n%s", last, p.name, p.tail(3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
