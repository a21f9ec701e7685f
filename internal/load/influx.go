package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Influx reads what fenceline stored, through InfluxDB 1.x's /query API
// (InfluxQL).
type Influx struct {
	URL      string // http://host:port
	Database string
	// Auth is "user:password" for a server with authentication, else "".
	Auth   string
	Client *http.Client
}

func (c *Influx) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return http.DefaultClient
}

type influxChunk struct {
	Results []struct {
		Series []struct {
			Tags   map[string]string `json:"tags"`
			Values [][]json.Number   `json:"values"`
		} `json:"series"`
		Error string `json:"error"`
	} `json:"results"`
	Error string `json:"error"`
}

// query runs q (chunked, nanosecond times) and calls fn for every row.
func (c *Influx) query(ctx context.Context, q string, fn func(tags map[string]string, row []json.Number) error) error {
	params := url.Values{"db": {c.Database}, "q": {q}, "epoch": {"ns"}, "chunked": {"true"}, "chunk_size": {"20000"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+"/query?"+params.Encode(), nil)
	if err != nil {
		return fmt.Errorf("influx query %q: %w", q, err)
	}
	if user, pass, ok := strings.Cut(c.Auth, ":"); ok {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return fmt.Errorf("influx query %q: %w", q, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("influx query %q: %s: %s", q, resp.Status, strings.TrimSpace(string(body)))
	}
	// A chunked answer is a stream of JSON documents.
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	for {
		var ch influxChunk
		if err := dec.Decode(&ch); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("influx query %q: decode: %w", q, err)
		}
		if ch.Error != "" {
			return fmt.Errorf("influx query %q: %s", q, ch.Error)
		}
		for _, r := range ch.Results {
			if r.Error != "" {
				return fmt.Errorf("influx query %q: %s", q, r.Error)
			}
			for _, s := range r.Series {
				for _, row := range s.Values {
					if err := fn(s.Tags, row); err != nil {
						return fmt.Errorf("influx query %q: %w", q, err)
					}
				}
			}
		}
	}
}

func timeRange(from, to time.Time) string {
	return fmt.Sprintf("time >= %d AND time <= %d", from.UnixNano(), to.UnixNano())
}

// CountByDevice counts the points of measurement between from and to, by
// device. seq is in every reading's point, so COUNT(seq) counts points.
func (c *Influx) CountByDevice(ctx context.Context, measurement string, from, to time.Time) (map[string]int64, error) {
	q := fmt.Sprintf(`SELECT COUNT("seq") FROM %s WHERE %s GROUP BY "device"`, quoteIdent(measurement), timeRange(from, to))
	out := map[string]int64{}
	err := c.query(ctx, q, func(tags map[string]string, row []json.Number) error {
		if len(row) < 2 {
			return errors.New("short row")
		}
		n, err := row[1].Int64()
		if err != nil {
			return fmt.Errorf("count: %w", err)
		}
		out[tags["device"]] += n
		return nil
	})
	return out, err
}

// ScanPoints calls fn with the device, time (ns) and seq of every point of
// measurement between from and to.
func (c *Influx) ScanPoints(ctx context.Context, measurement string, from, to time.Time, fn func(device string, ns, seq int64)) error {
	q := fmt.Sprintf(`SELECT "seq" FROM %s WHERE %s GROUP BY "device"`, quoteIdent(measurement), timeRange(from, to))
	return c.query(ctx, q, func(tags map[string]string, row []json.Number) error {
		if len(row) < 2 {
			return errors.New("short row")
		}
		ns, err := row[0].Int64()
		if err != nil {
			return fmt.Errorf("time: %w", err)
		}
		seq, err := row[1].Int64()
		if err != nil {
			// An integer field always reads as one; tolerate a float field
			// (written by something else) rather than give up the scan.
			f, ferr := strconv.ParseFloat(row[1].String(), 64)
			if ferr != nil {
				return fmt.Errorf("seq: %w", err)
			}
			seq = int64(f)
		}
		fn(tags["device"], ns, seq)
		return nil
	})
}

func quoteIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
