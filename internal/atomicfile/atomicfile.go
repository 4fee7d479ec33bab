// Package atomicfile writes small state files (the election's hard state,
// the gossip version floor) so that a crash leaves the old content or the
// new, never a mix.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes b to path (mode 0600) through a synced temporary file that is
// renamed over it, then syncs the directory so the rename itself survives.
func Write(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
