#!/usr/bin/env bash
# bench/commit.sh: what a COMMIT that changes conngov.budgets costs, against
# the same change to a plain table, on one throwaway cluster with conngov
# preloaded (the installed build: run it once per build to compare builds).
#
#   bash bench/commit.sh [--smoke] [--pairs N] [--out FILE] [--keep]
#
#   --pairs N  commits of each kind (default 20); --smoke: 3
#   --out FILE also write the result lines to FILE
#   --keep     keep the cluster's directory (logs) for inspection
#
# One psql session runs, interleaved, N times each: BEGIN; a one-row UPDATE
# of max_connections; COMMIT, once on conngov.budgets and once on a plain
# table of the same shape (one row too), timing only the COMMIT with
# psql's \timing (client round trip).  Prints the medians (min, max) side
# by side, their difference and ratio.  Settings as bench/run.sh (fsync
# off: the cost measured is conngov's, not the disk's).  Runs as an
# unprivileged user with PostgreSQL's bin directory in PATH (or CG_PG_BIN).
set -euo pipefail
export LC_ALL=C
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

bench_args "$@"
[ "$pairs" = 5 ] && pairs=20 # lib.sh's default is for the paired benchmarks
[ "$mode" = smoke ] && pairs=3
for cmd in initdb pg_ctl psql postgres pg_config; do
	command -v "$cmd" >/dev/null || die "$cmd not found in PATH (set CG_PG_BIN)"
done
[ -f "$(pg_config --pkglibdir)/conngov.so" ] ||
	die "conngov is not installed in $(pg_config --pkglibdir)"
PORT=5432
T0=$SECONDS
bench_workdir conngov-commit

say "cluster in $work, $pairs commits of each kind"
mkdir -p "$B"
initdb -D "$B/data" -A trust -U postgres -N >/dev/null
cat >>"$B/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$B'
port = $PORT
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
shared_preload_libraries = 'conngov'
EOF
pg_ctl -D "$B/data" -l "$B/server.log" -w -t 120 start >/dev/null ||
	{ tail -n 30 "$B/server.log" >&2; die "cluster did not start"; }
q "$B" -c "CREATE EXTENSION conngov" \
	-c "INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('bench', 'bench%', 10)" \
	-c "CREATE TABLE bench_plain (LIKE conngov.budgets INCLUDING DEFAULTS)" \
	-c "ALTER TABLE bench_plain ADD PRIMARY KEY (name)" \
	-c "INSERT INTO bench_plain SELECT * FROM conngov.budgets" \
	-c "SELECT conngov.reload()" >/dev/null

# the script: COMMITs alone are timed; a warm-up of 3 of each first
script=$work/commits.sql
{
	echo '\set QUIET on'
	for i in $(seq 1 $((pairs + 3))); do
		for t in conngov.budgets bench_plain; do
			echo '\timing off'
			echo 'BEGIN;'
			echo "UPDATE $t SET max_connections = $((i % 7 + 1)) WHERE name = 'bench';"
			echo "\\echo $t"
			echo '\timing on'
			echo 'COMMIT;'
		done
	done
} >"$script"
out_raw=$(q "$B" -f "$script")
times() { # times TABLE: the COMMIT times of TABLE in ms, warm-up left out
	awk -v t="$1" '$0 == t { getline; if ($1 == "Time:") print $2 }' <<<"$out_raw" | tail -n "$pairs"
}
budgets=($(times conngov.budgets))
plain=($(times bench_plain))
[ "${#budgets[@]}" = "$pairs" ] && [ "${#plain[@]}" = "$pairs" ] ||
	{ echo "$out_raw" | head -n 20 >&2; die "could not read the COMMIT times"; }
read -r bm bmin bmax <<<"$(stats "${budgets[@]}")"
read -r pm pmin pmax <<<"$(stats "${plain[@]}")"
lib=$(pg_config --pkglibdir)/conngov.so
result=$(
	echo "conngov COMMIT cost ($mode run, $(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - T0)) s, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "build: $lib ($(stat -c %y "$lib" | cut -d. -f1))"
	printf '| %-40s | %12s | %18s |\n' "COMMIT of a one-row UPDATE, $pairs each" "median ms" "[min .. max] ms"
	printf '| %-40s | %12s | %18s |\n' "conngov.budgets (B)" "$(fmt "$bm" %.3f)" "[$(fmt "$bmin" %.2f) .. $(fmt "$bmax" %.2f)]"
	printf '| %-40s | %12s | %18s |\n' "a plain table of the same shape (A)" "$(fmt "$pm" %.3f)" "[$(fmt "$pmin" %.2f) .. $(fmt "$pmax" %.2f)]"
	printf '| %-40s | %12s | %18s |\n' "B - A (ms), B/A" "$(awk -v b="$bm" -v a="$pm" 'BEGIN { printf "%.3f", b - a }')" "$(awk -v b="$bm" -v a="$pm" 'BEGIN { printf "%.2fx", b / a }')"
)
echo "$result"
[ -z "$out" ] || echo "$result" >"$out"
