#!/usr/bin/env bash
# bench/scale.sh: conngov with many budgets (SPEC.md, "Scale"), measured
# side by side on throwaway clusters, printed as one table.
#
#   bash bench/scale.sh [--smoke] [--pairs N] [--out FILE] [--keep]
#
#   --smoke    every benchmark with small sizes (up to 1000 budgets), one
#              pair: proves the script works; never fails on a missed
#              target, only when the script itself breaks
#   --pairs N  interleaved A/B pairs (default 5)
#   --out FILE also write the final table to FILE
#   --keep     keep the clusters' directory (logs) for inspection
#
# Runs as an unprivileged user with PostgreSQL's bin directory in PATH (or
# CG_PG_BIN set), conngov installed, and valgrind, gcc and libpq's header
# for rows 2 and 3; bench/bench.sh --scale installs, builds and runs it.
# Two clusters on unix sockets: A without conngov, B with conngov preloaded
# and conngov.max_budgets = 100000.  The budgets are per-tenant ones, as a
# multi-tenant service would have: half keyed by role (pattern '%'), half
# by an application prefix; the budget that matches the benchmark's logins
# ("bench-login%") comes last in matching order, so a linear scan would try
# every other budget first.
#
#  1. login rate: pgbench -C (4 clients, SELECT 1), A vs B with 1, 100,
#     10 000 and 100 000 budgets
#  2. instructions per login (callgrind, a backend's PostgresMain): B with 1
#     and with 100 000 budgets, A for reference
#  3. login latency (bench/connlat.c, 4 clients) at 100 000 budgets, p50 and
#     p99, while budgets are published back to back vs without publishes
#  4. usage(), stats(), health() time at 100 000 budgets
#  5. conngov's shared memory at max_budgets 256, 10 000 and 100 000
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

bench_args "$@"
for cmd in initdb pg_ctl psql pgbench postgres pg_config pg_isready valgrind gcc; do
	command -v "$cmd" >/dev/null || { echo "bench: $cmd not found in PATH" >&2; exit 2; }
done
[ -f "$(pg_config --pkglibdir)/conngov.so" ] ||
	{ echo "bench: conngov is not installed in $(pg_config --pkglibdir)" >&2; exit 2; }

if [ "$mode" = smoke ]; then
	pairs=1
	SIZES="1 100 1000" BIG=1000
	LOGIN_DUR="-t 20" LOGIN_DESC="20 logins per client"
	CG_LOGINS=3 LAT_LOGINS=20 MON_RUNS=2
	SHM_SIZES="256 1000"
else
	SIZES="1 100 10000 100000" BIG=100000
	LOGIN_DUR="-T 3" LOGIN_DESC="3 s"
	CG_LOGINS=15 LAT_LOGINS=250 MON_RUNS=5
	SHM_SIZES="256 10000 100000"
fi
PORT=5432
HZ=$(getconf CLK_TCK)
T0=$SECONDS
BENCH_TITLE="scale benchmarks"

bench_workdir conngov-scale
S=$work/scripts

# ---------------------------------------------------------------- clusters
say "clusters in $work ($mode run, $pairs pair(s))"
mkdir -p "$A" "$B" "$S"
echo "SELECT 1;" >"$S/select1.sql"
echo "SELECT count(*) FROM conngov.usage();" >"$S/usage.sql"
echo "SELECT count(*) FROM conngov.stats();" >"$S/stats.sql"
echo "SELECT length(conngov.health()::text);" >"$S/health.sql"
gcc -O2 -I"$(pg_config --includedir)" "$here/connlat.c" -o "$work/connlat" \
	-L"$(pg_config --libdir)" -lpq

initdb -D "$A/data" -A trust -U postgres -N >/dev/null
cp -a "$A/data" "$B/data"
for d in "$A" "$B"; do
	cat >>"$d/data/postgresql.conf" <<EOF

# conngov scale bench: identical on both clusters
listen_addresses = ''
unix_socket_directories = '$d'
port = $PORT
max_connections = 100
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
autovacuum = off
log_line_prefix = '%m [%p] '
EOF
done
cat >>"$B/data/postgresql.conf" <<EOF
# the only difference
shared_preload_libraries = 'conngov'
EOF
echo "conngov.max_budgets = $BIG" >"$B/data/max_budgets.conf"
echo "include = 'max_budgets.conf'" >>"$B/data/postgresql.conf"

