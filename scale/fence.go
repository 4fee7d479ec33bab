package scale

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/shoalmesh/shoal/fence"
)

// FenceState is what a FileFence keeps: the highest lease admitted and the
// last action applied under it, plus a provider's own state (a dry-run
// provider's simulated count, say).
type FenceState struct {
	Lease fence.Lease `json:"lease"`
	Last  *Applied    `json:"last,omitempty"`
	// Count is the provider's idea of the instance count after Last
	// (0 with Known false: unknown).
	Count int  `json:"count"`
	Known bool `json:"known"`
}

// FileFence is a persistent fence.Fence: a JSON file, rewritten
// atomically (write, fsync, rename) and guarded by an flock, so that
// several processes sharing the file (two agents on one host, or agents on
// a shared volume) are fenced against each other. With an empty path it
// keeps the state in memory. It is safe for concurrent use.
type FileFence struct {
	path string
	mu   sync.Mutex
	mem  FenceState // when path is ""
}

// NewFileFence returns a fence kept at path ("" for memory only). The
// directory is created if missing.
func NewFileFence(path string) (*FileFence, error) {
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("scale: fence directory: %w", err)
		}
		f := &FileFence{path: path}
		if _, err := f.Read(); err != nil {
			return nil, err
		}
		return f, nil
	}
	return &FileFence{}, nil
}

// Path returns the file's path ("" in memory).
func (f *FileFence) Path() string { return f.path }

// Read returns the state on file.
func (f *FileFence) Read() (FenceState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path == "" {
		return f.mem, nil
	}
	unlock, err := f.lock()
	if err != nil {
		return FenceState{}, err
	}
	defer unlock()
	return f.readLocked()
}

// Do admits lease against the state (fence.Fence.AdmitLease), persists
// the admitted lease before acting, then runs act with the state, which
// act may change (Last, Count), and persists it again. While act runs, the
// file stays locked: a second process waits, then is fenced by the new
// lease. The returned error wraps fence.ErrStaleTerm when the lease was
// refused, and is act's error otherwise.
func (f *FileFence) Do(lease fence.Lease, act func(st *FenceState) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st FenceState
	if f.path == "" {
		st = f.mem
	} else {
		unlock, err := f.lock()
		if err != nil {
			return err
		}
		defer unlock()
		if st, err = f.readLocked(); err != nil {
			return err
		}
	}
	fc := fence.New(st.Lease)
	if err := fc.AdmitLease(lease); err != nil {
		return err
	}
	st.Lease = fc.Last()
	if err := f.writeLocked(st); err != nil {
		return err
	}
	err := act(&st)
	if werr := f.writeLocked(st); werr != nil && err == nil {
		err = werr
	}
	return err
}

func (f *FileFence) lock() (func(), error) {
	lf, err := os.OpenFile(f.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("scale: fence lock: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		return nil, fmt.Errorf("scale: fence lock %s: %w", lf.Name(), err)
	}
	return func() {
		_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
		lf.Close()
	}, nil
}

func (f *FileFence) readLocked() (FenceState, error) {
	var st FenceState
	fl, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("scale: fence: %w", err)
	}
	defer fl.Close()
	b, err := io.ReadAll(io.LimitReader(fl, maxFenceFile+1))
	if err != nil {
		return st, fmt.Errorf("scale: fence: %w", err)
	}
	if st, err = DecodeFenceState(b); err != nil {
		return st, fmt.Errorf("scale: fence file %s is corrupt (%v): restore it, or remove it only if no deposed coordinator can still act", f.path, err)
	}
	return st, nil
}

// maxFenceFile bounds the fence file read into memory: its JSON holds one
// lease and one action.
const maxFenceFile = 64 << 10

// DecodeFenceState decodes a fence file's content: at most 64 KiB of JSON,
// a count not below 0.
func DecodeFenceState(b []byte) (FenceState, error) {
	var st FenceState
	if len(b) > maxFenceFile {
		return FenceState{}, fmt.Errorf("over %d bytes", maxFenceFile)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return FenceState{}, err
	}
	if st.Count < 0 {
		return FenceState{}, fmt.Errorf("count %d, want 0 or more", st.Count)
	}
	return st, nil
}

func (f *FileFence) writeLocked(st FenceState) error {
	if f.path == "" {
		f.mem = st
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := f.path + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("scale: fence: %w", err)
	}
	if _, err := out.Write(b); err != nil {
		out.Close()
		return fmt.Errorf("scale: fence: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("scale: fence: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("scale: fence: %w", err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("scale: fence: %w", err)
	}
	return nil
}
