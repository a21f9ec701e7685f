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
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
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
		m[name] = append(m[name], MetricSample{Labels: labels, Value: v})
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
