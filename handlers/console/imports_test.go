package console

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportsNoProvider: the console is a client of the webhook route; it
// signs test events through handlers/webhook/signer and imports no provider
// package (DESIGN.md, "The console never imports a provider package").
func TestImportsNoProvider(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	const webhook = "github.com/receiptd/receiptd/handlers/webhook"
	for _, path := range pkg.Imports {
		if (path == webhook || strings.HasPrefix(path, webhook+"/")) && path != webhook+"/signer" {
			t.Errorf("the console imports %s: it signs through %s/signer only", path, webhook)
		}
	}
}
