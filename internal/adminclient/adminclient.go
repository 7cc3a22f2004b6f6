package adminclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/receiptd/receiptd/internal/secret"
)

// Flags say which running receiptd to ask and how: its gRPC address, an
// API key holding the admin scope, and TLS.
type Flags struct {
	Server string
	APIKey string
	TLS    bool
	CAFile string
}

// Add registers --server, --api-key, --tls and --ca-file on fs.
func (a *Flags) Add(fs *flag.FlagSet) {
	fs.StringVar(&a.Server, "server", "", "gRPC address of a running receiptd to ask instead (online), e.g. 127.0.0.1:9090")
	fs.StringVar(&a.APIKey, "api-key", "", "with --server: an API key holding the admin scope (literal, env:NAME or file:PATH)")
	fs.BoolVar(&a.TLS, "tls", false, "with --server: connect over TLS, verifying the server's certificate against the system's roots")
	fs.StringVar(&a.CAFile, "ca-file", "", "with --server: connect over TLS, verifying the server's certificate against the PEM certificates in this file")
}

// Check refuses the flags that go with --server without it.
func (a *Flags) Check() error {
	if a.Server == "" && (a.APIKey != "" || a.TLS || a.CAFile != "") {
		return errors.New("--api-key, --tls and --ca-file go with --server")
	}
	return nil
}

// Dial connects to the running receiptd at f.Server, sending the API key,
// if any, with every call made with a context withAuth returns.
func (a *Flags) Dial() (conn *grpc.ClientConn, withAuth func(context.Context) context.Context, err error) {
	creds := insecure.NewCredentials()
	if a.TLS || a.CAFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if a.CAFile != "" {
			pem, err := os.ReadFile(a.CAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("--ca-file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", a.CAFile)
			}
		}
		creds = credentials.NewTLS(tc)
	}
	conn, err = grpc.NewClient(a.Server, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, nil, err
	}
	var auth string
	if a.APIKey != "" {
		key, err := secret.Resolve(a.APIKey)
		if err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("--api-key: %w", err)
		}
		auth = "Bearer " + string(key)
	}
	withAuth = func(ctx context.Context) context.Context {
		if auth == "" {
			return ctx
		}
		return metadata.AppendToOutgoingContext(ctx, "authorization", auth)
	}
	return conn, withAuth, nil
}
