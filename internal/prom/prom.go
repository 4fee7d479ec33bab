// Package prom is the part of the Prometheus client the agent uses, with
// the client's names (import it as prometheus): descriptors, constant
// metrics, collectors, a histogram, a registry, an HTTP handler for the
// text exposition format (version 0.0.4), and collectors of the Go runtime
// and process figures under the names and help texts of client_golang's
// default Go and process collectors.
//
// Why not client_golang: it brings the protobuf runtime and the exposition
// formats nobody scrapes the agent in, 2.75 MiB of binary and their package
// initialisers in every agent process, most of the small build's margin
// (docs/benchmarks.md, footprint). The text format is all Prometheus needs
// (promtool check metrics, scripts/promtool-check, reads it).
package prom

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Desc describes a metric family: its name, help, and variable labels.
type Desc struct {
	name, help string
	labels     []string
	order      []int // label indexes sorted by name: the output order
	err        error
}

// NewDesc is prometheus.NewDesc. Constant labels are not supported (the
// agent has none): a non-empty map makes the descriptor invalid, and
// registering a collector that describes it panics.
func NewDesc(name, help string, variableLabels []string, constLabels map[string]string) *Desc {
	d := &Desc{name: name, help: help, labels: variableLabels}
	for i := range variableLabels {
		d.order = append(d.order, i)
	}
	sort.SliceStable(d.order, func(i, j int) bool { return variableLabels[d.order[i]] < variableLabels[d.order[j]] })
	if !validName(name) {
		d.err = fmt.Errorf("prom: invalid metric name %q", name)
	}
	for _, l := range variableLabels {
		if !validName(l) || strings.HasPrefix(l, "__") {
			d.err = fmt.Errorf("prom: metric %s: invalid label name %q", name, l)
		}
	}
	if len(constLabels) > 0 {
		d.err = fmt.Errorf("prom: metric %s: constant labels are not supported", name)
	}
	return d
}

func (d *Desc) String() string { return "Desc{" + d.name + "}" }

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// ValueType is the type of a constant metric.
type ValueType int

// Value types.
const (
	_ ValueType = iota
	CounterValue
	GaugeValue
	UntypedValue
)

func (t ValueType) String() string {
	switch t {
	case CounterValue:
		return "counter"
	case GaugeValue:
		return "gauge"
	}
	return "untyped"
}

// Metric is one sample (or, for a histogram or summary, one set of them)
// of a family.
type Metric interface {
	Desc() *Desc
	// write appends the metric's lines (without HELP and TYPE).
	write(b *bytes.Buffer)
	typ() string
	labelValues() []string
}

type constMetric struct {
	desc   *Desc
	t      ValueType
	v      float64
	values []string
}

func (m *constMetric) Desc() *Desc { return m.desc }
func (m *constMetric) typ() string { return m.t.String() }
func (m *constMetric) write(b *bytes.Buffer) {
	writeSample(b, m.desc.name, "", m.desc.sorted(m.desc.labels), m.desc.sorted(m.values), "", "", m.v)
}

// labelValues are the values in the order of the sorted label names (the
// order the family's metrics are sorted in).
func (m *constMetric) labelValues() []string { return m.desc.sorted(m.values) }

func (d *Desc) sorted(xs []string) []string {
	out := make([]string, len(d.order))
	for i, j := range d.order {
		out[i] = xs[j]
	}
	return out
}

// NewConstMetric is prometheus.NewConstMetric.
func NewConstMetric(d *Desc, t ValueType, v float64, labelValues ...string) (Metric, error) {
	if d.err != nil {
		return nil, d.err
	}
	if len(labelValues) != len(d.labels) {
		return nil, fmt.Errorf("prom: metric %s: %d label values for %d labels %v", d.name, len(labelValues), len(d.labels), d.labels)
	}
	return &constMetric{desc: d, t: t, v: v, values: labelValues}, nil
}

// MustNewConstMetric is NewConstMetric that panics on error.
func MustNewConstMetric(d *Desc, t ValueType, v float64, labelValues ...string) Metric {
	m, err := NewConstMetric(d, t, v, labelValues...)
	if err != nil {
		panic(err)
	}
	return m
}

// Collector is prometheus.Collector.
type Collector interface {
	Describe(chan<- *Desc)
	Collect(chan<- Metric)
}

// HistogramOpts are the options of NewHistogram the agent uses.
type HistogramOpts struct {
	Name, Help string
	Buckets    []float64
}

// DefBuckets are client_golang's default buckets.
var DefBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Histogram counts observations in buckets.
type Histogram interface {
	Metric
	Collector
	Observe(float64)
}

type histogram struct {
	desc    *Desc
	upper   []float64
	mu      sync.Mutex
	counts  []uint64 // per bucket, not cumulative
	sum     float64
	samples uint64
}

// NewHistogram is prometheus.NewHistogram (no labels).
func NewHistogram(o HistogramOpts) Histogram {
	b := o.Buckets
	if b == nil {
		b = DefBuckets
	}
	b = slices.Clone(b)
	if !slices.IsSorted(b) {
		panic(fmt.Sprintf("prom: histogram %s: buckets %v not in increasing order", o.Name, b))
	}
	if len(b) > 0 && math.IsInf(b[len(b)-1], 1) {
		b = b[:len(b)-1]
	}
	return &histogram{desc: NewDesc(o.Name, o.Help, nil, nil), upper: b, counts: make([]uint64, len(b)+1)}
}

