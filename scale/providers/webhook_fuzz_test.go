package providers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/scale"
)

// FuzzWebhookResponses has a real webhook provider talk to a receiver that
// answers with the fuzzed status and body, to its current_url GET and to
// its scale POST: nothing panics; Current returns a count from 0 to
// scale.MaxCount only for a 200 that says {"current": N}; Scale succeeds
// only on a 2xx and reports a 409 as fence.ErrStaleTerm; and no error
// message grows with the body (at most maxQuoted bytes of it are quoted).
func FuzzWebhookResponses(f *testing.F) {
	// Seeds from TestWebhook and TestWebhookCurrentURL.
	f.Add(uint16(200), []byte(`{"current": 6}`))
	f.Add(uint16(204), []byte(nil))
	f.Add(uint16(503), []byte("try again\n"))
	f.Add(uint16(409), []byte("term 6 below 7\n"))
	f.Add(uint16(401), []byte("bad signature\n"))
	f.Add(uint16(200), []byte(`{"current": -1}`))
	f.Add(uint16(200), []byte(`{"current": 9223372036854775807}`))
	f.Add(uint16(200), []byte(`{"current": 1e300}`))
	f.Add(uint16(200), []byte(`{"current": null}`))
	f.Add(uint16(200), make([]byte, 70000))
	var mu sync.Mutex
	var code int
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		c, b := code, body
		mu.Unlock()
		w.WriteHeader(c)
		_, _ = w.Write(b)
	}))
	f.Cleanup(srv.Close)
	p, err := scale.NewProvider(scale.ProviderConfig{Name: WebhookName, Resource: srv.URL + "/scale", Node: "n1", StateDir: f.TempDir(),
		Options: map[string]string{"secret": "s", "retries": "0", "current_url": srv.URL + "/count"}})
	if err != nil {
		f.Fatal(err)
	}
	term := uint64(0)
	f.Fuzz(func(t *testing.T, status uint16, b []byte) {
		c := 200 + int(status)%400 // 200 to 599: what a receiver answers
		mu.Lock()
		code, body = c, b
		mu.Unlock()
		ctx := context.Background()
		const maxErr = 4*maxQuoted + 512 // a quoted byte may take 4 (\x00)
		n, err := p.Current(ctx)
		switch {
		case err != nil && len(err.Error()) > maxErr:
			t.Fatalf("Current: an error of %d bytes", len(err.Error()))
		case err == nil && (c != 200 || n < 0 || n > scale.MaxCount):
			t.Fatalf("Current took %d from a %d answer %q", n, c, b)
		}
		term++ // each action under a new term: the provider's own fence admits it
		err = p.Scale(ctx, 3, fence.Lease{Holder: "n1", Priority: 1, Term: term}, scale.Decision{Current: 2, Desired: 3, Action: "up"})
		switch {
		case err != nil && len(err.Error()) > maxErr:
			t.Fatalf("Scale: an error of %d bytes", len(err.Error()))
		case (err == nil) != (c/100 == 2):
			t.Fatalf("Scale on a %d answer: %v", c, err)
		case c == http.StatusConflict && !errors.Is(err, fence.ErrStaleTerm):
			t.Fatalf("Scale on a 409: %v, want ErrStaleTerm", err)
		}
	})
}
