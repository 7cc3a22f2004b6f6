package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// promqlNoise are the parts of a PromQL expression that are not metric
// names: string literals, label matchers, grouping clauses, ranges.
var promqlNoise = []*regexp.Regexp{
	regexp.MustCompile(`"(?:[^"\\]|\\.)*"`),
	regexp.MustCompile(`\{[^}]*\}`),
	regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`),
	regexp.MustCompile(`\[[^\]]*\]`),
}

var (
	promqlIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(?:\s*\()?`)
	promqlKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// metricNames returns the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	for _, re := range promqlNoise {
		expr = re.ReplaceAllString(expr, " ")
	}
	var out []string
	for _, m := range promqlIdent.FindAllString(expr, -1) {
		if strings.HasSuffix(m, "(") || slices.Contains(promqlKeywords, strings.ToLower(m)) {
			continue // a function or an operator
		}
		out = append(out, m)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (source) (rate(a_total{source!="", outcome=~"x|y"}[1h])) / sum by (source) (rate(a_total[5m])) < 0.99`: {"a_total", "a_total"},
		`histogram_quantile(0.5, sum by (le) (rate(h_bucket{x=~"$source"}[$__rate_interval])))`:                        {"h_bucket"},
		`time() - (last > start or start) > 26 * 3600`:                                                                 {"last", "start", "start"},
		`lag > 0 and delta(cp[10m]) == 0`:                                                                              {"lag", "cp"},
		`up{job="receiptd"} == 0`:                                                                                      {"up"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
}

// notExportedYet are names the deploy files may use that a freshly started
// server does not list, each with the reason.
var notExportedYet = map[string]string{
	"up":                         "Prometheus' own series of each scrape target",
	"receiptd_grpc_panics_total": "a counter by method: no series until a handler panics (cmd/receiptd/servers.go)",
}

// TestDeployNamesExportedMetrics: every metric the alert rules and the
// Grafana dashboard query is one a running server exports (after a few
// deliveries, so the statistics' series exist), or one of notExportedYet.
func TestDeployNamesExportedMetrics(t *testing.T) {
	// A feed destination (a receiver here that takes everything), so that
	// the destinations' series exist too.
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer dest.Close()
	s := startServer(t, t.TempDir(), reewildConfig()+operatorAccess()+
		fmt.Sprintf("destinations:\n  - {name: ledger, url: %q, secret: whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4}\n", dest.URL),
		"E2E_REEWILD_SECRET="+e2eSecret)
	s.auth = "Bearer " + e2eOperatorKey
	sendFixture(t, s, 7)
	caughtUp(t, s)

	resp, err := http.Get(s.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exported := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		exported[line[:strings.IndexAny(line, "{ ")]] = true
	}
	if len(exported) < 20 || !exported["receiptd_pipeline_receipts"] {
		t.Fatalf("the server exports only %d series names", len(exported))
	}
	for name := range notExportedYet {
		if exported[name] {
			t.Errorf("%s is exported now: remove it from notExportedYet", name)
		}
	}

	var exprs []struct{ where, expr string }
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile("../../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, struct{ where, expr string }{"alert " + r.Alert, r.Expr})
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if b, err = os.ReadFile("../../deploy/grafana/receiptd.json"); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			exprs = append(exprs, struct{ where, expr string }{"dashboard panel " + p.Title, q.Expr})
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range dash.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
			exprs = append(exprs, struct{ where, expr string }{"dashboard variable " + v.Name, m[1]})
		} else if v.Definition != "" {
			t.Errorf("dashboard variable %s: a query this test does not read: %s", v.Name, v.Definition)
		}
	}

	checked := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e.expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric name found in %q", e.where, e.expr)
		}
		for _, n := range names {
			if !exported[n] && notExportedYet[n] == "" {
				t.Errorf("%s queries %s, which the server does not export", e.where, n)
			}
			checked[n] = true
		}
	}
	t.Logf("%d queries name %d metrics", len(exprs), len(checked))

	// The audit gauges: what the server's last audit found.
	before := scrape(t, s, "receiptd_audit_last_run_timestamp_seconds")
	if v, ok := before["receiptd_audit_last_run_timestamp_seconds"]; !ok || v != 0 {
		t.Errorf("last audit at %v (exported %v) before any audit, want 0", v, ok)
	}
	if out, errOut, code := runCLI(t, "audit", "--server", s.grpcAddr, "--api-key", e2eOperatorKey, "--json"); code != 0 {
		t.Fatalf("online audit: exit %d\n%s%s", code, out, errOut)
	}
	m := scrape(t, s, "receiptd_audit_last_run_timestamp_seconds", "receiptd_audit_models_differing", "receiptd_audit_unreconciled_users")
	if m["receiptd_audit_last_run_timestamp_seconds"] <= 0 || m["receiptd_audit_models_differing"] != 0 || m["receiptd_audit_unreconciled_users"] != 1 {
		t.Errorf("after a clean audit finding u-unreconciled: %v", m)
	}
}
