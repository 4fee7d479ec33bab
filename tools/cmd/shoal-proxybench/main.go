// Command shoal-proxybench measures Shoal's forwarding proxy against real
// backends, next to nginx round-robin, in one run (issue 7, part 3).
//
// Five shoal agents (processes of the built binary, local profile) run on
// 127.0.0.81–85, each advertising a small HTTP backend (tags service=web and
// port=…). The backends run as goroutines in this process; each serves at
// most -conc requests at once for -svc each, and one of them (web-3) takes
// -slow times as long, so under load it queues. The first agent runs the
// proxy (--proxy-listen, p2c); a second proxy, on a sixth agent started with
// --proxy-inflight-count=false, picks with gossip alone; nginx (if installed) runs
// round-robin over the same five backends with keep-alive. An open-loop
// load generator (Poisson arrivals, a fixed number of requests per phase)
// drives each target in turn at each -rates value: throughput, p50/p99
// latency, and the share of requests that reached the slow backend.
//
// The proxy's own overhead: one request at a time, interleaved, to an
// unlimited zero-delay backend directly, through a Shoal proxy (a seventh
// agent, service echo), through the same proxy in an agent run with
// GOMAXPROCS=1 (an eighth), and through nginx; overhead = p50 through − p50
// direct.
//
// Usage (from tools/, the runners' own module; ../ is the repository root):
//
//	go run ./cmd/shoal-proxybench                          # print the tables
//	go run ./cmd/shoal-proxybench -out ../docs/benchmarks.md  # and append them there
//
// Every process started is killed at the end, also on error or Ctrl-C, and
// the temporary directory removed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/shoalmesh/shoal/tools/internal/procs"
)

type options struct {
	shoal, nginx, out string
	rates             []float64
	requests          int
	svc               time.Duration
	slow              float64
	conc              int
	overheadN         int
	maxOutstanding    int
	seed              uint64
}

func main() {
	var o options
	var rates string
	flag.StringVar(&o.shoal, "shoal", "", "shoal binary (default: build ./cmd/shoal into the temp dir)")
	flag.StringVar(&o.nginx, "nginx", "nginx", "nginx binary; if missing, the nginx column is skipped")
	flag.StringVar(&o.out, "out", "", "append the report (markdown) to this file, e.g. docs/benchmarks.md")
	flag.StringVar(&rates, "rates", "400,700", "offered loads, requests per second, comma-separated")
	flag.IntVar(&o.requests, "requests", 5000, "requests per target per rate")
	flag.DurationVar(&o.svc, "svc", 5*time.Millisecond, "service time of a fast backend")
	flag.Float64Var(&o.slow, "slow", 4, "the slow backend's service time, in multiples of -svc")
	flag.IntVar(&o.conc, "conc", 2, "requests each backend serves at once (the rest queue)")
	flag.IntVar(&o.overheadN, "overhead-n", 2000, "sequential requests per path for the overhead measurement")
	flag.IntVar(&o.maxOutstanding, "max-outstanding", 2000, "requests in flight beyond which the load generator sheds (counted as errors)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the arrival process")
	flag.Parse()
	for _, s := range strings.Split(rates, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "shoal-proxybench: -rates %q: want positive numbers, comma-separated\n", rates)
			os.Exit(2)
		}
		o.rates = append(o.rates, v)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "shoal-proxybench: %v\n", err)
		os.Exit(1)
	}
}

type agentProc struct {
	name, gossip, http, proxy string
	proc                      *procs.Proc
}

func startAgent(g *procs.Group, bin, dir, name, ip, join string, env []string, extra ...string) (*agentProc, error) {
	gossip, err := procs.FreeAddr(ip)
	if err != nil {
		return nil, err
	}
	httpAddr, err := procs.FreeAddr("127.0.0.1")
	if err != nil {
		return nil, err
	}
	a := &agentProc{name: name, gossip: gossip, http: httpAddr}
	args := []string{bin, "agent", "--node", name, "--bind", a.gossip, "--profile", "local", "--http-addr", a.http,
		"--data-dir", filepath.Join(dir, name), "--sample-interval", "200ms", "--log-level", "warn"}
	if join != "" {
		args = append(args, "--join", join)
	}
	args = append(args, extra...)
	for i, x := range extra {
		if x == "--proxy-listen" && i+1 < len(extra) {
			a.proxy = extra[i+1]
		}
	}
	a.proc, err = g.Start(procs.Spec{Name: name, Argv: args, Env: append(os.Environ(), env...), Log: filepath.Join(dir, name+".log")})
	return a, err
}

