#!/usr/bin/env bash
# bench/run.sh: conngov's speed targets (SPEC.md, "Speed"), measured side by
# side on throwaway clusters, printed as one table.
#
#   bash bench/run.sh [--smoke] [--pairs N] [--out FILE] [--keep]
#
#   --smoke    every benchmark with tiny durations and few connections, one
#              pair: proves the script works (a few seconds); never fails on
#              a missed target, only when the script itself breaks
#   --pairs N  interleaved A/B pairs for the paired benchmarks (default 5)
#   --out FILE also write the final table to FILE
#   --keep     keep the clusters' directory (logs) for inspection
#
# Runs as an unprivileged user with PostgreSQL's bin directory in PATH (or
# CG_PG_BIN set) and conngov installed; bench/bench.sh installs, builds and
# runs it.  Two clusters with identical settings are created once in a temp
# dir, on unix sockets only: A without conngov, B with conngov preloaded.
# The compared sides run interleaved (A B A B ...); a ratio is the median of
# the pairwise ratios B/A, with their min and max, because the machine may be
# shared and absolute figures mean little.
#
#  1. login: pgbench -C (4 clients, SELECT 1) connections/s, A vs B with
#     1, 10, 100, 1000 enforce budgets whose last one is the one that matches
#  2. monitoring: with 1000 open idle connections over 20 applications,
#     queries/s of usage(), headroom(), health() vs pg_stat_activity GROUP BY;
#     usage() at 100 vs 1000 connections
#  3. idle ending lag: 100 sessions, idle_timeout 2 s, going idle 30 ms apart:
#     ended at (events()) - deadline (state_change + 2 s)
#  4. worker CPU (/proc/PID/stat) over 60 s with nothing due
#  5. storm: 200 clients at once against a budget of 50, 10 rounds
set -euo pipefail
export LC_ALL=C
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

bench_args "$@"
for cmd in initdb pg_ctl psql pgbench postgres pg_config; do
	command -v "$cmd" >/dev/null || { echo "bench: $cmd not found in PATH (set CG_PG_BIN)" >&2; exit 2; }
done
[ -f "$(pg_config --pkglibdir)/conngov.so" ] ||
	{ echo "bench: conngov is not installed in $(pg_config --pkglibdir)" >&2; exit 2; }

# ---------------------------------------------------------------- settings
# 1000 sessions are 1000 server processes of this user, plus the clients
if [ "$(ulimit -u)" != unlimited ] && [ "$(ulimit -u)" -lt 1600 ]; then
	echo "bench: needs at least 1600 processes for this user (ulimit -u is $(ulimit -u))" >&2
	exit 2
fi

if [ "$mode" = smoke ]; then
	pairs=1
	LOGIN_DUR="-t 20" LOGIN_DESC="20 logins per client"
	LOGIN_BUDGETS="100 1 10 1000"
	LOGIN_TARGET_FACTOR=1
	MON_APPS=20 MON_BASE=1 MON_MORE=1 # 20 and 40 connections
	MON_DUR="-t 200"
	IDLE_N=5 IDLE_SPREAD_MS=100 IDLE_TIMEOUT_S=1
	WORKER_SECS=1
	STORM_N=20 STORM_BUDGET=5 STORM_ROUNDS=1 STORM_HOLD=1
else
	LOGIN_DUR="-T 3" LOGIN_DESC="3 s"
	LOGIN_BUDGETS="100 1 10 1000"
	LOGIN_TARGET_FACTOR=3 # 15 pairs for the 100-budget target
	MON_APPS=20 MON_BASE=5 MON_MORE=45 # 100 and 1000 connections
	MON_DUR="-T 3"
	IDLE_N=100 IDLE_SPREAD_MS=30 IDLE_TIMEOUT_S=2
	WORKER_SECS=60
	STORM_N=200 STORM_BUDGET=50 STORM_ROUNDS=10 STORM_HOLD=5
