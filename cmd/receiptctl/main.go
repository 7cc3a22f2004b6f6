// Command receiptctl is receiptd's command-line client: it reads receipts and
// balances over gRPC, and signs and sends test webhooks the way a provider
// does (the seed's "Send Test Event").
//
//	receiptctl [--addr HOST:PORT] [--token CRED] receipt get RECEIPT_ID [--source S] [--min-position N]
//	receiptctl [--addr HOST:PORT] [--token CRED] receipts list USER_ID [--source S] [--page-size N] [--page-token T]
//	receiptctl [--addr HOST:PORT] [--token CRED] balance get USER_ID [--source S] [--min-position N]
//	receiptctl [--addr HOST:PORT] [--token CRED] entity get KIND ENTITY_ID [--source S] [--min-position N]
//	receiptctl [--addr HOST:PORT] [--token CRED] entities list KIND [--source S] [--page-size N] [--page-token T]
//	receiptctl [--addr HOST:PORT] [--token CRED] feed tail [--after N] [--kind K]... [--source S]... [--checkpoints]
//	receiptctl send --source NAME --kind KIND --secret SECRET [--id ID] [--url URL] FILE
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
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/webhook/signer"
	"github.com/receiptd/receiptd/internal/secret"
)

const usage = `receiptctl: receiptd's command-line client.

Usage:
  receiptctl [--addr HOST:PORT] [--token CRED] receipt get RECEIPT_ID [--source S] [--min-position N]
  receiptctl [--addr HOST:PORT] [--token CRED] receipts list USER_ID [--source S] [--page-size N] [--page-token T]
  receiptctl [--addr HOST:PORT] [--token CRED] balance get USER_ID [--source S] [--min-position N]
  receiptctl [--addr HOST:PORT] [--token CRED] entity get KIND ENTITY_ID [--source S] [--min-position N]
  receiptctl [--addr HOST:PORT] [--token CRED] entities list KIND [--source S] [--page-size N] [--page-token T]
  receiptctl [--addr HOST:PORT] [--token CRED] feed tail [--after N] [--kind K]... [--source S]... [--checkpoints]
  receiptctl send --source NAME --kind KIND --secret SECRET [--id ID] [--url URL] FILE

--addr is receiptd's gRPC address (default 127.0.0.1:9090). --token is the
API key or user JWT sent as "authorization: Bearer" when the server has
access control configured. A secret or token is a literal, env:NAME or
file:PATH.

feed tail prints the feed (FeedService.Subscribe) after position N (default
0: from the start), one JSON object per line, until interrupted: only the
kinds and sources given (repeat the flag, or separate with commas), and
with --checkpoints the checkpoint messages too. The last position printed
is the --after to resume with. It needs scope feed (or admin); a user token
gets its own events. --timeout applies only if given.

send signs FILE as a provider of KIND would and POSTs it to
URL/webhooks/NAME (URL default http://127.0.0.1:8080), printing receiptd's
answer; it exits 1 unless the answer is 200. What --secret is, by kind:
  reewild   the webhook secret (X-Reewild-Signature, HMAC-SHA256 of the body)
  reusely   the webhook secret (Authorization, HMAC-SHA256 of the body's
            object_id and timestamp: the file's timestamp must be recent)
  standard  the whsec_ secret (webhook-id --id, default derived from the
            body; webhook-timestamp now)
  reap      an RSA private key, PEM (reap-signature, RSA-SHA512 of the body)
  reward, retm  the token (Authorization: Bearer)
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
	tokenRef := global.String("token", "", "API key or JWT for the query API: literal, env:NAME or file:PATH")
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

	var token string
	if *tokenRef != "" {
		t, err := secret.Resolve(*tokenRef)
		if err != nil {
			fmt.Fprintf(stderr, "receiptctl: --token: %v\n", err)
			return 2
		}
		token = strings.TrimSpace(string(t))
	}
	c := client{addr: *addr, token: token, stdout: stdout}

	var err error
	switch cmd := strings.Join(rest[:min(2, len(rest))], " "); {
	case cmd == "receipt get":
		err = c.query(ctx, rest[2:], "receipt get RECEIPT_ID", 1, func(ctx context.Context, rc receiptdv1.ReceiptServiceClient, q queryArgs) (proto.Message, error) {
			return rc.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: q.args[0], Source: q.source, MinPosition: q.minPos})
		})
	case cmd == "receipts list":
		err = c.query(ctx, rest[2:], "receipts list USER_ID", 1, func(ctx context.Context, rc receiptdv1.ReceiptServiceClient, q queryArgs) (proto.Message, error) {
			return rc.ListUserReceipts(ctx, &receiptdv1.ListUserReceiptsRequest{UserId: q.args[0], Source: q.source, MinPosition: q.minPos, PageSize: q.pageSize, PageToken: q.pageToken})
		})
	case cmd == "balance get":
		err = c.query(ctx, rest[2:], "balance get USER_ID", 1, func(ctx context.Context, rc receiptdv1.ReceiptServiceClient, q queryArgs) (proto.Message, error) {
			return rc.GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: q.args[0], Source: q.source, MinPosition: q.minPos})
		})
	case cmd == "entity get":
		err = c.query(ctx, rest[2:], "entity get KIND ENTITY_ID", 2, func(ctx context.Context, rc receiptdv1.ReceiptServiceClient, q queryArgs) (proto.Message, error) {
			return rc.GetEntity(ctx, &receiptdv1.GetEntityRequest{Kind: q.args[0], EntityId: q.args[1], Source: q.source, MinPosition: q.minPos})
		})
	case cmd == "entities list":
		err = c.query(ctx, rest[2:], "entities list KIND", 1, func(ctx context.Context, rc receiptdv1.ReceiptServiceClient, q queryArgs) (proto.Message, error) {
			return rc.ListEntities(ctx, &receiptdv1.ListEntitiesRequest{Kind: q.args[0], Source: q.source, MinPosition: q.minPos, PageSize: q.pageSize, PageToken: q.pageToken})
		})
	case cmd == "feed tail":
		explicit := false
		global.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "timeout" })
		tctx := context.Background()
		if explicit {
			tctx = ctx
		}
		err = c.feedTail(tctx, rest[2:])
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

// client holds what every query needs: where the server is and the
// credential to present.
type client struct {
	addr   string
	token  string
	stdout io.Writer
}

// queryArgs are a query subcommand's positional arguments and flags.
type queryArgs struct {
	args      []string
	source    string
	minPos    uint64
	pageSize  int32
	pageToken string
}

// A queryFunc makes one call with ctx, which carries the credential.
type queryFunc func(ctx context.Context, c receiptdv1.ReceiptServiceClient, q queryArgs) (proto.Message, error)

// query parses a query subcommand's flags and its nargs positional
// arguments, calls it over gRPC and prints the answer as JSON, with the same
// field names as the REST API.
func (c client) query(ctx context.Context, args []string, what string, nargs int, call queryFunc) error {
	fs := flag.NewFlagSet(what, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	source := fs.String("source", "", "source name (default: the server's first source)")
	minPos := fs.Uint64("min-position", 0, "wait until the server has applied this log position")
	pageSize := fs.Int("page-size", 0, "items per page (list)")
	pageToken := fs.String("page-token", "", "next page token from a previous list")
	pos, err := parseWithArgs(fs, args, nargs)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errUsage, what, err)
	}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	if c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	msg, err := call(ctx, receiptdv1.NewReceiptServiceClient(conn), queryArgs{args: pos, source: *source, minPos: *minPos, pageSize: int32(*pageSize), pageToken: *pageToken})
	if err != nil {
		return err
	}
	out, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(msg)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", out)
	return err
}

// parseWithArgs parses flags around n positional arguments, which may come
// before or after them.
func parseWithArgs(fs *flag.FlagSet, args []string, n int) ([]string, error) {
	var pos []string
	for len(args) > 0 && len(pos) < n && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	pos = append(pos, fs.Args()...)
	if len(pos) != n {
		return nil, fmt.Errorf("want exactly %d argument(s), got %d", n, len(pos))
	}
	return pos, nil
}

// send signs a payload file as the provider would and POSTs it.
func send(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	source := fs.String("source", "", "source name, the {source} of /webhooks/{source}")
	kind := fs.String("kind", "reewild", "provider scheme to sign with: reewild, reusely, standard, reap, reward or retm")
	secretRef := fs.String("secret", "", "webhook secret, token or private key: literal, env:NAME or file:PATH")
	msgID := fs.String("id", "", "standard: the webhook-id (default: derived from the body)")
	url := fs.String("url", "http://127.0.0.1:8080", "receiptd HTTP base URL")
	files, err := parseWithArgs(fs, args, 1)
	if err != nil {
		return fmt.Errorf("%w: send FILE: %v", errUsage, err)
	}
	file := files[0]
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
	if err := signRequest(req.Header, *kind, key, *msgID, body); err != nil {
		return err
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

// signRequest adds the authentication a provider of kind sends with body
// (signer.Sign, which the console's "Send test event" uses too).
func signRequest(h http.Header, kind string, key []byte, msgID string, body []byte) error {
	err := signer.Sign(h, body, signer.Request{Kind: kind, Key: key, MessageID: msgID, Now: time.Now()})
	if errors.Is(err, signer.ErrNoSigner) {
		return fmt.Errorf("%w: send: no signer for kind %q", errUsage, kind)
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// feedTail prints the feed after --after until ctx ends or the server
// ends the subscription.
func (c client) feedTail(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("feed tail", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	after := fs.Uint64("after", 0, "the feed position to start after")
	var kinds, sources listFlag
	fs.Var(&kinds, "kind", "an event kind to print (repeatable)")
	fs.Var(&sources, "source", "a source to print the events of (repeatable)")
	checkpoints := fs.Bool("checkpoints", false, "print checkpoint messages too")
	if _, err := parseWithArgs(fs, args, 0); err != nil {
		return fmt.Errorf("%w: feed tail: %v", errUsage, err)
	}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	if c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	stream, err := receiptdv1.NewFeedServiceClient(conn).Subscribe(ctx, &receiptdv1.SubscribeRequest{AfterPosition: *after, Kinds: kinds, Sources: sources})
	if err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && ctx.Err() != nil:
			return nil // interrupted
		case err != nil:
			return err
		}
		if m.GetKind() == "checkpoint" && !*checkpoints {
			continue
		}
		out, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(c.stdout, "%s\n", out); err != nil {
			return err
		}
	}
}
