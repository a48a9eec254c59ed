#!/usr/bin/env bash
# bench/rate.sh: a reconnect storm against one budget, with no login-rate
# limit, with login_rate, and with login_rate and pacing (login_wait), side
# by side in one run: the server's CPU, another application's connect
# latency (median, p99) and the storm's logins and refusals per second.
#
#   bash bench/rate.sh [--smoke] [--pairs N] [--out FILE] [--keep]
#
# One cluster with conngov (unix socket, max_connections 200).  Budget
# "storm" (application_name storm-%, role bench) allows 100 connections, so
# its limit never refuses: 8 clients (bench/storm.c) log in, run SELECT 1
# and log out as fast as they can, retrying at once when refused, as pools
# re-filling after a failover or a client retrying in a loop do.  Another
# application (role other, unbudgeted) logs in ten times a second
# (bench/connlat.c) and its connect latency is recorded.  The three sides,
# interleaved PAIRS times (default 3; 1 with --smoke) for 10 s each (2 s
# with --smoke):
#   A  login_rate NULL: every login admitted;
#   B  login_rate 20, burst 20: logins over the rate refused after
#      authentication ("login rate exceeded"), the client retries at once;
#   C  login_rate 20, burst 20, login_wait 2 s: logins over the rate wait
#      for their token (paced) instead.
# Server CPU is what the postmaster's children used (cutime + cstime after
# they exited), per second of storm.  Ratios are B/A and C/A of the medians.
# Runs as an unprivileged user with PostgreSQL's bin directory in PATH (or
# CG_PG_BIN) and conngov installed; needs gcc and libpq's headers.
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

bench_args "$@"
[ "$mode" = smoke ] && pairs=1
dur=10
[ "$mode" = smoke ] && dur=2
clients=8
T0=$SECONDS
HZ=$(getconf CLK_TCK)
BENCH_TITLE="login-rate bench"
bench_workdir conngov-rate

say "building bench/storm.c and bench/connlat.c"
inc=$(pg_config --includedir)
lib=$(pg_config --libdir)
gcc -O2 -o "$work/storm" "$here/storm.c" -I"$inc" -L"$lib" -lpq
gcc -O2 -o "$work/connlat" "$here/connlat.c" -I"$inc" -L"$lib" -lpq

PORT=$((20000 + RANDOM % 20000))
say "cluster on port $PORT"
initdb -D "$B/data" -A trust -U postgres >/dev/null
cat >>"$B/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$B'
port = $PORT
max_connections = 200
shared_preload_libraries = 'conngov'
conngov.database = 'postgres'
conngov.log_refusals = off
log_min_messages = fatal
CONF
pg_ctl -D "$B/data" -l "$work/log" -w start >/dev/null
q "$B" -c "CREATE EXTENSION conngov; CREATE ROLE bench LOGIN; CREATE ROLE other LOGIN;"
q "$B" -c "INSERT INTO conngov.budgets (name, application_pattern, role_name, max_connections) VALUES ('storm', 'storm-%', 'bench', 100)" >/dev/null

# side NAME RATE WAIT: one storm of $dur s; prints
# "cpu_s_per_s admitted_per_s refused_rate_per_s refused_limit_per_s paced p50_ms p99_ms"
side() {
	local rate=$2 wait=$3 c0 c1 i n=0 t_end
	q "$B" -c "UPDATE conngov.budgets SET login_rate = $rate, login_wait = $wait WHERE name = 'storm'" >/dev/null
	q "$B" -c "SELECT conngov.reset_stats()" >/dev/null
	rm -f "$work"/out.* "$work/lat"
	sleep 0.5
	c0=$(backend_cpu "$B")
	for i in $(seq 1 $clients); do
		"$work/storm" "host=$B port=$PORT dbname=postgres user=bench application_name=storm-$i" \
			"$dur" >"$work/out.$i" 2>/dev/null &
		bg_pids+=($!)
	done
	t_end=$((SECONDS + dur))
	while [ $SECONDS -lt $t_end ]; do
		"$work/connlat" "host=$B port=$PORT dbname=postgres user=other application_name=other" 1 \
			>>"$work/lat" 2>/dev/null || true
		sleep 0.1
	done
	wait "${bg_pids[@]}" 2>/dev/null || true
	bg_pids=()
	sleep 0.5 # the last backends exit
	c1=$(backend_cpu "$B")
	cat "$work"/out.* | awk -v cpu="$((c1 - c0))" -v hz="$HZ" -v d="$dur" \
		-v paced="$(q "$B" -c "SELECT paced FROM conngov.stats() WHERE budget = 'storm'")" \
		-v lat="$(sort -g "$work/lat" | awk '{ a[NR] = $1 } END {
			if (NR == 0) { print "0 0"; exit }
			m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
			p = a[int(NR * 0.99 + 0.999)]
			printf "%.2f %.2f", m / 1000, p / 1000 }')" '
		{ adm += $2; lim += $4; rate += $6; oth += $8 }
		END { printf "%.3f %.1f %.1f %.1f %d %s\n", cpu / hz / d, adm / d, rate / d, lim / d, paced, lat }'
}

declare -a RA RB RC
for ((p = 0; p < pairs; p++)); do
	RA[p]=$(side A NULL NULL)
	say "pair $((p + 1)) A (no rate limit):      ${RA[p]}"
	RB[p]=$(side B 20 NULL)
	say "pair $((p + 1)) B (login_rate 20):      ${RB[p]}"
	RC[p]=$(side C 20 "'2 s'")
	say "pair $((p + 1)) C (login_rate 20, paced): ${RC[p]}"
done

# col I SIDE...: field I of each run of a side, median
col() {
	local i=$1
	shift
	local s
	s=$(for r in "$@"; do awk -v i="$i" '{ print $i }' <<<"$r"; done | sort -g |
		awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
	echo "$s"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "-" }'; }

{
	echo "conngov $BENCH_TITLE ($mode run, $(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - T0)) s)"
	echo "machine: $(nproc) cores, Linux $(uname -r), $(postgres --version | sed 's/^postgres (PostgreSQL) /PostgreSQL /'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "storm: $clients clients log in, SELECT 1, log out as fast as they can, retrying at once when refused; budget \"storm\" allows 100 connections; $dur s per side, $pairs pair(s), medians"
	echo "A: no login_rate; B: login_rate 20 (burst 20); C: login_rate 20 (burst 20) with login_wait 2 s (paced)"
	echo
	echo "| measure | A | B | C | B/A | C/A |"
	echo "|---|--:|--:|--:|--:|--:|"
	i=0
	for label in "server CPU, s per s of storm" "storm logins admitted per s" \
		"refused for the rate per s" "refused for the limit per s" \
		"paced logins (whole side)" "other app connect latency median, ms" \
		"other app connect latency p99, ms"; do
		i=$((i + 1))
		a=$(col $i "${RA[@]}")
		b=$(col $i "${RB[@]}")
		c=$(col $i "${RC[@]}")
		echo "| $label | $a | $b | $c | $(ratio "$a" "$b") | $(ratio "$a" "$c") |"
	done
} | tee ${out:+"$out"}
