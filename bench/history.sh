#!/usr/bin/env bash
# bench/history.sh: what the usage history (1.2) costs, side by side.
#
#   bash bench/history.sh [--smoke] [--pairs N] [--out FILE] [--keep]
#
#   --smoke    tiny durations and sizes, one pair: proves the script works
#   --pairs N  interleaved A/B pairs of the login benchmark (default 5)
#   --out FILE also write the table to FILE
#   --keep     keep the clusters' directory (logs) for inspection
#
# Two clusters with identical settings, both with conngov preloaded and
# 100 enforce budgets: A with conngov.history_size = 0 (history off), B
# with the default (on).  Runs as an unprivileged user with PostgreSQL's
# bin directory in PATH (or CG_PG_BIN set), conngov installed, and
# python3-psycopg2 for the refusal bursts.
#
#  1. login: pgbench -C (4 clients, SELECT 1) connections/s, A vs B,
#     interleaved; the ratio B/A is the median of the pairs (target 0.97)
#  2. closing a minute: N budgets each with activity in one minute (one
#     refused login each, from 4 client threads), N = 100 and 10 000; the
#     worker's CPU time from just before the minute ends to just after it
#     is closed, against the same window of a minute with no activity
set -euo pipefail
export LC_ALL=C
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

bench_args "$@"
for cmd in initdb pg_ctl psql pgbench postgres pg_config python3; do
	command -v "$cmd" >/dev/null || die "$cmd not found in PATH (set CG_PG_BIN)"
done
python3 -c 'import psycopg2' 2>/dev/null || die "needs python3-psycopg2"

if [ "$mode" = smoke ]; then
	pairs=1
	LOGIN_DUR="-t 20"
	SIZES="10 100"
else
	LOGIN_DUR="-T 3"
	SIZES="100 10000"
fi
PORT=5432
T0=$SECONDS
BENCH_TITLE="usage history benchmarks"

bench_workdir conngov-history-bench
say "clusters in $work ($mode run, $pairs pair(s))"
mkdir -p "$A" "$B"
initdb -D "$A/data" -A trust -U postgres -N >/dev/null
cp -a "$A/data" "$B/data"
for d in "$A" "$B"; do
	cat >>"$d/data/postgresql.conf" <<EOF

# conngov history bench: identical on both clusters but history_size
listen_addresses = ''
unix_socket_directories = '$d'
port = $PORT
max_connections = 200
shared_buffers = 16MB
fsync = off
synchronous_commit = off
log_line_prefix = '%m [%p] '
shared_preload_libraries = 'conngov'
conngov.max_budgets = 10100
conngov.log_refusals = off
EOF
done
echo "conngov.history_size = 0" >>"$A/data/postgresql.conf"
for d in "$A" "$B"; do
	pg_ctl -D "$d/data" -l "$d/server.log" -w -t 120 start >/dev/null ||
		{ tail -n 30 "$d/server.log" >&2; die "cluster $d did not start"; }
	q "$d" -c "CREATE ROLE bench LOGIN" -c "CREATE EXTENSION conngov"
done

# budgets DIR N: N enforce budgets h-00001 .. of 0 connections, and a
# catch-all of 100000 for the login benchmark
budgets() {
	q "$1" -c "SET client_min_messages = error" -c "BEGIN" \
		-c "DELETE FROM conngov.budgets" \
		-c "INSERT INTO conngov.budgets (name, application_pattern, max_connections, priority)
			SELECT format('h-%s', lpad(i::text, 5, '0')), format('h-%s', lpad(i::text, 5, '0')), 0, 10
			  FROM generate_series(1, $2) i
			UNION ALL SELECT 'login', 'bench-login%', 100000, 100" -c "COMMIT" >/dev/null
	q "$1" -c "SELECT conngov.reload()" >/dev/null
}

# ============================================================ 1. login
budgets "$A" 99
budgets "$B" 99
say "1. login cost, $pairs pair(s)"
echo "SELECT 1;" >"$work/select1.sql"
conn() {
	PGAPPNAME=bench-login pgbench -n -C -c 4 -j 4 $LOGIN_DUR -f "$work/select1.sql" \
		-h "$1" -p "$PORT" -U bench postgres 2>&1
}
conn "$A" >/dev/null
conn "$B" >/dev/null
la=() lb=()
for ((i = 0; i < pairs; i++)); do
	la+=("$(tps "$(conn "$A")")")
	lb+=("$(tps "$(conn "$B")")")
done
sa=$(stats "${la[@]}")
sb=$(stats "${lb[@]}")
sr=$(stats $(ratios "${la[*]}" "${lb[*]}"))
ok=0
ge "$(echo "$sr" | cut -d' ' -f1)" 0.97 && ok=1
row 1 "logins/s, pgbench -C, 100 budgets" "$(fmt "${sa%% *}" '%.0f')" \
	"$(fmt "${sb%% *}" '%.0f')" "$(ratio_cell "$sr" '%.3f')" ">= 0.97" "$(verdict $ok)"

# ================================================= 2. closing a minute
worker_pid() {
	q "$B" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'conngov worker'"
}
# cpu_of PID: nanoseconds on CPU (schedstat: finer than /proc/PID/stat's ticks)
cpu_of() { awk '{ print $1 }' "/proc/$1/schedstat"; }
# wait_second S: until the server's clock is at second S of a minute
wait_second() {
	while [ "$(q "$B" -c "SELECT extract(second FROM clock_timestamp())::int")" != "$1" ]; do
		sleep 0.2
	done
}
# close_cpu: the worker's CPU nanoseconds from second 57 of this minute to
# second 3 of the next (the close of this minute is in it)
close_cpu() {
	local pid c0
	pid=$(worker_pid)
	wait_second 57
	c0=$(cpu_of "$pid")
	wait_second 3
	echo $(($(cpu_of "$pid") - c0))
}
refuse() { # N: one refused login for each of h-00001 .. h-N, 4 threads
	python3 - "$B" "$PORT" "$1" <<'PYEOF'
import sys, threading, psycopg2
host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def run(k):
	for i in range(k + 1, n + 1, 4):
		try:
			psycopg2.connect(host=host, port=port, user="bench", dbname="postgres",
							 application_name="h-%05d" % i).close()
			sys.exit("h-%05d was admitted" % i)
		except psycopg2.OperationalError as e:
			if "exhausted" not in str(e):
				raise
ts = [threading.Thread(target=run, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
PYEOF
}
budgets "$B" "$(last $SIZES)"
base=$(close_cpu)
for n in $SIZES; do
	say "2. closing a minute with up to $n active budgets"
	wait_second 1
	refuse "$n"
	# the minute the refusals ended in: all of them on a quiet machine, its
	# tail when they took longer than a minute (then said in the row)
	m1=$(q "$B" -c "SELECT date_trunc('minute', clock_timestamp())")
	ticks=$(close_cpu)
	got=$(q "$B" -c "SELECT count(*) FROM conngov.history('$m1', '$m1') WHERE budget LIKE 'h-%'")
	row 2 "worker CPU closing a minute, $got active budgets$([ "$got" = "$n" ] || echo " (of $n: the refusals took more than a minute)")" \
		"$(fmt "$((base / 1000))" '%d us')" "$(fmt "$((ticks / 1000))" '%d us')" \
		"" "grows with active budgets" info
done

print_table "A: conngov, conngov.history_size = 0 (history off); B: conngov, history on (default)" \
	"2: the worker's time on CPU (/proc/PID/schedstat) over the same 6 s window around a minute's end: A a minute with no activity, B the minute with N budgets active" |
	tee ${out:+"$out"}
