#!/usr/bin/env bash
# bench/login_instructions.sh: instructions one login costs in its backend
# (callgrind, collected inside PostgresMain: authentication, conngov's hook,
# the first query), with 100 budgets whose last one matches, without and
# with a floor configured on another budget, and with no budget at all.
# Steadier than logins per second on a shared machine.  Each figure is the
# median of 5 logins.  Runs as an unprivileged user with PostgreSQL's bin
# directory in PATH (or CG_PG_BIN) and conngov installed; needs valgrind.
# About 2 minutes.
set -uo pipefail
export LC_ALL=C
if [ -n "${CG_PG_BIN:-}" ]; then PATH="$CG_PG_BIN:$PATH"; fi
d=$(mktemp -d /tmp/conngov-cg.XXXXXX)
initdb -D $d/b -A trust >/dev/null
cat >> $d/b/postgresql.conf <<CONF
listen_addresses = ''
unix_socket_directories = '$d'
port = 31005
max_connections = 50
shared_preload_libraries = 'conngov'
conngov.database = 'postgres'
autovacuum = off
CONF
pg_ctl -D $d/b -l $d/b.log -w start >/dev/null
psql -X -q -h $d -p 31005 -d postgres -c "CREATE EXTENSION conngov"
psql -X -q -h $d -p 31005 -d postgres -c "INSERT INTO conngov.budgets (name, application_pattern, max_connections) SELECT 'b' || lpad(i::text, 3, '0'), 'app' || i || '%', 1000 FROM generate_series(1, 99) i; INSERT INTO conngov.budgets (name, application_pattern, max_connections, priority) VALUES ('zz_bench', 'bench%', 1000, 1000)" >/dev/null 2>&1
pg_ctl -D $d/b -w stop >/dev/null
mkdir $d/out
cd $d/out
valgrind --tool=callgrind --trace-children=no --toggle-collect=PostgresMain --dump-instr=no --callgrind-out-file=$d/out/cg.%p postgres -D $d/b > $d/vg.log 2>&1 &
vg=$!
for i in $(seq 1 120); do pg_isready -q -h $d -p 31005 && break; sleep 1; done
sleep 5
one() { rm -f $d/out/cg.*; PGAPPNAME=$1 psql -X -q -h $d -p 31005 -d postgres -c "SELECT 1" >/dev/null; sleep 3; for f in $d/out/cg.*; do s=$(grep -m1 '^summary:' $f | awk '{print $2}'); [ -n "$s" ] && [ "$s" -gt 0 ] && echo "$s"; done | sort -n | tail -1; }
measure() { local r=(); for k in 1 2 3 4 5; do r+=($(one $1)); done; printf '%s\n' "${r[@]}" | sort -n | sed -n 3p; }
echo "no floor, budget #100: $(measure bench-1)"
echo "no floor, unbudgeted:  $(measure other-1)"
psql -X -q -h $d -p 31005 -d postgres -c "UPDATE conngov.budgets SET min_connections = 20 WHERE name = 'b001'" -c "SELECT conngov.reload()" >/dev/null 2>&1
sleep 3
echo "floor 20 elsewhere, budget #100: $(measure bench-1)"
psql -X -q -h $d -p 31005 -d postgres -c "UPDATE conngov.budgets SET min_connections = 0 WHERE name = 'b001'" -c "DELETE FROM conngov.budgets" -c "SELECT conngov.reload()" >/dev/null 2>&1
sleep 3
echo "no budgets at all: $(measure bench-1)"
kill -INT $vg; wait $vg
rm -rf $d