fi
[ "$mode" = full ] || STORM_ROUNDS=$pairs
MON_LOW=$((MON_APPS * MON_BASE))
MON_HIGH=$((MON_APPS * (MON_BASE + MON_MORE)))
PORT=5432 # each cluster has its own socket directory: no clash
HZ=$(getconf CLK_TCK)
LOGIN_CPU_ROWS=()
T0=$SECONDS

bench_workdir conngov-bench

# ---------------------------------------------------------------- clusters
say "clusters in $work ($mode run, $pairs pair(s))"
mkdir -p "$A" "$B"
initdb -D "$A/data" -A trust -U postgres -N >/dev/null
cp -a "$A/data" "$B/data"
for d in "$A" "$B"; do
	cat >>"$d/data/postgresql.conf" <<EOF

# conngov bench: identical on both clusters
listen_addresses = ''
unix_socket_directories = '$d'
port = $PORT
max_connections = 1100
superuser_reserved_connections = 3
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] '
EOF
done
cat >>"$B/data/postgresql.conf" <<EOF
# the only difference
shared_preload_libraries = 'conngov'
conngov.max_budgets = 2000
EOF
for d in "$A" "$B"; do
	pg_ctl -D "$d/data" -l "$d/server.log" -w -t 120 start >/dev/null ||
		{ tail -n 30 "$d/server.log" >&2; die "cluster $d did not start"; }
	q "$d" -c "CREATE ROLE bench LOGIN"
done
q "$B" -c "CREATE EXTENSION conngov"

worker_pid() {
	q "$B" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'conngov worker'"
}
for _ in $(seq 1 100); do [ -n "$(worker_pid)" ] && break; sleep 0.1; done
[ -n "$(worker_pid)" ] || die "conngov worker not running"

# set_budgets SQL: replace every budget by the rows SQL inserts, apply now
set_budgets() {
	q "$B" -c "SET client_min_messages = error" -c "BEGIN" \
		-c "DELETE FROM conngov.budgets" -c "$1" -c "COMMIT" >/dev/null
	q "$B" -c "SELECT conngov.reload()" >/dev/null
}

# wait_sql DIR SQL EXPECTED SECS: until SQL answers EXPECTED
wait_sql() {
	local i v=""
	for ((i = 0; i < $4 * 20; i++)); do
		v=$(q "$1" -c "$2")
		[ "$v" = "$3" ] && return 0
		sleep 0.05
	done
	die "timeout waiting for [$2] = $3 (last: $v)"
}

# pgbench scripts
S=$work/scripts
mkdir -p "$S"
echo "SELECT 1;" >"$S/select1.sql"
echo "\\sleep 600 s" >"$S/hold.sql"
echo "SELECT application_name, count(*) FROM pg_stat_activity GROUP BY 1;" >"$S/psa.sql"
echo "SELECT * FROM conngov.usage();" >"$S/usage.sql"
echo "SELECT * FROM conngov.headroom();" >"$S/headroom.sql"
echo "SELECT conngov.health();" >"$S/health.sql"
printf 'SELECT pg_sleep(:client_id * %s);\n\\sleep 600 s\n' \
	"$(awk -v ms="$IDLE_SPREAD_MS" 'BEGIN { printf "%.3f", ms / 1000 }')" >"$S/idle.sql"

# ======================================================= 1. login cost
# login_budgets N: N enforce budgets, only the last (in priority, name
# order) matches "bench-login"; the others share its prefix
login_budgets() {
	set_budgets "INSERT INTO conngov.budgets (name, application_pattern, max_connections)
		SELECT format('login-%s', lpad(i::text, 4, '0')),
			   CASE WHEN i = $1 THEN 'bench-login%'
					ELSE format('bench-login-%s%%', lpad(i::text, 4, '0')) END,
			   100000
		FROM generate_series(1, $1) i"
}

