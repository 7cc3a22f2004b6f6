package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// selfCPUSeconds is this process's user+system CPU time (the load generator).
func selfCPUSeconds() float64 { return procCPUSeconds(os.Getpid()) }

// cpuUse is the CPU (in cores) a server and the generator used over a
// phase, and how busy the whole machine was meanwhile (kernel work such as
// loopback networking and disk flushes, and any other process, included).
type cpuUse struct{ server, generator, machine float64 }

// machineBusy returns the busy and total jiffies of all CPUs so far.
func machineBusy() (busy, total float64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		total += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy, total
}

// meter measures a phase's CPU: the server process's, the generator's and
// the machine's.
type meter struct {
	srv             *child
	start           time.Time
	srv0, self0, m0 float64
}

func startMeter(srv *child) meter {
	m, _ := machineBusy()
	return meter{srv: srv, start: time.Now(), srv0: srv.cpuSeconds(), self0: selfCPUSeconds(), m0: m}
}

func (m meter) stop() cpuUse {
	d := time.Since(m.start).Seconds()
	busy, _ := machineBusy()
	return cpuUse{server: (m.srv.cpuSeconds() - m.srv0) / d, generator: (selfCPUSeconds() - m.self0) / d, machine: (busy - m.m0) / 100 / d}
}

func cores() int { return runtime.NumCPU() }
