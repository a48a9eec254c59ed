#!/usr/bin/env bash
# test/pg-source.sh MAJOR: build PostgreSQL MAJOR from Debian's source
# package (sid) into $CG_CACHE/pgMAJOR (default /var/cache/conngov), once;
# later runs reuse it.  Prints the pg_config path.  Needs root for apt.
set -euo pipefail
major=$1
cache=${CG_CACHE:-/var/cache/conngov}
prefix=$cache/pg$major
if [ -x "$prefix/bin/pg_config" ] && [ -f "$prefix/.built" ]; then
	echo "$prefix/bin/pg_config"
	exit 0
fi
mkdir -p "$cache"
src=/etc/apt/sources.list.d/conngov-src.sources
if [ ! -f "$src" ]; then
	cat >"$src" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
{
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends bison flex gcc make perl \
		libipc-run-perl dpkg-dev xz-utils bzip2 ca-certificates
	cd "$cache"
	rm -rf "build$major"
	mkdir "build$major"
	cd "build$major"
	apt-get source -qq --download-only "postgresql-$major"
	tar xf postgresql-"$major"_*.orig.tar.*
	cd postgresql-"$major".*/
	./configure --prefix="$prefix" --enable-tap-tests --without-icu \
		--without-readline --without-zlib --without-zstd --without-lz4 \
		--without-libxml --without-openssl --without-gssapi >configure.log
	make -s -j"$(nproc)" world-bin
	make -s install-world-bin
	touch "$prefix/.built"
	cd "$cache" && rm -rf "build$major"
} >"$cache/build$major.log" 2>&1 || { tail -n 40 "$cache/build$major.log" >&2; exit 1; }
echo "$prefix/bin/pg_config"