say "1. login cost: warm-up"
PGAPPNAME=bench-login pgbench -n -C -c 4 -j 4 -t 20 -f "$S/select1.sql" -h "$A" -p "$PORT" -U bench postgres >/dev/null 2>&1
PGAPPNAME=bench-login pgbench -n -C -c 4 -j 4 -t 20 -f "$S/select1.sql" -h "$B" -p "$PORT" -U bench postgres >/dev/null 2>&1
for n in $LOGIN_BUDGETS; do
	login_budgets "$n"
	# the target's case gets more pairs: the ratio is close to 1 and the
	# machine may be noisy
	np=$pairs
	[ "$n" = 100 ] && np=$((pairs * LOGIN_TARGET_FACTOR))
	LA="" LB="" CA="" CB=""
	for ((p = 1; p <= np; p++)); do
		read -r a ca <<<"$(login "$A")"
		read -r b cb <<<"$(login "$B")"
		LA+="$a " LB+="$b " CA+="$ca " CB+="$cb "
		say "1. login, $n budget(s), pair $p/$np: A $a/s ($ca us CPU/login), B $b/s ($cb us CPU/login)"
	done
	# the worst case really was exercised: the last budget admitted them
	last=$(q "$B" -c "SELECT admitted FROM conngov.stats() WHERE budget = format('login-%s', lpad('$n', 4, '0'))")
	[ "${last:-0}" -gt 0 ] || die "login benchmark: budget #$n admitted nobody (no match?)"
	r=$(stats $(ratios "$LA" "$LB"))
	sa=$(stats $LA) sb=$(stats $LB)
	if [ "$n" = 100 ]; then
		ok=0; ge "${r%% *}" 0.97 && ok=1
		tgt=">= 0.97"; res=$(verdict $ok)
	else
		tgt=""; res=info
	fi
	row 1 "login, connections/s (pgbench -C, 4 clients, $np pairs of $LOGIN_DESC): A no conngov, B $n enforce budget(s), the match is #$n" \
		"$(fmt "${sa%% *}" '%.0f')" "$(fmt "${sb%% *}" '%.0f')" "$(ratio_cell "$r" '%.3f')" "$tgt" "$res"
	r=$(stats $(ratios "$CA" "$CB"))
	sa=$(stats $CA) sb=$(stats $CB)
	LOGIN_CPU_ROWS+=("$n|$(fmt "${sa%% *}" '%.0f')|$(fmt "${sb%% *}" '%.0f')|$(ratio_cell "$r" '%.3f')|$np")
done
for c in "${LOGIN_CPU_ROWS[@]}"; do
	IFS='|' read -r n ca cb rc np <<<"$c"
	row 1 "login, server CPU us per login (backends, from the postmaster's cutime+cstime), same runs: A no conngov, B $n budget(s)" \
		"$ca" "$cb" "$rc" "" info
done

# ======================================================= 4a. worker, idle
# worker_cpu SECS: "cpu_s sched_ms wakeups" of the worker over SECS
worker_cpu() {
	local pid s0 s1 c0 c1
	pid=$(worker_pid)
	[ -n "$pid" ] || die "no worker"
	sleep 1 # let it settle after the previous step
	s0=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')
	c0=$(cat "/proc/$pid/schedstat")
	sleep "$1"
	s1=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')
	c1=$(cat "/proc/$pid/schedstat")
	[ "$(worker_pid)" = "$pid" ] || die "the worker restarted during the measurement"
	awk -v s0="$s0" -v s1="$s1" -v hz="$HZ" -v c0="$c0" -v c1="$c1" 'BEGIN {
		split(c0, a, " "); split(c1, b, " ")
		printf "%.2f %.3f %d\n", (s1 - s0) / hz, (b[1] - a[1]) / 1e6, b[3] - a[3] }'
}
worker_row() { # label "cpu_s sched_ms wakeups"
	local -a w=($2)
	local ok=0
	lt "${w[0]}" 0.05 && ok=1
	row 4 "worker CPU over $WORKER_SECS s, $1" "" \
		"${w[0]} s (${w[1]} ms on CPU, ${w[2]} run(s))" "" "< 0.05 s" "$(verdict $ok)"
}

