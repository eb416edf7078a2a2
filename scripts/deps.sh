#!/usr/bin/env bash
# deps.sh installs what the tests and the default `aiops run` need on a fresh
# Debian 12 machine (also used by CI): Debian's ClickHouse server and client,
# Prometheus Alertmanager with amtool, Prometheus, ZooKeeper (the ClickHouse
# cluster test replicates through it), gcc (the race detector's cgo), and the Go modules of the workspace. Run it as
# root; running it again only re-checks.
#
# It never starts a system service (ClickHouse, Alertmanager, ZooKeeper):
# tests and scripts/clickhouse.sh start their own throwaway servers as plain
# processes, and a container or CI runner often has no systemd at all.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf 'deps: %s\n' "$*" >&2; }

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo_cmd=(sudo -E)
	fi
fi

# policy-rc.d exit 101 tells invoke-rc.d not to start services, so a
# package's postinst neither starts a system server (ClickHouse on port
# 9000, Alertmanager on 9093) nor fails on a machine without systemd.
# apt_install writes one for the time of its install when there is none,
# and it is removed on every way out, Ctrl-C included: left behind, it
# would keep every later package from starting its service. One that was
# there before is kept. (DEPS_POLICY_RC_D points elsewhere for tests.)
policy="${DEPS_POLICY_RC_D:-/usr/sbin/policy-rc.d}"
own_policy=0
remove_policy() {
	if [ "$own_policy" -eq 1 ]; then
		"${sudo_cmd[@]}" rm -f "$policy"
		own_policy=0
	fi
}
trap remove_policy EXIT
# A signal ends the script through its EXIT trap (bash runs none on a
# signal it has no trap for).
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# apt_get ARG... runs apt-get, waiting while another apt holds its locks
# (on a fresh machine unattended-upgrades runs apt at the first boot), for
# up to ten minutes: apt-get fails at once with "Could not get lock"
# otherwise, and its DPkg::Lock::Timeout does not cover the lists lock of
# apt-get update.
apt_get() {
	local err rc waited=0 limit=600
	err="$(mktemp)"
	while :; do
		rc=0
		"${sudo_cmd[@]}" apt-get "$@" 2>"$err" || rc=$?
		if [ "$rc" -eq 0 ] || ! grep -q 'Could not get lock' "$err" || [ "$waited" -ge "$limit" ]; then
			cat "$err" >&2
			rm -f "$err"
			return "$rc"
		fi
		[ "$waited" -gt 0 ] || say "apt is busy (another apt-get, or unattended-upgrades, holds its lock): waiting up to ${limit}s"
		sleep 1
		waited=$((waited + 1))
	done
}

# apt_install COMMAND PACKAGE... installs the Debian packages unless
# COMMAND is already on PATH (or, when it is a path, exists).
apt_install() {
	local cmd=$1
	shift
	if [ "${cmd#/}" != "$cmd" ] && [ -e "$cmd" ]; then
		say "$cmd already installed"
		return
	fi
	if command -v "$cmd" >/dev/null 2>&1; then
		say "$cmd already installed: $(command -v "$cmd")"
		return
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		say "no apt-get: install $* yourself"
		return 1
	fi
	if [ "$(id -u)" -ne 0 ] && [ ${#sudo_cmd[@]} -eq 0 ]; then
		say "installing $* needs root (or sudo)"
		return 1
	fi

	# Refresh the package lists only when apt knows no candidate yet (a fresh
	# image ships without lists); a second run skips the network round trip.
	candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
	if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
		say "apt-get update"
		apt_get update -q
	fi

	# Without a policy, one that stops services for the install (see
	# remove_policy). own_policy is set first, so a signal while it is
	# being written still removes it.
	if [ ! -e "$policy" ]; then
		own_policy=1
		"${sudo_cmd[@]}" sh -c 'printf "#!/bin/sh\nexit 101\n" >"$1" && chmod 755 "$1"' sh "$policy"
	fi
	say "apt-get install $*"
	rc=0
	apt_get install -y -q --no-install-recommends "$@" || rc=$?
	remove_policy
	if [ $rc -ne 0 ]; then
		say "apt-get install failed (exit $rc)"
		return $rc
	fi
	say "installed $*"
}

download_go_modules() {
	# Not "skipping": without Go nothing builds, and make stops here.
	if ! command -v go >/dev/null 2>&1; then
		if [ -x /usr/local/go/bin/go ]; then
			say "go is not on PATH, but /usr/local/go/bin/go is there: export PATH=\$PATH:/usr/local/go/bin and run this again"
		else
			say "go is not on PATH: install Go 1.26 (https://go.dev/dl/), put its bin folder on PATH and run this again"
		fi
		return 1
	fi
	# In workspace mode one `go mod download` fetches the dependencies of every
	# module listed in go.work.
	say "go mod download (workspace $root/go.work)"
	(cd "$root" && go mod download)
}

# A C toolchain: make test runs the concurrent packages under the race
# detector, which needs cgo.
apt_install gcc gcc libc6-dev
apt_install clickhouse-server clickhouse-server clickhouse-client
# The real Alertmanager and amtool: the notifier's routing, inhibition and
# time intervals are checked against them.
apt_install amtool prometheus-alertmanager
# The real Prometheus (and promtool): it scrapes a running aiops and
# evaluates the Grafana dashboard's queries in a test.
apt_install prometheus prometheus
# ZooKeeper for the replicated ClickHouse test (pkg/testenv runs it as a
# plain java process from these jars); Java comes with it when missing.
apt_install /usr/share/java/zookeeper.jar zookeeper
download_go_modules
say "done"
