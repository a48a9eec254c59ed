
# Copyright (c) 2026, conngov developers

# Crash restart, clean restart and reload: after kill -9 of a client backend
# the postmaster reinitializes shared memory; usage() then equals the real
# sessions, budgets are back within a second and the worker runs again.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = cg_node('restart', conf => "restart_after_crash = on\n");
cg_budgets($node, "('crash', 'crash%', NULL, 5)");

# three sessions of the budget, held until the crash ends them
my $clients = cg_start_clients(
	$node,
	clients => 3,
	app => 'crash-app',
	user => 'regress_app',
	sql => $cg_held_sql);
$node->poll_query_until('postgres',
	"SELECT total = 3 FROM conngov.usage() WHERE budget = 'crash'")
  or die 'sessions did not connect';

my $victim = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE application_name = 'crash-app' LIMIT 1"
);
my $offset = -s $node->logfile;
kill 'KILL', $victim;
$node->wait_for_log(qr/all server processes terminated; reinitializing/,
	$offset);
$node->poll_query_until('postgres', 'SELECT true') or die 'no restart';
my $up = time;

# budgets back by themselves (the worker aims at a second; the bound here
# scales with timeout_default, the time taken is shown)
my $loaded;
while (time - $up < $PostgreSQL::Test::Utils::timeout_default)
{
	$loaded = $node->safe_psql('postgres',
		"SELECT count(*) FROM conngov.usage() WHERE budget = 'crash'");
	last if $loaded eq '1';
	usleep(20_000);
}
my $elapsed = time - $up;
is($loaded, '1', 'budgets loaded again after the crash restart');
diag(sprintf('budgets loaded %.3f s after the server accepted connections',
		$elapsed));
cmp_ok($elapsed, '<', cg_late(),
	'by themselves, soon after accepting connections (bound: cg_late())');

# no leaked charge: the crash ended all three sessions
cg_finish_clients($clients);
is(cg_total($node, 'crash'), '0', 'no charge survived the crash');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'conngov worker'"),
	'1',
	'the worker runs again');

# counting works after the restart: exactly the budget (clients held at a
# gate until all 8 are decided)
my $gate = cg_gate($node);
my $r = cg_storm(
	$node,
	clients => 8,
	app => 'crash-app',
	user => 'regress_app',
	gate => $gate);
is($r->{admitted}, 5, '5 admitted after the crash restart');
is($r->{refused}, 3, '3 refused after the crash restart');
$node->poll_query_until('postgres',
	"SELECT total = 0 FROM conngov.usage() WHERE budget = 'crash'");
is(cg_total($node, 'crash'), '0', 'all released');

# a clean restart keeps the budgets (they are in the table)
cg_gate_quit($gate);
$node->restart;
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM conngov.usage() WHERE budget = 'crash'")
  or diag('budgets not back after restart');
is( $node->safe_psql(
		'postgres',
		"SELECT max_connections FROM conngov.usage() WHERE budget = 'crash'"),
	'5',
	'budget kept across a clean restart');

# pg_ctl reload applies changed settings: monitor mode admits over budget
$node->append_conf('postgresql.conf', "conngov.mode = 'monitor'\n");
$node->reload;
$node->poll_query_until('postgres',
	"SELECT current_setting('conngov.mode') = 'monitor'")
  or diag('conngov.mode = monitor not seen by new sessions');
# the worker has its SIGHUP too
cg_worker_pass($node);
$gate = cg_gate($node);
$r = cg_storm(
	$node,
	clients => 7,
	app => 'crash-app',
	user => 'regress_app',
	gate => $gate);
is($r->{admitted}, 7, 'monitor mode after reload: all 7 admitted');
is( $node->safe_psql(
		'postgres', "SELECT would_refuse FROM conngov.stats() WHERE budget = 'crash'"),
	'2',
	'and 2 recorded as would_refuse');

cg_gate_quit($gate);
$node->stop;
done_testing();