app_budgets() { # 20 budgets app-01..app-20, idle_timeout 1 hour
	set_budgets "INSERT INTO conngov.budgets (name, application_pattern, max_connections, idle_timeout)
		SELECT format('app-%s', lpad(i::text, 2, '0')), format('app-%s', lpad(i::text, 2, '0')),
			   100, interval '1 hour'
		FROM generate_series(1, $MON_APPS) i"
}
app_budgets
say "4. worker CPU, nothing due (20 budgets, idle_timeout 1 h, no sessions): ${WORKER_SECS} s"
W_NONE=$(worker_cpu "$WORKER_SECS")

# ======================================================= 2. monitoring cost
holders_base=() holders_more=()
# hold N_PER_APP ARRAY: one pgbench per application holding N idle sessions
hold() {
	local n=$1 i app
	local -n arr=$2
	for ((i = 1; i <= MON_APPS; i++)); do
		app=$(printf 'app-%02d' "$i")
		PGAPPNAME=$app pgbench -n -c "$n" -j 1 -T 86400 -f "$S/hold.sql" \
			-h "$B" -p "$PORT" -U bench postgres >/dev/null 2>&1 &
		arr+=($!)
		bg_pids+=($!)
	done
}
unhold() {
	local -n arr=$1
	kill "${arr[@]}" 2>/dev/null || true
	wait "${arr[@]}" 2>/dev/null || true
	arr=()
}
napps_sql="SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'app-%'"
# qps FILE: queries/s of one client running FILE as superuser on B
qps() {
	tps "$(pgbench -n -c 1 -j 1 $MON_DUR -f "$S/$1" -h "$B" -p "$PORT" -U postgres postgres 2>&1)"
}

