package metrics

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFiles writes files (path relative to dir → contents) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCgroupV2Path(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"pure v2", "0::/kubepods.slice/pod1/ctr\n", "/kubepods.slice/pod1/ctr", true},
		{"namespaced root", "0::/\n", "/", true},
		{"hybrid", "9:name=systemd:/\n4:memory:/x\n1:cpu:/\n0::/user.slice\n", "/user.slice", true},
		{"v1 only", "4:memory:/x\n1:cpu,cpuacct:/y\n", "", false},
		{"no trailing newline", "0::/a", "/a", true},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		got, ok := cgroupV2Path([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: cgroupV2Path(%q) = %q, %v; want %q, %v", tt.name, tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		in      string
		cores   float64
		limited bool
		errHas  string
	}{
		{"max 100000\n", 0, false, ""},
		{"max\n", 0, false, ""},
		{"50000 100000\n", 0.5, true, ""},
		{"150000 100000", 1.5, true, ""},
		{"200000 50000", 4, true, ""},
		{"50000", 0.5, true, ""},
		{"abc 100000", 0, false, `"abc"`},
		{"50000 0", 0, false, `period "0"`},
		{"50000 x", 0, false, `period "x"`},
		{"-1 100000", 0, false, `"-1"`},
		{"", 0, false, `holds ""`},
		{"1 2 3", 0, false, `"1 2 3"`},
	}
	for _, tt := range tests {
		cores, limited, err := parseCPUMax([]byte(tt.in))
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("parseCPUMax(%q) error = %v, want one containing %s", tt.in, err, tt.errHas)
			}
			continue
		}
		if err != nil || cores != tt.cores || limited != tt.limited {
			t.Errorf("parseCPUMax(%q) = %g, %v, %v; want %g, %v, nil", tt.in, cores, limited, err, tt.cores, tt.limited)
		}
	}
}

func TestParseMemoryMax(t *testing.T) {
	tests := []struct {
		in      string
		limit   uint64
		limited bool
		wantErr bool
	}{
		{"max\n", 0, false, false},
		{"536870912\n", 536870912, true, false},
		{"9223372036854775807", 0, false, false},
		{"0", 0, false, false},
		{"-1", 0, false, true},
		{"lots", 0, false, true},
	}
	for _, tt := range tests {
		limit, limited, err := parseMemoryMax([]byte(tt.in))
		if (err != nil) != tt.wantErr || limit != tt.limit || limited != tt.limited {
			t.Errorf("parseMemoryMax(%q) = %d, %v, %v; want %d, %v, err=%v", tt.in, limit, limited, err, tt.limit, tt.limited, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), tt.in) {
			t.Errorf("parseMemoryMax(%q) error %q does not quote the value", tt.in, err)
		}
	}
}

func TestFlatKeyed(t *testing.T) {
	data := []byte("usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 0\n")
	if v, ok, err := flatKeyed(data, "usage_usec"); v != 123456 || !ok || err != nil {
		t.Errorf("usage_usec = %d, %v, %v", v, ok, err)
	}
	if _, ok, err := flatKeyed(data, "usage"); ok || err != nil {
		t.Errorf("prefix of a key matched: ok=%v err=%v", ok, err)
	}
	if _, _, err := flatKeyed([]byte("inactive_file lots\n"), "inactive_file"); err == nil || !strings.Contains(err.Error(), "lots") {
		t.Errorf("bad value error = %v, want one quoting the value", err)
	}
}

// kubeTree is a cgroup v2 tree as a Kubernetes node has it: the CPU quota
// that binds is the pod's, the memory limit that binds is the container's
// (working set 200 MiB of 512 MiB, against the pod's 300 MiB of 1 GiB).
func kubeTree() map[string]string {
	pod := "kubepods.slice/kubepods-burstable.slice/pod1"
	ctr := pod + "/ctr1"
	return map[string]string{
		"cgroup.controllers":                "cpuset cpu io memory pids\n",
		"cpu.stat":                          "usage_usec 999999999\n",
		"kubepods.slice/cgroup.controllers": "cpu memory\n",
		"kubepods.slice/cpu.max":            "max 100000\n",
		"kubepods.slice/memory.max":         "max\n",
		"kubepods.slice/kubepods-burstable.slice/cgroup.controllers": "cpu memory\n",
		pod + "/cgroup.controllers":                                  "cpu memory\n",
		pod + "/cpu.max":                                             "150000 100000\n",
		pod + "/memory.max":                                          "1073741824\n",
		pod + "/memory.current":                                      "419430400\n",
		pod + "/memory.stat":                                         "inactive_file 104857600\n",
		pod + "/cpu.stat":                                            "usage_usec 4000000\n",
		ctr + "/cgroup.controllers":                                  "cpu memory\n",
		ctr + "/cpu.max":                                             "200000 100000\n",
		ctr + "/cpu.stat":                                            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
		ctr + "/memory.max":                                          "536870912\n",
		ctr + "/memory.current":                                      "314572800\n",
		ctr + "/memory.stat":                                         "anon 100\nfile 200\nactive_file 50\ninactive_file 104857600\n",
	}
}