// waitPick polls an agent's /v1/pick until n members of service are eligible.
func waitPick(a *agentProc, service string, n int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	url := fmt.Sprintf("http://%s/v1/pick?service=%s&n=%d", a.http, service, n)
	err := a.proc.WaitHTTP(ctx, url, 100*time.Millisecond, func(status int, b []byte) error {
		var got []json.RawMessage
		if status == 200 && json.Unmarshal(b, &got) == nil && len(got) == n {
			return nil
		}
		return fmt.Errorf("%d %s", status, strings.TrimSpace(string(b)))
	})
	if err != nil {
		return fmt.Errorf("agent %s: %d members of service %s not eligible within %v: %w", a.name, n, service, d, err)
	}
	return nil
}

const nginxConf = `worker_processes auto;
daemon off;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/ngx-body;
  proxy_temp_path {{.Dir}}/ngx-proxy;
  fastcgi_temp_path {{.Dir}}/ngx-fcgi;
  uwsgi_temp_path {{.Dir}}/ngx-uwsgi;
  scgi_temp_path {{.Dir}}/ngx-scgi;
  upstream web {
{{- range .Web}}
    server {{.}} max_fails=0;
{{- end}}
    keepalive 256;
  }
  upstream echo {
    server {{.Echo}};
    keepalive 32;
  }
  server {
    listen {{.WebListen}};
    location / {
      proxy_pass http://web;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 60s;
    }
  }
  server {
    listen {{.EchoListen}};
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`

// startNginx writes a config into dir and starts nginx in the foreground.
// It returns the two listen addresses, or an error saying why not.
func startNginx(g *procs.Group, bin, dir string, web []string, echo string) (webAddr, echoAddr, version string, err error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", "", "", fmt.Errorf("nginx not found (%v); install it with 'apt-get install -y nginx-light'", err)
	}
	vb, _ := exec.Command(path, "-v").CombinedOutput()
	version = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(vb)), "nginx version: "))
	if webAddr, err = procs.FreeAddr("127.0.0.1"); err != nil {
		return "", "", "", err
	}
	if echoAddr, err = procs.FreeAddr("127.0.0.1"); err != nil {
		return "", "", "", err
	}
	ndir := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(ndir, "logs"), 0o755); err != nil {
		return "", "", "", err
	}
	conf := filepath.Join(ndir, "nginx.conf")
	f, err := os.Create(conf)
	if err != nil {
		return "", "", "", err
	}
	err = template.Must(template.New("nginx").Parse(nginxConf)).Execute(f, map[string]any{
		"Dir": ndir, "Web": web, "Echo": echo, "WebListen": webAddr, "EchoListen": echoAddr,
	})
	f.Close()
	if err != nil {
		return "", "", "", err
	}
	p, err := g.Start(procs.Spec{Name: "nginx", Argv: []string{path, "-p", ndir, "-c", conf, "-e", filepath.Join(ndir, "nginx-error.log")},
		Log: filepath.Join(ndir, "stderr.log")})
	if err != nil {
		return "", "", "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p.WaitHTTP(ctx, "http://"+echoAddr+"/", 100*time.Millisecond, nil) == nil {
		return webAddr, echoAddr, version, nil
	}
	b, _ := os.ReadFile(filepath.Join(ndir, "nginx-error.log"))
	return "", "", "", fmt.Errorf("nginx did not come up on %s: %s", echoAddr, strings.TrimSpace(string(b)))
}

type target struct{ name, url string }

