#!/usr/bin/env bash
# test/run-tests.sh: install what the tests need, build and install conngov,
# then run the whole suite (pg_regress and TAP) on throwaway clusters.
#
#   bash test/run-tests.sh            everything
#   bash test/run-tests.sh regress    pg_regress only
#   bash test/run-tests.sh tap [t/NNN_x.pl ...]   TAP only (optionally some)
#   bash test/run-tests.sh clients    real drivers and poolers (test/clients/):
#                                     pgjdbc + HikariCP, node-postgres,
#                                     psycopg2 + SQLAlchemy, PgBouncer,
#                                     postgres.js
#   bash test/run-tests.sh fleet      a real Patroni cluster (test/fleet/):
#                                     etcd and three Patroni nodes on
#                                     loopback, conngov preloaded; budgets
#                                     by node role and share, switchover,
#                                     failover with pg_rewind
#   bash test/run-tests.sh long       everything, then fuzz the matcher
#                                     (FUZZ_SECONDS, default 300)
#   bash test/run-tests.sh matrix     everything on PostgreSQL 15, 17 and 18
#   bash test/run-tests.sh others     everything on PostgreSQL 17 and 18
#   bash test/run-tests.sh stress     everything three times in a row while
#                                     CPU hogs (stress-ng) keep the load at
#                                     4 x the cores or more (CG_STRESS_ROUNDS)
#   bash test/run-tests.sh package    the Debian package: release checks,
#                                     build (in a scratch copy), lintian,
#                                     install with apt, pg_regress against
#                                     the installed files; make dist
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

if [ "$what" = package ]; then
	# What a DBA installs: postgresql-NN-conngov built by pg_buildext for
	# every major version installed from Debian's packages (15 here).  The
	# tree gets no build files: the package is built in a scratch copy.
	# Leaves postgresql-$PGVER-conngov installed (it replaces what a
	# "make install" put in the same places) and the build tools.
	[ -z "${CG_PG_CONFIG:-}" ] || {
		echo "conngov: package mode needs PostgreSQL from Debian's packages, not CG_PG_CONFIG" >&2
		exit 2
	}
	cg_install_packages "$PGVER" postgresql-server-dev-all debhelper \
		dpkg-dev build-essential lintian python3-jsonschema git
	rc=0
	t0=$(date +%s)
	echo "conngov: package: release checks (META.json schema, versions, license)"
	python3 "$here/test/check-release.py" "$here" || rc=1

	scratch=$(mktemp -d /tmp/conngov-package.XXXXXX)
	trap 'rm -rf "$scratch"' EXIT
	chmod 755 "$scratch"
	mkdir "$scratch/conngov"
	(cd "$here" && tar --exclude=.git --exclude='*.o' --exclude='*.so' \
		--exclude=tmp_check --exclude=tmp_regress --exclude=results \
		--exclude='regression.*' --exclude='build-[0-9]*' \
		--exclude='conngov-*.zip' -cf - .) | tar -C "$scratch/conngov" -xf -
	echo "conngov: package: dpkg-buildpackage -us -uc in a scratch copy"
	if ! (cd "$scratch/conngov" && dpkg-buildpackage -us -uc) >"$scratch/build.log" 2>&1; then
		tail -n 80 "$scratch/build.log"
		echo "conngov: TESTS FAILED (package: the build failed)" >&2
		exit 1
	fi
	# errors fail the build; warnings and the rest are shown
	echo "conngov: package: lintian"
	lintian --fail-on error --display-info "$scratch"/conngov_*.changes || rc=1

	pkg=postgresql-$PGVER-conngov
	deb=$(ls "$scratch/${pkg}"_*_"$(dpkg --print-architecture)".deb)
	echo "conngov: package: apt-get install $(basename "$deb")"
	cg_apt install -y -qq --reinstall --allow-downgrades "$deb" >/dev/null
	dpkg --verify "$pkg" || rc=1

	# where the files went: the library in pkglibdir, the control file and
	# every install and upgrade script of the tree in the extension
	# folder, the docs, and nothing else
	libdir=$("$CG_PG_CONFIG" --pkglibdir)
	extdir=$("$CG_PG_CONFIG" --sharedir)/extension
	dpkg -L "$pkg" | sort >"$scratch/files"
	want="$libdir/conngov.so $extdir/conngov.control"
	for f in "$here"/conngov--*.sql; do
		want="$want $extdir/$(basename "$f")"
	done
	for f in $want; do
		grep -qxF "$f" "$scratch/files" || {
			echo "conngov: $pkg does not install $f" >&2
			rc=1
		}
	done
	stray=$(grep -v -e "^$libdir/" -e "^$extdir/" \
		-e "^/usr/share/doc/$pkg\(/\|\$\)" "$scratch/files" |
		while read -r f; do [ -d "$f" ] || echo "$f"; done)
	[ -z "$stray" ] || {
		echo "conngov: $pkg installs files elsewhere: $stray" >&2
		rc=1
	}
	echo "conngov: package: $pkg installs $(grep -c -e '\.so$' -e '\.sql$' -e '\.control$' "$scratch/files") extension files:"
	grep -e '\.so$' -e '\.sql$' -e '\.control$' "$scratch/files" | sed 's/^/  /'

	# pg_regress against the installed files: the package's autopkgtest,
	# which copies only sql/, expected/ and the test settings and runs as
	# the unprivileged test user
	id "$CG_TEST_USER" >/dev/null 2>&1 ||
		useradd --system --create-home --shell /bin/bash "$CG_TEST_USER"
	echo "conngov: package: pg_regress against the installed package"
	CG_TEST_USER=$CG_TEST_USER sh "$here/debian/tests/installcheck" || rc=1

	# make dist: the PGXN zip, one top-level conngov-<version>/ folder,
	# from the committed tree
	if git -C "$here" rev-parse --git-dir >/dev/null 2>&1; then
		echo "conngov: package: make dist"
		if make -s -C "$scratch" -f "$here/Makefile" PG_CONFIG="$CG_PG_CONFIG" dist; then
			python3 - "$here" "$scratch"/conngov-*.zip <<'PYEOF' || rc=1