func TestReadCgroupV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, kubeTree())
	got, err := readCgroupV2(root, "/kubepods.slice/kubepods-burstable.slice/pod1/ctr1")
	if err != nil {
		t.Fatal(err)
	}
	want := CgroupCounters{
		CPUQuotaCores:   1.5, // the pod's quota is tighter than the container's
		CPUUsage:        4,   // and so the pod's usage is the one to compare with it
		HasCPUUsage:     true,
		MemMax:          536870912, // the container's limit is tighter than the pod's
		MemCurrent:      314572800,
		MemInactiveFile: 104857600,
	}
	if got == nil || *got != want {
		t.Fatalf("readCgroupV2() = %+v, want %+v", got, want)
	}
	if ws := got.WorkingSet(); ws != 209715200 {
		t.Errorf("WorkingSet() = %d, want 209715200", ws)
	}
}

func TestReadCgroupV2AncestorMemoryBinds(t *testing.T) {
	root := t.TempDir()
	tree := kubeTree()
	pod := "kubepods.slice/kubepods-burstable.slice/pod1"
	// Another container in the pod has grown: the pod is at 90% of its limit
	// while this container is at 39% of its own.
	tree[pod+"/memory.current"] = "1071644672\n" // 1022 MiB
	tree[pod+"/memory.stat"] = "inactive_file 104857600\n"
	writeFiles(t, root, tree)
	got, err := readCgroupV2(root, "/"+pod+"/ctr1")
	if err != nil {
		t.Fatal(err)
	}
	if got.MemMax != 1073741824 || got.MemCurrent != 1071644672 || got.MemInactiveFile != 104857600 {
		t.Fatalf("readCgroupV2() = %+v, want the pod's memory figures", got)
	}
}

func TestReadCgroupV2Unlimited(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers":     "cpu memory\n",
		"svc/cgroup.controllers": "cpu memory\n",
		"svc/cpu.max":            "max 100000\n",
		"svc/memory.max":         "max\n",
		"svc/memory.current":     "1000\n",
		"svc/cpu.stat":           "usage_usec 10\n",
	})
	got, err := readCgroupV2(root, "/svc")
	if err != nil {
		t.Fatal(err)
	}
	want := CgroupCounters{CPUUsage: 10e-6, HasCPUUsage: true, MemCurrent: 1000}
	if got == nil || *got != want {
		t.Fatalf("readCgroupV2() = %+v, want %+v", got, want)
	}
}

func TestReadCgroupV2Namespaced(t *testing.T) {
	// In a container with its own cgroup namespace the mount root is the
	// container's cgroup and /proc/self/cgroup says "0::/".
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers": "cpu memory\n",
		"cpu.max":            "50000 100000\n",
		"memory.max":         "268435456\n",
		"memory.current":     "1000\n",
		"cpu.stat":           "usage_usec 1000000\n",
	})
	for _, rel := range []string{"/", "/does/not/exist", "/../../../../etc"} {
		got, err := readCgroupV2(root, rel)
		if err != nil {
			t.Fatalf("rel %q: %v", rel, err)
		}
		if got == nil || got.CPUQuotaCores != 0.5 || got.MemMax != 268435456 || got.CPUUsage != 1 {
			t.Errorf("rel %q: readCgroupV2() = %+v, want the root's figures", rel, got)
		}
	}
}

func TestReadCgroupV2Absent(t *testing.T) {
	// A cgroup v1 (or hybrid) mount: no cgroup.controllers at the root.
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"memory/memory.limit_in_bytes": "536870912\n",
		"cpu/cpu.cfs_quota_us":         "50000\n",
	})
	got, err := readCgroupV2(root, "/")
	if got != nil || err != nil {
		t.Fatalf("readCgroupV2() on a v1 mount = %+v, %v; want nil, nil", got, err)
	}
	got, err = readCgroupV2(filepath.Join(root, "missing"), "/x")
	if got != nil || err != nil {
		t.Fatalf("readCgroupV2() on a missing root = %+v, %v; want nil, nil", got, err)
	}
}

