#!/usr/bin/env bash
# bench/switchover.sh: does conngov delay Patroni?  Switchover times of a
# Patroni fleet with conngov preloaded (and budgets loaded) against one
# without, side by side in one run.
#
#   bash bench/switchover.sh [--smoke] [--pairs N] [--out FILE] [--keep]
#
# Two fleets of the fleet suite's harness (test/fleet/FleetTest.pm: etcd
# and three Patroni nodes on loopback, free ports): A with
# shared_preload_libraries empty, B with conngov preloaded and a catch-all
# budget of 0 plus role budgets.  PAIRS switchovers on each (default 5; 1
# with --smoke), A and B in turn; per switchover the time patronictl took,
# the time until the candidate is writable and until the old primary
# streams again; medians and B/A (bench/switchover.pl).  Not asserted.
# Runs as an unprivileged user with PostgreSQL's bin directory in PATH (or
# CG_PG_BIN, and CG_PG_CONFIG), conngov installed, and Debian's patroni and
# etcd-server installed (`bash test/run-tests.sh fleet` installs them); as
# root, run it through test/lib.sh's cg_as_test_user.
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

bench_args "$@"
[ "$mode" = smoke ] && pairs=1
T0=$SECONDS
command -v patroni >/dev/null && command -v etcd >/dev/null ||
	die "needs Debian's patroni and etcd-server (bash test/run-tests.sh fleet installs them)"
pgc=${CG_PG_CONFIG:-$(command -v pg_config)}
perllib=$("$pgc" --pkglibdir)/pgxs/src/test/perl
[ -f "$perllib/PostgreSQL/Test/Cluster.pm" ] || die "no PostgreSQL::Test::Cluster in $perllib"

bench_workdir conngov-switchover
say "fleets in $work"
report=$work/report
TESTDIR=$work CG_PG_CONFIG=$pgc perl -I "$perllib" -I "$here/../test" \
	-I "$here/../test/fleet" "$here/switchover.pl" "$pairs" >"$report"
{
	echo "conngov switchover bench ($mode run, $(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - T0)) s)"
	echo "machine: $(nproc) cores, Linux $(uname -r), $(postgres --version | sed 's/^postgres (PostgreSQL) /PostgreSQL /'), $(patroni --version), etcd $(etcd --version | awk 'NR == 1 { print $3 }'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	cat "$report"
} | if [ -n "$out" ]; then tee "$out"; else cat; fi
