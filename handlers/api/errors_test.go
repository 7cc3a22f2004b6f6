package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/feed"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/privacy"
	"github.com/receiptd/receiptd/projections"
)

// sentinelPackages are the packages the API fronts, by directory: their
// errors reach toStatus.
var sentinelPackages = map[string]string{
	"eventstore":  "../../eventstore",
	"projections": "../../projections",
	"aggregate":   "../../aggregate",
	"webhook":     "../webhook",
	"privacy":     "../../privacy",
	"eventcodec":  "../../eventcodec",
	"feed":        "../../feed",
}

// wantCodes is the code each sentinel must get, by qualified name: every
// exported sentinel of sentinelPackages (TestStatusTableKnowsEverySentinel
// checks none is missing) and the context's errors.
var wantCodes = map[string]struct {
	err  error
	code codes.Code
}{
	"projections.ErrNotFound":          {projections.ErrNotFound, codes.NotFound},
	"projections.ErrBehind":            {projections.ErrBehind, codes.Unavailable},
	"projections.ErrBadPageToken":      {projections.ErrBadPageToken, codes.InvalidArgument},
	"projections.ErrBadQuery":          {projections.ErrBadQuery, codes.InvalidArgument},
	"projections.ErrUnknownProjection": {projections.ErrUnknownProjection, codes.InvalidArgument},
	"projections.ErrBusy":              {projections.ErrBusy, codes.Aborted},
	"projections.ErrAheadOfLog":        {projections.ErrAheadOfLog, codes.FailedPrecondition},
	"projections.ErrLocked":            {projections.ErrLocked, codes.Internal},
	"eventstore.ErrUnavailable":        {eventstore.ErrUnavailable, codes.Unavailable},
	"eventstore.ErrClosed":             {eventstore.ErrClosed, codes.Unavailable},
	"eventstore.ErrWrongRevision":      {eventstore.ErrWrongRevision, codes.Aborted},
	"eventstore.ErrInvalid":            {eventstore.ErrInvalid, codes.Internal},
	"eventstore.ErrStreamDeleted":      {eventstore.ErrStreamDeleted, codes.Internal},
	"aggregate.ErrBadEvent":            {aggregate.ErrBadEvent, codes.Internal},
	"aggregate.ErrBadStreamID":         {aggregate.ErrBadStreamID, codes.Internal},
	"aggregate.ErrUnknownEvent":        {aggregate.ErrUnknownEvent, codes.Internal},
	"aggregate.ErrUnnormalizable":      {aggregate.ErrUnnormalizable, codes.Internal},
	"aggregate.ErrConflict":            {aggregate.ErrConflict, codes.Internal},
	"webhook.ErrNotQuarantined":        {webhook.ErrNotQuarantined, codes.NotFound},
	"webhook.ErrUnauthenticated":       {webhook.ErrUnauthenticated, codes.Internal},
	"webhook.ErrNotReady":              {webhook.ErrNotReady, codes.Internal},
	"api.ErrBackupUnsupported":         {ErrBackupUnsupported, codes.FailedPrecondition},
	"api.ErrPrivacyNotConfigured":      {ErrPrivacyNotConfigured, codes.FailedPrecondition},
	"privacy.ErrBadSubject":            {privacy.ErrBadSubject, codes.InvalidArgument},
	"privacy.ErrClosed":                {privacy.ErrClosed, codes.Unavailable},
	"privacy.ErrForgotten":             {privacy.ErrForgotten, codes.Internal},
	"privacy.ErrUnknownKey":            {privacy.ErrUnknownKey, codes.Internal},
	"privacy.ErrNoKEK":                 {privacy.ErrNoKEK, codes.Internal},
	"privacy.ErrBadKEK":                {privacy.ErrBadKEK, codes.Internal},
	"privacy.ErrTampered":              {privacy.ErrTampered, codes.Internal},
	"eventcodec.ErrSealed":             {eventcodec.ErrSealed, codes.Internal},
	"feed.ErrBadEvent":                 {feed.ErrBadEvent, codes.Internal},
	"feed.ErrUnknownDestination":       {feed.ErrUnknownDestination, codes.NotFound},
	"feed.ErrClosed":                   {feed.ErrClosed, codes.Unavailable},
	"context.DeadlineExceeded":         {context.DeadlineExceeded, codes.DeadlineExceeded},
	"context.Canceled":                 {context.Canceled, codes.Canceled},
}

// TestStatusTableKnowsEverySentinel parses the packages the API fronts and
// fails for an exported sentinel (a package-level Err* variable of a type
// implementing error) that has no row in statusTable: a new sentinel must
// be given its status on purpose, Internal included.
func TestStatusTableKnowsEverySentinel(t *testing.T) {
	found := map[string]bool{}
	for pkg, dir := range sentinelPackages {
		for _, name := range exportedSentinels(t, dir) {
			found[pkg+"."+name] = true
			w, ok := wantCodes[pkg+"."+name]
			if !ok {
				t.Errorf("%s.%s: an exported sentinel the API may get, with no row in statusTable: give it one (and its code in wantCodes)", pkg, name)
				continue
			}
			row := false
			for _, r := range statusTable {
				row = row || r.err == w.err
			}
			if !row {
				t.Errorf("%s.%s: no row in statusTable", pkg, name)
			}
		}
	}
	for name := range wantCodes {
		pkg, _, _ := strings.Cut(name, ".")
		if _, fronted := sentinelPackages[pkg]; fronted && !found[name] {
			t.Errorf("wantCodes names %s, which its package no longer declares", name)
		}
	}
}