func run(o options) error {
	g, err := procs.NewGroup("shoal-proxybench-")
	if err != nil {
		return err
	}
	defer g.Close()
	dir := g.Dir
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() { // Ctrl-C: kill what was started, remove the temp dir, leave
		<-sigs
		g.Close()
		os.Exit(130)
	}()

	bin := o.shoal
	rev := "given binary"
	if bin == "" {
		bin = filepath.Join(dir, "shoal")
		root, err := procs.RepoRoot()
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "building ./cmd/shoal ...")
		if err := procs.BuildShoal(context.Background(), root, bin); err != nil {
			return err
		}
		rev = "working tree"
		if b, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output(); err == nil {
			rev = "working tree at " + strings.TrimSpace(string(b))
		}
	}

	// Backends: web-1..web-5 on 127.0.0.81..85, web-3 slow; echo on .86.
	var backs []*backend
	for i := 1; i <= 5; i++ {
		svc := o.svc
		if i == 3 {
			svc = time.Duration(float64(o.svc) * o.slow)
		}
		b, err := startBackend(fmt.Sprintf("web-%d", i), fmt.Sprintf("127.0.0.%d", 80+i), svc, o.conc)
		if err != nil {
			return err
		}
		defer b.srv.Close()
		backs = append(backs, b)
	}
	echo, err := startBackend("echo", "127.0.0.86", 0, 0)
	if err != nil {
		return err
	}
	defer echo.srv.Close()

	// Agents.
	fmt.Fprintln(os.Stderr, "starting 8 agents ...")
	proxyPort := func() string {
		addr, _ := procs.FreeAddr("127.0.0.1")
		return addr
	}
	var agents []*agentProc
	var join string
	for i, b := range backs {
		extra := []string{"--tag", "service=web", "--tag", "port=" + strconv.Itoa(b.port)}
		if i == 0 {
			extra = append(extra, "--proxy-listen", proxyPort(), "--proxy-service", "web", "--proxy-strategy", "p2c")
		}
		a, err := startAgent(g, bin, dir, b.name, fmt.Sprintf("127.0.0.%d", 81+i), join, nil, extra...)
		if err != nil {
			return err
		}
		if i == 0 {
			join = a.gossip
			time.Sleep(300 * time.Millisecond) // let the seed bind before others join
		}
		agents = append(agents, a)
	}
	echoAgent, err := startAgent(g, bin, dir, "echo-1", "127.0.0.86", join, nil,
		"--tag", "service=echo", "--tag", "port="+strconv.Itoa(echo.port), "--proxy-listen", proxyPort(), "--proxy-service", "echo")
	if err != nil {
		return err
	}
	gossipOnly, err := startAgent(g, bin, dir, "proxy-gossip-only", "127.0.0.87", join, nil,
		"--proxy-listen", proxyPort(), "--proxy-service", "web", "--proxy-strategy", "p2c", "--proxy-inflight-count=false")
	if err != nil {
		return err
	}
	// The same echo proxy in an agent limited to one OS thread for Go code:
	// it shows how much of the overhead is wake-ups across threads.
	echoOneThread, err := startAgent(g, bin, dir, "proxy-gomaxprocs-1", "127.0.0.88", join, []string{"GOMAXPROCS=1"},
		"--proxy-listen", proxyPort(), "--proxy-service", "echo")
	if err != nil {
		return err
	}
	for _, w := range []struct {
		a       *agentProc
		service string
		n       int
	}{{agents[0], "web", 5}, {gossipOnly, "web", 5}, {echoAgent, "echo", 1}, {echoOneThread, "echo", 1}} {
		if err := waitPick(w.a, w.service, w.n, 30*time.Second); err != nil {
			return err
		}
	}

	var webAddrs []string
	for _, b := range backs {
		webAddrs = append(webAddrs, b.addr)
	}
	nginxWeb, nginxEcho, nginxVersion, nerr := startNginx(g, o.nginx, dir, webAddrs, echo.addr)
	if nerr != nil {
		fmt.Fprintf(os.Stderr, "nginx column skipped: %v\n", nerr)
	}

	targets := []target{}
	if nerr == nil {
		targets = append(targets, target{"nginx round-robin", "http://" + nginxWeb + "/"})
	}
	targets = append(targets,
		target{"shoal p2c (gossip + in-flight)", "http://" + agents[0].proxy + "/"},
		target{"shoal p2c (gossip only)", "http://" + gossipOnly.proxy + "/"})

	hc := newLoadClient(60 * time.Second)
	// Warm up connection pools and the agents' views.
	for _, t := range targets {
		openLoop(hc, t.name, t.url, 200, 400, o.maxOutstanding, o.seed+99)
	}
	loadAtStart := loadavg()
	var phases []*phase
	for _, rate := range o.rates {
		for _, t := range targets {
			time.Sleep(1 * time.Second) // let queues drain between phases
			fmt.Fprintf(os.Stderr, "%s at %.0f req/s, %d requests ...\n", t.name, rate, o.requests)
			p := openLoop(hc, t.name, t.url, rate, o.requests, o.maxOutstanding, o.seed)
			phases = append(phases, p)
			fmt.Fprintf(os.Stderr, "  ok %d, errors %d, p50 %v, p99 %v, slow share %.1f%%\n", p.OK, p.Errors,
				p.Quantile(0.5).Round(10*time.Microsecond), p.Quantile(0.99).Round(10*time.Microsecond), slowShare(p))
		}
	}

	// Overhead: one request at a time, interleaved.
	fmt.Fprintf(os.Stderr, "overhead: %d sequential requests per path ...\n", o.overheadN)
	paths := []target{{"direct", "http://" + echo.addr + "/"}, {"shoal proxy", "http://" + echoAgent.proxy + "/"},
		{"shoal proxy, agent with GOMAXPROCS=1", "http://" + echoOneThread.proxy + "/"}}
	if nerr == nil {
		paths = append(paths, target{"nginx", "http://" + nginxEcho + "/"})
	}
	urls := make([]string, len(paths))
	for i, p := range paths {
		urls[i] = p.url
	}
	ohc := newLoadClient(10 * time.Second)
	if _, err := sequential(ohc, urls, 200); err != nil { // warm-up
		return err
	}
	lats, err := sequential(ohc, urls, o.overheadN)
	if err != nil {
		return err
	}
	loadAtEnd := loadavg()

	rep := report(o, phases, paths, lats, reportInfo{
		rev: rev, nginx: nginxVersion, nginxErr: nerr, loadStart: loadAtStart, loadEnd: loadAtEnd,
	})
	fmt.Print(rep)
	if o.out != "" {
		f, err := os.OpenFile(o.out, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("-out: %w", err)
		}
		defer f.Close()
		if _, err := io.WriteString(f, "\n"+rep); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "appended to %s\n", o.out)
	}
	return nil
}

