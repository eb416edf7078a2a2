#!/usr/bin/env bash
# clickhouse.sh starts and stops a throwaway ClickHouse server as a plain
# process whose every file lives in one folder, for tests and local runs:
#
#   scripts/clickhouse.sh start DIR   # prints CLICKHOUSE_ADDR=127.0.0.1:PORT
#   scripts/clickhouse.sh status DIR  # prints the address, exit 1 when down
#   scripts/clickhouse.sh stop DIR    # idempotent
#
# The server listens on 127.0.0.1 only, on free ports picked at start, so
# several copies (one per test binary) run side by side and never touch the
# system's /var/lib/clickhouse or port 9000. The `default` user gets the
# password in $AIOPS_CLICKHOUSE_PASSWORD when that is set (stored hashed),
# else the one in the file $AIOPS_CLICKHOUSE_PASSWORD_FILE names, which is
# created (mode 0600, 32 random characters) when missing: what `make run`
# uses, so its server never answers without credentials, natively or over
# HTTP. With neither, the user has no password (the tests' throwaway
# servers), and a warning says so.
#
# Environment: AIOPS_CLICKHOUSE_TCP_PORT / AIOPS_CLICKHOUSE_HTTP_PORT (ports
# to try first, when free), AIOPS_CLICKHOUSE_START_TIMEOUT (seconds, default 30),
# CLICKHOUSE_SERVER / CLICKHOUSE_CLIENT (binaries, default from PATH).
#
# Written for Debian's ClickHouse 18.16, whose server needs a complete
# config.xml plus users.xml (profiles and quotas); newer servers accept the
# same files.
set -euo pipefail

server_bin="${CLICKHOUSE_SERVER:-clickhouse-server}"
client_bin="${CLICKHOUSE_CLIENT:-clickhouse-client}"
start_timeout="${AIOPS_CLICKHOUSE_START_TIMEOUT:-30}"

say() { printf 'clickhouse.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
	echo "usage: $0 start|stop|status DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd="$1"
dir="$2"
case "$cmd" in start | stop | status) ;; *) usage ;; esac
[ -n "$dir" ] || usage

# DIR by its physical path, whichever way it was named (relative, through
# a symlink): running compares it with what the server was started with.
if [ -d "$dir" ]; then
	dir="$(cd "$dir" && pwd -P)"
fi
pid_file="$dir/clickhouse-server.pid"
env_file="$dir/clickhouse.env"

# running prints the pid of the server recorded in DIR when it is alive and
# is the server started for DIR: its environment holds the
# AIOPS_CLICKHOUSE_DIR=DIR that start gives it (or, started by an older
# clickhouse.sh, its command line names DIR's config). A recycled pid is
# never trusted nor signalled, even when another ClickHouse holds it (the
# system's, another folder's: after a reboot or a crash the pid file
# outlives its server). Without /proc (not Linux), a live pid is trusted.
running() {
	[ -f "$pid_file" ] || return 1
	local pid
	pid="$(cat "$pid_file" 2>/dev/null || true)"
	case "$pid" in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	if [ -d "/proc/$pid" ] &&
		! tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qxF "AIOPS_CLICKHOUSE_DIR=$dir" &&
		! tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -qxF -- "--config-file=$dir/config.xml"; then
		return 1
	fi
	echo "$pid"
}

port_in_use() {
	local port="$1"
	if command -v ss >/dev/null 2>&1; then
		ss -Htln "sport = :$port" 2>/dev/null | grep -q . && return 0
	fi
	# A successful connect means somebody listens there.
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
	return 1
}

free_port() {
	local port i
	for i in $(seq 1 200); do
		port=$((20000 + RANDOM % 40000))
		if ! port_in_use "$port"; then
			echo "$port"
			return 0
		fi
	done
	die "no free TCP port found on 127.0.0.1"
}

answers() {
	local port="$1"
	"$client_bin" --config-file="$dir/client.xml" --host 127.0.0.1 --port "$port" \
		--query 'SELECT 1' </dev/null >/dev/null 2>&1
}

write_config() {
	local tcp_port="$1" http_port="$2"
	mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
	cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>$dir/log/clickhouse-server.log</log>
        <errorlog>$dir/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp_port</tcp_port>
    <http_port>$http_port</http_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
XML

	local password_xml="<password></password>"
	local client_password=""
	if [ -z "${AIOPS_CLICKHOUSE_PASSWORD:-}" ] && [ -n "${AIOPS_CLICKHOUSE_PASSWORD_FILE:-}" ]; then
		if [ ! -s "$AIOPS_CLICKHOUSE_PASSWORD_FILE" ]; then
			local random
			# 32 characters of [A-Za-z0-9]: no quoting trouble in XML or a
			# DSN. (A pipe that head closes early would fail with pipefail.)
			random="$(head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')"
			# Removed first: the umask applies only to a file created here,
			# and an empty one that was there (touched) may be 0644.
			rm -f "$AIOPS_CLICKHOUSE_PASSWORD_FILE"
			(
				umask 077
				printf '%s' "${random:0:32}" >"$AIOPS_CLICKHOUSE_PASSWORD_FILE"
			)
			say "generated a password for the default user in $AIOPS_CLICKHOUSE_PASSWORD_FILE"
		fi
		AIOPS_CLICKHOUSE_PASSWORD="$(cat "$AIOPS_CLICKHOUSE_PASSWORD_FILE")"
	fi
	if [ -z "${AIOPS_CLICKHOUSE_PASSWORD:-}" ]; then
		say "WARNING: the default user has no password: any local process can read and change every table (set AIOPS_CLICKHOUSE_PASSWORD_FILE)"
	fi
	if [ -n "${AIOPS_CLICKHOUSE_PASSWORD:-}" ]; then
		local hash
		hash="$(printf '%s' "$AIOPS_CLICKHOUSE_PASSWORD" | sha256sum | cut -d' ' -f1)"
		password_xml="<password_sha256_hex>$hash</password_sha256_hex>"
		# A "]]>" inside the password would end the CDATA section early.
		client_password="${AIOPS_CLICKHOUSE_PASSWORD//]]>/]]]]><![CDATA[>}"
	fi
	cat >"$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            $password_xml
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
XML
	# The readiness probe reads the password from a file, not from argv where
	# every local user could see it in ps.
	(
		umask 077
		cat >"$dir/client.xml" <<XML
<?xml version="1.0"?>
<config>
    <user>default</user>
    <password><![CDATA[$client_password]]></password>
</config>
XML
	)
}

