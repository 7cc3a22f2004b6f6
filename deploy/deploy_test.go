// Package deploy_test checks the deployment files beside it: the Prometheus
// alert rules (promtool check and unit tests), the Grafana dashboard's
// queries (promtool parses each), and the systemd units (systemd-analyze
// verify, and the service's exposure score). That their metric names exist
// in a running server is checked by cmd/receiptd's TestDeployNamesExportedMetrics.
//
// promtool comes with Debian's prometheus package; without it the tests
// skip, except in CI (CI set), where .ci/run installs it and a missing tool
// fails. systemd-analyze comes with systemd: where it is missing, even in
// CI, its test skips.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// tool returns the path of a command the test needs. A missing promtool
// fails the test in CI and skips it elsewhere.
func tool(t *testing.T, name, install string, requiredInCI bool) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if requiredInCI && os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; CI needs it (.ci/run installs it: %s)", name, install)
	}
	t.Skipf("%s is not installed (%s); CI runs this test", name, install)
	return ""
}

func run(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

const promtoolInstall = "apt-get install prometheus"

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string            `yaml:"alert"`
			Record string            `yaml:"record"`
			Expr   string            `yaml:"expr"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleTests is the part of a promtool unit test file the tests read.
type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestAlertRules: promtool accepts alerts.yaml and its unit tests pass;
// every alert has a severity, and a test in which it fires and one in
// which it does not.
func TestAlertRules(t *testing.T) {
	var rules ruleFile
	readYAML(t, "prometheus/alerts.yaml", &rules)
	var tests ruleTests
	readYAML(t, "prometheus/alerts_test.yaml", &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			if !fires[r.Alert] {
				t.Errorf("%s: no test in alerts_test.yaml in which it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("%s: no test in alerts_test.yaml in which it stays quiet", r.Alert)
			}
		}
	}
	if n < 10 {
		t.Fatalf("read only %d alerts from alerts.yaml", n)
	}

	promtool := tool(t, "promtool", promtoolInstall, true)
	if out, err := run(t, "prometheus", promtool, "check", "rules", "alerts.yaml"); err != nil {
		t.Fatalf("promtool check rules alerts.yaml: %v\n%s", err, out)
	}
	out, err := run(t, "prometheus", promtool, "test", "rules", "alerts_test.yaml")
	if err != nil {
		t.Fatalf("promtool test rules alerts_test.yaml: %v\n%s", err, out)
	}
	t.Logf("promtool test rules: %d alerts, %s", n, strings.Join(strings.Fields(out), " "))
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// grafanaVars replaces the dashboard's variables with what Grafana would
// put there, so the query is plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$source", ".*", "$instance", ".*")

// TestDashboard: the dashboard is JSON Grafana imports (a uid, unique
// panel ids, every panel on the datasource variable with at least one
// query), and promtool parses every query, variables filled in.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/receiptd.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/receiptd.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q", d.UID, d.Title)
	}
	var exprs []string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q is not on the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q: query %s is empty", p.Title, q.RefID)
			}
			exprs = append(exprs, q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if m := regexp.MustCompile(`^label_values\((.+), *\w+\)$`).FindStringSubmatch(v.Definition); m != nil {
			exprs = append(exprs, m[1])
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("read only %d queries from the dashboard", len(exprs))
	}

	promtool := tool(t, "promtool", promtoolInstall, true)
	// Each query as a recording rule: promtool check rules parses them.
	var rf bytes.Buffer
	rf.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, err := json.Marshal(grafanaVars.Replace(e)) // a JSON string is a YAML string
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rf, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "queries.yaml"), rf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, dir, promtool, "check", "rules", "queries.yaml"); err != nil {
		t.Fatalf("promtool does not parse the dashboard's queries: %v\n%s\n%s", err, out, rf.String())
	}
}

// TestSystemdUnits: systemd-analyze verifies the units (any warning
// fails), with the binary they start replaced by a stub, and rates the
// service's exposure at most 2 of 10.
func TestSystemdUnits(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "apt-get install systemd", false)
	units := []string{"receiptd.service", "receiptd-audit.service", "receiptd-audit.timer"}
	dir := t.TempDir()
	bin := filepath.Join(dir, "receiptd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join("systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(u, ".service") && !bytes.Contains(b, []byte("ExecStart=/usr/local/bin/receiptd ")) {
			t.Errorf("%s does not start /usr/local/bin/receiptd", u)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/receiptd"), []byte(bin))
		if err := os.WriteFile(filepath.Join(dir, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"verify", "--man=no", "--generators=no"}
	for _, u := range units {
		args = append(args, "./"+u)
	}
	out, err := run(t, dir, analyze, args...)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = run(t, dir, analyze, "security", "--offline=true", "--man=no", "./receiptd.service")
	if err != nil && strings.Contains(out, "unrecognized option") {
		t.Skipf("this systemd-analyze has no offline security check: %s", out)
	}
	m := regexp.MustCompile(`Overall exposure level for receiptd\.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: no exposure level: %v\n%s", err, out)
	}
	level, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exposure level of receiptd.service: %.1f (of 10)", level)
	if level >= 2 {
		t.Errorf("receiptd.service's exposure level is %.1f; keep it below 2", level)
	}
}
