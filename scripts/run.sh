#!/usr/bin/env bash
# run.sh starts the pipeline on this machine: `aiops run` with its embedded
# NATS, and a local ClickHouse in ./data/clickhouse unless AIOPS_STORE__DSN
# names one. Stop it with Ctrl-C; the ClickHouse server is stopped with it.
# Extra arguments go to `aiops run` (e.g. -config pipelines/default.yaml).
# The local ClickHouse's default user has the password in
# data/clickhouse-password (generated on the first start, mode 0600), which
# aiops run reads through AIOPS_STORE__PASSWORD_FILE.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

started_clickhouse=0
if [ -z "${AIOPS_STORE__DSN:-}" ]; then
	mkdir -p data/clickhouse
	password_file="$root/data/clickhouse-password"
	addr="$(AIOPS_CLICKHOUSE_PASSWORD_FILE="$password_file" scripts/clickhouse.sh start "$root/data/clickhouse" | sed -n 's/^CLICKHOUSE_ADDR=//p')"
	[ -n "$addr" ] || { echo "run.sh: local ClickHouse did not start (see data/clickhouse)" >&2; exit 1; }
	started_clickhouse=1
	export AIOPS_STORE__DSN="clickhouse://$addr/default"
	export AIOPS_STORE__PASSWORD_FILE="$password_file"
	echo "run.sh: ClickHouse at $addr (data in data/clickhouse); query it with: clickhouse-client --port ${addr##*:} --password \"\$(cat data/clickhouse-password)\"" >&2
fi
stop() {
	if [ "$started_clickhouse" = 1 ]; then scripts/clickhouse.sh stop "$root/data/clickhouse" || true; fi
}
trap stop EXIT
set +e
bin/aiops run "$@"
rc=$?
set -e
exit $rc
