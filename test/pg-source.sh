#!/usr/bin/env bash
# test/pg-source.sh MAJOR: build PostgreSQL MAJOR from Debian's source
# package (sid) into $CG_CACHE/pgMAJOR (default /var/cache/conngov), once;
# later runs reuse it.  Prints the pg_config path.  Needs root for apt.
# Built with assertions (--enable-cassert --enable-debug), so that a misuse
# of the server's APIs fails the tests.  The archive is the one this
# machine's apt sources name.
set -euo pipefail
major=$1
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/lib.sh"
cache=${CG_CACHE:-/var/cache/conngov}
prefix=$cache/pg$major
if [ -x "$prefix/bin/pg_config" ] && [ -f "$prefix/.built-cassert" ]; then
	echo "$prefix/bin/pg_config"
	exit 0
fi
mkdir -p "$cache"
src=/etc/apt/sources.list.d/conngov-src.sources
if [ ! -f "$src" ]; then
	cat >"$src" <<SRC
Types: deb-src
URIs: $(cg_debian_mirror)
Suites: trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
{
	export DEBIAN_FRONTEND=noninteractive
	cg_apt update -qq
	cg_apt install -y -qq --no-install-recommends bison flex gcc make perl \
		libipc-run-perl dpkg-dev xz-utils bzip2 ca-certificates
	cd "$cache"
	rm -rf "build$major"
	mkdir "build$major"
	cd "build$major"
	apt-get source -qq --download-only "postgresql-$major"
	tar xf postgresql-"$major"_*.orig.tar.*
	cd postgresql-"$major".*/
	./configure --prefix="$prefix" --enable-tap-tests --enable-cassert \
		--enable-debug --without-icu \
		--without-readline --without-zlib --without-zstd --without-lz4 \
		--without-libxml --without-openssl --without-gssapi >configure.log
	make -s -j"$(nproc)" world-bin
	make -s install-world-bin
	touch "$prefix/.built-cassert"
	cd "$cache" && rm -rf "build$major"
} >"$cache/build$major.log" 2>&1 || { tail -n 40 "$cache/build$major.log" >&2; exit 1; }
echo "$prefix/bin/pg_config"
