#!/usr/bin/env bash
# Keeps go.work honest: the modules it uses must be exactly the go.mod files
# on disk, and every service module must build on its own (its replace
# directives, not the workspace, find pkg/).
set -euo pipefail
cd "$(dirname "$0")/.."

on_disk=$(find . -name go.mod -not -path './.git/*' -not -path './tmp/*' -not -path './bin/*' -printf '%h\n' | sed 's|^\./||' | sort)
in_work=$(go work edit -json | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p' | sed 's|^\./||' | sort)
if [ "$on_disk" != "$in_work" ]; then
	echo "go.work and the modules on disk differ:" >&2
	diff <(echo "$in_work") <(echo "$on_disk") | sed 's/^</  in go.work only:/; s/^>/  on disk only:/' | grep only >&2
	echo "fix: go work use -r ." >&2
	exit 1
fi
echo "go.work lists the $(echo "$on_disk" | wc -l) modules on disk"

if [ "${1:-}" = "--standalone" ]; then
	for dir in $on_disk; do
		case $dir in services/*) ;; *) continue ;; esac
		echo "building $dir without the workspace"
		(cd "$dir" && GOWORK=off go build ./...)
	done
fi