start() { # DIR
	pg_ctl -D "$1/data" -l "$1/server.log" -w -t 300 start >/dev/null ||
		{ tail -n 30 "$1/server.log" >&2; die "cluster $1 did not start"; }
}
stop() { pg_ctl -D "$1/data" -m fast -w -t 300 stop >/dev/null; }
for d in "$A" "$B"; do
	start "$d"
	q "$d" -c "CREATE ROLE bench LOGIN"
done
q "$B" -c "CREATE EXTENSION conngov"

# set_budgets N: N budgets, the one matching "bench-login" last in order
set_budgets() {
	q "$B" -c "SET client_min_messages = error" -c "BEGIN" \
		-c "DELETE FROM conngov.budgets" \
		-c "INSERT INTO conngov.budgets (name, application_pattern, role_name, max_connections, priority)
			SELECT format('tenant-%s', lpad(i::text, 6, '0')),
				   CASE WHEN i % 2 = 0 THEN '%' ELSE format('tenant-%s-%%', lpad(i::text, 6, '0')) END,
				   CASE WHEN i % 2 = 0 THEN format('tenant_%s', i) END,
				   10, 100
			FROM generate_series(1, $1 - 1) i
			UNION ALL SELECT 'zz-bench', 'bench-login%', NULL, 100000, 1000" \
		-c "COMMIT" >/dev/null
	[ "$(q "$B" -c "SELECT conngov.reload()")" = "$1" ] ||
		die "B did not load $1 budgets"
}

# ======================================================= 1. login rate
say "1. login rate: warm-up"
for d in "$A" "$B"; do
	PGAPPNAME=bench-login pgbench -n -C -c 4 -j 4 -t 20 -f "$S/select1.sql" \
		-h "$d" -p "$PORT" -U bench postgres >/dev/null 2>&1
done
for n in $SIZES; do
	set_budgets "$n"
	a0=$(q "$B" -c "SELECT admitted FROM conngov.stats() WHERE budget = 'zz-bench'")
	LA="" LB=""
	for ((p = 1; p <= pairs; p++)); do
		read -r a _ <<<"$(login "$A")"
		read -r b _ <<<"$(login "$B")"
		LA+="$a " LB+="$b "
		say "1. login, $n budget(s), pair $p/$pairs: A $a/s, B $b/s"
	done
	a1=$(q "$B" -c "SELECT admitted FROM conngov.stats() WHERE budget = 'zz-bench'")
	[ "$a1" -gt "$a0" ] || die "login benchmark: the last budget admitted nobody"
	r=$(stats $(ratios "$LA" "$LB"))
	sa=$(stats $LA) sb=$(stats $LB)
	ok=0; ge "${r%% *}" 0.97 && ok=1
	row 1 "login, connections/s (pgbench -C, 4 clients, $pairs pairs of $LOGIN_DESC): A no conngov, B $n budget(s), the match last" \
		"$(fmt "${sa%% *}" '%.0f')" "$(fmt "${sb%% *}" '%.0f')" "$(ratio_cell "$r" '%.3f')" ">= 0.97" "$(verdict $ok)"
done

