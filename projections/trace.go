package projections

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

// A rebuild's phases, traced to standard error when the environment sets
// RECEIPTD_TRACE_REBUILD (a debugging aid, not an interface): each line
// gives a phase's wall time, the process's CPU time (user+system) in it,
// and the collections it took, so the phases on the critical path (wall)
// and how many cores each keeps busy (cpu/wall) can be told apart.

var traceRebuild = os.Getenv("RECEIPTD_TRACE_REBUILD") != ""

// phaseTimer times one phase; the zero value is off.
type phaseTimer struct {
	on    bool
	wall  time.Time
	cpu   time.Duration
	numGC uint32
}

var traceMu sync.Mutex

func startPhase() phaseTimer {
	if !traceRebuild {
		return phaseTimer{}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return phaseTimer{on: true, wall: time.Now(), cpu: processCPU(), numGC: ms.NumGC}
}

// end writes the phase's line and starts the next phase.
func (t *phaseTimer) end(name string) {
	if !t.on {
		return
	}
	now, cpu := time.Now(), processCPU()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	wall := now.Sub(t.wall)
	traceMu.Lock()
	fmt.Fprintf(os.Stderr, "rebuild-trace %-28s wall %7.1f ms  cpu %7.1f ms (%.2f cores)  gc %3d  heap %4d MiB\n",
		name, ms1(wall), ms1(cpu-t.cpu), float64(cpu-t.cpu)/float64(max(wall, 1)), ms.NumGC-t.numGC, ms.HeapAlloc>>20)
	if dir := os.Getenv("RECEIPTD_TRACE_HEAPDIR"); dir != "" {
		// A heap profile at the end of the phase (after a collection).
		if f, err := os.Create(filepath.Join(dir, strings.NewReplacer(" ", "", ":", "-", "+", "-").Replace(name)+".pprof")); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	traceMu.Unlock()
	t.wall, t.cpu, t.numGC = now, cpu, ms.NumGC
}

func ms1(d time.Duration) float64 { return float64(d) / 1e6 }
