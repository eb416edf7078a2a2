#!/usr/bin/env bash
# run.sh starts the pipeline on this machine: `aiops run` with its embedded
# NATS, and a local ClickHouse in ./data/clickhouse unless AIOPS_STORE__DSN
# names one. Stop it with Ctrl-C; the ClickHouse server is stopped with it
# when this script started it, however the script ends (Ctrl-C, SIGTERM,
# aiops failing).
#
#   scripts/run.sh [aiops run flags]    what `make run` runs
#   scripts/run.sh --demo [aiops demo flags]
#                                       `aiops demo` on the same ClickHouse
#
# Extra arguments go to `aiops run` (e.g. -set detector.pipeline=pipelines/default.yaml,
# -set nats.listen=127.0.0.1:14222; -config takes an aiops configuration such
# as deployments/config/aiops.yaml, never a pipeline file, which `aiops run`
# refuses). `aiops run -check` reads them first, so a configuration error, a
# taken port or another pipeline on data/nats is said before ClickHouse starts;
# `scripts/run.sh -check` runs that check alone.
# aiops runs in the checkout, whatever folder run.sh is started from, so
# that data/ is the checkout's: a relative -config FILE is taken from the
# folder run.sh was started in, as a shell user expects of a file named on
# the command line, and every other relative path (in -set values and in
# the configuration) from the checkout.
# The local ClickHouse's default user has the password in
# data/clickhouse-password (generated on the first start, mode 0600), which
# aiops run reads through AIOPS_STORE__PASSWORD_FILE.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# -config FILE (-config=FILE, --config ...) relative to where run.sh was
# started: it was read from the checkout after the cd below, and a
# configuration beside the user ("my conf/aiops.yaml") was "no such file".
caller="$PWD"
absolute() { case "$1" in /* | '') printf '%s' "$1" ;; *) printf '%s/%s' "$caller" "$1" ;; esac; }
args=()
check_only=0
while [ $# -gt 0 ]; do
	case "$1" in
	-config | --config)
		args+=("$1")
		shift
		[ $# -eq 0 ] || { args+=("$(absolute "$1")"); shift; }
		;;
	-config=* | --config=*)
		args+=("${1%%=*}=$(absolute "${1#*=}")")
		shift
		;;
	-set | --set)
		# Its value is a key=value, never a flag: passed on as it is.
		args+=("$1")
		shift
		[ $# -eq 0 ] || { args+=("$1"); shift; }
		;;
	-check | --check | -check=true | --check=true)
		check_only=1
		args+=("$1")
		shift
		;;
	*)
		args+=("$1")
		shift
		;;
	esac
done
set -- ${args[@]+"${args[@]}"}
cd "$root"

command=run
if [ "${1:-}" = --demo ]; then
	command=demo
	shift
fi
# Help starts nothing.
for arg in "$@"; do
	case "$arg" in -h | -help | --help) exec bin/aiops "$command" "$@" ;; esac
done

started_clickhouse=0
aiops_pid=""
stop() {
	if [ "$started_clickhouse" = 1 ]; then scripts/clickhouse.sh stop "$root/data/clickhouse" || true; fi
}
# A signal that ends this script (Ctrl-C, a SIGTERM that make passes on to
# its child alone, the terminal closing) goes on to aiops, which stops as
# on Ctrl-C and exits 0; the script waits for it below and ends through
# stop. Before aiops started, the script ends at once, and stop stops the
# server it started (ClickHouse runs in a session of its own and gets no
# signal of the terminal).
on_signal() {
	if [ -n "$aiops_pid" ]; then
		kill -TERM "$aiops_pid" 2>/dev/null || true
	else
		exit "$1"
	fi
}
# Set before the server starts, so an interrupted start stops it too.
trap stop EXIT
trap 'on_signal 129' HUP
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
if [ -z "${AIOPS_STORE__DSN:-}" ]; then
	password_file="$root/data/clickhouse-password"
	# The ports are kept in data/clickhouse-ports, so the address stays the
	# same across restarts (a client's or a scrape's configuration keeps
	# working); the first start picks free ones.
	ports_file="$root/data/clickhouse-ports"
	tcp_port="" http_port=""
	[ -f "$ports_file" ] && read -r tcp_port http_port <"$ports_file" || true
	# What would stop aiops run at once stops it before ClickHouse takes
	# its seconds to start (and to stop again), with the store settings
	# the run will have.
	if [ "$command" = run ]; then
		AIOPS_STORE__DSN="clickhouse://127.0.0.1:${tcp_port:-9000}/default" AIOPS_STORE__PASSWORD_FILE="$password_file" \
			bin/aiops run -check "$@" || exit $?
		# `scripts/run.sh -check` asks that alone: it started ClickHouse
		# and stopped it again, seconds each, to run the same check.
		[ "$check_only" = 0 ] || exit 0
	fi
	mkdir -p data/clickhouse
	# A server that was already running (a `make demo` beside, one started
	# by hand) is used and left running: stopping it on exit would pull the
	# store from under whoever started it. (A second `make run` beside the
	# first stops at -check above: the first holds data/nats.)
	if scripts/clickhouse.sh status "$root/data/clickhouse" >/dev/null 2>&1; then
		echo "run.sh: using the ClickHouse already running in data/clickhouse; it is left running (scripts/clickhouse.sh stop data/clickhouse stops it)" >&2
	else
		started_clickhouse=1
	fi
	addr="$(AIOPS_CLICKHOUSE_TCP_PORT="$tcp_port" AIOPS_CLICKHOUSE_HTTP_PORT="$http_port" AIOPS_CLICKHOUSE_PASSWORD_FILE="$password_file" scripts/clickhouse.sh start "$root/data/clickhouse" | sed -n 's/^CLICKHOUSE_ADDR=//p')"
	[ -n "$addr" ] || { echo "run.sh: local ClickHouse did not start (see data/clickhouse)" >&2; exit 1; }
	[ "${addr##*:}" = "$tcp_port" ] || [ -z "$tcp_port" ] || echo "run.sh: ClickHouse port $tcp_port was taken; now ${addr##*:} (kept in data/clickhouse-ports)" >&2
	(. "$root/data/clickhouse/clickhouse.env" && echo "${CLICKHOUSE_ADDR##*:} ${CLICKHOUSE_HTTP_ADDR##*:}" >"$ports_file")
	export AIOPS_STORE__DSN="clickhouse://$addr/default"
	export AIOPS_STORE__PASSWORD_FILE="$password_file"
	# The password from clickhouse.sh's client configuration (0600), not
	# from --password: clickhouse-client 18.16 leaves it in its command
	# line, which every user of the machine reads.
	echo "run.sh: ClickHouse at $addr (data in data/clickhouse); query it with: clickhouse-client --config-file data/clickhouse/client.xml --port ${addr##*:}" >&2
fi
# In the background, so that on_signal can pass a signal on (`wait`
# returns early for each trapped signal, hence the loop), and in a session
# of its own, so that aiops gets each signal once, from on_signal: Ctrl-C
# reaches the terminal's whole process group, and a second signal forces
# aiops's shutdown instead of letting it drain. (No job control here, so
# setsid execs aiops in place and $! is its pid.)
setsid bin/aiops "$command" "$@" &
aiops_pid=$!
while kill -0 "$aiops_pid" 2>/dev/null; do wait "$aiops_pid" || true; done
rc=0
wait "$aiops_pid" || rc=$?
exit $rc
