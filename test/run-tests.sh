#!/usr/bin/env bash
# test/run-tests.sh: install what the tests need, build and install conngov,
# then run the whole suite (pg_regress and TAP) on throwaway clusters.
#
#   bash test/run-tests.sh            everything
#   bash test/run-tests.sh regress    pg_regress only
#   bash test/run-tests.sh tap [t/NNN_x.pl ...]   TAP only (optionally some)
#   bash test/run-tests.sh clients    real drivers and poolers (test/clients/):
#                                     pgjdbc + HikariCP, node-postgres,
#                                     psycopg2 + SQLAlchemy, PgBouncer
#   bash test/run-tests.sh long       everything, then fuzz the matcher
#                                     (FUZZ_SECONDS, default 300)
#   bash test/run-tests.sh matrix     everything on PostgreSQL 15, 17 and 18
#   bash test/run-tests.sh others     everything on PostgreSQL 17 and 18
#   bash test/run-tests.sh stress     everything three times in a row while
#                                     CPU hogs (stress-ng) keep the load at
#                                     4 x the cores or more (CG_STRESS_ROUNDS)
#
# PGVER picks the major version (default 15, Debian 12's packages); set
# CG_PG_CONFIG for a server built from source (test/pg-source.sh).
# PostgreSQL refuses to run as root: started as root, the script builds and
# installs as root and runs the tests as the unprivileged user "cgtest" in a
# copy of the tree.  Exits non-zero when any test fails.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
shift || true
PGVER=${PGVER:-15}

if [ "$what" = matrix ] || [ "$what" = others ]; then
	# 15 from Debian 12's packages; 17 from trixie's packages in a chroot
	# (its binaries need trixie's libc); 18 built from sid's source package.
	# Both are cached in $CG_CACHE (default /var/cache/conngov) for later
	# runs.  "others" runs 17 and 18 only.
	rc=0
	cache=${CG_CACHE:-/var/cache/conngov}
	if [ "$what" = matrix ]; then
		bash "$here/test/run-tests.sh" all || rc=1
	fi
	bash "$here/test/pg-chroot.sh" 17
	inside=/tmp/conngov-src
	rm -rf "$cache/trixie$inside"
	mkdir -p "$cache/trixie$inside"
	(cd "$here" && tar --exclude=.git --exclude='*.o' --exclude='*.so' \
		--exclude=tmp_check --exclude=tmp_regress -cf - .) |
		tar -C "$cache/trixie$inside" -xf -
	bash "$here/test/pg-chroot.sh" 17 env PGVER=17 CG_NO_EXTRAS=1 \
		bash "$inside/test/run-tests.sh" all || rc=1
	pgc=$(bash "$here/test/pg-source.sh" 18)
	CG_PG_CONFIG=$pgc PGVER=18 CG_NO_EXTRAS=1 bash "$here/test/run-tests.sh" all || rc=1
	[ $rc = 0 ] && echo "conngov: $what passed"
	exit $rc
fi

. "$here/test/lib.sh"

if [ "$what" = stress ]; then
	# A busy machine must not fail a correct product: the suite waits on
	# barriers and on the server's own records, never on a fixed time.
	cg_install_packages "$PGVER" stress-ng
	hogs=$((4 * $(nproc)))
	rounds=${CG_STRESS_ROUNDS:-3}
	stress-ng --cpu "$hogs" --timeout 4h --quiet &
	hog=$!
	trap 'kill "$hog" 2>/dev/null; wait "$hog" 2>/dev/null || true' EXIT
	rc=0
	t0=$(date +%s)
	for ((i = 1; i <= rounds; i++)); do
		echo "conngov: stress round $i of $rounds, $hogs CPU hogs, load $(cut -d' ' -f1-3 /proc/loadavg)"
		if ! bash "$here/test/run-tests.sh" all; then
			rc=1
			break
		fi
	done
	echo "conngov: stress: $((i > rounds ? rounds : i)) round(s) in $(($(date +%s) - t0)) s, load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
	[ $rc = 0 ] && echo "conngov: stress passed ($rounds rounds)"
	exit $rc
fi

# promtool and postgres_exporter check monitoring/ for real (008); the
# matrix runs leave them out (008 then skips those two checks)
if [ "$what" = clients ]; then
	# the drivers and poolers from Debian's archive (node-postgres: npm)
	cg_install_packages "$PGVER" default-jdk-headless \
		libpostgresql-jdbc-java libhikaricp-java libslf4j-java \
		python3-psycopg2 python3-sqlalchemy pgbouncer
	cg_npm_install pg@8
elif [ -n "${CG_NO_EXTRAS:-}" ]; then
	cg_install_packages "$PGVER"
else
	cg_install_packages "$PGVER" prometheus prometheus-postgres-exporter
fi
cg_build_install "$here" "$PGVER"

status=0
run_make() {
	# $1: make target, rest: extra make variables
	local target=$1
	shift
	if ! cg_as_test_user "$CG_BUILD_DIR" make -s "PG_CONFIG=$CG_PG_CONFIG" "$target" "$@"; then
		status=1
		for f in "$CG_BUILD_DIR"/regression.diffs; do
			[ -f "$f" ] && { echo "=== $f"; cat "$f"; }
		done
		for f in "$CG_BUILD_DIR"/tmp_regress/log/*.log "$CG_BUILD_DIR"/tmp_check/log/*; do
			[ -f "$f" ] && { echo "=== $f (last 60 lines)"; tail -n 60 "$f"; }
		done
	fi
}

case "$what" in
	all)
		run_make installcheck
		if [ "$status" = 0 ]; then
			cg_as_test_user "$CG_BUILD_DIR" bash bench/run.sh --smoke || status=1
		fi
		;;
	long)
		# 5000 login cycles in 002_release.pl (CG_RELEASE_ROUNDS, exported)
		CG_RELEASE_ROUNDS=${CG_RELEASE_ROUNDS:-50} run_make installcheck
		if [ "$status" = 0 ]; then
			cg_apt install -y -qq --no-install-recommends clang \
				libclang-rt-14-dev >/dev/null
			cg_as_test_user "$CG_BUILD_DIR" bash test/fuzz/run.sh \
				"${FUZZ_SECONDS:-300}" || status=1
		fi
		;;
	regress)
		run_make installcheck TAP_TESTS=
		;;
	clients)
		if [ $# -gt 0 ]; then
			run_make installcheck REGRESS= PROVE_TESTS="$*"
		else
			run_make installcheck REGRESS= PROVE_TESTS="test/clients/t/*.pl"
		fi
		;;
	tap)
		if [ $# -gt 0 ]; then
			run_make installcheck REGRESS= PROVE_TESTS="$*"
		else
			run_make installcheck REGRESS=
		fi
		;;
	*)
		echo "usage: $0 [all|long|stress|matrix|others|regress|tap [t/NNN_x.pl ...]|clients [test/clients/t/NNN_x.pl ...]]" >&2
		exit 2
		;;
esac

if [ "$status" = 0 ]; then
	[ "$CG_BUILD_DIR" != "$here" ] && rm -rf "$CG_BUILD_DIR"
	echo "conngov: all tests passed (PostgreSQL $PGVER)"
else
	echo "conngov: TESTS FAILED (PostgreSQL $PGVER)" >&2
fi
exit "$status"
