// Command receiptctl is receiptd's command-line client: it reads receipts and
// balances over gRPC, and signs and sends test webhooks the way a provider
// does (the seed's "Send Test Event").
//
//	receiptctl [--addr HOST:PORT] receipt get RECEIPT_ID [--source S] [--min-position N]
//	receiptctl [--addr HOST:PORT] receipts list USER_ID [--source S] [--page-size N] [--page-token T]
//	receiptctl [--addr HOST:PORT] balance get USER_ID [--source S] [--min-position N]
//	receiptctl send --source NAME --secret SECRET [--kind reewild] [--url URL] FILE
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/internal/secret"
)

const usage = `receiptctl: receiptd's command-line client.

Usage:
  receiptctl [--addr HOST:PORT] receipt get RECEIPT_ID [--source S] [--min-position N]
  receiptctl [--addr HOST:PORT] receipts list USER_ID [--source S] [--page-size N] [--page-token T]
  receiptctl [--addr HOST:PORT] balance get USER_ID [--source S] [--min-position N]
  receiptctl send --source NAME --secret SECRET [--kind reewild] [--url URL] FILE

--addr is receiptd's gRPC address (default 127.0.0.1:9090). A secret is a
literal, env:NAME or file:PATH. send signs FILE with the provider's scheme and
POSTs it to URL/webhooks/NAME (URL default http://127.0.0.1:8080), printing
receiptd's answer; it exits 1 unless the answer is 200.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks a command line that could not be understood.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("receiptctl", flag.ContinueOnError)
	global.SetOutput(stderr)
	global.Usage = func() { fmt.Fprint(stderr, usage) }
	addr := global.String("addr", "127.0.0.1:9090", "receiptd gRPC address")
	timeout := global.Duration("timeout", 10*time.Second, "deadline for the whole command")
	if err := global.Parse(args); err != nil {
		return 2
	}
	rest := global.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	var err error
	switch cmd := strings.Join(rest[:min(2, len(rest))], " "); {
	case cmd == "receipt get":
		err = query(ctx, *addr, stdout, rest[2:], "receipt get RECEIPT_ID", func(c receiptdv1.ReceiptServiceClient, id, source string, minPos uint64, _ int32, _ string) (proto.Message, error) {
			return c.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: id, Source: source, MinPosition: minPos})
		})
	case cmd == "receipts list":
		err = query(ctx, *addr, stdout, rest[2:], "receipts list USER_ID", func(c receiptdv1.ReceiptServiceClient, id, source string, minPos uint64, pageSize int32, token string) (proto.Message, error) {
			return c.ListUserReceipts(ctx, &receiptdv1.ListUserReceiptsRequest{UserId: id, Source: source, MinPosition: minPos, PageSize: pageSize, PageToken: token})
		})
	case cmd == "balance get":
		err = query(ctx, *addr, stdout, rest[2:], "balance get USER_ID", func(c receiptdv1.ReceiptServiceClient, id, source string, minPos uint64, _ int32, _ string) (proto.Message, error) {
			return c.GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: id, Source: source, MinPosition: minPos})
		})
	case rest[0] == "send":
		err = send(ctx, stdout, rest[1:])
	case rest[0] == "help" || rest[0] == "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, strings.Join(rest, " "))
	}
	switch {
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "receiptctl: %v\n\n%s", err, usage)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "receiptctl: %v\n", err)
		return 1
	}
	return 0
}

type queryFunc func(c receiptdv1.ReceiptServiceClient, id, source string, minPos uint64, pageSize int32, pageToken string) (proto.Message, error)

// query parses a query subcommand's flags, calls it over gRPC and prints the
// answer as JSON, with the same field names as the REST API.
func query(ctx context.Context, addr string, stdout io.Writer, args []string, what string, call queryFunc) error {
	fs := flag.NewFlagSet(what, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	source := fs.String("source", "", "source name (default: the server's first source)")
	minPos := fs.Uint64("min-position", 0, "wait until the server has applied this log position")
	pageSize := fs.Int("page-size", 0, "receipts per page (list)")
	pageToken := fs.String("page-token", "", "next page token from a previous list")
	id, err := parseWithArg(fs, args)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errUsage, what, err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	msg, err := call(receiptdv1.NewReceiptServiceClient(conn), id, *source, *minPos, int32(*pageSize), *pageToken)
	if err != nil {
		return err
	}
	out, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(msg)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// parseWithArg parses flags around one positional argument, which may come
// before or after them.
func parseWithArg(fs *flag.FlagSet, args []string) (string, error) {
	arg := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		arg, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if arg == "" && fs.NArg() == 1 {
		return fs.Arg(0), nil
	}
	if arg == "" || fs.NArg() > 0 {
		return "", errors.New("want exactly one argument")
	}
	return arg, nil
}

// send signs a payload file as the provider would and POSTs it.
func send(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	source := fs.String("source", "", "source name, the {source} of /webhooks/{source}")
	kind := fs.String("kind", "reewild", "provider scheme to sign with")
	secretRef := fs.String("secret", "", "webhook secret: literal, env:NAME or file:PATH")
	url := fs.String("url", "http://127.0.0.1:8080", "receiptd HTTP base URL")
	file, err := parseWithArg(fs, args)
	if err != nil {
		return fmt.Errorf("%w: send FILE: %v", errUsage, err)
	}
	if *source == "" || *secretRef == "" {
		return fmt.Errorf("%w: send needs --source, --secret and one FILE", errUsage)
	}
	body, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	key, err := secret.Resolve(*secretRef)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*url, "/")+"/webhooks/"+*source, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	switch *kind {
	case "reewild":
		req.Header.Set("X-Reewild-Signature", reewild.Sign(key, body))
	default:
		return fmt.Errorf("%w: send: no signer for kind %q", errUsage, *kind)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(stdout, "%s %s", resp.Status, answer)
	if pos := resp.Header.Get("Receiptd-Position"); pos != "" {
		fmt.Fprintf(stdout, "position %s\n", pos)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("receiptd answered %s", resp.Status)
	}
	return nil
}