# ======================================================= 2. instructions
# callgrind_logins DIR: median instructions of a login's PostgresMain over
# CG_LOGINS logins (psql -c 'SELECT 1'), the server run under callgrind
callgrind_logins() {
	local d=$1 out=$work/cg-$(basename "$1") f before n ir
	stop "$d"
	rm -rf "$out"
	mkdir -p "$out"
	valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" \
		--toggle-collect=PostgresMain --collect-atstart=no \
		postgres -D "$d/data" >"$d/valgrind.log" 2>&1 &
	bg_pids+=($!)
	for _ in $(seq 1 600); do
		pg_isready -q -h "$d" -p "$PORT" && break
		sleep 0.5
	done
	pg_isready -q -h "$d" -p "$PORT" || die "$d did not start under valgrind"
	# B: the budgets are loaded (the loader runs under valgrind too)
	if [ "$d" = "$B" ]; then
		for _ in $(seq 1 600); do
			[ "$(q "$d" -c "SELECT state FROM conngov.health() h,
				jsonb_to_recordset(h->'checks') AS c(name text, state text)
				WHERE name = 'budgets'")" = loaded ] && break
			sleep 0.5
		done
	fi
	sleep 1 # the readiness queries' backends exit and write their files
	before=$(ls "$out")
	for ((n = 0; n < CG_LOGINS; n++)); do
		PGAPPNAME=bench-login psql -X -q -At -h "$d" -p "$PORT" -U bench -d postgres \
			-c 'SELECT 1' >/dev/null
	done
	sleep 1
	pg_ctl -D "$d/data" -m fast -w -t 300 stop >/dev/null
	wait "${bg_pids[-1]}" 2>/dev/null || true
	start "$d"
	for f in "$out"/cg.*; do
		grep -qx "$(basename "$f")" <<<"$before" && continue
		ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$f")
		[ -n "$ir" ] && [ "$ir" -gt 0 ] && echo "$ir"
	done | sort -n | awk '{ a[NR] = $1 } END {
		if (NR == 0) exit 1
		printf "%d %d\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2, NR }'
}
say "2. instructions per login under callgrind ($CG_LOGINS logins each)"
read -r ia na <<<"$(callgrind_logins "$A")" || die "callgrind: no login measured on A"
set_budgets 1
read -r i1 n1 <<<"$(callgrind_logins "$B")" || die "callgrind: no login measured on B"
set_budgets "$BIG"
read -r ib nb <<<"$(callgrind_logins "$B")" || die "callgrind: no login measured on B"
say "2. A $ia ($na), B 1 budget $i1 ($n1), B $BIG budgets $ib ($nb)"
row 2 "instructions per login (callgrind, PostgresMain, median of $CG_LOGINS): A no conngov, B 1 budget" \
	"$ia" "$i1" "$(fmt "$(awk -v a="$ia" -v b="$i1" 'BEGIN { print b / a }')" '%.4f')" "" info
ok=0; lt "$(awk -v a="$i1" -v b="$ib" 'BEGIN { print b / a }')" 1.02 && ok=1
row 2 "instructions per login, same: A = B with 1 budget, B = B with $BIG budgets" \
	"$i1" "$ib" "$(fmt "$(awk -v a="$i1" -v b="$ib" 'BEGIN { print b / a }')" '%.4f')" "< 1.02" "$(verdict $ok)"

# ======================================================= 3. latency
# latency: "p50_us p99_us" of 4 connlat clients, LAT_LOGINS logins each
latency() {
	local i pids=()
	for i in 1 2 3 4; do
		"$work/connlat" "host=$B port=$PORT user=bench dbname=postgres application_name=bench-login" \
			"$LAT_LOGINS" >"$work/lat.$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || die "connlat failed"; done
	cat "$work"/lat.[1-4] | sort -n | awk '{ a[NR] = $1 } END {
		printf "%d %d\n", a[int(NR * 0.50 + 0.5)], a[int(NR * 0.99 + 0.5)] }'
}
# publisher: publish the budgets again and again (one row changes each time)
publisher() {
	local i=0
	while :; do
		i=$((i + 1))
		q "$B" -c "SET client_min_messages = error" \
			-c "UPDATE conngov.budgets SET max_connections = 10 + $i % 7 WHERE name = 'tenant-000001'" \
			-c "SELECT conngov.reload()" >/dev/null || return 0
		echo "$i" >"$work/publishes"
	done
}
say "3. login latency at $BIG budgets, with and without publishes"
P50A="" P99A="" P50B="" P99B="" PUBS=""
for ((p = 1; p <= pairs; p++)); do
	read -r a50 a99 <<<"$(latency)"
	echo 0 >"$work/publishes"
	publisher &
	pub=$!
	bg_pids+=($pub)
	read -r b50 b99 <<<"$(latency)"
	kill "$pub" 2>/dev/null || true
	wait "$pub" 2>/dev/null || true
	PUBS+="$(cat "$work/publishes") "
	P50A+="$a50 " P99A+="$a99 " P50B+="$b50 " P99B+="$b99 "
	say "3. pair $p/$pairs: without p50 ${a50} us p99 ${a99} us; with $(cat "$work/publishes") publishes p50 ${b50} us p99 ${b99} us"
