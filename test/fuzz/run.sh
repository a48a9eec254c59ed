#!/usr/bin/env bash
# test/fuzz/run.sh [SECONDS]: build the matcher's libFuzzer harness with
# AddressSanitizer and run it for SECONDS (default 60) from the seed corpus.
# Needs clang and libclang-rt-14-dev (test/run-tests.sh long installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
secs=${1:-60}
pgconfig=${CG_PG_CONFIG:-pg_config}
out=$(mktemp -d /tmp/conngov-fuzz.XXXXXX)
trap 'rm -rf "$out"' EXIT

clang -g -O1 -Wno-ignored-attributes \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-I"$top/src" -I"$($pgconfig --includedir-server)" \
	"$here/fuzz_match.c" "$top/src/match.c" -o "$out/fuzz_match"

mkdir -p "$out/corpus"
cp "$here"/corpus/* "$out/corpus/"
"$out/fuzz_match" -max_total_time="$secs" -max_len=128 -print_final_stats=1 \
	-artifact_prefix="${FUZZ_ARTIFACTS:-$out}/" \
	"$out/corpus" 2>&1 | tail -n 12
echo "fuzz_match: no crash and no disagreement in $secs s"
