package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Metrics is one scrape of a Prometheus text exposition: each sample by
// metric name, with its labels.
type Metrics map[string][]MetricSample

// MetricSample is one sample of a metric.
type MetricSample struct {
	Labels map[string]string
	Value  float64
	// Cumulative says the sample only goes up while the process that
	// exposes it lives (its family's # TYPE is counter, or histogram or
	// summary for the _bucket, _sum and _count series), so that a drop
	// means a new process.
	Cumulative bool
}

// Sum is the sum of name's samples whose labels include match (nil: all).
func (m Metrics) Sum(name string, match map[string]string) float64 {
	var s float64
next:
	for _, x := range m[name] {
		for k, v := range match {
			if x.Labels[k] != v {
				continue next
			}
		}
		s += x.Value
	}
	return s
}

// ByLabel returns name's values by the value of label.
func (m Metrics) ByLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, x := range m[name] {
		out[x.Labels[label]] += x.Value
	}
	return out
}

// ParseMetrics reads the Prometheus text format (version 0.0.4). Histograms
// and summaries come out as their _bucket, _sum and _count series.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	types := map[string]string{} // family name → its # TYPE
	cumulative := func(name string) bool {
		if types[name] == "counter" {
			return true
		}
		for _, suffix := range [...]string{"_bucket", "_sum", "_count"} {
			if t := types[strings.TrimSuffix(name, suffix)]; strings.HasSuffix(name, suffix) && (t == "histogram" || t == "summary") {
				return true
			}
		}
		return false
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		if s[0] == '#' {
			if f := strings.Fields(s); len(f) == 4 && f[1] == "TYPE" {
				types[f[2]] = f[3]
			}
			continue
		}
		name, labels, rest, err := splitSample(s)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", line, err)
		}
		// The value may be followed by a timestamp.
		if i := strings.IndexByte(rest, ' '); i >= 0 {
			rest = rest[:i]
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: value: %w", line, err)
		}
		m[name] = append(m[name], MetricSample{Labels: labels, Value: v, Cumulative: cumulative(name)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return m, nil
}

func splitSample(s string) (name string, labels map[string]string, rest string, err error) {
	i := strings.IndexAny(s, "{ ")
	if i <= 0 {
		return "", nil, "", fmt.Errorf("no value in %q", s)
	}
	name = s[:i]
	if s[i] == ' ' {
		return name, nil, strings.TrimSpace(s[i+1:]), nil
	}
	labels = map[string]string{}
	j := i + 1
	for {
		for j < len(s) && (s[j] == ' ' || s[j] == ',') {
			j++
		}
		if j < len(s) && s[j] == '}' {
			return name, labels, strings.TrimSpace(s[j+1:]), nil
		}
		eq := strings.IndexByte(s[j:], '=')
		if eq < 0 || j+eq+1 >= len(s) || s[j+eq+1] != '"' {
			return "", nil, "", fmt.Errorf("bad labels in %q", s)
		}
		key := strings.TrimSpace(s[j : j+eq])
		j += eq + 2
		var v strings.Builder
		for ; j < len(s) && s[j] != '"'; j++ {
			c := s[j]
			if c == '\\' && j+1 < len(s) {
				j++
				switch s[j] {
				case 'n':
					c = '\n'
				default:
					c = s[j]
				}
			}
			v.WriteByte(c)
		}
		if j >= len(s) {
			return "", nil, "", fmt.Errorf("unterminated label value in %q", s)
		}
		labels[key] = v.String()
		j++ // the closing quote
	}
}

// scrapeMetrics fetches and parses url (a /metrics endpoint).
func scrapeMetrics(ctx context.Context, client *http.Client, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	// Plain text: the parser above does not read the protobuf format.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	m, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return m, nil
}

// counters sums the cumulative series of successive scrapes of one daemon
// over its restarts, as Prometheus's increase() does: a new process starts
// its counters from zero again, and a report that subtracted the first
// scrape from the last across a restart had negative CPU, seq gaps and
// stored readings.
type counters struct {
	started  float64                 // process_start_time_seconds of the previous scrape (0: none)
	previous map[string]float64      // each cumulative series' value in the previous scrape, by seriesKey
	totals   map[string]MetricSample // each cumulative series' value in the first scrape plus its increases since
	names    map[string]string       // seriesKey → metric name
}

// add takes the next scrape and returns it with its cumulative series
// replaced by their totals, the series of an earlier process that its
// successor has not exposed yet included (so that no total falls back).
// It reports whether the daemon restarted since the previous scrape: its
// start time changed, or a cumulative series went down. Then every series
// started again from zero, those that happen to have grown past their
// old value too.
func (c *counters) add(m Metrics) (Metrics, bool) {
	if c.totals == nil {
		c.totals, c.names = map[string]MetricSample{}, map[string]string{}
	}
	started := m.Sum("process_start_time_seconds", nil)
	restarted := c.started != 0 && started != 0 && started != c.started
	c.started = started
	current := map[string]float64{}
	for name, ss := range m {
		for _, s := range ss {
			if s.Cumulative {
				k := seriesKey(name, s.Labels)
				current[k] = s.Value
				if prev, ok := c.previous[k]; ok && s.Value < prev {
					restarted = true
				}
			}
		}
	}
	out := Metrics{}
	for name, ss := range m {
		for _, s := range ss {
			if !s.Cumulative {
				out[name] = append(out[name], s)
				continue
			}
			k := seriesKey(name, s.Labels)
			t := c.totals[k]
			t.Labels, t.Cumulative = s.Labels, true
			if restarted {
				t.Value += s.Value
			} else {
				t.Value += s.Value - c.previous[k] // a series new to this process grew from zero
			}
			c.totals[k], c.names[k] = t, name
		}
	}
	c.previous = current
	for k, t := range c.totals {
		out[c.names[k]] = append(out[c.names[k]], t)
	}
	return out, restarted
}

// seriesKey identifies a series: its name and labels.
func seriesKey(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(name)
	for _, k := range keys {
		b.WriteString("," + k + "=" + strconv.Quote(labels[k]))
	}
	return b.String()
}

// HistogramDelta is what a Prometheus histogram observed between two
// scrapes: the count and quantiles estimated from the buckets as
// histogram_quantile does (linear within a bucket).
type HistogramDelta struct {
	Count float64 `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
}

// histogramDelta returns name's observations between before and after
// (summed over label sets), false when after has no such histogram.
func histogramDelta(before, after Metrics, name string) (HistogramDelta, bool) {
	buckets := func(m Metrics) map[float64]float64 {
		out := map[float64]float64{}
		for _, s := range m[name+"_bucket"] {
			le, err := strconv.ParseFloat(s.Labels["le"], 64)
			if err != nil {
				continue
			}
			out[le] += s.Value
		}
		return out
	}
	a := buckets(after)
	if len(a) == 0 {
		return HistogramDelta{}, false
	}
	b := buckets(before)
	les := make([]float64, 0, len(a))
	for le := range a {
		les = append(les, le)
	}
	slices.Sort(les)
	cum := make([]float64, len(les))
	for i, le := range les {
		cum[i] = a[le] - b[le]
	}
	h := HistogramDelta{Count: cum[len(cum)-1]}
	q := func(q float64) float64 {
		if h.Count <= 0 {
			return 0
		}
		rank := q * h.Count
		for i, c := range cum {
			if c < rank {
				continue
			}
			if math.IsInf(les[i], 1) {
				if i == 0 {
					return 0
				}
				return les[i-1] // the top finite bound: all that can be said
			}
			lo, prev := 0.0, 0.0
			if i > 0 {
				lo, prev = les[i-1], cum[i-1]
			}
			if c == prev {
				return les[i]
			}
			return lo + (les[i]-lo)*(rank-prev)/(c-prev)
		}
		return les[len(les)-1]
	}
	h.P50, h.P99 = q(0.5), q(0.99)
	return h, true
}
