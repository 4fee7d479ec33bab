package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
func clockTicks() float64 {
	if b, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}

// readRSS returns VmRSS and VmHWM of pid, in bytes.
func readRSS(pid int) (rss, hwm uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (rss, hwm uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	found := false
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("unexpected %s line %q", k, sc.Text())
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if k == "VmRSS" {
			rss, found = n*1024, true
		} else {
			hwm = n * 1024
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("no VmRSS in status")
	}
	return rss, hwm, nil
}

// readCPUTicks returns utime+stime of pid, in clock ticks.
func readCPUTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(b)
}

func parseStatTicks(b []byte) (uint64, error) {
	// The command name (field 2) may hold spaces and parentheses: the
	// remaining fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat")
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, err
	}
	s, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, err
	}
	return u + s, nil
}

// iptAccounting counts gossip traffic on lo per implementation with
// counting rules in a chain of its own, jumped to from OUTPUT (every packet
// between two local sockets passes OUTPUT exactly once).
type iptAccounting struct {
	chain string
	nets  map[string]string // implementation → first three octets
	added bool
	jump  bool
}

// iptRules returns the counting rules for one implementation. Every rule
// ends in RETURN, so a packet is counted by at most one of them. Only traffic
// to or from the gossip port counts: UDP gossip (always port to port), TCP
// push-pull towards the port and the answers from it. (A TCP dialer's source
// address is chosen by the kernel, often 127.0.0.1, hence dst for one
// direction and src for the other.) The HTTP API and serf's RPC port do not
// match.
func iptRules(impl, net string) [][]string {
	cidr := net + ".0/24"
	p := strconv.Itoa(gossipPort)
	return [][]string{
		{"-p", "udp", "-d", cidr, "--dport", p, "-m", "comment", "--comment", impl + "-udp", "-j", "RETURN"},
		{"-p", "udp", "-s", cidr, "--sport", p, "-m", "comment", "--comment", impl + "-udp-out", "-j", "RETURN"},
		{"-p", "tcp", "-d", cidr, "--dport", p, "-m", "comment", "--comment", impl + "-tcp", "-j", "RETURN"},
		{"-p", "tcp", "-s", cidr, "--sport", p, "-m", "comment", "--comment", impl + "-tcp", "-j", "RETURN"},
	}
}

func iptables(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "iptables", append([]string{"-w", "5"}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}

func setupIptables(ctx context.Context, chain string, nets map[string]string) (*iptAccounting, error) {
	ia := &iptAccounting{chain: chain, nets: nets}
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil, err
	}
	if err := iptables(ctx, "-N", chain); err != nil {
		return nil, err
	}
	ia.added = true
	names := make([]string, 0, len(nets))
	for k := range nets {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, impl := range names {
		for _, r := range iptRules(impl, nets[impl]) {
			if err := iptables(ctx, append([]string{"-A", chain}, r...)...); err != nil {
				ia.teardown()
				return nil, err
			}
		}
	}
	if err := iptables(ctx, "-I", "OUTPUT", "1", "-o", "lo", "-j", chain); err != nil {
		ia.teardown()
		return nil, err
	}
	ia.jump = true
	if _, err := ia.read(ctx); err != nil {
		ia.teardown()
		return nil, err
	}
	return ia, nil
}

// teardown removes the jump and the chain. It uses a fresh context: it runs
// on the way out, also after Ctrl-C.
func (ia *iptAccounting) teardown() error {
	if ia == nil {
		return nil
	}
	ctx := context.Background()
	var errs []string
	if ia.jump {
		if err := iptables(ctx, "-D", "OUTPUT", "-o", "lo", "-j", ia.chain); err != nil {
			errs = append(errs, err.Error())
		} else {
			ia.jump = false
		}
	}
	if ia.added {
		if err := iptables(ctx, "-F", ia.chain); err != nil {
			errs = append(errs, err.Error())
		}
		if err := iptables(ctx, "-X", ia.chain); err != nil {
			errs = append(errs, err.Error())
		} else {
			ia.added = false
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing iptables chain %s: %s", ia.chain, strings.Join(errs, "; "))
	}
	return nil
}

// iptCount is packets and bytes (IP packet lengths, headers included).
type iptCount struct{ Packets, Bytes uint64 }

// read returns the counters per implementation.
func (ia *iptAccounting) read(ctx context.Context) (map[string]iptCount, error) {
	cmd := exec.CommandContext(ctx, "iptables", "-w", "5", "-nvxL", ia.chain)
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("iptables -nvxL %s: %w", ia.chain, err)
	}
	per, err := parseIptables(b)
	if err != nil {
		return nil, err
	}
	out := map[string]iptCount{}
	for impl := range ia.nets {
		for comment, c := range per {
			if strings.HasPrefix(comment, impl+"-") {
				s := out[impl]
				s.Packets += c.Packets
				s.Bytes += c.Bytes
				out[impl] = s
			}
		}
	}
	return out, nil
}

// parseIptables sums the counters of `iptables -nvxL CHAIN` by rule comment.
func parseIptables(b []byte) (map[string]iptCount, error) {
	out := map[string]iptCount{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "/* ")
		j := strings.Index(line, " */")
		if i < 0 || j < i {
			continue
		}
		comment := line[i+3 : j]
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("iptables: unexpected line %q", line)
		}
		p, err1 := strconv.ParseUint(f[0], 10, 64)
		by, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("iptables: unexpected counters in %q", line)
		}
		c := out[comment]
		c.Packets += p
		c.Bytes += by
		out[comment] = c
	}
	return out, nil
}

// stats is the mean and max of a sample.
type stats struct {
	Mean, Max float64
	N         int
}

func summarize(xs []float64) stats {
	if len(xs) == 0 {
		return stats{Mean: math.NaN(), Max: math.NaN()}
	}
	s := stats{Max: math.Inf(-1), N: len(xs)}
	for _, x := range xs {
		s.Mean += x
		s.Max = max(s.Max, x)
	}
	s.Mean /= float64(len(xs))
	return s
}

// percentile is the nearest-rank percentile of sorted xs.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
