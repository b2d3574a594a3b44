#!/usr/bin/env bash
# The supply-chain check: `cargo deny check advisories bans licenses sources` against deny.toml,
# with the RustSec advisory database taken from the offline snapshot, never from the network
# (our machines cannot reach it). deploy/test.sh runs this; it can also be run on its own.
#
#   1. find the snapshot: $MAILAPI_ADVISORY_DB_SNAPSHOT, else shared/advisory-db/
#      advisory-db.tar.gz in the directory above the repository (../shared: /work/shared for a
#      checkout in /work/<name>; not the repository's own shared/ crate), else in /work/shared
#      (a CI checkout elsewhere on one of our machines). Missing: fail; never skipped;
#   2. ask cargo-deny which directory under deny.toml's `db-path` it reads the database from,
#      and unpack the snapshot there afresh (so the result depends on the snapshot only);
#   3. `cargo fetch --locked`: cargo-deny --offline needs every crate's manifest, including
#      those of other platforms a build never downloads;
#   4. `cargo deny --frozen check ...` (--frozen: --offline, so no database fetch, and --locked).
#
# Usage: deploy/deny.sh   (needs cargo-deny: `cargo install cargo-deny --locked`)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

fail() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

if [[ -n ${MAILAPI_ADVISORY_DB_SNAPSHOT:-} ]]; then
    candidates=("$MAILAPI_ADVISORY_DB_SNAPSHOT")
else
    candidates=("$(dirname "$repo")/shared/advisory-db/advisory-db.tar.gz"
        /work/shared/advisory-db/advisory-db.tar.gz)
fi
snapshot=
for c in "${candidates[@]}"; do
    if [[ -f $c ]]; then
        snapshot=$c
        break
    fi
done
[[ -n $snapshot ]] || fail "advisory database snapshot not found; looked at: ${candidates[*]}
  It is the RustSec advisory-db as a tarball of a git repository (see
  shared/advisory-db/README.md beside the repository on the project machines). Put it there, or
  point MAILAPI_ADVISORY_DB_SNAPSHOT at it. The supply-chain check does not run without it,
  and does not pass without running."
cargo deny --version >/dev/null 2>&1 || fail "cargo-deny missing: cargo install cargo-deny --locked"

# cargo-deny names the directory after a hash of the database URL; its debug log says which.
# This first run may fail (no database yet, or crates not fetched): only the path matters.
db_dir=$(cargo deny --offline -L debug check advisories 2>&1 |
    sed -n "s/.*Opening advisory database at '\(.*\)'.*/\1/p" | head -n 1) || true
[[ -n $db_dir ]] || fail "could not learn the advisory database directory from cargo-deny's debug log"
case $db_dir in
/*) ;;
*) db_dir=$repo/$db_dir ;;
esac
[[ $db_dir == "$repo"/target/* ]] || fail "unexpected advisory database directory $db_dir (deny.toml db-path)"
rm -rf "$db_dir"
mkdir -p "$db_dir"
tar -xzf "$snapshot" -C "$db_dir" || fail "could not unpack $snapshot"
echo "advisory database: $(git -C "$db_dir" log -1 --format='%h %cs %s') (from $snapshot)"

cargo fetch --locked --quiet || fail "cargo fetch --locked failed"
cargo deny --frozen check --hide-inclusion-graph advisories bans licenses sources