// exportedSentinels returns the exported package-level variables named
// Err… whose type implements error, declared in the non-test Go files of
// dir that this platform builds. The package is type-checked on its own:
// the standard library is imported, other imports are left empty (the
// errors that leaves are ignored), and a sentinel whose type cannot be told
// that way fails the test rather than go unseen.
func exportedSentinels(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		if ok, err := build.Default.MatchFile(dir, name); err != nil || !ok {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	conf := types.Config{Importer: stdOnlyImporter{importer.Default()}, Error: func(error) {}}
	pkg, _ := conf.Check(files[0].Name.Name, fset, files, nil)
	errorType := types.Universe.Lookup("error").Type().Underlying().(*types.Interface)
	var out []string
	for _, name := range pkg.Scope().Names() {
		v, ok := pkg.Scope().Lookup(name).(*types.Var)
		if !ok || !v.Exported() || !strings.HasPrefix(name, "Err") {
			continue
		}
		if !types.IsInterface(v.Type()) && v.Type() == types.Typ[types.Invalid] {
			t.Errorf("%s: cannot tell the type of %s", dir, name)
			continue
		}
		if types.Implements(v.Type(), errorType) {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		t.Errorf("%s: no sentinel found: is the parsing broken?", dir)
	}
	return out
}

// stdOnlyImporter imports the standard library and gives every other import
// an empty package.
type stdOnlyImporter struct{ std types.Importer }

func (i stdOnlyImporter) Import(path string) (*types.Package, error) {
	if first, _, _ := strings.Cut(path, "/"); !strings.Contains(first, ".") {
		return i.std.Import(path)
	}
	p := types.NewPackage(path, filepath.Base(path))
	p.MarkComplete()
	return p, nil
}

// TestToStatus walks every sentinel, bare and wrapped with %w (once and
// twice, as a Reader and a store would, and joined), through the status
// table.
func TestToStatus(t *testing.T) {
	// Every row of the table is tested.
	for _, row := range statusTable {
		found := false
		for _, w := range wantCodes {
			found = found || w.err == row.err
		}
		if !found {
			t.Errorf("statusTable maps %v, which wantCodes does not name", row.err)
		}
	}

	for _, tc := range wantCodes {
		for _, err := range []error{
			tc.err,
			fmt.Errorf("projections: read receipt-reewild.x: %w", tc.err),
			fmt.Errorf("api: GetReceipt: %w", fmt.Errorf("bolt /var/lib/secret.db: %w", tc.err)),
			errors.Join(errors.New("something else"), tc.err),
		} {
			t.Run(err.Error(), func(t *testing.T) {
				var logged bytes.Buffer
				got := toStatus(context.Background(), slog.New(slog.NewTextHandler(&logged, nil)), "GetReceipt", `receipt "x"`, err)
				st, ok := status.FromError(got)
				if !ok {
					t.Fatalf("toStatus returned %T, not a status", got)
				}
				if st.Code() != tc.code {
					t.Errorf("code = %v, want %v", st.Code(), tc.code)
				}
				if strings.Contains(st.Message(), "secret") {
					t.Errorf("message %q leaks the error's text", st.Message())
				}
				if tc.code == codes.Internal {
					if st.Message() != "GetReceipt: internal error" || !strings.Contains(logged.String(), "op=GetReceipt") {
						t.Errorf("internal: message %q, log %q; want no internals, and the error logged", st.Message(), logged.String())
					}
					return
				}
				if !strings.HasPrefix(st.Message(), `GetReceipt: receipt "x": `) {
					t.Errorf("message %q does not name the operation and subject", st.Message())
				}
				if logged.Len() != 0 {
					t.Errorf("a mapped error was logged: %s", logged.String())
				}
			})
		}
	}
}

func TestToStatusInternal(t *testing.T) {
	for _, err := range []error{
		errors.New("bolt: /var/lib/secret.db: input/output error"),
		fmt.Errorf("convert receipt: %w", errUnconvertible),
		// An error that only looks like a sentinel is not one.
		errors.New(projections.ErrNotFound.Error()),
	} {
		t.Run(err.Error(), func(t *testing.T) {
			var logged bytes.Buffer
			got := toStatus(context.Background(), slog.New(slog.NewTextHandler(&logged, nil)), "GetBalance", `user "u"`, err)
			st := status.Convert(got)
			if st.Code() != codes.Internal {
				t.Errorf("code = %v, want Internal", st.Code())
			}
			if st.Message() != "GetBalance: internal error" {
				t.Errorf("message = %q, want no internals", st.Message())
			}
			if !strings.Contains(logged.String(), err.Error()) || !strings.Contains(logged.String(), "op=GetBalance") {
				t.Errorf("log %q does not carry the operation and the error", logged.String())
			}
		})
	}
}
