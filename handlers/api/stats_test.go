package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/projections"
)

func TestGetStats(t *testing.T) {
	env := newTestEnv(t)
	day := projections.PipelineStats{
		Completed: 3, Failed: 1, FailedByStage: map[string]int64{"FAILED_VALIDATE": 1}, Points: dec("1656.54"), CO2e: dec("3.217"),
		TimeToTerminal: projections.DurationStats{Count: 3, ProviderTimed: 2, Missing: 1, P50: 90 * time.Second, P90: 5 * time.Minute, P99: 5*time.Minute + 300*time.Millisecond},
	}
	env.stats.stats = projections.Stats{
		From: "2026-01-01", To: "2026-01-31", Position: eventstoreAt(42),
		Sources: []projections.SourceStats{{Source: "reewild", InProgress: 7, Total: day, Days: []projections.DayStats{{Day: "2026-01-05", PipelineStats: day}}}},
	}
	ctx := context.Background()
	st, err := env.statsC.GetStats(ctx, &receiptdv1.GetStatsRequest{Source: "reewild", From: "2026-01-01", To: "2026-01-31"})
	if err != nil {
		t.Fatal(err)
	}
	src := st.GetSources()[0]
	if st.GetPosition() != 42 || src.GetInProgress() != 7 || src.GetTotal().GetFailedByStage()["FAILED_VALIDATE"] != 1 || src.GetDays()[0].GetDay() != "2026-01-05" ||
		src.GetTotal().GetTimeToTerminal().GetP50().AsDuration() != 90*time.Second {
		t.Errorf("stats %v", st)
	}
	if q := env.stats.queries[0]; q != (projections.StatsQuery{Source: "reewild", From: "2026-01-01", To: "2026-01-31"}) {
		t.Errorf("query %+v", q)
	}

	code, body := get(t, env, "/v1/stats?from=2026-01-01", nil)
	if code != http.StatusOK {
		t.Fatalf("REST: %d %v", code, body)
	}
	wantKeys(t, "Stats", body, "from", "to", "sources", "position")
	total := body["sources"].([]any)[0].(map[string]any)["total"].(map[string]any)
	wantFields(t, "PipelineStats", total, map[string]any{
		"completed": 3, "failed": 1, "failedByStage": map[string]any{"FAILED_VALIDATE": 1}, "points": "1656.54", "totalCo2e": "3.217",
		"timeToTerminal": map[string]any{"count": 3, "providerTimed": 2, "missing": 1, "p50": "90s", "p90": "300s", "p99": "300.300s"},
	})
	if q := env.stats.queries[1]; q.Source != "" || q.From != "2026-01-01" {
		t.Errorf("REST query %+v: an empty source means every source", q)
	}

	for _, tc := range []struct {
		name string
		req  *receiptdv1.GetStatsRequest
		code codes.Code
	}{
		{"unknown source", &receiptdv1.GetStatsRequest{Source: "nosuch"}, codes.NotFound},
		{"bad from", &receiptdv1.GetStatsRequest{From: "01/02/2026"}, codes.InvalidArgument},
		{"bad to", &receiptdv1.GetStatsRequest{To: "2026-02-30"}, codes.InvalidArgument},
	} {
		if _, err := env.statsC.GetStats(ctx, tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	env.stats.err = projections.ErrBadQuery
	if code, _ := get(t, env, "/v1/stats?from=2020-01-01&to=2026-01-01", nil); code != http.StatusBadRequest {
		t.Errorf("a range the read models refuse: %d", code)
	}
}
