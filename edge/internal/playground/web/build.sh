#!/usr/bin/env bash
# Rebuilds the playground bundle (../dist, committed and embedded by the edge) when its
# inputs changed since the last build: the sources under src/, package.json,
# package-lock.json and build.mjs. Their digest is kept in ../dist/inputs.sha256, so a clean
# checkout builds with plain `go build` and needs no node. --force rebuilds anyway.
# Only the exact package versions of package-lock.json are installed (npm ci).
set -euo pipefail
cd "$(dirname "$0")"

digest() {
	# The same digest as inputsDigest in ../playground_test.go.
	{ printf '%s\n' package.json package-lock.json build.mjs; find src -type f; } |
		LC_ALL=C sort | while read -r f; do printf '%s  %s\n' "$(sha256sum <"$f" | cut -d' ' -f1)" "$f"; done |
		sha256sum | cut -d' ' -f1
}

want=$(digest)
if [[ "${1:-}" != "--force" && -f ../dist/inputs.sha256 && "$(cat ../dist/inputs.sha256)" == "$want" ]]; then
	echo "playground bundle is up to date"
	exit 0
fi
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
	echo "the playground's sources changed: rebuilding its bundle needs node and npm" >&2
	echo "  (on Debian, as root: apt-get install -y nodejs npm)" >&2
	exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
node build.mjs
echo "$want" >../dist/inputs.sha256
