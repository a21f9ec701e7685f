package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
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
