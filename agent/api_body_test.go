package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoalmesh/shoal/client"
)

// bodyEndpoints are the endpoints that decode a JSON body, with the type
// each decodes. (The leader's elect and act, and leave, read no body.)
var bodyEndpoints = []struct {
	path string
	into func() any
}{
	{"/v1/join", func() any { return new(client.JoinRequest) }},
	{"/v1/force-leave", func() any { return new(client.ForceLeaveRequest) }},
	{"/v1/keys/install", func() any { return new(client.KeyRequest) }},
	{"/v1/keys/use", func() any { return new(client.KeyRequest) }},
	{"/v1/keys/remove", func() any { return new(client.KeyRequest) }},
	{"/v1/debug/load", func() any { return new(client.DebugLoad) }},
}

const bodyTestKey = "Y2hhbmdlbWVjaGFuZ2VtZWNoYW5nZW1lY2hhbmdlbWU="

// apiBodyCases are the table tests, and the fuzz test's seeds.
var apiBodyCases = []struct {
	name string
	ep   int // index in bodyEndpoints
	body string
	code int
	want string // in the answer
}{
	{"join", 0, `{"addrs": ["127.0.0.1:1"]}`, 200, `"joined": 1`},
	{"join no addresses", 0, `{"addrs": []}`, 400, "no addresses"},
	{"join empty body", 0, ``, 400, "body is empty"},
	{"join not JSON", 0, `addrs=127.0.0.1`, 400, "invalid character"},
	{"join unknown field", 0, `{"addrs": ["127.0.0.1:1"], "admin": true}`, 400, `unknown field \"admin\"`},
	{"join wrong type", 0, `{"addrs": "127.0.0.1:1"}`, 400, "cannot unmarshal"},
	{"join data after", 0, `{"addrs": ["127.0.0.1:1"]} {"addrs": ["10.0.0.1"]}`, 400, "data after the JSON object"},
	{"join space in address", 0, `{"addrs": ["127.0.0.1 :1"]}`, 400, `address \"127.0.0.1 :1\"`},
	{"join too many", 0, `{"addrs": [` + strings.Repeat(`"a",`, maxJoinAddrs) + `"a"]}`, 400, "at most 256"},
	{"join too big", 0, `{"addrs": ["` + strings.Repeat("a", maxAPIBody) + `"]}`, 413, "limit of 65536 bytes"},
	{"force-leave unknown", 1, `{"node": "nobody"}`, 404, `no member named \"nobody\"`},
	{"force-leave truncated", 1, `{"node": "nob`, 400, "unexpected EOF"},
	{"force-leave array", 1, `["nobody"]`, 400, "cannot unmarshal array"},
	{"keys install bad key", 2, `{"key": "c2hvcnQ="}`, 400, "5 bytes"},
	{"keys install", 2, `{"key": "` + bodyTestKey + `"}`, 200, `"num_nodes": 1`},
	{"keys use null", 3, `null`, 400, "key"},
	{"keys remove number", 4, `{"key": 7}`, 400, "cannot unmarshal number"},
	{"debug load", 5, `{"cpu_percent": 40, "mem_percent": 30}`, 200, "set"},
	{"debug load out of range", 5, `{"cpu_percent": 400}`, 400, "cpu_percent 400"},
	{"debug load clear", 5, `{"clear": true}`, 200, "cleared"},
	{"debug load nested", 5, `{"cpu_percent": {"a": [1, 2, {"b": null}]}}`, 400, "cannot unmarshal object"},
}

// bodyAgent is an agent with every body endpoint on: a gossip key (the
// keyring endpoints), --enable-debug (the load hook) and a join that goes
// nowhere (fuzzed addresses must not reach a resolver or the network).
func bodyAgent(t testing.TB) (*Agent, http.Handler) {
	a := startAPIAgent(t, func(c *Config) {
		c.NodeName, c.APIToken, c.EncryptKey, c.EnableDebug = "body-1", "tok", bodyTestKey, true
	}, withJoinHook(func(addrs []string) (int, error) {
		if len(addrs) == 1 && addrs[0] == "127.0.0.1:1" {
			return 1, nil
		}
		return 0, errors.New("test: join goes nowhere")
	}))
	return a, a.http.Handler
}

func serveBody(h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.RemoteAddr = "127.0.0.1:50000"
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAPIBodies(t *testing.T) {
	_, h := bodyAgent(t)
	for _, c := range apiBodyCases {
		t.Run(c.name, func(t *testing.T) {
			rec := serveBody(h, bodyEndpoints[c.ep].path, []byte(c.body))
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
				t.Fatalf("POST %s %.80q: %d %s, want %d with %q", bodyEndpoints[c.ep].path, c.body, rec.Code, rec.Body, c.code, c.want)
			}
		})
	}
}

// strictDecode is the oracle: whether body is one JSON value of v's type,
// no unknown fields, nothing after it.
func strictDecode(body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(v) != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

// FuzzAPIBodies sends any body to every endpoint that decodes one: no
// panic, an answer in JSON, and a 4xx for anything that is not a JSON
// value of the endpoint's type (413 past the limit).
func FuzzAPIBodies(f *testing.F) {
	for _, c := range apiBodyCases {
		if len(c.body) <= 4096 {
			f.Add(uint8(c.ep), []byte(c.body))
		}
	}
	_, h := bodyAgent(f)
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		e := bodyEndpoints[int(ep)%len(bodyEndpoints)]
		rec := serveBody(h, e.path, body)
		if rec.Code >= 400 {
			var eb client.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" {
				t.Fatalf("POST %s %q: %d with no JSON error: %q", e.path, body, rec.Code, rec.Body)
			}
		}
		switch {
		case len(body) > maxAPIBody:
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("POST %s with %d bytes: %d, want 413", e.path, len(body), rec.Code)
			}
		case !strictDecode(body, e.into()):
			if rec.Code < 400 || rec.Code >= 500 {
				t.Fatalf("POST %s %q (not a %T): %d %s, want 4xx", e.path, body, e.into(), rec.Code, rec.Body)
			}
		}
	})
}