func TestReadCgroupV2Malformed(t *testing.T) {
	tests := []struct{ file, data, want string }{
		{"cpu.max", "lots 100000\n", `"lots"`},
		{"memory.max", "1G\n", `"1G"`},
		{"memory.current", "n/a\n", `"n/a"`},
		{"cpu.stat", "usage_usec -3\n", `"-3"`},
		{"memory.stat", "inactive_file x\n", `"x"`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, map[string]string{"cgroup.controllers": "", tt.file: tt.data})
			_, err := readCgroupV2(root, "/")
			if !errors.Is(err, ErrCgroupFormat) {
				t.Fatalf("error = %v, want one wrapping ErrCgroupFormat", err)
			}
			if !strings.Contains(err.Error(), filepath.Join(root, tt.file)) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not name the file %s and the value %s", err, tt.file, tt.want)
			}
		})
	}
}

// TestSystemReaderCgroup runs SystemReader end to end with a fake cgroup
// tree and a fake /proc/self/cgroup.
func TestSystemReaderCgroup(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, kubeTree())
	self := filepath.Join(t.TempDir(), "cgroup")
	writeFiles(t, filepath.Dir(self), map[string]string{
		"cgroup": "0::/kubepods.slice/kubepods-burstable.slice/pod1/ctr1\n",
	})
	r := &SystemReader{CgroupRoot: root, ProcSelfCgroup: self}
	c, err := r.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Cgroup == nil || c.Cgroup.CPUQuotaCores != 1.5 || c.Cgroup.MemMax != 536870912 {
		t.Fatalf("Cgroup = %+v, want the container's figures", c.Cgroup)
	}
	l := Rates(c, c, 1)
	if want := min(1.5, float64(c.LogicalCores)); l.Cores != want {
		t.Errorf("Cores = %g, want %g", l.Cores, want)
	}
	if want := 100 * 209715200.0 / min(536870912, float64(c.MemTotal)); l.MemPercent != want {
		t.Errorf("MemPercent = %g, want %g", l.MemPercent, want)
	}

	r = &SystemReader{CgroupRoot: root, ProcSelfCgroup: self, DisableCgroup: true}
	if c, err := r.Read(context.Background()); err != nil || c.Cgroup != nil {
		t.Fatalf("DisableCgroup: Cgroup = %+v, err %v; want nil, nil", c.Cgroup, err)
	}

	writeFiles(t, root, map[string]string{"kubepods.slice/kubepods-burstable.slice/pod1/ctr1/cpu.max": "half 100000\n"})
	r = &SystemReader{CgroupRoot: root, ProcSelfCgroup: self}
	if _, err := r.Read(context.Background()); !errors.Is(err, ErrCgroupFormat) {
		t.Fatalf("malformed cpu.max: err = %v, want ErrCgroupFormat", err)
	}
}

func TestMemoryLimitIsTheSmallestOnThePath(t *testing.T) {
	root := t.TempDir()
	tree := kubeTree()
	pod := "kubepods.slice/kubepods-burstable.slice/pod1"
	writeFiles(t, root, tree)
	self := filepath.Join(t.TempDir(), "cgroup")
	write := func(s string) {
		if err := os.WriteFile(self, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("0::/" + pod + "/ctr1\n")
	if got, ok := memoryLimit(root, self); !ok || got != 536870912 {
		t.Errorf("container under a pod: memoryLimit() = %d, %v; want the container's 536870912", got, ok)
	}
	write("0::/" + pod + "\n")
	if got, ok := memoryLimit(root, self); !ok || got != 1073741824 {
		t.Errorf("the pod itself: memoryLimit() = %d, %v; want the pod's 1073741824", got, ok)
	}
	write("0::/kubepods.slice\n")
	if got, ok := memoryLimit(root, self); ok {
		t.Errorf("no limit on the path: memoryLimit() = %d, true; want none", got)
	}
	write("1:name=systemd:/x\n")
	if got, ok := memoryLimit(root, self); ok {
		t.Errorf("cgroup v1 only: memoryLimit() = %d, true; want none", got)
	}
}
