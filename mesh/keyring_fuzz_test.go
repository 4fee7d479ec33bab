package mesh

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseKeyring feeds the keyring file's decoder (keyring.json in the
// data directory, or --keyring-file) arbitrary contents: it never panics,
// errors name the file, and what it takes is one or more keys of 16, 24
// or 32 bytes that write back to a file that reads back the same.
func FuzzParseKeyring(f *testing.F) {
	k16, k32 := base64.StdEncoding.EncodeToString(make([]byte, 16)), base64.StdEncoding.EncodeToString(make([]byte, 32))
	f.Add([]byte(`["` + k32 + `","` + k16 + `"]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`["aGVsbG8="]`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`["` + strings.Repeat("A", 100) + `"]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ks, err := ParseKeyring("keyring.json", b)
		if err != nil {
			if !strings.Contains(err.Error(), "keyring.json") && !strings.Contains(err.Error(), "gossip key") {
				t.Fatalf("error %q names neither the file nor the key", err)
			}
			return
		}
		if len(ks) == 0 || len(b) > MaxKeyringFile {
			t.Fatalf("took %d keys from %d bytes", len(ks), len(b))
		}
		var enc []string
		for _, k := range ks {
			if l := len(k); l != 16 && l != 24 && l != 32 {
				t.Fatalf("a key of %d bytes", l)
			}
			enc = append(enc, base64.StdEncoding.EncodeToString(k))
		}
		out, _ := json.Marshal(enc)
		again, err := ParseKeyring("keyring.json", out)
		if err != nil || len(again) != len(ks) {
			t.Fatalf("written back as %s: %d keys, %v", out, len(again), err)
		}
		for i := range ks {
			if string(again[i]) != string(ks[i]) {
				t.Fatalf("key %d changed", i)
			}
		}
	})
}
