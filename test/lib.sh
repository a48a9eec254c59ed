# test/lib.sh: shell helpers shared by run-tests.sh, demo.sh and bench/.
# Sourced, not run.  Works as root (then servers run as user "cgtest") or as
# a user with sudo.

CG_TEST_USER=${CG_TEST_USER:-cgtest}

cg_sudo() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# cg_apt ARGS...: apt-get, non-interactive, waiting up to 10 minutes for the
# dpkg lock when another process holds it instead of failing at once.
cg_apt() {
	cg_sudo env DEBIAN_FRONTEND=noninteractive apt-get \
		-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 "$@"
}

# cg_debian_mirror: the Debian archive this machine's apt sources use (the
# first URI serving a suite that is not -security), in either the deb822
# (*.sources) or the one-line (*.list) format; Debian's default when none.
cg_debian_mirror() {
	local f uri
	uri=$({
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -f "$f" ] && awk '
				/^[[:space:]]*$/ { if (deb && uri != "" && suites !~ /security/) { print uri; exit } deb = 0; uri = ""; suites = ""; next }
				tolower($1) == "types:" && / deb( |$)/ { deb = 1 }
				tolower($1) == "uris:" { uri = $2 }
				tolower($1) == "suites:" { suites = $0 }
				END { if (deb && uri != "" && suites !~ /security/) print uri }' "$f"
		done
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -f "$f" ] && awk '$1 == "deb" && $0 !~ /security/ {
				for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; exit } }' "$f"
		done
	} 2>/dev/null | grep -E '^(https?|file)://' | grep -iv 'security' |
		grep -E '/debian/?$' | head -n 1)
	echo "${uri:-http://deb.debian.org/debian}"
}

# cg_install_packages VERSION [EXTRA...]: the server, its headers and the
# test tools, from Debian's archive, only when something is missing.  With
# CG_PG_CONFIG already set (a server built from source), only the tools.
cg_install_packages() {
	local ver=$1
	shift
	local pkgs="libipc-run-perl libfaketime libkrb5-dev libssl-dev libpq-dev make gcc $*"
	[ -n "${CG_PG_CONFIG:-}" ] ||
		pkgs="postgresql-$ver postgresql-server-dev-$ver postgresql-contrib $pkgs"
	local missing=""
	local p
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "conngov: installing$missing"
		cg_apt update -qq
		cg_apt install -y -qq --no-install-recommends $missing >/dev/null
	fi
	CG_PG_CONFIG=${CG_PG_CONFIG:-/usr/lib/postgresql/$ver/bin/pg_config}
	CG_PG_BIN=$("$CG_PG_CONFIG" --bindir)
	export CG_PG_CONFIG CG_PG_BIN
}

# cg_fleet_services_off: Debian's etcd-server and patroni enable a service
# each (etcd, patroni), started at install where the init system allows it
# (not in a container whose policy-rc.d forbids it).  The fleet suite runs
# its own etcd and Patroni on free ports: stop and disable any that runs.
cg_fleet_services_off() {
	local s
	for s in etcd patroni; do
		if [ -d /run/systemd/system ]; then
			if systemctl is-active --quiet "$s.service" ||
				systemctl is-enabled --quiet "$s.service" 2>/dev/null; then
				echo "conngov: fleet: stopping and disabling the $s service"
				cg_sudo systemctl disable --now --quiet "$s.service"
			fi
		elif [ -x "/etc/init.d/$s" ] &&
			cg_sudo "/etc/init.d/$s" status >/dev/null 2>&1; then
			echo "conngov: fleet: stopping and disabling the $s service"
			cg_sudo "/etc/init.d/$s" stop >/dev/null
			cg_sudo update-rc.d "$s" disable >/dev/null 2>&1 || true
		fi
	done
}

# cg_fleet_leftovers TMP_CHECK: end what a fleet test killed before its
# own clean-up left running: the etcd and Patroni processes it recorded
# (test/fleet/FleetTest.pm, by pid, if its command line still names that
# fleet's directory), then any
# server still running in its data directories.
cg_fleet_leftovers() {
	local f pid d
	for f in "$1"/log/fleet_*/pids; do
		[ -f "$f" ] || continue
		while read -r pid; do
			if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" |
				grep -qF "${f%/pids}/"; then
				echo "conngov: fleet: ending leftover process $pid"
				cg_sudo kill "$pid" 2>/dev/null || true
			fi
		done <"$f"
	done
	for d in "$1"/t_*_data/pgdata; do
		[ -f "$d/postmaster.pid" ] || continue
		cg_as_test_user / pg_ctl -D "$d" -m immediate -s stop 2>/dev/null || true
	done
}

# cg_npm_install PACKAGE...: npm packages (node-postgres) into
# $CG_CACHE/npm (default /var/cache/conngov/npm), installing Debian's
# nodejs and npm first when there is no node; exports CG_NODE_MODULES.
cg_npm_install() {
	local dir=${CG_CACHE:-/var/cache/conngov}/npm
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		cg_apt update -qq
		cg_apt install -y -qq --no-install-recommends nodejs npm >/dev/null
	fi
	cg_sudo mkdir -p "$dir"
	cg_sudo npm install --silent --no-audit --no-fund --prefix "$dir" "$@" >/dev/null
	CG_NODE_MODULES=$dir/node_modules
	export CG_NODE_MODULES
}

# cg_build_install SRCDIR: build and install conngov; set CG_BUILD_DIR to a
# tree the test user can write (a copy owned by it when running as root).
cg_build_install() {
	local src=$1
	# clean first: objects of another major version must not be reused
	make -s -C "$src" PG_CONFIG="$CG_PG_CONFIG" clean >/dev/null
	make -s -C "$src" PG_CONFIG="$CG_PG_CONFIG" >/dev/null
	cg_sudo make -s -C "$src" PG_CONFIG="$CG_PG_CONFIG" install >/dev/null
	if [ "$(id -u)" = 0 ]; then
		id "$CG_TEST_USER" >/dev/null 2>&1 ||
			useradd --system --create-home --shell /bin/bash "$CG_TEST_USER"
		CG_BUILD_DIR=$(mktemp -d /tmp/conngov-build.XXXXXX)
		chmod 755 "$CG_BUILD_DIR"
		(cd "$src" && tar --exclude=.git --exclude=tmp_check \
			--exclude=tmp_regress -cf - .) | tar -C "$CG_BUILD_DIR" -xf -
		chown -R "$CG_TEST_USER" "$CG_BUILD_DIR"
	else
		CG_BUILD_DIR=$src
	fi
	export CG_BUILD_DIR
}

# cg_as_test_user DIR CMD...: run CMD in DIR as the unprivileged user.
cg_as_test_user() {
	local dir=$1
	shift
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$CG_TEST_USER" -- env -C "$dir" \
			PATH="$CG_PG_BIN:$PATH" CG_PG_BIN="$CG_PG_BIN" \
			CG_PG_CONFIG="$CG_PG_CONFIG" \
			CG_RELEASE_ROUNDS="${CG_RELEASE_ROUNDS:-}" \
			CG_NODE_MODULES="${CG_NODE_MODULES:-}" "$@"
	else
		(cd "$dir" && PATH="$CG_PG_BIN:$PATH" "$@")
	fi
}