func slowShare(p *phase) float64 {
	if p.OK == 0 {
		return 0
	}
	return 100 * float64(p.ByBackend["web-3"]) / float64(p.OK)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

type reportInfo struct {
	rev, nginx         string
	nginxErr           error
	loadStart, loadEnd string
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func report(o options, phases []*phase, paths []target, lats [][]time.Duration, ri reportInfo) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	slowSvc := time.Duration(float64(o.svc) * o.slow)
	capacity := 4*float64(o.conc)/o.svc.Seconds() + float64(o.conc)/slowSvc.Seconds()
	w("## Proxy: Shoal's forwarding proxy next to nginx round-robin\n\n")
	w("Generated by `shoal-proxybench` on %s (issue 7, part 3). Rerun from the repository root:\n\n", time.Now().Format("2006-01-02"))
	w("```sh\n(cd tools && go run ./cmd/shoal-proxybench -out ../docs/benchmarks.md)\n```\n\n")
	w("Five shoal agents (processes, profile `local`, shoal %s) on 127.0.0.81–85 each advertise a backend ", ri.rev)
	w("(tags `service=web`, `port=…`). Each backend serves %d requests at once and queues the rest; ", o.conc)
	w("web-1,2,4,5 take %v per request, web-3 takes %v (%.0f×). ", o.svc, slowSvc, o.slow)
	w("Total capacity %.0f req/s, of which web-3 %.0f (%.0f%%). ", capacity, float64(o.conc)/slowSvc.Seconds(), 100*float64(o.conc)/slowSvc.Seconds()/capacity)
	w("Load: open loop, Poisson arrivals, %d requests per target and rate, latency from each request's scheduled send time; ", o.requests)
	w("targets run one after another against the same backends. ")
	if ri.nginxErr == nil {
		w("nginx %s: `worker_processes auto`, upstream round-robin with keepalive over the same five backends. ", ri.nginx)
	} else {
		w("nginx: **skipped** (%v). ", ri.nginxErr)
	}
	w("`shoal p2c (gossip only)` is a second proxy started with `--proxy-inflight-count=false`: it picks by gossiped load alone.\n\n")
	w("Machine: %d CPUs (GOMAXPROCS %d), %s, load average %s at start, %s at end (the machine is shared: read the columns side by side).\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), ri.loadStart, ri.loadEnd)

	w("| target | offered (req/s) | ok | errors | throughput (req/s) | p50 (ms) | p99 (ms) | max (ms) | to slow web-3 |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range phases {
		w("| %s | %.0f (%.0f%%) | %d | %d | %.0f | %s | %s | %s | %.1f%% |\n", p.Target, p.Rate, 100*p.Rate/capacity, p.OK, p.Errors,
			p.Throughput(), ms(p.Quantile(0.5)), ms(p.Quantile(0.99)), ms(p.Quantile(1)), slowShare(p))
	}
	w("\nA share of requests to web-3 of 20%% is round-robin's; %.1f%% would match its share of capacity.\n\n",
		100*float64(o.conc)/slowSvc.Seconds()/capacity)
	var errNotes []string
	for _, p := range phases {
		if p.Errors > 0 {
			errNotes = append(errNotes, fmt.Sprintf("%s at %.0f req/s: %d errors (%d shed), e.g. %q", p.Target, p.Rate, p.Errors, p.Shed, p.ErrSamples))
		}
	}
	if len(errNotes) > 0 {
		w("Errors: %s.\n\n", strings.Join(errNotes, "; "))
	}

	w("Overhead: %d requests one at a time to a zero-delay backend (no concurrency limit), paths interleaved:\n\n", o.overheadN)
	w("| path | p50 (ms) | p90 (ms) | p99 (ms) | p50 overhead vs direct (ms) |\n|---|---:|---:|---:|---:|\n")
	direct := quantile(lats[0], 0.5)
	for i, p := range paths {
		over := "—"
		if i > 0 {
			over = ms(quantile(lats[i], 0.5) - direct)
		}
		w("| %s | %s | %s | %s | %s |\n", p.name, ms(quantile(lats[i], 0.5)), ms(quantile(lats[i], 0.9)), ms(quantile(lats[i], 0.99)), over)
	}
	w("\n")
	return b.String()
}
