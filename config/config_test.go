package config

import (
	"strings"
	"testing"
	"time"
)

// TestServerLimitsConfig: the limits of the listeners and the gRPC server
// get their defaults, and the config refuses values that cannot work.
func TestServerLimitsConfig(t *testing.T) {
	cfg, err := loadConfig(t, "sources:\n  - {name: reewild, kind: reewild, secrets: [x]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Query.MaxBodyBytes != 64<<10 || cfg.GRPC.MaxRecvMsgBytes != 64<<10 || cfg.GRPC.MaxSendMsgBytes != 16<<20 {
		t.Errorf("defaults: query %+v grpc %+v", cfg.Query, cfg.GRPC)
	}
	wantHTTP := HTTPConfig{MaxConnections: 1024, ReadHeaderTimeout: Duration(10 * time.Second), ReadTimeout: Duration(30 * time.Second),
		WriteTimeout: Duration(time.Minute), IdleTimeout: Duration(2 * time.Minute), MaxHeaderBytes: 64 << 10, MaxConcurrentStreams: 100}
	if cfg.HTTP != wantHTTP {
		t.Errorf("http defaults %+v, want %+v", cfg.HTTP, wantHTTP)
	}
	g := cfg.GRPC
	if g.MaxConnections != 256 || g.MaxConcurrentStreams != 100 || g.HandshakeTimeout != Duration(10*time.Second) ||
		g.MaxConnectionIdle != Duration(5*time.Minute) || g.MaxConnectionAge != Duration(2*time.Hour) || g.MaxConnectionAgeGrace != Duration(time.Minute) ||
		g.KeepaliveTime != Duration(2*time.Minute) || g.KeepaliveTimeout != Duration(20*time.Second) || g.MinPingInterval != Duration(time.Minute) || g.PermitPingWithoutCalls {
		t.Errorf("grpc defaults %+v", g)
	}
	// A larger ingest body limit raises the default answer limit with it.
	cfg, err = loadConfig(t, "ingest: {max_body_bytes: 20971520}\n")
	if err != nil || int64(cfg.GRPC.MaxSendMsgBytes) < cfg.MinSendMsgBytes() {
		t.Errorf("ingest 20 MiB: grpc %+v, %v", cfg.GRPC, err)
	}
	for _, c := range []struct{ name, yaml, want string }{
		{"negative REST body limit", "query: {max_body_bytes: -1}", "query: max_body_bytes"},
		{"tiny gRPC request limit", "grpc: {max_recv_msg_bytes: 10}", "grpc: max_recv_msg_bytes"},
		{"answer limit below a quarantine page", "grpc: {max_send_msg_bytes: 4194304}", "grpc: max_send_msg_bytes"},
		{"no HTTP connections", "http: {max_connections: -1}", "http: max_connections"},
		{"no gRPC streams", "grpc: {max_concurrent_streams: -5}", "grpc: max_concurrent_streams"},
		{"tiny header limit", "http: {max_header_bytes: 100}", "http: max_header_bytes"},
		{"negative duration", "grpc: {max_connection_idle: -1s}", "negative duration"},
		{"unknown field", "grpc: {max_streams: 5}", "max_streams"},
		{"cert_file without key_file", "tls: {cert_file: x}", "both cert_file and key_file"},
		{"answer limit below a page at a raised ingest limit", "ingest: {max_body_bytes: 20971520}\ngrpc: {max_send_msg_bytes: 16777216}", "grpc: max_send_msg_bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := loadConfig(t, c.yaml+"\n"); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to say %q", err, c.want)
			}
		})
	}
}
