#!/usr/bin/env bash
# Builds the servers the tests run into .tools/bin: FerretDB (the MongoDB wire protocol on SQLite) and
# pubsub-emulator (Google's pstest fake, scripts/pubsub-emulator). Skips what is already built; silent
# on success, prints the build log on failure. Needs Go and the Go module proxy on a first run only.
# TOOLS_BIN builds into another directory (the tests read the same variable), so that a changed emulator
# can be tried without replacing the one that other checkouts sharing .tools run.
set -euo pipefail

FERRETDB_VERSION=v1.24.2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${TOOLS_BIN:-$root/.tools/bin}
log=$bin/../build-emulators.log
mkdir -p "$bin"
: >"$log"

fail() {
  echo "build-emulators: $1 failed; its log ($log):" >&2
  tail -n 40 "$log" >&2
  exit 1
}

ferretdb_current() {
  [[ -x $bin/ferretdb ]] && [[ $("$bin/ferretdb" --version 2>/dev/null | head -n 1) == "version: $FERRETDB_VERSION" ]] &&
    [[ $(cat "$bin/ferretdb.patch" 2>/dev/null) == "$FERRETDB_PATCH" ]]
}

# scripts/ferretdb-sqlite.patch changes how FerretDB 1.24's SQLite backend finds documents by _id; results
# are the same, only the query plans change (FerretDB issues #2340 and #3235):
# - it creates the unique _id index on `_ferretdb_sjson->"_id"` but looked rows up by
#   `_ferretdb_sjson->'$._id'`; SQLite matches index expressions as written, so every {_id: …} query and
#   update scanned the whole table. The lookup is now spelt as the index is.
# - it used the index only for a filter of _id alone; a filter of _id and more (the connector's guarded
#   replace, {_id, lastEventId: {$lt: …}}) scanned too. The _id condition now goes to SQLite whatever else
#   the filter holds; FerretDB applies the whole filter to what comes back, as it always does.
# - a lookup of many documents by key, {_id: {$in: [...]}} (MongoDB's idiom, which the connector uses), scanned
#   the table; the ids now go to SQLite as `… IN (…)` on the same index.
# The patch's checksum, stamped beside the binary, lets the skip check tell a build of this patch from others.
FERRETDB_PATCH=$(sha256sum "$root/scripts/ferretdb-sqlite.patch" | cut -c1-16)

# `go install …/cmd/ferretdb@version` builds a binary that panics at start: FerretDB embeds its version
# from build/version/version.txt, which its release process generates and the module lacks, and the
# module cache is read-only (and -overlay refuses it). So build from a copy with that file written.
build_ferretdb() {
  local tmp dir
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  dir=$(cd "$tmp" && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -n $dir ]] || return 1
  cp -R "$dir" "$tmp/src"
  chmod -R u+w "$tmp/src"
  echo "$FERRETDB_VERSION" >"$tmp/src/build/version/version.txt"
  (cd "$tmp/src" && git apply "$root/scripts/ferretdb-sqlite.patch")
  (cd "$tmp/src" && GOFLAGS=-mod=mod go build -trimpath -o "$bin/ferretdb" ./cmd/ferretdb)
  echo "$FERRETDB_PATCH" >"$bin/ferretdb.patch"
}

# The emulator's sources' checksum, stamped beside its binary as the patch's is beside FerretDB: a checkout
# whose sources differ from the build's (older or newer, whatever their times) rebuilds it.
PUBSUB_SOURCES=$(cd "$root/scripts/pubsub-emulator" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)

pubsub_current() {
  [[ -x $bin/pubsub-emulator ]] && [[ $(cat "$bin/pubsub-emulator.sources" 2>/dev/null) == "$PUBSUB_SOURCES" ]]
}

build_pubsub() {
  (cd "$root/scripts/pubsub-emulator" && go build -trimpath -o "$bin/pubsub-emulator" .)
  echo "$PUBSUB_SOURCES" >"$bin/pubsub-emulator.sources"
}

command -v go >/dev/null || { echo "build-emulators: go is not installed" >&2; exit 1; }

if ! ferretdb_current; then
  build_ferretdb >>"$log" 2>&1 || fail "building ferretdb $FERRETDB_VERSION"
  ferretdb_current || fail "ferretdb --version after the build"
fi
if ! pubsub_current; then
  build_pubsub >>"$log" 2>&1 || fail "building pubsub-emulator"
fi