func (h *histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v) // first bucket with upper >= v
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.samples++
	h.mu.Unlock()
}

func (h *histogram) Desc() *Desc              { return h.desc }
func (h *histogram) typ() string              { return "histogram" }
func (h *histogram) labelValues() []string    { return nil }
func (h *histogram) Describe(ch chan<- *Desc) { ch <- h.desc }
func (h *histogram) Collect(ch chan<- Metric) { ch <- h }
func (h *histogram) write(b *bytes.Buffer) {
	h.mu.Lock()
	counts, sum, n := slices.Clone(h.counts), h.sum, h.samples
	h.mu.Unlock()
	var cum uint64
	for i, u := range h.upper {
		cum += counts[i]
		writeSample(b, h.desc.name, "_bucket", nil, nil, "le", formatFloat(u), float64(cum))
	}
	writeSample(b, h.desc.name, "_bucket", nil, nil, "le", "+Inf", float64(n))
	writeSample(b, h.desc.name, "_sum", nil, nil, "", "", sum)
	writeSample(b, h.desc.name, "_count", nil, nil, "", "", float64(n))
}

// summary is a constant summary (quantile → value), as the Go collector's
// go_gc_duration_seconds.
type summary struct {
	desc      *Desc
	quantiles [][2]float64
	sum       float64
	count     uint64
}

func (s *summary) Desc() *Desc           { return s.desc }
func (s *summary) typ() string           { return "summary" }
func (s *summary) labelValues() []string { return nil }
func (s *summary) write(b *bytes.Buffer) {
	for _, q := range s.quantiles {
		writeSample(b, s.desc.name, "", nil, nil, "quantile", formatFloat(q[0]), q[1])
	}
	writeSample(b, s.desc.name, "_sum", nil, nil, "", "", s.sum)
	writeSample(b, s.desc.name, "_count", nil, nil, "", "", float64(s.count))
}

// Registry holds collectors and writes what they collect.
type Registry struct {
	mu    sync.Mutex
	cs    []Collector
	names map[string]bool
}

// NewRegistry is prometheus.NewRegistry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

// Register adds c; it fails when c describes an invalid descriptor or a
// family another collector already describes.
func (r *Registry) Register(c Collector) error {
	ch := make(chan *Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	var descs []*Desc
	var err error
	for d := range ch {
		descs = append(descs, d)
		if d.err != nil && err == nil {
			err = d.err
		}
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range descs {
		if r.names[d.name] {
			return fmt.Errorf("prom: metric %s is described by two collectors", d.name)
		}
	}
	for _, d := range descs {
		r.names[d.name] = true
	}
	r.cs = append(r.cs, c)
	return nil
}

// MustRegister registers each collector and panics on the first error.
func (r *Registry) MustRegister(cs ...Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

type family struct {
	desc    *Desc
	typ     string
	metrics []Metric
}

// WriteText collects every collector and writes the families in the text
// exposition format, sorted by name, each family's metrics sorted by label
// values (as client_golang's Gather does).
func (r *Registry) WriteText(b *bytes.Buffer) error {
	r.mu.Lock()
	cs := slices.Clone(r.cs)
	r.mu.Unlock()
	ch := make(chan Metric, 64)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); c.Collect(ch) }()
	}
	go func() { wg.Wait(); close(ch) }()
	fams := map[string]*family{}
	var errs []string
	for m := range ch {
		d := m.Desc()
		f := fams[d.name]
		if f == nil {
			f = &family{desc: d, typ: m.typ()}
			fams[d.name] = f
		} else if f.typ != m.typ() {
			errs = append(errs, fmt.Sprintf("metric %s collected as %s and as %s", d.name, f.typ, m.typ()))
			continue
		}
		f.metrics = append(f.metrics, m)
	}
	if len(errs) > 0 {
		return fmt.Errorf("prom: %s", strings.Join(errs, "; "))
	}
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := fams[n]
		sort.SliceStable(f.metrics, func(i, j int) bool {
			return slices.Compare(f.metrics[i].labelValues(), f.metrics[j].labelValues()) < 0
		})
		b.WriteString("# HELP ")
		b.WriteString(n)
		b.WriteByte(' ')
		b.WriteString(escapeHelp(f.desc.help))
		b.WriteString("\n# TYPE ")
		b.WriteString(n)
		b.WriteByte(' ')
		b.WriteString(f.typ)
		b.WriteByte('\n')
		for _, m := range f.metrics {
			m.write(b)
		}
	}
	return nil
}

// HandlerOpts are promhttp.HandlerOpts (none are used).
type HandlerOpts struct{}

// HandlerFor serves r's metrics in the text exposition format.
func HandlerFor(r *Registry, _ HandlerOpts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b bytes.Buffer
		if err := r.WriteText(&b); err != nil {
			http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(b.Bytes())
	})
}

func writeSample(b *bytes.Buffer, name, suffix string, labels, values []string, extraName, extraValue string, v float64) {
	b.WriteString(name)
	b.WriteString(suffix)
	if len(labels) > 0 || extraName != "" {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l)
			b.WriteString(`="`)
			b.WriteString(escapeLabel(values[i]))
			b.WriteByte('"')
		}
		if extraName != "" {
			if len(labels) > 0 {
				b.WriteByte(',')
			}
			b.WriteString(extraName)
			b.WriteString(`="`)
			b.WriteString(extraValue)
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

// formatFloat writes v as client_golang's text format does.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }
