#!/usr/bin/env bash
# checkgen.sh: fail when the committed gen/ is not what `go tool buf generate`
# makes from proto/ (a proto, buf.gen.yaml, an API YAML or a pinned plugin
# version changed without regenerating). CI runs it; so can you.
#
# It lints the protos, regenerates into a temporary directory with the same
# template and plugins (buf's --output prefixes every out: directory), and
# diffs that against gen/. The working tree is never written to.
#
# Usage: scripts/checkgen.sh        (from anywhere in the repository)
# Fix:   go tool buf generate       (from the repository root), then commit gen/
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" # plugin options (grpc_api_configuration=...) are relative to the root

tmp="$(mktemp -d "${TMPDIR:-/tmp}/receiptd-checkgen.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

if ! go tool buf lint; then
	echo "checkgen: buf lint failed on proto/ (see above)" >&2
	exit 1
fi

if ! go tool buf generate --template buf.gen.yaml --output "$tmp"; then
	echo "checkgen: buf generate failed (see above)" >&2
	exit 1
fi

# gen/openapi.go is the one hand-written file in gen/ (it embeds the OpenAPI
# document); buf does not make it, so it is not part of the comparison.
cp gen/openapi.go "$tmp/gen/openapi.go"

if ! diff -ruN gen "$tmp/gen" >"$tmp/gen.diff"; then
	echo "checkgen: gen/ is stale: it differs from what buf generates from proto/." >&2
	echo "checkgen: run 'go tool buf generate' at the repository root and commit gen/." >&2
	echo "checkgen: the difference (committed -> generated):" >&2
	head -n 200 "$tmp/gen.diff" >&2
	lines="$(wc -l <"$tmp/gen.diff")"
	if [ "$lines" -gt 200 ]; then
		echo "checkgen: ... ($lines lines in all)" >&2
	fi
	exit 1
fi
echo "checkgen: gen/ is up to date"