done
t=$(q "$B" -c "\\timing on" -c "SELECT conngov.reload()" | awk '/^Time:/ { print $2 }')
row 3 "login latency p50, ms (4 connlat clients x $LAT_LOGINS logins, $BIG budgets): A no publish, B publishes back to back ($(echo $PUBS | tr ' ' ,) per run; one publish ${t} ms)" \
	"$(fmt "$(awk -v v="$(stats $P50A | cut -d' ' -f1)" 'BEGIN { print v / 1000 }')" '%.2f')" \
	"$(fmt "$(awk -v v="$(stats $P50B | cut -d' ' -f1)" 'BEGIN { print v / 1000 }')" '%.2f')" \
	"$(ratio_cell "$(stats $(ratios "$P50A" "$P50B"))" '%.2f')" "" info
d99=$(awk -v a="$(stats $P99A | cut -d' ' -f1)" -v b="$(stats $P99B | cut -d' ' -f1)" 'BEGIN { print (b - a) / 1000 }')
ok=0; lt "$d99" 10 && ok=1
row 3 "login latency p99, ms, same runs (target: with publishes at most 10 ms more)" \
	"$(fmt "$(awk -v v="$(stats $P99A | cut -d' ' -f1)" 'BEGIN { print v / 1000 }')" '%.2f')" \
	"$(fmt "$(awk -v v="$(stats $P99B | cut -d' ' -f1)" 'BEGIN { print v / 1000 }')" '%.2f')" \
	"$(ratio_cell "$(stats $(ratios "$P99A" "$P99B"))" '%.2f')" "B - A < 10 ms ($(fmt "$d99" '%.2f'))" "$(verdict $ok)"

# ======================================================= 4. monitoring
say "4. monitoring functions at $BIG budgets"
for f in usage stats health; do
	o=$(pgbench -n -c 1 -t "$MON_RUNS" -f "$S/$f.sql" -h "$B" -p "$PORT" -U postgres postgres 2>&1)
	ms=$(awk '/^latency average = / { print $4; exit }' <<<"$o")
	[ -n "$ms" ] || { echo "$o" >&2; die "pgbench gave no latency for $f()"; }
	row 4 "$f() at $BIG budgets, ms per call (average of $MON_RUNS)" "" "$ms" "" "" info
done

# ======================================================= 5. shared memory
say "5. shared memory"
shm=""
for n in $SHM_SIZES; do
	echo "conngov.max_budgets = $n" >"$B/data/max_budgets.conf"
	stop "$B"
	start "$B"
	sz=$(q "$B" -c "SELECT size FROM pg_shmem_allocations WHERE name = 'conngov'")
	shm+="$n:$sz "
	row 5 "conngov's shared memory (pg_shmem_allocations) at max_budgets = $n, max_connections 100" \
		"" "$(fmt "$(awk -v s="$sz" 'BEGIN { print s / 1048576 }')" '%.2f') MiB" "" "" info
done
read -r n0 s0 <<<"$(tr ':' ' ' <<<"${shm%% *}")"
last_pair=${shm% }
last_pair=${last_pair##* }
read -r n1 s1 <<<"$(tr ':' ' ' <<<"$last_pair")"
row 5 "bytes per budget: (size at $n1 - size at $n0) / $((n1 - n0))" "" \
	"$(awk -v a="$s0" -v b="$s1" -v n="$((n1 - n0))" 'BEGIN { printf "%.0f", (b - a) / n }')" "" "" info

say "done"
print_table "A and B: two clusters with identical settings (unix socket, max_connections 100, shared_buffers 32MB, fsync off, autovacuum off), B with shared_preload_libraries = 'conngov'." \
	"Budgets: per tenant, half keyed by role (pattern '%'), half by an application prefix; the one the logins match comes last in matching order." \
	"Paired rows: interleaved pairs (A B A B ...), $pairs; A and B are medians, B/A is the median of the pairwise ratios [min .. max]." \
	>"$work/table.txt"
cat "$work/table.txt"
[ -z "$out" ] || cp "$work/table.txt" "$out"
exit 0
