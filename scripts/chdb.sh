#!/usr/bin/env bash
# chdb.sh fetches libchdb (ClickHouse as a library, from the npm package
# @chdb/lib-linux-x64-gnu) into .cache/chdb and prints its path. Tests load
# it through $AIOPS_TEST_CHDB_LIB to check the schema's newer-server blocks
# and the SQL cookbook on a current ClickHouse, which cannot be installed as
# a server here. Idempotent; prints nothing and exits 1 when it cannot fetch.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${AIOPS_CHDB_VERSION:-26.5.3}"
dir="$root/.cache/chdb/$version"
lib="$dir/package/libchdb.so"

if [ -f "$lib" ]; then
	echo "$lib"
	exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
	echo "chdb.sh: npm not found; the current-ClickHouse checks will be skipped" >&2
	exit 1
fi
mkdir -p "$dir"
echo "chdb.sh: fetching @chdb/lib-linux-x64-gnu@$version (about 170 MB)" >&2
(cd "$dir" && npm pack --silent "@chdb/lib-linux-x64-gnu@$version" >pack.log 2>&1) || {
	echo "chdb.sh: npm pack failed (see $dir/pack.log)" >&2
	exit 1
}
tar -xzf "$dir"/*.tgz -C "$dir"
rm -f "$dir"/*.tgz
[ -f "$lib" ] || { echo "chdb.sh: no libchdb.so in the package" >&2; exit 1; }
echo "$lib"