start() {
	command -v "$server_bin" >/dev/null 2>&1 || die "$server_bin not found on PATH (run scripts/deps.sh)"
	command -v "$client_bin" >/dev/null 2>&1 || die "$client_bin not found on PATH (run scripts/deps.sh)"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd -P)"
	pid_file="$dir/clickhouse-server.pid"
	env_file="$dir/clickhouse.env"

	if pid="$(running)"; then
		# shellcheck disable=SC1090
		. "$env_file"
		say "already running (pid $pid)"
		echo "CLICKHOUSE_ADDR=$CLICKHOUSE_ADDR"
		return 0
	fi

	local attempt
	# Another process may take a port between the probe and the server's
	# bind; a fresh pair of ports on the next attempt settles that.
	for attempt in 1 2 3; do
		local tcp_port http_port
		tcp_port="$(free_port)"
		http_port="$(free_port)"
		# A caller that keeps its ports (run.sh, so a scrape or a client
		# configuration survives restarts) asks for them first.
		if [ "$attempt" = 1 ] && [ -n "${AIOPS_CLICKHOUSE_TCP_PORT:-}" ] && ! port_in_use "$AIOPS_CLICKHOUSE_TCP_PORT"; then
			tcp_port="$AIOPS_CLICKHOUSE_TCP_PORT"
		fi
		if [ "$attempt" = 1 ] && [ -n "${AIOPS_CLICKHOUSE_HTTP_PORT:-}" ] && ! port_in_use "$AIOPS_CLICKHOUSE_HTTP_PORT"; then
			http_port="$AIOPS_CLICKHOUSE_HTTP_PORT"
		fi
		while [ "$http_port" = "$tcp_port" ]; do http_port="$(free_port)"; done
		write_config "$tcp_port" "$http_port"
		: >"$dir/log/clickhouse-server.err.log"

		say "starting $server_bin in $dir (native port $tcp_port, http port $http_port)"
		# No job control here, so setsid execs the server in place and $! is
		# its pid; its own session keeps it out of the caller's signals.
		# AIOPS_CLICKHOUSE_DIR marks it as DIR's (see running).
		AIOPS_CLICKHOUSE_DIR="$dir" setsid "$server_bin" --config-file="$dir/config.xml" \
			</dev/null >>"$dir/log/stdout.log" 2>&1 &
		local pid=$!
		echo "$pid" >"$pid_file"

		local deadline=$((SECONDS + start_timeout)) last_dot=$SECONDS
		printf 'clickhouse.sh: waiting for SELECT 1 on 127.0.0.1:%s ' "$tcp_port" >&2
		while :; do
			if ! kill -0 "$pid" 2>/dev/null; then
				printf ' exited\n' >&2
				if grep -qi 'address already in use' "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" 2>/dev/null; then
					say "port taken, retrying with other ports (attempt $attempt)"
					continue 2
				fi
				say "server exited during start-up; last log lines:"
				tail -n 20 "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
				rm -f "$pid_file"
				exit 1
			fi
			if answers "$tcp_port"; then
				printf ' up\n' >&2
				break
			fi
			if [ $SECONDS -ge $deadline ]; then
				printf ' timeout\n' >&2
				say "no answer after ${start_timeout}s; last log lines:"
				tail -n 20 "$dir/log/clickhouse-server.err.log" >&2 2>/dev/null || true
				kill -KILL "$pid" 2>/dev/null || true
				rm -f "$pid_file"
				exit 1
			fi
			if [ $SECONDS -gt $last_dot ]; then
				printf '.' >&2
				last_dot=$SECONDS
			fi
			sleep 0.1
		done
		printf 'CLICKHOUSE_ADDR=127.0.0.1:%s\nCLICKHOUSE_HTTP_ADDR=127.0.0.1:%s\n' "$tcp_port" "$http_port" >"$env_file"
		echo "CLICKHOUSE_ADDR=127.0.0.1:$tcp_port"
		return 0
	done
	die "could not start after 3 attempts; see $dir/log"
}

stop() {
	local pid
	if ! pid="$(running)"; then
		rm -f "$pid_file"
		say "not running"
		return 0
	fi
	say "stopping pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	local i
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "still running after 10s, killing"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pid_file"
}

status() {
	local pid
	if pid="$(running)" && [ -f "$env_file" ]; then
		# shellcheck disable=SC1090
		. "$env_file"
		if answers "${CLICKHOUSE_ADDR##*:}"; then
			echo "CLICKHOUSE_ADDR=$CLICKHOUSE_ADDR"
			return 0
		fi
		say "pid $pid alive but $CLICKHOUSE_ADDR does not answer"
		return 1
	fi
	say "not running"
	return 1
}

"$cmd"
