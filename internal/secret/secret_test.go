package secret_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/internal/secret"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	t.Setenv("RECEIPTD_TEST_SECRET", "from-env")

	tests := []struct {
		ref, want string
		err       error
	}{
		{"literal", "literal", nil},
		{"env:RECEIPTD_TEST_SECRET", "from-env", nil},
		{"env:RECEIPTD_TEST_UNSET_" + t.Name(), "", secret.ErrEmpty},
		{"file:" + file, "from-file", nil},
		{"file:" + empty, "", secret.ErrEmpty},
		{"file:" + filepath.Join(dir, "missing"), "", os.ErrNotExist},
		{"", "", secret.ErrEmpty},
	}
	for _, tt := range tests {
		got, err := secret.Resolve(tt.ref)
		if string(got) != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("Resolve(%q) = %q, %v; want %q, %v", tt.ref, got, err, tt.want, tt.err)
		}
		if err != nil && strings.Contains(err.Error(), "from-") {
			t.Errorf("error %q contains a secret value", err)
		}
	}
	if _, err := secret.ResolveAll([]string{"a", "env:RECEIPTD_TEST_UNSET_X"}); err == nil || !strings.HasPrefix(err.Error(), "[1]") {
		t.Errorf("ResolveAll error = %v, want it to name the index", err)
	}
}