say "2. monitoring: $MON_LOW connections"
hold "$MON_BASE" holders_base
wait_sql "$B" "$napps_sql" "$MON_LOW" 120
qps usage.sql >/dev/null # warm-up
declare -A M
for ((p = 1; p <= pairs; p++)); do
	if [ ${#holders_more[@]} -gt 0 ]; then
		unhold holders_more
		wait_sql "$B" "$napps_sql" "$MON_LOW" 120
	fi
	M[usage_low]+="$(qps usage.sql) "
	M[psa_low]+="$(qps psa.sql) "
	M[sel_low]+="$(qps select1.sql) "
	hold "$MON_MORE" holders_more
	wait_sql "$B" "$napps_sql" "$MON_HIGH" 120
	for f in psa usage headroom health; do M[$f]+="$(qps $f.sql) "; done
	M[sel]+="$(qps select1.sql) "
	say "2. monitoring pair $p, queries/s: @$MON_LOW usage $(last ${M[usage_low]}), psa $(last ${M[psa_low]}), SELECT 1 $(last ${M[sel_low]}); @$MON_HIGH: psa $(last ${M[psa]}), usage $(last ${M[usage]}), headroom $(last ${M[headroom]}), health $(last ${M[health]}), SELECT 1 $(last ${M[sel]})"
done
tot=$(q "$B" -c "SELECT sum(total) FROM conngov.usage() WHERE budget LIKE 'app-%'")
[ "$tot" = "$MON_HIGH" ] || die "usage() counts $tot app sessions, expected $MON_HIGH"
sa=$(stats ${M[psa]})
for f in usage headroom health; do
	r=$(stats $(ratios "${M[psa]}" "${M[$f]}"))
	sb=$(stats ${M[$f]})
	if [ "$f" = usage ]; then
		ok=0; ge "${r%% *}" 20 && ok=1
		tgt=">= 20x"; res=$(verdict $ok)
	else
		tgt=""; res=info
	fi
	row 2 "monitoring queries/s, $MON_HIGH idle connections over $MON_APPS apps: A pg_stat_activity GROUP BY, B $f()" \
		"$(fmt "${sa%% *}" '%.0f')" "$(fmt "${sb%% *}" '%.0f')" "$(ratio_cell "$r" '%.1f')x" "$tgt" "$res"
done
r=$(stats $(ratios "${M[usage_low]}" "${M[usage]}"))
row 2 "usage() queries/s: A at $MON_LOW connections, B at $MON_HIGH" \
	"$(fmt "$(stats ${M[usage_low]} | cut -d' ' -f1)" '%.0f')" "$(fmt "$(stats ${M[usage]} | cut -d' ' -f1)" '%.0f')" \
	"$(ratio_cell "$r" '%.3f')" "" info
r=$(stats $(ratios "${M[sel_low]}" "${M[sel]}"))
row 2 "SELECT 1 queries/s (control: what any query pays for more sessions): A at $MON_LOW connections, B at $MON_HIGH" \
	"$(fmt "$(stats ${M[sel_low]} | cut -d' ' -f1)" '%.0f')" "$(fmt "$(stats ${M[sel]} | cut -d' ' -f1)" '%.0f')" \
	"$(ratio_cell "$r" '%.3f')" "" info
# usage()'s own growth: its B/A over the control's B/A, pair by pair
r=$(stats $(paste -d' ' <(ratios "${M[usage_low]}" "${M[usage]}") <(ratios "${M[sel_low]}" "${M[sel]}") |
	awk '{ printf "%.6f\n", $1 / $2 }'))
ok=0; ge "${r%% *}" 0.9 && ok=1
row 2 "usage() at $MON_HIGH vs $MON_LOW connections, relative to the control (usage B/A over SELECT 1 B/A)" \
	"" "" "$(ratio_cell "$r" '%.3f')" ">= 0.9 (flat)" "$(verdict $ok)"
r=$(stats $(ratios "${M[psa_low]}" "${M[psa]}"))
row 2 "pg_stat_activity GROUP BY queries/s: A at $MON_LOW connections, B at $MON_HIGH (for contrast)" \
	"$(fmt "$(stats ${M[psa_low]} | cut -d' ' -f1)" '%.0f')" "$(fmt "${sa%% *}" '%.0f')" \
	"$(ratio_cell "$r" '%.3f')" "" info

# ======================================================= 4b. worker, 1000 idle
say "4. worker CPU, $MON_HIGH idle sessions due in 1 h: ${WORKER_SECS} s"
W_FAR=$(worker_cpu "$WORKER_SECS")
unhold holders_more
unhold holders_base
wait_sql "$B" "$napps_sql" 0 120

# ======================================================= 3. idle ending lag
set_budgets "INSERT INTO conngov.budgets (name, application_pattern, max_connections, idle_timeout)
	VALUES ('idle', 'idle-bench', 1000, interval '$IDLE_TIMEOUT_S s')"
say "4. worker CPU, nothing due, a budget with idle_timeout ${IDLE_TIMEOUT_S} s, no sessions: ${WORKER_SECS} s"
W_SHORT=$(worker_cpu "$WORKER_SECS")

say "3. idle ending lag: $IDLE_N sessions, idle_timeout $IDLE_TIMEOUT_S s, going idle ${IDLE_SPREAD_MS} ms apart"
t_start=$(q "$B" -c "SELECT now()")
PGAPPNAME=idle-bench pgbench -n -c "$IDLE_N" -j 1 -T 86400 -f "$S/idle.sql" \
	-h "$B" -p "$PORT" -U bench postgres >/dev/null 2>&1 &
idle_pgbench=$!
bg_pids+=($!)
# watch state_change of each session while it is idle, until all are ended
lag=$(q "$B" <<EOF
CREATE TEMP TABLE seen (pid int PRIMARY KEY, idle_since timestamptz);
DO \$\$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	LOOP
		PERFORM pg_stat_clear_snapshot();
		INSERT INTO seen
			SELECT pid, state_change FROM pg_stat_activity
			WHERE application_name = 'idle-bench' AND state = 'idle'
		ON CONFLICT (pid) DO UPDATE SET idle_since = greatest(seen.idle_since, excluded.idle_since);
		EXIT WHEN (SELECT count(*) FROM conngov.events('$t_start')
				   WHERE kind = 'ended_idle' AND budget = 'idle') >= $IDLE_N
			OR clock_timestamp() > t0 + interval '60 s';
		PERFORM pg_sleep(0.02);
	END LOOP;
END
\$\$;
SELECT count(*),
	   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
	   round(max(ms)::numeric, 1), round(min(ms)::numeric, 1)
FROM (SELECT extract(epoch FROM e.at - (s.idle_since + interval '$IDLE_TIMEOUT_S s')) * 1000 AS ms
	  FROM conngov.events('$t_start') e JOIN seen s USING (pid)
	  WHERE e.kind = 'ended_idle' AND e.budget = 'idle') x;
EOF
)
kill "$idle_pgbench" 2>/dev/null || true
wait "$idle_pgbench" 2>/dev/null || true
IFS='|' read -r l_n l_p50 l_p99 l_max l_min <<<"$lag"
[ "$l_n" -gt 0 ] || die "idle lag: no session was ended"
ok=0; [ "$l_n" = "$IDLE_N" ] && ge 1000 "$l_p99" && ok=1
row 3 "idle ending lag, ms past the deadline: $IDLE_N sessions, idle_timeout $IDLE_TIMEOUT_S s, going idle ${IDLE_SPREAD_MS} ms apart" \
	"" "p50 $l_p50, p99 $l_p99, max $l_max (min $l_min; $l_n/$IDLE_N ended)" "" "p99 <= 1000 ms" "$(verdict $ok)"

# ======================================================= 4. worker rows
worker_row "nothing due ($MON_APPS budgets with idle_timeout 1 h, no sessions)" "$W_NONE"
worker_row "$MON_HIGH idle sessions, deadline 1 h away" "$W_FAR"
worker_row "nothing due, a budget with idle_timeout $IDLE_TIMEOUT_S s and no sessions (wakes every $IDLE_TIMEOUT_S s)" "$W_SHORT"

# ======================================================= 5. storm
set_budgets "INSERT INTO conngov.budgets (name, application_pattern, max_connections)
	VALUES ('storm', 'storm', $STORM_BUDGET)"
refused0=$(q "$B" -c "SELECT refused FROM conngov.stats() WHERE budget = 'storm'")

# storm DIR TAG: STORM_N clients released at once; each connects as bench
# with application "storm", notes when its first query ran and holds the
# session STORM_HOLD s.  Prints "admitted refused failed settle_s overlap"
# where overlap = 1 when every outcome was known before the first admitted
# session ended (the storm really was simultaneous).
storm() {
	local dir=$1 sd=$work/storm/$2 i gofd rc t first
	local -a spids=()
	mkdir -p "$sd"
	mkfifo "$sd/go"
	exec {gofd}<>"$sd/go"
	for ((i = 1; i <= STORM_N; i++)); do
		(
			exec {gofd}>&-
			echo >>"$sd/ready"
			read -r _ <"$sd/go" || true
			PGAPPNAME=storm psql -X -q -At -h "$dir" -p "$PORT" -U bench -d postgres \
				-c "SELECT extract(epoch FROM clock_timestamp())" \
				-c "SELECT pg_sleep($STORM_HOLD)" >"$sd/out.$i" 2>"$sd/err.$i"
			echo "$? $EPOCHREALTIME" >"$sd/rc.$i"
		) &
		spids+=($!)
	done
	for ((i = 0; i < 1200; i++)); do
		[ -f "$sd/ready" ] && [ "$(wc -l <"$sd/ready")" -ge "$STORM_N" ] && break
		sleep 0.05
	done
	local start=$EPOCHREALTIME
	exec {gofd}>&-
	wait "${spids[@]}" || true
	for ((i = 1; i <= STORM_N; i++)); do
		read -r rc t <"$sd/rc.$i"
		if [ "$rc" = 0 ]; then
			first=$(head -n 1 "$sd/out.$i")
			echo "ok ${first:-none} $t"
		elif grep -q 'connection budget "storm" exhausted' "$sd/err.$i"; then
			echo "refused $t"
		else
			echo "failed $t"
			sed 's/^/bench: storm client: /' "$sd/err.$i" >&2
		fi
	done | awk -v start="$start" '
		$1 == "ok" && $2 !~ /^[0-9]+[.][0-9]+$/ { f++; next }
		$1 == "ok" { n++; if ($2 > last) last = $2; if (first_end == "" || $3 < first_end) first_end = $3; next }
		{ if ($2 > last) last = $2 }
		$1 == "refused" { r++ } $1 == "failed" { f++ }
		END { printf "%d %d %d %.3f %d\n", n, r, f, last - start, (first_end == "" || last < first_end) }'
}
storm_drain() { # DIR
	wait_sql "$1" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'storm'" 0 60
	[ "$1" = "$B" ] && wait_sql "$B" "SELECT total FROM conngov.usage() WHERE budget = 'storm'" 0 60
	return 0
}

SA="" SB="" ADM="" SFAIL=0 SNOOVER=0
for ((p = 1; p <= STORM_ROUNDS; p++)); do
	read -r na ra fa ta oa <<<"$(storm "$A" "a$p")"
	storm_drain "$A"
	read -r nb rb fb tb ob <<<"$(storm "$B" "b$p")"
	storm_drain "$B"
	say "5. storm round $p: A admitted $na in ${ta}s; B admitted $nb refused $rb in ${tb}s"
	SA+="$ta " SB+="$tb " ADM+="$nb "
	SFAIL=$((SFAIL + fa + fb + (na != STORM_N)))
	[ "$ob" = 1 ] || SNOOVER=$((SNOOVER + 1))
done
refused1=$(q "$B" -c "SELECT refused FROM conngov.stats() WHERE budget = 'storm'")
[ "$SFAIL" = 0 ] || die "storm: clients failed for another reason than the budget (see above)"
ok=1
for n in $ADM; do [ "$n" = "$STORM_BUDGET" ] || ok=0; done
amin=$(stats $ADM | cut -d' ' -f2) amax=$(stats $ADM | cut -d' ' -f3)
note=""
[ "$SNOOVER" = 0 ] || note="; $SNOOVER round(s) not simultaneous (an admitted session ended before the storm settled)"
row 5 "storm: $STORM_N clients at once, $STORM_ROUNDS rounds, admitted per round: A no conngov, B budget of $STORM_BUDGET" \
	"$STORM_N every round" "$(echo $ADM | tr ' ' ,) (min $amin, max $amax; refused $((refused1 - refused0)))$note" "" \
	"$STORM_BUDGET every round" "$(verdict $ok)"
r=$(stats $(ratios "$SA" "$SB"))
row 5 "storm: seconds until every client is admitted or refused" \
	"$(fmt "$(stats $SA | cut -d' ' -f1)" '%.2f')" "$(fmt "$(stats $SB | cut -d' ' -f1)" '%.2f')" \
	"$(ratio_cell "$r" '%.2f')" "" info

# ======================================================= table
say "done"
print_table "A and B: two clusters with identical settings (unix socket, max_connections 1100, shared_buffers 16MB, fsync off), B with shared_preload_libraries = 'conngov'." \
	"Paired rows: interleaved pairs (A B A B ...), $pairs unless stated; A and B are medians, B/A is the median of the pairwise ratios [min .. max]." \
	>"$work/table.txt"
cat "$work/table.txt"
[ -z "$out" ] || cp "$work/table.txt" "$out"
exit 0
