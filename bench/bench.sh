#!/usr/bin/env bash
# bench/bench.sh: the benchmark, in one command.
#
#   bash bench/bench.sh [--scale] [--smoke] [--pairs N] [--out FILE]
#
# Installs what it needs (Debian 12: PostgreSQL and its contrib, which has
# pgbench), builds and installs conngov, then runs bench/run.sh as an
# unprivileged user (PostgreSQL refuses to run as root) on throwaway
# clusters.  Prints one table; --out FILE also writes it to FILE.  The full
# run takes about 12 minutes.  --scale runs bench/scale.sh instead (up to
# 100 000 budgets; needs valgrind and libpq's header, installed here).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/lib.sh"

args=()
out=""
script=bench/run.sh
while [ $# -gt 0 ]; do
	case "$1" in
		--out) out=$2; shift ;;
		--scale) script=bench/scale.sh ;;
		*) args+=("$1") ;;
	esac
	shift
done

cg_install_packages "${PGVER:-15}" valgrind
cg_build_install "$here"
[ "$CG_BUILD_DIR" = "$here" ] || trap 'rm -rf "$CG_BUILD_DIR"' EXIT

if [ -n "$out" ]; then
	# the table is written by the invoking user, wherever FILE is
	cg_as_test_user "$CG_BUILD_DIR" bash "$script" "${args[@]}" | tee "$out"
else
	cg_as_test_user "$CG_BUILD_DIR" bash "$script" "${args[@]}"
fi
