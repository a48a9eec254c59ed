#!/usr/bin/env bash
# test/demo.sh: conngov on a throwaway cluster, in about a minute and a half.
#
# Installs what it needs (Debian 12), builds and installs conngov, starts a
# cluster with conngov preloaded on a unix socket, writes budgets that
# mirror a real deployment, simulates a few applications, and shows a
# refusal, usage, headroom and an idle session ended by the worker; then
# (1.1) a floor holding while another application storms, and a login that
# waits for a place and gets in; (1.2) the usage history answers who held
# the connections in the minute just closed.  The cluster is removed at
# the end.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/lib.sh"

cg_install_packages "${PGVER:-15}"
cg_build_install "$here"

work=$(mktemp -d /tmp/conngov-demo.XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown "$CG_TEST_USER" "$work"
port=54329
pids=()

run() { cg_as_test_user "$work" "$@"; }
sql() { run psql -X -q -h "$work" -p "$port" -U postgres -d postgres -c "$*"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	run pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$work" "$CG_BUILD_DIR"
}
trap cleanup EXIT

# client APP ROLE SECONDS: one application connection that runs a query and
# then stays idle for SECONDS (like a pooled connection), in the background.
client() {
	local app=$1 role=$2 secs=$3
	(echo "SELECT 1;"; sleep "$secs") 2>/dev/null |
		run env PGAPPNAME="$app" psql -X -q -h "$work" -p "$port" -U "$role" \
			-d postgres >/dev/null 2>&1 &
	pids+=($!)
}

say "A throwaway cluster with conngov preloaded (max_connections = 300)"
run initdb -D "$work/data" -A trust -U postgres >/dev/null
cat >>"$work/data/postgresql.conf" <<EOF
shared_preload_libraries = 'conngov'
listen_addresses = ''
unix_socket_directories = '$work'
port = $port
max_connections = 300
superuser_reserved_connections = 3
EOF
run pg_ctl -D "$work/data" -l "$work/server.log" -w start >/dev/null
sql "CREATE EXTENSION conngov"
sql "CREATE ROLE core_api LOGIN; CREATE ROLE admin_api LOGIN; CREATE ROLE batch LOGIN; CREATE ROLE reporting LOGIN"

say "Budgets: one row per application, as its pools promise"
sql "INSERT INTO conngov.budgets
       (name, application_pattern, role_name, max_connections, idle_timeout, idle_keep, comment)
     VALUES
       ('core_api', 'core-api%', 'core_api', 150, NULL, 0, '10 instances x (pool_size 10 + max_overflow 5)'),
       ('admin_api', 'admin-api%', 'admin_api', 75, NULL, 0, '5 instances x (10 + 5)'),
       ('aggregation_worker', 'aggregation_worker', 'batch', 3, NULL, 0, 'nightly batch job'),
       ('reporting', 'reporting%', 'reporting', 10, '3 seconds', 2, 'dashboards: keep a warm pool of 2')"
sql "SELECT conngov.reload() AS budgets_loaded"
sql "SELECT name, application_pattern, role_name, max_connections, idle_timeout, idle_keep FROM conngov.budgets ORDER BY priority, name"

say "Applications connect: 20 core-api, 5 admin-api, 3 aggregation_worker, 4 reporting"
for i in $(seq 1 20); do client "core-api-$((i % 4))" core_api 30; done
for i in $(seq 1 5); do client "admin-api" admin_api 30; done
for i in 1 2 3; do client aggregation_worker batch 30; done
for i in 1 2 3 4; do client "reporting-$i" reporting 30; sleep 0.2; done
sleep 1.5
sql "SELECT * FROM conngov.usage() ORDER BY budget"

say "A 4th aggregation_worker connection goes over its budget of 3: refused"
run env PGAPPNAME=aggregation_worker psql -X -h "$work" -p "$port" -U batch -d postgres \
	-c "SELECT 1" 2>&1 | sed 's/^/  client sees: /' || true

say "A DBA is never locked out: a superuser over the same budget is admitted"
run env PGAPPNAME=aggregation_worker psql -X -q -h "$work" -p "$port" -U postgres -d postgres \
	-tAc "SELECT 'admitted as superuser, exempt = ' || exempt FROM conngov.sessions() WHERE pid = pg_backend_pid()"

say "Headroom before PostgreSQL's own reserved slots"
sql "SELECT * FROM conngov.headroom()"

say "Idle sessions: reporting has idle_timeout 3 s and idle_keep 2 (a warm pool)"
sleep 4
sql "SELECT at::time(0) AS at, kind, budget, pid, application_name, detail FROM conngov.events() WHERE kind <> 'budgets_reloaded' ORDER BY at"
sql "SELECT budget, login_application_name, state FROM conngov.sessions() WHERE budget = 'reporting' ORDER BY login_application_name"

say "A floor (1.1): core_api is guaranteed 150 connections; it uses 20"
sql "UPDATE conngov.budgets SET min_connections = 150 WHERE name = 'core_api'"
sql "SELECT conngov.reload() AS budgets_loaded"
sql "SELECT normal_free, guaranteed_unused, shared_free FROM conngov.headroom()"

say "An unbudgeted tool storms with 160 connections: it gets the shared slots only"
for i in $(seq 1 160); do client "adhoc-$i" reporting 12; done
sleep 4
sql "SELECT normal_free, guaranteed_unused, shared_free FROM conngov.headroom()"
run env PGAPPNAME=adhoc-more psql -X -h "$work" -p "$port" -U reporting -d postgres \
	-c "SELECT 1" 2>&1 | sed 's/^/  client sees: /' || true

say "... while core_api still opens 10 more connections"
for i in $(seq 1 10); do client "core-api-more" core_api 12; done
sleep 1.5
sql "SELECT budget, total, min_connections, guaranteed_unused FROM conngov.usage() WHERE budget IN ('core_api', '(unbudgeted)') ORDER BY budget"

say "The storm ends (its sessions are terminated)"
sql "SELECT count(pg_terminate_backend(pid)) AS ended FROM conngov.sessions() WHERE login_application_name LIKE 'adhoc-%'"
sleep 1
sql "SELECT normal_free, guaranteed_unused, shared_free FROM conngov.headroom()"

say "Waiting instead of refusing (1.1): aggregation_worker gets login_wait 10 s"
sql "UPDATE conngov.budgets SET login_wait = '10 s' WHERE name = 'aggregation_worker'"
sql "SELECT conngov.reload() AS budgets_loaded"
(run env PGAPPNAME=aggregation_worker psql -X -h "$work" -p "$port" -U batch -d postgres \
	-tAc "SELECT '4th aggregation_worker login: admitted after waiting'" 2>&1 |
	sed 's/^/  client sees: /') &
waiter=$!
sleep 1
sql "SELECT budget, total, max_connections, waiting FROM conngov.usage() WHERE budget = 'aggregation_worker'"
say "One aggregation_worker connection ends: the waiting login takes its place"
sql "SELECT count(pg_terminate_backend(pid)) AS ended FROM (SELECT pid FROM conngov.sessions() WHERE budget = 'aggregation_worker' LIMIT 1) s"
wait "$waiter" || true
sql "SELECT kind, budget, detail FROM conngov.events() WHERE kind IN ('waited', 'refused_for_floors') ORDER BY at DESC LIMIT 3"

say "Counters and health"
sql "SELECT budget, admitted, refused, refused_for_floors, waited, round(wait_seconds_total::numeric, 2) AS wait_s, ended_idle, peak FROM conngov.stats() ORDER BY budget"
sql "SELECT jsonb_pretty(conngov.health() - 'checks') AS health"

say "Usage history (1.2): who held the connections, minute by minute"
echo "  (the worker closes each minute when it ends: waiting for this one, at most a minute)"
m=$(run psql -X -tAq -h "$work" -p "$port" -U postgres -d postgres -c "SELECT date_trunc('minute', now())")
for _ in $(seq 1 150); do
	[ "$(run psql -X -tAq -h "$work" -p "$port" -U postgres -d postgres \
		-c "SELECT count(*) > 0 FROM conngov.server_history('$m', '$m')")" = t ] && break
	sleep 0.5
done
sql "SELECT to_char(minute, 'HH24:MI') AS minute, budget, peak, admitted, refused_limit + refused_floors AS refused, waited, ended_idle FROM conngov.history(now() - interval '10 minutes') ORDER BY minute, peak DESC"
say "At $(echo "$m" | cut -c12-16), who held them? conngov.at() ranks the minute's budgets by peak"
sql "SELECT budget, peak, admitted, refused_limit, refused_floors FROM conngov.at('$m')"
sql "SELECT to_char(minute, 'HH24:MI') AS minute, normal_in_use_peak, normal_free_min, waiting_peak FROM conngov.server_history(now() - interval '10 minutes')"
sql "SELECT budget, peak, admitted, refused, peaks AS \"last hour, 2 minutes a character\" FROM conngov.history_summary(1)"

say "Server log lines written by conngov"
grep -E -A2 "conngov|connection budget" "$work/server.log" | grep -v "^--" | head -40 | sed 's/^/  /'

say "Done: the cluster is removed"