import json, sys, zipfile
here, zpath = sys.argv[1], sys.argv[2]
version = json.load(open(here + "/META.json"))["version"]
top = f"conngov-{version}/"
names = zipfile.ZipFile(zpath).namelist()
bad = [n for n in names if not n.startswith(top)]
missing = [f for f in ("META.json", "LICENSE", "README.md", "Makefile", "conngov.control")
           if top + f not in names]
built = [n for n in names if n.endswith((".o", ".so", ".zip", ".deb"))]
for what, l in (("outside " + top, bad), ("missing", missing), ("built files", built)):
    if l:
        print(f"conngov: make dist: {what}: {' '.join(l[:10])}", file=sys.stderr)
if bad or missing or built or not zpath.endswith(f"/conngov-{version}.zip"):
    sys.exit(1)
print(f"conngov: make dist: {zpath.rsplit('/', 1)[1]}, {len(names)} entries under {top}")
PYEOF
		else
			rc=1
		fi
	else
		echo "conngov: package: not a git checkout, make dist not tried"
	fi

	if [ "$rc" = 0 ]; then
		echo "conngov: package passed in $(($(date +%s) - t0)) s ($pkg installed)"
	else
		echo "conngov: TESTS FAILED (package)" >&2
	fi
	exit "$rc"
fi

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
	# the drivers and poolers from Debian's archive (node-postgres and
	# postgres.js: npm)
	cg_install_packages "$PGVER" default-jdk-headless \
		libpostgresql-jdbc-java libhikaricp-java libslf4j-java \
		python3-psycopg2 python3-sqlalchemy pgbouncer
	cg_npm_install pg@8 postgres@3
elif [ "$what" = fleet ]; then
	# Debian's Patroni and etcd; the suite runs its own on free ports
	cg_install_packages "$PGVER" patroni etcd-server
	cg_fleet_services_off
elif [ -n "${CG_NO_EXTRAS:-}" ]; then
	cg_install_packages "$PGVER"
else
	cg_install_packages "$PGVER" prometheus prometheus-postgres-exporter valgrind
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
			cg_as_test_user "$CG_BUILD_DIR" bash bench/storm_wait.sh --smoke || status=1
			cg_as_test_user "$CG_BUILD_DIR" bash bench/rate.sh --smoke || status=1
		fi
		# the scale benchmark needs valgrind: with the extras only
		if [ "$status" = 0 ] && [ -z "${CG_NO_EXTRAS:-}" ]; then
			cg_as_test_user "$CG_BUILD_DIR" bash bench/scale.sh --smoke || status=1
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
	fleet)
		if [ $# -gt 0 ]; then
			run_make installcheck REGRESS= PROVE_TESTS="$*"
		else
			run_make installcheck REGRESS= PROVE_TESTS="test/fleet/t/*.pl"
		fi
		cg_fleet_leftovers "$CG_BUILD_DIR/tmp_check"
		# a failed run keeps each fleet's etcd, Patroni and server logs
		if [ "$status" != 0 ]; then
			for f in "$CG_BUILD_DIR"/tmp_check/log/fleet_*/*.log; do
				[ -f "$f" ] && { echo "=== $f (last 40 lines)"; tail -n 40 "$f"; }
			done
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
		echo "usage: $0 [all|long|stress|matrix|others|package|regress|tap [t/NNN_x.pl ...]|clients [test/clients/t/NNN_x.pl ...]|fleet [test/fleet/t/NNN_x.pl ...]]" >&2
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
