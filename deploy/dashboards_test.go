package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/fenceline/fenceline/internal/stack"
)

// dashboardQuery is one query of a dashboard: a panel target or a template variable.
type dashboardQuery struct {
	where  string // dashboard file and panel title (or variable name), for failure messages
	dsType string // "influxdb" or "prometheus"
	dsUID  string
	query  string // InfluxQL or PromQL, with Grafana's macros and variables unexpanded
	alias  string // the target's alias (InfluxQL: $tag_x names a GROUP BY tag)
	// variable is the name of the template variable this query fills ("" for panels).
	variable string
}

// loadDashboard reads a dashboard JSON file.
func loadDashboard(t testing.TB, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var d map[string]any
	require.NoError(t, json.Unmarshal(data, &d), path)
	return d
}

func dashboardFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(repoPath(t, "deploy", "grafana", "dashboards", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no dashboards under deploy/grafana/dashboards")
	return files
}

// dashboardQueries lists every query of the dashboard at path, variables first in their
// order (a later variable may use an earlier one), then panel targets, rows' nested panels
// included. A target without its own datasource uses its panel's; one with
// its own must name its panel's (or the panel be "-- Mixed --").
func dashboardQueries(t testing.TB, path string) []dashboardQuery {
	t.Helper()
	d := loadDashboard(t, path)
	name := filepath.Base(path)
	var out []dashboardQuery
	if tmpl, ok := d["templating"].(map[string]any); ok {
		for _, v := range asList(tmpl["list"]) {
			v := v.(map[string]any)
			if v["type"] != "query" {
				continue
			}
			ds := asMap(v["datasource"])
			q, ok := v["query"].(string)
			if !ok {
				q, _ = asMap(v["query"])["query"].(string)
			}
			out = append(out, dashboardQuery{
				where: fmt.Sprintf("%s variable %s", name, v["name"]), dsType: str(ds["type"]), dsUID: str(ds["uid"]),
				query: q, variable: str(v["name"]),
			})
		}
	}
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			p := p.(map[string]any)
			walk(asList(p["panels"]))
			pds := asMap(p["datasource"])
			for _, tg := range asList(p["targets"]) {
				tg := tg.(map[string]any)
				ds := asMap(tg["datasource"])
				switch {
				case len(ds) == 0:
					ds = pds
				case len(pds) > 0 && str(pds["uid"]) != "-- Mixed --":
					// Grafana runs every target of a panel on the
					// panel's datasource unless it is "-- Mixed --".
					require.Equal(t, str(pds["uid"]), str(ds["uid"]), "%s panel %q target %s: its datasource is not its panel's, which Grafana would use",
						name, p["title"], tg["refId"])
				}
				q := dashboardQuery{where: fmt.Sprintf("%s panel %q target %s", name, p["title"], tg["refId"]),
					dsType: str(ds["type"]), dsUID: str(ds["uid"]), alias: str(tg["alias"])}
				switch q.dsType {
				case "influxdb":
					// The query builder's form (rawQuery false) would be a second source of
					// truth that this test cannot run; every InfluxQL target is raw.
					require.Equal(t, true, tg["rawQuery"], "%s: InfluxQL targets must be raw queries", q.where)
					q.query = str(tg["query"])
				case "prometheus":
					q.query = str(tg["expr"])
				}
				out = append(out, q)
			}
		}
	}
	walk(asList(d["panels"]))
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// TestDashboardsWellFormed checks what Grafana needs of the dashboard files: a uid and title
// each, unique among the dashboards; unique panel ids; every query's datasource provisioned
// (by uid and type) in deploy/grafana/provisioning; every panel inside the 24-column grid.
func TestDashboardsWellFormed(t *testing.T) {
	provisioned := provisionedDatasources(t)
	uids := map[string]string{}
	for _, path := range dashboardFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			d := loadDashboard(t, path)
			uid, title := str(d["uid"]), str(d["title"])
			require.NotEmpty(t, uid, "uid")
			require.NotEmpty(t, title, "title")
			require.NotContains(t, uids, uid, "uid %s also in %s", uid, uids[uid])
			uids[uid] = path
			ids := map[float64]bool{}
			var walk func([]any)
			walk = func(panels []any) {
				for _, p := range panels {
					p := p.(map[string]any)
					id, _ := p["id"].(float64)
					require.False(t, ids[id], "panel id %v repeated (%q)", id, p["title"])
					ids[id] = true
					g := asMap(p["gridPos"])
					x, _ := g["x"].(float64)
					w, _ := g["w"].(float64)
					require.True(t, w > 0 && x+w <= 24, "panel %q: gridPos %v outside the 24 columns", p["title"], g)
					walk(asList(p["panels"]))
				}
			}
			walk(asList(d["panels"]))
			qs := dashboardQueries(t, path)
			require.NotEmpty(t, qs)
			for _, q := range qs {
				require.NotEmpty(t, q.query, "%s: empty query", q.where)
				require.Equal(t, provisioned[q.dsUID], q.dsType, "%s: datasource uid %q is not a provisioned %s datasource", q.where, q.dsUID, q.dsType)
			}
		})
	}
}

