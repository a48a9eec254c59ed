# bench/lib.sh: helpers shared by bench/run.sh and bench/scale.sh (sourced).
# They expect: $mode (full or smoke), $PORT, $T0 (SECONDS at the start) and
# $work; the table rows accumulate in rows[].

# bench_args "$@": the options every bench script takes (see its header):
# sets mode, pairs, out (made absolute) and keep, and puts CG_PG_BIN first
# in PATH
bench_args() {
	mode=full
	pairs=5
	out=""
	keep=0
	while [ $# -gt 0 ]; do
		case "$1" in
			--smoke) mode=smoke ;;
			--pairs) pairs=$2; shift ;;
			--out) out=$2; shift ;;
			--keep) keep=1 ;;
			-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
			*) echo "bench: unknown option $1" >&2; exit 2 ;;
		esac
		shift
	done
	if [ -n "${CG_PG_BIN:-}" ]; then PATH="$CG_PG_BIN:$PATH"; fi
	case "$out" in "" | /*) ;; *) out=$PWD/$out ;; esac
}

# bench_workdir NAME: a temp dir $work to run from (the caller's directory
# may vanish: a build copy), the two clusters' dirs $A (no conngov) and $B
# (conngov preloaded), bg_pids[] for background clients; on exit, both
# clusters stop and the dir goes (unless --keep)
bench_workdir() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	cd "$work"
	A=$work/a
	B=$work/b
	bg_pids=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}
bench_cleanup() {
	local p d
	for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for d in "$A" "$B"; do
		[ -f "$d/data/postmaster.pid" ] &&
			pg_ctl -D "$d/data" -m immediate stop >/dev/null 2>&1 || true
	done
	if [ "$keep" = 1 ]; then echo "bench: kept $work" >&2; else rm -rf "$work"; fi
}

say() { printf 'bench [%3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# q DIR SQL...: as the superuser, unaligned, no headers
q() {
	local dir=$1
	shift
	psql -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$PORT" -U postgres -d postgres "$@"
}

# numbers ---------------------------------------------------------------
# stats V...: "median min max"
stats() {
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
		END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
			  printf "%s %s %s\n", m, a[1], a[NR] }'
}
# ratios "A..." "B...": the pairwise ratios B/A
ratios() {
	local -a a=($1) b=($2)
	local i
	for i in "${!a[@]}"; do awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { printf "%.6f\n", y / x }'; done
}
last() { echo "${@: -1}"; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }
# ge X Y: X >= Y; lt X Y: X < Y
ge() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x >= y) }'; }
lt() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x < y) }'; }

# table ------------------------------------------------------------------
rows=()
# row "#" "what" "A" "B" "B/A" "target" "result"
row() { rows+=("$(printf '%s\t' "$@")"); }
verdict() { # verdict OK?: PASS/MISS in full mode, "ok"/"(miss)" in smoke
	if [ "$1" = 1 ]; then
		[ "$mode" = full ] && echo PASS || echo "pass (smoke)"
	else
		[ "$mode" = full ] && echo MISS || echo "miss (smoke)"
	fi
}
ratio_cell() { # "median min max" -> "0.991 [0.975 .. 1.010]"
	local -a s=($1)
	printf '%s [%s .. %s]' "$(fmt "${s[0]}" "$2")" "$(fmt "${s[1]}" "$2")" "$(fmt "${s[2]}" "$2")"
}

# tps OUTPUT: pgbench's tps line (with -C: connections/s)
tps() {
	local v
	v=$(awk '/^tps = / { print $3; exit }' <<<"$1")
	[ -n "$v" ] || { echo "$1" >&2; die "pgbench gave no tps"; }
	echo "$v"
}

# print_table LINE...: the header (title, machine, the LINEs describing the
# sides) and the rows as a markdown table
print_table() {
	local ncpu model
	ncpu=$(nproc)
	model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	echo "conngov ${BENCH_TITLE:-benchmarks} ($mode run, $(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - T0)) s)"
	echo "machine: $ncpu cores (${model:-unknown CPU}), Linux $(uname -r), $(postgres --version | sed 's/^postgres (PostgreSQL) /PostgreSQL /'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	printf '%s\n' "$@"
	echo
	printf '%s\n' "| # | benchmark | A | B | B/A | target | result |" "${rows[@]}" | awk -F'\t' '
		NR == 1 { print; print "|---|---|--:|--:|--:|---|---|"; next }
		{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }'
}

# backend_cpu DIR: CPU ticks of the cluster's exited children (backends),
# from the postmaster's cutime + cstime
backend_cpu() {
	sed 's/.*) //' "/proc/$(head -n 1 "$1/data/postmaster.pid")/stat" | awk '{ print $14 + $15 }'
}
# login DIR: "connections/s cpu_us_per_login" of pgbench -C, 4 clients, role
# bench; CPU is what the server's backends used, per connection
login() {
	local c0 c1 o n
	c0=$(backend_cpu "$1")
	o=$(PGAPPNAME=bench-login pgbench -n -C -c 4 -j 4 $LOGIN_DUR -f "$S/select1.sql" \
		-h "$1" -p "$PORT" -U bench postgres 2>&1)
	sleep 0.2 # the last backends exit
	c1=$(backend_cpu "$1")
	n=$(awk '/^number of transactions actually processed:/ { print $NF; exit }' <<<"$o")
	awk -v t="$(tps "$o")" -v c="$((c1 - c0))" -v n="$n" -v hz="$HZ" \
		'BEGIN { printf "%s %.1f\n", t, c / hz / n * 1e6 }'
}
