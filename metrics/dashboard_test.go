package metrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const dashboardPath = "../etc/grafana-dashboard.json"

// dashboardQueries walks the dashboard's JSON and returns every panel
// query (expr) and every template variable query (definition).
func dashboardQueries(t *testing.T) (exprs, variables []string) {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if s, ok := child.(string); ok {
					switch k {
					case "expr":
						exprs = append(exprs, s)
					case "definition":
						variables = append(variables, s)
					}
				}
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(doc)
	return exprs, variables
}

var (
	grafanaVar    = regexp.MustCompile(`\$\{?\w+(?::\w+)?\}?`)
	stringLit     = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	matchers      = regexp.MustCompile(`\{[^}]*\}`)
	ranges        = regexp.MustCompile(`\[[^\]]*\]`)
	grouping      = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	identifier    = regexp.MustCompile(`(?:^|[^\w:.])([a-zA-Z_:][\w:]*)`)
	promqlKeyword = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
		"and", "or", "unless", "offset", "inf", "nan"}
)

// metricNames extracts the metric names a PromQL expression selects:
// identifiers outside strings, label matchers, ranges and grouping
// clauses that are neither keywords nor function calls.
func metricNames(expr string) []string {
	e := grafanaVar.ReplaceAllString(expr, "1")
	e = stringLit.ReplaceAllString(e, `""`)
	e = matchers.ReplaceAllString(e, " ")
	e = ranges.ReplaceAllString(e, " ")
	e = grouping.ReplaceAllString(e, " ")
	var names []string
	for _, m := range identifier.FindAllStringSubmatchIndex(e, -1) {
		name := e[m[2]:m[3]]
		if strings.HasPrefix(strings.TrimLeft(e[m[3]:], " \t\n"), "(") || slices.Contains(promqlKeyword, name) {
			continue
		}
		names = append(names, name)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (vip) (rate(vipcast_vip_packets_total{instance=~"$instance", vip=~"$vip"}[$__rate_interval]))`, []string{"vipcast_vip_packets_total"}},
		{`8 * sum(rate(x_total[5m] offset 1h)) / on (vip) group_left () sum(y)`, []string{"x_total", "y"}},
		{`histogram_quantile(0.99, sum by (le, result) (rate(h_bucket{a="b{c}"}[1m])))`, []string{"h_bucket"}},
		{`count(up == 0) or vector(0)`, []string{"up"}},
		{`a > bool 1e3`, []string{"a"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// Every metric a dashboard query reads must be in the exposition, under
// that exact name (histograms as _bucket, _sum, _count).
func TestDashboardMetricsExist(t *testing.T) {
	_, src := fixture(t)
	c := newTestCollector(src)
	c.CheckLatency().Observe("x", true, time.Millisecond)
	c.CheckLatency().Observe("x", false, time.Second)
	exposed := map[string]bool{}
	for name := range samples(t, scrape(t, Handler(NewRegistry(c)))) {
		name, _, _ = strings.Cut(name, "{")
		exposed[name] = true
	}

	exprs, variables := dashboardQueries(t)
	if len(exprs) < 20 {
		t.Fatalf("found %d queries in %s; is the walk broken?", len(exprs), filepath.Base(dashboardPath))
	}
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("query reads no metric: %s", e)
		}
		if !strings.Contains(e, `instance=~"$instance"`) {
			t.Errorf("query ignores the instance variable: %s", e)
		}
		for _, n := range names {
			used[n] = true
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((\w+)`)
	for _, v := range variables {
		m := labelValues.FindStringSubmatch(v)
		if m == nil {
			t.Errorf("variable query is not label_values(metric, label): %s", v)
			continue
		}
		used[m[1]] = true
	}
	for n := range used {
		if !exposed[n] {
			t.Errorf("dashboard reads %s, which the exposition does not have", n)
		}
	}
}

// The dashboard loads against any Prometheus: every panel and query uses
// the datasource variable.
func TestDashboardDatasource(t *testing.T) {
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name, Type, Query any
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				Type, UID string
			} `json:"datasource"`
			Targets []struct {
				Datasource *struct{ UID string } `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" {
		t.Errorf("no uid")
	}
	hasVar := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasVar = true
		}
	}
	if !hasVar {
		t.Errorf("no Prometheus datasource variable named datasource")
	}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a query does not use ${datasource}", p.Title)
			}
		}
	}
}
