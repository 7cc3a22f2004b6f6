package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
)

// addPprofFlag registers the opt-in --pprof-addr flag on fs and returns the
// function that starts the profiling server once the flags are parsed. Off
// by default: the profiles expose internals and cost CPU when taken, so
// they are served on their own listener (bind it to loopback), never on the
// public HTTP port.
func addPprofFlag(fs *flag.FlagSet) func(*slog.Logger) error {
	addr := fs.String("pprof-addr", "", "if set, serve net/http/pprof on this address (e.g. 127.0.0.1:6060); off by default")
	return func(logger *slog.Logger) error {
		if *addr == "" {
			return nil
		}
		lis, err := net.Listen("tcp", *addr)
		if err != nil {
			return fmt.Errorf("pprof listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		logger.Warn("pprof listening", "addr", lis.Addr().String())
		go func() { _ = http.Serve(lis, mux) }() // lives as long as the process
		return nil
	}
}
