package load

import (
	"sort"
	"time"
)

// Dist is a weighted distribution of durations.
type Dist struct {
	vals   []weighted
	sorted bool
}

type weighted struct {
	d time.Duration
	w float64
}

// Add records d with weight w (w <= 0 is ignored).
func (d *Dist) Add(v time.Duration, w float64) {
	if w <= 0 {
		return
	}
	d.vals = append(d.vals, weighted{v, w})
	d.sorted = false
}

// Quantile returns the smallest value at or below which a share q of the
// weight lies (0 for an empty distribution).
func (d *Dist) Quantile(q float64) time.Duration {
	if len(d.vals) == 0 {
		return 0
	}
	if !d.sorted {
		sort.Slice(d.vals, func(i, j int) bool { return d.vals[i].d < d.vals[j].d })
		d.sorted = true
	}
	var total float64
	for _, v := range d.vals {
		total += v.w
	}
	target := q * total
	var acc float64
	for _, v := range d.vals {
		acc += v.w
		if acc >= target {
			return v.d
		}
	}
	return d.vals[len(d.vals)-1].d
}

// Summary is the p50/p99/max of a latency, in milliseconds.
type Summary struct {
	Count float64 `json:"count"` // total weight: readings or alerts
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary returns d's count, median, 99th percentile and maximum.
func (d *Dist) Summary() Summary {
	var total float64
	for _, v := range d.vals {
		total += v.w
	}
	ms := func(v time.Duration) float64 { return float64(v.Microseconds()) / 1000 }
	return Summary{Count: total, P50: ms(d.Quantile(0.5)), P99: ms(d.Quantile(0.99)), Max: ms(d.Quantile(1))}
}

// CountSample is a cumulative count at a time: stored readings so far.
type CountSample struct {
	T time.Time
	N float64
}

// reachedAt returns when the cumulative count of samples first reached n,
// interpolating linearly between the two samples around it, and false if it
// never did.
func reachedAt(samples []CountSample, n float64) (time.Time, bool) {
	i := sort.Search(len(samples), func(i int) bool { return samples[i].N >= n })
	if i == len(samples) {
		return time.Time{}, false
	}
	if i == 0 {
		return samples[0].T, true
	}
	a, b := samples[i-1], samples[i]
	if b.N == a.N {
		return b.T, true
	}
	f := (n - a.N) / (b.N - a.N)
	return a.T.Add(time.Duration(f * float64(b.T.Sub(a.T)))), true
}

// storedLatency estimates publish→stored latency reading by reading from the
// publish times and the timeline of the stored count, assuming readings are
// stored in the order they were published: the k-th expected reading is
// taken as stored when the count reached k. fenceline keeps each device's
// order and its concurrent writes finish nearly in order, so the error is
// about one write request's duration, and the resolution the sampling
// period (interpolated).
func storedLatency(entries []Entry, samples []CountSample) Dist {
	var d Dist
	var cum float64
	for i := range entries {
		e := &entries[i]
		if e.Failed || e.Stored == 0 {
			continue
		}
		cum += float64(e.Stored)
		t, ok := reachedAt(samples, cum)
		if !ok {
			break // the rest were never stored (at least not all of them)
		}
		d.Add(max(t.Sub(e.Published), 0), float64(e.Stored))
	}
	return d
}
