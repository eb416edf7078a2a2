#!/usr/bin/env bash
# run.sh starts the pipeline on this machine: `aiops run` with its embedded
# NATS, and a local ClickHouse in ./data/clickhouse unless AIOPS_STORE__DSN
# names one. Stop it with Ctrl-C; the ClickHouse server is stopped with it
# when this script started it.
# Extra arguments go to `aiops run` (e.g. -set detector.pipeline=pipelines/default.yaml;
# -config takes an aiops configuration such as deployments/config/aiops.yaml,
# never a pipeline file, which `aiops run` refuses).
# The local ClickHouse's default user has the password in
# data/clickhouse-password (generated on the first start, mode 0600), which
# aiops run reads through AIOPS_STORE__PASSWORD_FILE.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

started_clickhouse=0
stop() {
	if [ "$started_clickhouse" = 1 ]; then scripts/clickhouse.sh stop "$root/data/clickhouse" || true; fi
}
# Set before the server starts, so an interrupted start stops it too.
trap stop EXIT
if [ -z "${AIOPS_STORE__DSN:-}" ]; then
	mkdir -p data/clickhouse
	# A server that was already running (another `make run`, `make demo`,
	# or one started by hand) is used and left running: stopping it on exit
	# would pull the store from under whoever started it, e.g. when this
	# second `aiops run` fails at once because the first holds port 4222.
	if scripts/clickhouse.sh status "$root/data/clickhouse" >/dev/null 2>&1; then
		echo "run.sh: using the ClickHouse already running in data/clickhouse; it is left running (scripts/clickhouse.sh stop data/clickhouse stops it)" >&2
	else
		started_clickhouse=1
	fi
	password_file="$root/data/clickhouse-password"
	# The ports are kept in data/clickhouse-ports, so the address stays the
	# same across restarts (a client's or a scrape's configuration keeps
	# working); the first start picks free ones.
	ports_file="$root/data/clickhouse-ports"
	tcp_port="" http_port=""
	[ -f "$ports_file" ] && read -r tcp_port http_port <"$ports_file" || true
	addr="$(AIOPS_CLICKHOUSE_TCP_PORT="$tcp_port" AIOPS_CLICKHOUSE_HTTP_PORT="$http_port" AIOPS_CLICKHOUSE_PASSWORD_FILE="$password_file" scripts/clickhouse.sh start "$root/data/clickhouse" | sed -n 's/^CLICKHOUSE_ADDR=//p')"
	[ -n "$addr" ] || { echo "run.sh: local ClickHouse did not start (see data/clickhouse)" >&2; exit 1; }
	[ "${addr##*:}" = "$tcp_port" ] || [ -z "$tcp_port" ] || echo "run.sh: ClickHouse port $tcp_port was taken; now ${addr##*:} (kept in data/clickhouse-ports)" >&2
	(. "$root/data/clickhouse/clickhouse.env" && echo "${CLICKHOUSE_ADDR##*:} ${CLICKHOUSE_HTTP_ADDR##*:}" >"$ports_file")
	export AIOPS_STORE__DSN="clickhouse://$addr/default"
	export AIOPS_STORE__PASSWORD_FILE="$password_file"
	echo "run.sh: ClickHouse at $addr (data in data/clickhouse); query it with: clickhouse-client --port ${addr##*:} --password \"\$(cat data/clickhouse-password)\"" >&2
fi
set +e
bin/aiops run "$@"
rc=$?
set -e
exit $rc
