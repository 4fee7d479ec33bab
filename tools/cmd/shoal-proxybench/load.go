package main

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// backend is a small HTTP service on one loopback address: each request
// waits for one of conc slots (so a slow backend really queues), holds it
// for the service time, and answers with the backend's name in X-Backend.
type backend struct {
	name string
	addr string // ip:port
	port int
	svc  time.Duration
	sem  chan struct{} // nil: no concurrency limit
	srv  *http.Server
	hits atomic.Int64
}

func startBackend(name, ip string, svc time.Duration, conc int) (*backend, error) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return nil, err
	}
	b := &backend{name: name, addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port, svc: svc}
	if conc > 0 {
		b.sem = make(chan struct{}, conc)
	}
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(ln)
	return b, nil
}

var okBody = []byte("ok\n")

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.sem != nil {
		select {
		case b.sem <- struct{}{}:
		case <-r.Context().Done():
			return
		}
	}
	if b.svc > 0 {
		time.Sleep(b.svc)
	}
	if b.sem != nil {
		<-b.sem
	}
	b.hits.Add(1)
	w.Header().Set("X-Backend", b.name)
	w.Header().Set("Content-Length", "3")
	w.Write(okBody)
}

// phase is the outcome of one bounded load run against one target.
type phase struct {
	Target     string
	Rate       float64 // offered, requests per second
	Requests   int     // sent (scheduled)
	OK, Errors int     // 2xx; everything else (non-2xx, transport error, shed)
	Shed       int     // not sent: too many outstanding
	Elapsed    time.Duration
	Lat        []time.Duration // of OK requests, from the scheduled send time
	ByBackend  map[string]int
	ErrSamples []string
}

func (p *phase) Throughput() float64 { return float64(p.OK) / p.Elapsed.Seconds() }

func (p *phase) Quantile(q float64) time.Duration { return quantile(p.Lat, q) }

func quantile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}

func newLoadClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
}

// openLoop sends n GETs to url with Poisson arrivals at rate per second (an
// open loop: a slow answer does not slow the sender, so queues show up in
// latency, measured from each request's scheduled send time). At most
// maxOutstanding requests are in flight; beyond that a request is shed and
// counted as an error.
func openLoop(hc *http.Client, target, url string, rate float64, n, maxOutstanding int, seed uint64) *phase {
	r := rand.New(rand.NewPCG(seed, 7))
	p := &phase{Target: target, Rate: rate, Requests: n, ByBackend: map[string]int{}}
	type res struct {
		lat     time.Duration
		ok      bool
		backend string
		err     string
	}
	results := make([]res, n)
	var wg sync.WaitGroup
	var outstanding atomic.Int64
	start := time.Now()
	next := start
	for i := range n {
		next = next.Add(time.Duration(r.ExpFloat64() / rate * float64(time.Second)))
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		if outstanding.Load() >= int64(maxOutstanding) {
			results[i] = res{err: "shed: too many outstanding"}
			continue
		}
		outstanding.Add(1)
		wg.Add(1)
		go func(i int, sched time.Time) {
			defer wg.Done()
			defer outstanding.Add(-1)
			resp, err := hc.Get(url)
			if err != nil {
				results[i] = res{err: err.Error()}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat := time.Since(sched)
			if resp.StatusCode/100 != 2 {
				results[i] = res{err: resp.Status}
				return
			}
			results[i] = res{lat: lat, ok: true, backend: resp.Header.Get("X-Backend")}
		}(i, next)
	}
	wg.Wait()
	p.Elapsed = time.Since(start)
	for _, x := range results {
		if x.ok {
			p.OK++
			p.Lat = append(p.Lat, x.lat)
			p.ByBackend[x.backend]++
			continue
		}
		p.Errors++
		if x.err == "shed: too many outstanding" {
			p.Shed++
		}
		if len(p.ErrSamples) < 3 {
			p.ErrSamples = append(p.ErrSamples, x.err)
		}
	}
	return p
}

// sequential sends one request at a time to each url in turn, n rounds, and
// returns each url's latencies. Interleaving keeps machine noise common to
// all paths.
func sequential(hc *http.Client, urls []string, n int) ([][]time.Duration, error) {
	out := make([][]time.Duration, len(urls))
	for range n {
		for j, u := range urls {
			t := time.Now()
			resp, err := hc.Get(u)
			if err != nil {
				return nil, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return nil, &statusError{u, resp.Status}
			}
			out[j] = append(out[j], time.Since(t))
		}
	}
	return out, nil
}

type statusError struct{ url, status string }

func (e *statusError) Error() string { return e.url + ": " + e.status }
