package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// promqlMetricNames returns the metric names a PromQL expression selects, sorted and without
// repeats. It is a lexer, not a parser: it skips strings, label matchers ({…}), ranges ([…]),
// numbers and durations, grouping clauses (by/without/on/ignoring/group_left/group_right (…)),
// keywords and aggregation operators, and identifiers followed by "(" (functions); every identifier left
// is a metric name. Grafana's interval macros must be substituted before; any other "$" is an
// error, because an unexpanded variable outside a string means the expression is not PromQL yet.
func promqlMetricNames(expr string) ([]string, error) {
	var names []string
	s := expr
	i := 0
	parens := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			j, err := skipGroup(s, i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipGroup(s, i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '(':
			parens++
			i++
		case c == ')':
			if parens--; parens < 0 {
				return nil, fmt.Errorf("unbalanced ) at %d", i)
			}
			i++
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			ident := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n') {
				k++
			}
			followedByParen := k < len(s) && s[k] == '('
			switch {
			case slices.Contains(promGroupingKeywords, strings.ToLower(ident)):
				if followedByParen {
					end, err := skipGroup(s, k, '(', ')')
					if err != nil {
						return nil, err
					}
					j = end
				}
			case followedByParen, slices.Contains(promKeywords, strings.ToLower(ident)):
				// a function or aggregation, or an operator word
			default:
				names = append(names, ident)
			}
			i = j
		case c == '$':
			return nil, fmt.Errorf("unexpanded Grafana variable at %d: %q", i, s[i:])
		default:
			i++
		}
	}
	if parens != 0 {
		return nil, fmt.Errorf("unbalanced parentheses")
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

var (
	promGroupingKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	promKeywords         = []string{"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end",
		// aggregation operators, which may be followed by a grouping clause instead of "("
		"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
		"quantile", "limitk", "limit_ratio"}
)

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }

// skipString returns the index after the string literal starting at i. Backquoted strings have
// no escapes.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d", i)
}

// skipGroup returns the index after the group opened at i, skipping strings inside it.
func skipGroup(s string, i int, open, close byte) (int, error) {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '"', '\'', '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %c at %d", open, i)
}

// grafanaPromMacros are the interval macros Grafana expands in PromQL, with the values it
// would give them on a 15 s scrape interval.
var grafanaPromMacros = strings.NewReplacer("$__rate_interval", "1m", "${__rate_interval}", "1m",
	"$__interval", "15s", "${__interval}", "15s", "$__range", "6h", "${__range}", "6h")

// TestPromqlMetricNames pins the lexer down on the constructs the shipped expressions use, so
// that a name it wrongly skips cannot make TestDashboardMetricsExist pass vacuously.
func TestPromqlMetricNames(t *testing.T) {
	for _, tc := range []struct {
		name, expr string
		want       []string
		wantErr    bool
	}{
		{name: "bare selector", expr: `up`, want: []string{"up"}},
		{name: "matchers are labels", expr: `fenceline_mqtt_connected{instance=~"$instance", job="x"}`, want: []string{"fenceline_mqtt_connected"}},
		{name: "rate with range and grouping", expr: `sum by (reason) (rate(fenceline_ingest_rejections_total{instance=~"$instance"}[5m])) > 0`,
			want: []string{"fenceline_ingest_rejections_total"}},
		{name: "grouping after the aggregation", expr: `sum(rate(a_total[5m])) without (instance)`, want: []string{"a_total"}},
		{name: "binary with vector matching", expr: `a / on (instance) group_left (rule) b > bool 0.5`, want: []string{"a", "b"}},
		{name: "histogram quantile", expr: `histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[1m])))`, want: []string{"x_seconds_bucket"}},
		{name: "durations and offsets are not names", expr: `increase(c_total[1h] offset 1d) > 1e3 and d`, want: []string{"c_total", "d"}},
		{name: "strings are not names", expr: `label_replace(m, "dst", "$1", "src", "(.*)")`, want: []string{"m"}},
		{name: "recording rule names", expr: `sum(x) / scalar(fenceline:registered_devices)`, want: []string{"fenceline:registered_devices", "x"}},
		{name: "subquery", expr: `max_over_time(deriv(p[10m])[1h:5m])`, want: []string{"p"}},
		{name: "unexpanded variable outside strings", expr: `x > $threshold`, wantErr: true},
		{name: "unbalanced", expr: `sum(rate(x[5m])`, wantErr: true},
		{name: "unterminated string", expr: `x{a="b}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := promqlMetricNames(tc.expr)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
