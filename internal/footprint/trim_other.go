//go:build !linux

package footprint

import "errors"

const trimSupported = false

// TrimExecutable is a Linux feature; elsewhere it does nothing.
func TrimExecutable() (before, after int64, err error) {
	return 0, 0, errors.New("footprint: trimming is supported on Linux only")
}
