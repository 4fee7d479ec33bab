package agent

// The config file: one JSON object whose keys are the settings' names (the
// flags without "--", settings.go), e.g.
//
//	{"node": "web-1", "retry-join": true, "join": ["10.0.0.2"], "tag": {"role": "db"}}
//
// Files written before the settings table used the Config fields' json
// tags ("node_name", "retry_join", and a "scale" object with "provider",
// "min" ...); those keys still work. A setting given twice, under one name
// or under both, is refused, and so is any key that is not a setting.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// LoadFile fills c from a JSON config file (at most 1 MiB). Errors name the
// file, the line and column, and the key.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: config file: %w", ErrConfig, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(b) > maxConfigFile {
		return fmt.Errorf("%w: config file %s is over %d bytes", ErrConfig, path, maxConfigFile)
	}
	return c.decodeFile(path, b)
}

// maxConfigFile bounds the config file read into memory.
const maxConfigFile = 1 << 20

// decodeFile decodes one JSON object of settings into c. Errors say where
// (line and column); unknown keys, a setting given twice and anything after
// the object are refused.
func (c *Config) decodeFile(path string, b []byte) error {
	// The syntax first, for the whole file: one JSON value, then nothing.
	dec := json.NewDecoder(bytes.NewReader(b))
	var whole json.RawMessage
	if err := dec.Decode(&whole); err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			// Offset is just past the byte that broke the syntax.
			return fmt.Errorf("%w: config file %s:%s: %v", ErrConfig, path, lineCol(b, se.Offset-1), err)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: config file %s is empty: want a JSON object", ErrConfig, path)
		}
		return fmt.Errorf("%w: config file %s:%s: %v", ErrConfig, path, lineCol(b, dec.InputOffset()), err)
	}
	end := dec.InputOffset()
	for end < int64(len(b)) && strings.ContainsRune(" \t\r\n", rune(b[end])) {
		end++
	}
	if end < int64(len(b)) {
		return fmt.Errorf("%w: config file %s:%s: data after the config object", ErrConfig, path, lineCol(b, end))
	}
	fd := &fileDecoder{path: path, b: b, seen: map[string]string{}}
	return fd.object(c, whole, dec.InputOffset()-int64(len(whole)), "")
}

// fileDecoder walks the (syntactically valid) config object.
type fileDecoder struct {
	path string
	b    []byte
	seen map[string]string // setting name -> the key that set it
}

func (fd *fileDecoder) errorf(off int64, format string, args ...any) error {
	return fmt.Errorf("%w: config file %s:%s: %s", ErrConfig, fd.path, lineCol(fd.b, off), fmt.Sprintf(format, args...))
}

// object decodes the JSON object obj, found at offset base of the file.
// prefix is "" at the top and "scale." inside the legacy scale section.
func (fd *fileDecoder) object(c *Config, obj []byte, base int64, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	if err != nil {
		return fd.errorf(base, "%v", err)
	}
	if tok != json.Delim('{') {
		what := "the config"
		if prefix != "" {
			what = fmt.Sprintf("%q (a section of the old layout)", strings.TrimSuffix(prefix, "."))
		}
		return fd.errorf(base, "%s wants a JSON object, got %s", what, jsonKind(obj))
	}
	keys := fileKeys()
	for dec.More() {
		keyAt := base + skipSpace(obj, dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return fd.errorf(keyAt, "%v", err)
		}
		key := prefix + tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fd.errorf(keyAt, "%q: %v", clip(key), err)
		}
		valAt := base + dec.InputOffset() - int64(len(raw))
		if prefix == "" && keys.sections[key] {
			if err := fd.object(c, raw, valAt, key+"."); err != nil {
				return err
			}
			continue
		}
		s, ok := keys.byKey[key]
		if !ok {
			return fd.errorf(keyAt, "unknown key %q%s; the keys are the flags' names (docs/config.md lists them)", clip(key), suggest(key, keys.all))
		}
		if prev, dup := fd.seen[s.Name]; dup {
			if prev == key {
				return fd.errorf(keyAt, "key %q is given twice: keep one", key)
			}
			return fd.errorf(keyAt, "keys %q and %q both set --%s: keep one (%q is the current name)", prev, key, s.Name, s.Name)
		}
		fd.seen[s.Name] = key
		if err := json.Unmarshal(raw, s.Field(c)); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return fd.errorf(valAt+te.Offset, "%q wants %v, got a JSON %s", key, te.Type, te.Value)
			}
			return fd.errorf(valAt+int64(len(raw)), "%q: %v", key, err)
		}
	}
	return nil
}

// keySet is every key a config file may use.
type keySet struct {
	byKey    map[string]Setting // names and legacy keys ("scale.min" inside the scale section)
	sections map[string]bool    // legacy sections: "scale"
	all      []string           // every key, for suggestions
}

var fileKeys = sync.OnceValue(func() keySet {
	ks := keySet{byKey: map[string]Setting{}, sections: map[string]bool{}}
	for _, s := range settings {
		ks.byKey[s.Name] = s
		ks.all = append(ks.all, s.Name)
		if lk := s.LegacyKey(); lk != "" {
			ks.byKey[lk] = s
			ks.all = append(ks.all, lk)
			if sec, _, ok := strings.Cut(lk, "."); ok {
				ks.sections[sec] = true
			}
		}
	}
	return ks
})

// skipSpace returns the offset of the first byte at or after off that is
// neither white space nor a comma.
func skipSpace(b []byte, off int64) int64 {
	for off < int64(len(b)) && strings.ContainsRune(" \t\r\n,", rune(b[off])) {
		off++
	}
	return off
}

// jsonKind names the kind of a JSON value for an error.
func jsonKind(v []byte) string {
	switch v = bytes.TrimSpace(v); {
	case len(v) == 0:
		return "nothing"
	case v[0] == '[':
		return "an array"
	case v[0] == '"':
		return "a string"
	case v[0] == 't' || v[0] == 'f':
		return "a boolean"
	case v[0] == 'n':
		return "null"
	}
	return "a number"
}

// suggest names the known key closest to an unknown one, when one is close:
// the same with '_' for '-' or the other way round, or at most two edits away.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		d := editDistance(key, k)
		if strings.ReplaceAll(key, "_", "-") == strings.ReplaceAll(k, "_", "-") {
			d = 0
		}
		if d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance, given up past 3 and on long keys.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// lineCol turns a byte offset into "line:column" (both from 1).
func lineCol(b []byte, off int64) string {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	if off < 0 {
		off = 0
	}
	line, col := 1, 1
	for _, ch := range b[:off] {
		if ch == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("%d:%d", line, col)
}
