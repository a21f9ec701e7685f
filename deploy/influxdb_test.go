package deploy

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/stack"
)

// applyInfluxSetup sends deploy/influxdb/setup.influxql to InfluxDB as one request, the way
// `influx -execute "$(cat setup.influxql)"` and the container image's init step do, and fails
// on any statement's error.
func applyInfluxSetup(t testing.TB, in *stack.Influx) {
	t.Helper()
	setup, err := os.ReadFile(repoPath(t, "deploy", "influxdb", "setup.influxql"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err = in.Exec(ctx, string(setup))
	require.NoError(t, err, "setup.influxql")
}

// continuousQuery is one CREATE CONTINUOUS QUERY of setup.influxql.
type continuousQuery struct {
	name, selectStmt string
}

var cqPattern = regexp.MustCompile(`(?s)CREATE CONTINUOUS QUERY "([^"]+)" ON "border"\s.*?BEGIN\s+(.*?)\s+END;`)

func setupContinuousQueries(t testing.TB) []continuousQuery {
	t.Helper()
	setup, err := os.ReadFile(repoPath(t, "deploy", "influxdb", "setup.influxql"))
	require.NoError(t, err)
	var out []continuousQuery
	for _, m := range cqPattern.FindAllStringSubmatch(string(setup), -1) {
		out = append(out, continuousQuery{name: m[1], selectStmt: m[2]})
	}
	require.Equal(t, strings.Count(string(setup), "CREATE CONTINUOUS QUERY"), len(out), "a CREATE CONTINUOUS QUERY the test cannot parse")
	return out
}

// TestIntegrationInfluxSetup applies setup.influxql to a real InfluxDB 1.8 — twice, because an
// operator re-runs it after an edit — then checks the retention policies and continuous
// queries exist as written, lets a real daemon write readings and alerts through its default
// bucket, and runs each continuous query's SELECT … INTO by hand over those hours (as the
// README's backfill does): every one must write points into the long-term tier, and the counts
// there must add up to the raw points they summarise.
func TestIntegrationInfluxSetup(t *testing.T) {
	s := startDaemon(t, func(in *stack.Influx) {
		applyInfluxSetup(t, in)
		applyInfluxSetup(t, in)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()

	series, err := s.influx.Query(ctx, `SHOW RETENTION POLICIES ON "border"`)
	require.NoError(t, err)
	rps := map[string]map[string]any{}
	for _, sr := range series {
		for _, row := range sr.Rows() {
			rps[row["name"].(string)] = row
		}
	}
	for _, tc := range []struct {
		name, duration, shard string
		isDefault             bool
	}{
		{name: "autogen", duration: "2160h0m0s", shard: "24h0m0s", isDefault: true},
		{name: "hourly", duration: "43680h0m0s", shard: "672h0m0s", isDefault: false},
	} {
		t.Run("retention policy "+tc.name, func(t *testing.T) {
			rp, ok := rps[tc.name]
			require.True(t, ok, "retention policies: %v", rps)
			require.Equal(t, tc.duration, rp["duration"])
			require.Equal(t, tc.shard, rp["shardGroupDuration"])
			require.Equal(t, tc.isDefault, rp["default"])
		})
	}

	series, err = s.influx.Query(ctx, `SHOW CONTINUOUS QUERIES`)
	require.NoError(t, err)
	installed := map[string]string{}
	for _, sr := range series {
		if sr.Name != "border" {
			continue
		}
		for _, row := range sr.Rows() {
			installed[row["name"].(string)] = row["query"].(string)
		}
	}
	cqs := setupContinuousQueries(t)
	require.Len(t, installed, len(cqs), "installed: %v", installed)

	s.publishTraffic()
	// Whole hours covering all the traffic, the current hour included.
	to := time.Now().Truncate(time.Hour).Add(time.Hour)
	from := to.Add(-trafficSpan - 2*time.Hour)
	timeRange := fmt.Sprintf(`time >= '%s' AND time < '%s'`, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	intoRe := regexp.MustCompile(`INTO "border"\."hourly"\."(\w+)"\s+FROM "border"\."autogen"\."(\w+)"`)
	countRe := regexp.MustCompile(`count\("(\w+)"\) AS "(\w+)"`)
	for _, cq := range cqs {
		t.Run(cq.name, func(t *testing.T) {
			require.Contains(t, installed, cq.name)
			require.NotContains(t, cq.selectStmt, "WHERE", "the backfill inserts its own WHERE")
			into := intoRe.FindStringSubmatch(cq.selectStmt)
			require.NotNil(t, into, "INTO hourly … FROM autogen …")
			target, source := into[1], into[2]
			count := countRe.FindStringSubmatch(cq.selectStmt)
			require.NotNil(t, count, "a count(field) AS name to reconcile")
			counted, alias := count[1], count[2]

			stmt := strings.Replace(cq.selectStmt, "GROUP BY", "WHERE "+timeRange+" GROUP BY", 1)
			res, err := s.influx.Exec(ctx, stmt)
			require.NoError(t, err, stmt)
			require.NotEmpty(t, res)
			written := res[0].Rows()[0]["written"]
			require.NotEqual(t, "0", fmt.Sprint(written), "%s wrote nothing", cq.name)

			raw := scalar(t, s.influx, fmt.Sprintf(`SELECT count(%q) FROM "border"."autogen".%q WHERE %s`, counted, source, timeRange))
			summed := scalar(t, s.influx, fmt.Sprintf(`SELECT sum(%q) FROM "border"."hourly".%q WHERE %s`, alias, target, timeRange))
			require.Equal(t, raw, summed, "%s: hourly %s.%s should add up to the raw points of %s", cq.name, target, alias, source)
			require.NotEqual(t, "0", raw)
			t.Logf("%s: %v points written, %s raw %s points = sum of hourly %s.%s", cq.name, written, raw, source, target, alias)

			// The long-term tier keeps counts, never identifiers.
			fields, err := s.influx.Query(ctx, fmt.Sprintf(`SHOW FIELD KEYS FROM "border"."hourly".%q`, target))
			require.NoError(t, err)
			for _, sr := range fields {
				for _, row := range sr.Rows() {
					require.NotContains(t, []string{"imsi", "imei", "mac", "plate", "image", "subject", "summary"}, row["fieldKey"])
				}
			}
		})
	}
}

// scalar runs a query returning one value and gives it as a string ("" when there is none).
func scalar(t testing.TB, in *stack.Influx, q string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	series, err := in.Query(ctx, q)
	require.NoError(t, err, q)
	if len(series) == 0 || len(series[0].Values) == 0 {
		return ""
	}
	return fmt.Sprint(series[0].Values[0][1])
}
