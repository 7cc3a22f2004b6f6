package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadModelsAreEverythingButTheLog: whatever the read models are
// called (views.db today, a pebble directory perhaps later), deleting them
// keeps the log and only the log, and the sizes split the same way.
func TestReadModelsAreEverythingButTheLog(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("events.db", 1000)
	write("views.db", 300)
	write("views/000001.sst", 20)
	write("views/LOCK", 0)
	sizes, err := measureDataDir(dir, "events*")
	if err != nil {
		t.Fatal(err)
	}
	if sizes != (dirSizes{log: 1000, models: 320}) {
		t.Fatalf("sizes %+v, want log 1000, read models 320", sizes)
	}
	if err := removeReadModels(dir, "events*"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(entries); got != "events.db" {
		t.Fatalf("left %q, want only the log", got)
	}
	if err := removeReadModels(dir, "events*"); err == nil {
		t.Fatal("deleting read models that are not there: no error (a catch-up would time nothing)")
	}
	if _, _, err := dataFiles(dir, "log*,wal"); err == nil {
		t.Fatal("no entry matches -log-files: no error")
	}
	if !isLog("wal", "log*, wal") {
		t.Fatal("a comma-separated -log-files with spaces")
	}
}

func TestWriteConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	old, err := writeConfig(receiptdBin{name: "old"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(old)
	if strings.Contains(string(raw), "memory_budget") || filepath.Dir(old) == dir {
		t.Fatalf("config %s (%s): want it beside the data dir, without extras", old, raw)
	}
	cfg, err := writeConfig(receiptdBin{name: "new", extra: "memory_budget: 256MiB\n"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(cfg)
	if want := "memory_budget: 256MiB\n"; len(raw) < len(want) || string(raw[len(raw)-len(want):]) != want {
		t.Fatalf("config:\n%s\nwant it to end with %q", raw, want)
	}
}
