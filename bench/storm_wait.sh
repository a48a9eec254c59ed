#!/usr/bin/env bash
# bench/storm_wait.sh: what a refusal storm costs the server, and another
# application's logins, with and without login_wait on the storming budget.
#
#   bash bench/storm_wait.sh [--smoke] [--pairs N] [--seconds S]
#
# One cluster with conngov (unix socket, max_connections 200).  Budget
# "storm" (application_name storm-%) allows 20 connections; 20 pools
# (bench/storm_wait.py) each want 2, keep each for about 1 s and re-fill
# every 250 ms, so about half their attempts find the budget full.  A:
# login_wait NULL (refused at once); B: login_wait 2 s, max_waiting 40.
# Another application (its own role, unbudgeted) connects 10 times a
# second meanwhile.  A and B run interleaved, PAIRS times (default 3) for
# SECONDS each (default 15); a ratio is the median of the pairwise B/A.
# Runs as an unprivileged user with PostgreSQL's bin directory in PATH (or
# CG_PG_BIN) and conngov installed; needs python3 and libpq.so.5.
set -euo pipefail
export LC_ALL=C

pairs=3
secs=15
while [ $# -gt 0 ]; do
	case "$1" in
		--smoke) pairs=1; secs=2 ;;
		--pairs) pairs=$2; shift ;;
		--seconds) secs=$2; shift ;;
		*) echo "storm_wait: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
if [ -n "${CG_PG_BIN:-}" ]; then PATH="$CG_PG_BIN:$PATH"; fi
if ! python3 -c 'import ctypes; ctypes.CDLL("libpq.so.5")' 2>/dev/null; then
	echo "storm_wait: needs python3 and libpq.so.5 (Debian: python3, libpq5); skipped" >&2
	exit 0
fi
here=$(cd "$(dirname "$0")" && pwd)

dir=$(mktemp -d /tmp/conngov-storm.XXXXXX)
trap 'pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
port=$((20000 + RANDOM % 20000))
initdb -D "$dir/data" -A trust >/dev/null
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
max_connections = 200
shared_preload_libraries = 'conngov'
conngov.database = 'postgres'
conngov.log_refusals = off
log_min_messages = fatal
CONF
pg_ctl -D "$dir/data" -l "$dir/log" -w start >/dev/null
sql() { psql -X -q -A -t -h "$dir" -p "$port" -d postgres -c "$1"; }
sql "CREATE EXTENSION conngov; CREATE ROLE regress_app LOGIN; CREATE ROLE regress_other LOGIN;"
sql "INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('storm', 'storm-%', 20)" >/dev/null
sql "SELECT conngov.reload()" >/dev/null
pm=$(head -1 "$dir/data/postmaster.pid")

run() { # $1: login_wait (NULL or an interval)
	sql "UPDATE conngov.budgets SET login_wait = $1, max_waiting = 40 WHERE name = 'storm'" >/dev/null
	sql "SELECT conngov.reload()" >/dev/null
	python3 "$here/storm_wait.py" "$dir" "$port" "$secs" 20 2 250 1000 "$pm"
}
val() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -a A B
for ((i = 0; i < pairs; i++)); do
	A[i]=$(run NULL)
	B[i]=$(run "'2 s'")
	echo "pair $((i + 1)): A (refused at once): ${A[i]}" >&2
	echo "pair $((i + 1)): B (login_wait 2 s):  ${B[i]}" >&2
done

echo
echo "refusal storm: 20 pools x 2 wanted, budget 20, re-fill every 250 ms, $secs s x $pairs pairs; A login_wait NULL, B login_wait 2 s"
printf '| %-48s | %12s | %12s | %-26s |\n' measure A B 'B/A median [min .. max]'
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..50})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..28})"
for m in cpu tried refused admitted p50 p99 max; do
	case $m in
		cpu) label='server CPU, s (all backends)' ;;
		tried) label='storm logins tried' ;;
		refused) label='storm logins refused' ;;
		admitted) label='storm logins admitted' ;;
		p50) label='other app connect latency p50, ms' ;;
		p99) label='other app connect latency p99, ms' ;;
		max) label='other app connect latency max, ms' ;;
	esac
	ra=() rb=() rr=()
	for ((i = 0; i < pairs; i++)); do
		a=$(val "$m" "${A[i]}")
		b=$(val "$m" "${B[i]}")
		ra+=("$a") rb+=("$b")
		rr+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", (a > 0 ? b / a : 0)}')")
	done
	ma=$(printf '%s\n' "${ra[@]}" | median)
	mb=$(printf '%s\n' "${rb[@]}" | median)
	mr=$(printf '%s\n' "${rr[@]}" | median)
	lo=$(printf '%s\n' "${rr[@]}" | sort -g | head -1)
	hi=$(printf '%s\n' "${rr[@]}" | sort -g | tail -1)
	printf '| %-48s | %12s | %12s | %-26s |\n' "$label" "$ma" "$mb" "$mr [$lo .. $hi]"
done