// provisionedDatasources maps uid → type of the datasources in deploy/grafana/provisioning.
func provisionedDatasources(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob(repoPath(t, "deploy", "grafana", "provisioning", "datasources", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var doc struct {
			APIVersion  int `yaml:"apiVersion"`
			Datasources []struct {
				Name string `yaml:"name"`
				UID  string `yaml:"uid"`
				Type string `yaml:"type"`
				URL  string `yaml:"url"`
			} `yaml:"datasources"`
		}
		require.NoError(t, yaml.Unmarshal(data, &doc), f)
		require.Equal(t, 1, doc.APIVersion, f)
		for _, ds := range doc.Datasources {
			require.NotEmpty(t, ds.UID, "%s: datasource %q without uid: dashboards refer to datasources by uid", f, ds.Name)
			out[ds.UID] = ds.Type
		}
	}
	return out
}

// grafanaInfluxMacros expands what Grafana expands in an InfluxQL query, as Grafana writes
// it: $timeFilter becomes a millisecond time range.
func grafanaInfluxMacros(q string, from, to time.Time, interval string) string {
	return strings.NewReplacer(
		"$timeFilter", fmt.Sprintf("time >= %dms and time <= %dms", from.UnixMilli(), to.UnixMilli()),
		"$__interval", interval,
	).Replace(q)
}

var grafanaVariable = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// expandVariables replaces $name and ${name} with the variable's values as Grafana formats a
// multi-value variable inside an InfluxQL regex: (a|b|c). An unknown variable fails the test.
func expandVariables(t testing.TB, where, q string, vars map[string][]string) string {
	t.Helper()
	return grafanaVariable.ReplaceAllStringFunc(q, func(m string) string {
		name := grafanaVariable.FindStringSubmatch(m)[1]
		vals, ok := vars[name]
		require.True(t, ok, "%s: unknown variable %s in %q", where, m, q)
		quoted := make([]string, len(vals))
		for i, v := range vals {
			quoted[i] = regexp.QuoteMeta(v)
		}
		return "(" + strings.Join(quoted, "|") + ")"
	})
}

// TestIntegrationDashboardQueries runs every InfluxQL query of the dashboards — template
// variables first, each with the values the previous ones produced (all selected, as the
// dashboards default to) — against a real InfluxDB 1.8 that a real daemon on the example rules
// filled with contract messages of every stream and some alerts. A query that errors, or that
// returns nothing on this data, fails: a panel that is empty on realistic data is broken.
func TestIntegrationDashboardQueries(t *testing.T) {
	s := startDaemon(t, nil)
	s.publishTraffic()
	to := time.Now()
	from := to.Add(-6 * time.Hour)
	ran := 0
	for _, path := range dashboardFiles(t) {
		vars := map[string][]string{}
		for _, q := range dashboardQueries(t, path) {
			if q.dsType != "influxdb" {
				continue
			}
			ran++
			influxql := expandVariables(t, q.where, grafanaInfluxMacros(q.query, from, to, "10m"), vars)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			series, err := s.influx.Query(ctx, influxql)
			cancel()
			require.NoError(t, err, "%s: %s", q.where, influxql)
			rows := 0
			for _, sr := range series {
				rows += len(sr.Values)
			}
			require.NotZero(t, rows, "%s returned no data: %s", q.where, influxql)
			if q.variable != "" {
				vars[q.variable] = tagValues(series)
				t.Logf("$%s = %v", q.variable, vars[q.variable])
			}
			// An alias naming a tag the query does not group by would show "$tag_x" literally.
			for _, m := range regexp.MustCompile(`\$tag_(\w+)`).FindAllStringSubmatch(q.alias, -1) {
				for _, sr := range series {
					require.Contains(t, sr.Tags, m[1], "%s: alias %q names tag %s the query does not group by", q.where, q.alias, m[1])
				}
			}
		}
	}
	require.NotZero(t, ran, "no InfluxQL queries in the dashboards")
	t.Logf("%d InfluxQL queries returned data", ran)
}

// tagValues collects the values of a SHOW TAG VALUES result (columns key, value), sorted.
func tagValues(series []stack.Series) []string {
	seen := map[string]bool{}
	for _, sr := range series {
		for _, row := range sr.Rows() {
			if v, ok := row["value"].(string); ok {
				seen[v] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// TestDashboardMetricsExist checks that every PromQL expression of the daemon dashboards, and
// every alerting and recording rule under deploy/prometheus, names only metrics that a real
// daemon exports: the names are gathered from the registry of a daemon run in-process against
// real services after it processed traffic, histograms and summaries with their _bucket, _sum
// and _count series. The Go and process collectors are the daemon's own registrations, so their
// names are checked as well; only Prometheus's own "up" and the rules' recorded series are
// taken on trust.
func TestDashboardMetricsExist(t *testing.T) {
	s := startDaemon(t, nil)
	s.publishTraffic()
	exported := map[string]bool{"up": true}
	mfs, err := s.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		name := mf.GetName()
		exported[name] = true
		switch mf.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			exported[name+"_bucket"], exported[name+"_sum"], exported[name+"_count"] = true, true, true
		case "SUMMARY":
			exported[name+"_sum"], exported[name+"_count"] = true, true
		}
	}

	// constant: a recording rule may record a constant (fenceline:registered_devices); every
	// other expression must select something, or the check below would pass vacuously.
	type expr struct {
		where, promql string
		constant      bool
	}
	var exprs []expr
	for _, path := range dashboardFiles(t) {
		for _, q := range dashboardQueries(t, path) {
			if q.dsType != "prometheus" {
				continue
			}
			promql := q.query
			// label_values(selector, label) of a template variable: the selector is PromQL.
			if m := regexp.MustCompile(`^\s*label_values\((.*),\s*\w+\s*\)\s*$`).FindStringSubmatch(promql); m != nil {
				promql = m[1]
			}
			exprs = append(exprs, expr{where: q.where, promql: promql})
		}
	}
	rules := prometheusRules(t)
	for _, r := range rules {
		exprs = append(exprs, expr{where: r.where, promql: r.expr, constant: r.record != ""})
		if r.record != "" {
			exported[r.record] = true
		}
	}
	require.NotEmpty(t, exprs)

	checked := map[string]bool{}
	for _, e := range exprs {
		// The dashboards' variables sit in label matchers (strings) and are skipped; only the
		// interval macros stand where PromQL expects a duration.
		names, err := promqlMetricNames(grafanaPromMacros.Replace(e.promql))
		require.NoError(t, err, "%s: %s", e.where, e.promql)
		require.True(t, e.constant || len(names) > 0, "%s selects no metric: %s", e.where, e.promql)
		for _, n := range names {
			require.True(t, exported[n], "%s: metric %s is not exported by the daemon (expression %s)", e.where, n, e.promql)
			checked[n] = true
		}
	}
	t.Logf("%d expressions, %d distinct metrics, all exported", len(exprs), len(checked))
}

// promRule is one rule of a rules file under deploy/prometheus.
type promRule struct {
	where, alert, record, expr string
	labels, annotations        map[string]string
	forDur                     string
}

// prometheusRules reads the rule groups of every deploy/prometheus/*.yml that has any (the
// scrape config has none) — strictly: an unknown key in a rule is an error, as in Prometheus.
func prometheusRules(t testing.TB) []promRule {
	t.Helper()
	files, err := filepath.Glob(repoPath(t, "deploy", "prometheus", "*.yml"))
	require.NoError(t, err)
	var out []promRule
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var probe map[string]any
		require.NoError(t, yaml.Unmarshal(data, &probe), f)
		if _, ok := probe["groups"]; !ok {
			continue
		}
		var doc struct {
			Groups []struct {
				Name     string `yaml:"name"`
				Interval string `yaml:"interval"`
				Rules    []struct {
					Alert         string            `yaml:"alert"`
					Record        string            `yaml:"record"`
					Expr          string            `yaml:"expr"`
					For           string            `yaml:"for"`
					KeepFiringFor string            `yaml:"keep_firing_for"`
					Labels        map[string]string `yaml:"labels"`
					Annotations   map[string]string `yaml:"annotations"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		require.NoError(t, dec.Decode(&doc), f)
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				name := r.Alert + r.Record
				require.True(t, (r.Alert == "") != (r.Record == ""), "%s group %s: a rule is either alert or record", f, g.Name)
				out = append(out, promRule{where: fmt.Sprintf("%s %s", filepath.Base(f), name), alert: r.Alert, record: r.Record,
					expr: r.Expr, labels: r.Labels, annotations: r.Annotations, forDur: r.For})
			}
		}
	}
	require.NotEmpty(t, out, "no rules under deploy/prometheus")
	return out
}

// TestPrometheusAlertsDocumented checks that every alert has the labels and annotations the
// runbook relies on, and that docs/runbook.md has a section for it: an alert that pages someone
// must say what to do.
func TestPrometheusAlertsDocumented(t *testing.T) {
	runbook, err := os.ReadFile(repoPath(t, "docs", "runbook.md"))
	require.NoError(t, err)
	severities := []string{"critical", "warning", "info"}
	for _, r := range prometheusRules(t) {
		if r.alert == "" {
			continue
		}
		t.Run(r.alert, func(t *testing.T) {
			require.Contains(t, severities, r.labels["severity"], "severity label")
			require.NotEmpty(t, r.annotations["summary"], "summary annotation")
			require.NotEmpty(t, r.annotations["description"], "description annotation")
			require.True(t, strings.Contains(r.annotations["runbook_url"], "runbook.md#"+strings.ToLower(r.alert)),
				"runbook_url %q should point at runbook.md#%s", r.annotations["runbook_url"], strings.ToLower(r.alert))
			require.True(t, slices.Contains(strings.Split(string(runbook), "\n"), "### "+r.alert),
				"docs/runbook.md has no section \"### %s\"", r.alert)
		})
	}
}

// TestNamedAlertsExist checks that every alert the code (its messages and
// logs) and the docs name is one alerts.yml defines: a warning that names an
// alert which never fires sends the operator looking for nothing (check named one that
// never existed).
func TestNamedAlertsExist(t *testing.T) {
	defined := map[string]bool{}
	for _, r := range prometheusRules(t) {
		if r.alert != "" {
			defined[r.alert] = true
		}
	}
	name := regexp.MustCompile(`\bFencelin[e][A-Z][A-Za-z]+\b`)
	root := repoPath(t)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == ".git" || n == "tools" || n == "bin" || n == ".state" || n == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".go" && ext != ".md" && ext != ".yml" && ext != ".yaml" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range name.FindAllString(string(data), -1) {
			if !defined[n] {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s names alert %s, which deploy/prometheus/alerts.yml does not define", rel, n)
			}
		}
		return nil
	})
	require.NoError(t, err)
}
