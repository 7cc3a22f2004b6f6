package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// benchSecret signs every delivery the bench sends to its own receiptd.
const benchSecret = "bench-secret-not-for-production"

// buildReceiptd builds cmd/receiptd into dir and returns the binary's path.
func buildReceiptd(dir string) (string, error) {
	bin := filepath.Join(dir, "receiptd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/receiptd/receiptd/cmd/receiptd")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build cmd/receiptd: %w", err)
	}
	return bin, nil
}

// treeCommit names the commit of the source tree the bench runs in, and
// whether it has uncommitted changes ("" outside a git checkout).
func treeCommit() string {
	rev, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	s := "commit " + strings.TrimSpace(string(rev))
	if dirty, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(dirty) > 0 {
		s += " with uncommitted changes"
	}
	return s
}

// describe says which commit a binary was built from, when the Go
// toolchain stamped it (go build in a git checkout does, unless
// -buildvcs=false).
func describe(path string) string {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return "not a Go binary?"
	}
	rev, modified := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(len(s.Value), 7)]
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	switch {
	case rev == "":
		return info.GoVersion
	case modified:
		return "commit " + rev + " with uncommitted changes, " + info.GoVersion
	}
	return "commit " + rev + ", " + info.GoVersion
}

// child is a server process the bench started: receiptd, or the reference
// handler (this binary re-executed).
type child struct {
	cmd       *exec.Cmd
	httpAddr  string
	grpcAddr  string
	pprofAddr string
	started   time.Time
	exited    chan struct{}

	mu   sync.Mutex
	tail []string // the last log lines, for errors
}

// startChild runs cmd and waits for its JSON "listening" log line on
// stderr, which names the addresses it bound (receiptd's format).
func startChild(cmd *exec.Cmd) (*child, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.tail = append(c.tail, line)
			if len(c.tail) > 50 {
				c.tail = c.tail[len(c.tail)-50:]
			}
			c.mu.Unlock()
			var entry struct {
				Msg   string `json:"msg"`
				HTTP  string `json:"http"`
				GRPC  string `json:"grpc"`
				Addr  string `json:"addr"`
				PProf string `json:"pprof"`
			}
			if json.Unmarshal([]byte(line), &entry) != nil {
				continue
			}
			if entry.Msg == "pprof listening" {
				c.mu.Lock()
				c.pprofAddr = entry.Addr
				c.mu.Unlock()
			}
			if !signalled && entry.Msg == "listening" {
				c.httpAddr, c.grpcAddr = entry.HTTP, entry.GRPC
				signalled = true
				close(ready)
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(c.exited) }()
	select {
	case <-ready:
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("%s exited before listening:\n%s", cmd.Path, c.logTail())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not listen within 60s:\n%s", cmd.Path, c.logTail())
	}
}

func (c *child) logTail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.tail, "\n")
}

func (c *child) pprof() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pprofAddr
}

// stop sends SIGTERM and waits for the exit (SIGKILL after a minute).
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return errors.New("did not stop within a minute of SIGTERM; killed")
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("exited %d:\n%s", code, c.logTail())
	}
	return nil
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// cpuSeconds returns the user+system CPU time the child has used so far.
func (c *child) cpuSeconds() float64 { return procCPUSeconds(c.cmd.Process.Pid) }

// procCPUSeconds reads utime+stime of a process from /proc (0 elsewhere).
func procCPUSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields follow the last ')'.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// memStatus is a process's resident memory as ps and a container limit see
// it, from /proc/PID/status: VmRSS, split into anonymous (heap, stacks) and
// file-backed (mapped files, such as bbolt's mmap: page cache the kernel
// can reclaim), and the peak VmRSS so far (VmHWM).
type memStatus struct{ rss, anon, file, peak float64 }

func (c *child) memory() memStatus { return procMemory(c.cmd.Process.Pid) }

func procMemory(pid int) memStatus {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}
	}
	var m memStatus
	for _, l := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		var kb float64
		fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
		switch k {
		case "VmRSS":
			m.rss = kb * 1024
		case "RssAnon":
			m.anon = kb * 1024
		case "RssFile":
			m.file = kb * 1024
		case "VmHWM":
			m.peak = kb * 1024
		}
	}
	return m
}

// receiptdBin is a receiptd binary under test.
type receiptdBin struct {
	name string // "old" (the -baseline) or "new", in the report
	path string
	desc string // where it comes from, for the report
	// extra is YAML appended to the config the bench writes for it
	// (-memory-budget, -config-extra): given to the new binary only, as an
	// older one may reject a field it does not know.
	extra string
}

// writeConfig writes the config of a receiptd on dataDir: the embedded
// store, one Reewild source, and b's extra settings.
func writeConfig(b receiptdBin, dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", err
	}
	text := "store: {kind: embedded}\nsources:\n  - {name: reewild, kind: reewild, secrets: [\"env:BENCH_REEWILD_SECRET\"]}\n" + b.extra
	cfg := configPath(dataDir)
	return cfg, os.WriteFile(cfg, []byte(text), 0o600)
}

// command returns the exec.Cmd of `b.path args…` with the bench's secret
// in its environment.
func (b receiptdBin) command(args ...string) *exec.Cmd {
	cmd := exec.Command(b.path, args...)
	cmd.Env = append(os.Environ(), "BENCH_REEWILD_SECRET="+benchSecret)
	return cmd
}

// startReceiptd starts `b serve` on dataDir.
func startReceiptd(b receiptdBin, dataDir string, pprof bool) (*child, error) {
	cfg, err := writeConfig(b, dataDir)
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--config", cfg}
	if pprof {
		args = append(args, "--pprof-addr", "127.0.0.1:0")
	}
	return startChild(b.command(args...))
}

// metrics scrapes the named series (without labels) from a Prometheus text
// endpoint.
func metrics(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := strings.Cut(line, " ")
		if !ok || !want[name] {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// fetch GETs url into w (a pprof profile).
func fetch(ctx context.Context, url string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
