#!/usr/bin/env bash
# test/pg-chroot.sh MAJOR [CMD...]: a Debian trixie root in
# $CG_CACHE/trixie (default /var/cache/conngov) with PostgreSQL MAJOR's
# binary packages, made once and reused.  PostgreSQL 17's binaries need
# trixie's libc, so its servers run there under chroot.  With CMD, runs CMD
# inside the root (with /proc, /dev and /dev/shm mounted).  Needs root.
# The archive is the one this machine's apt sources name.
set -euo pipefail
major=$1
shift
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/lib.sh"
cache=${CG_CACHE:-/var/cache/conngov}
root=$cache/trixie
export DEBIAN_FRONTEND=noninteractive
if [ ! -f "$root/.pg$major" ]; then
	mkdir -p "$cache"
	if ! command -v debootstrap >/dev/null; then
		cg_apt update -qq
		cg_apt install -y -qq --no-install-recommends debootstrap >/dev/null
	fi
	if [ ! -f "$root/.base" ]; then
		rm -rf "$root"
		mirror=$(cg_debian_mirror)
		echo "conngov: debootstrap trixie from $mirror into $root" >&2
		debootstrap --variant=minbase trixie "$root" "$mirror" \
			>"$cache/debootstrap.log" 2>&1 || { tail -n 30 "$cache/debootstrap.log" >&2; exit 1; }
		touch "$root/.base"
	fi
	# no services start inside the root
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod +x "$root/usr/sbin/policy-rc.d"
	chroot "$root" apt-get -o Acquire::Retries=3 update -qq
	chroot "$root" apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends \
		"postgresql-$major" "postgresql-server-dev-$major" build-essential \
		libipc-run-perl perl >/dev/null
	touch "$root/.pg$major"
fi
# libfaketime (058_history_clock_jump.pl), also in a root made before it
if ! chroot "$root" dpkg-query -W -f='${Status}' libfaketime 2>/dev/null | grep -q "ok installed"; then
	chroot "$root" apt-get -o Acquire::Retries=3 update -qq
	chroot "$root" apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends \
		libfaketime >/dev/null
fi
[ $# -eq 0 ] && exit 0

mounted=()
cleanup() {
	local m
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount -l "${mounted[$i]}" 2>/dev/null || true
	done
}
trap cleanup EXIT
for m in proc dev dev/shm dev/pts; do
	mountpoint -q "$root/$m" && continue
	mkdir -p "$root/$m"
	case $m in
		proc) mount -t proc proc "$root/proc" ;;
		dev/shm) mount -t tmpfs shm "$root/dev/shm" ;;
		*) mount --bind "/$m" "$root/$m" ;;
	esac
	mounted+=("$root/$m")
done
chroot "$root" "$@"
