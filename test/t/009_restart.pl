
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

# three sessions of the budget, held
my $clients = cg_start_clients(
	$node,
	clients => 3,
	app => 'crash-app',
	user => 'regress_app',
	sql => 'SELECT pg_sleep(60)');
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

# budgets back within a second, by themselves
my $loaded;
while (time - $up < 5)
{
	$loaded = $node->safe_psql('postgres',
		"SELECT count(*) FROM conngov.usage() WHERE budget = 'crash'");
	last if $loaded eq '1';
	usleep(20_000);
}
my $elapsed = time - $up;
is($loaded, '1', 'budgets loaded again after the crash restart');
cmp_ok($elapsed, '<', 1.0, 'within a second of accepting connections');

# no leaked charge: the crash ended all three sessions
cg_finish_clients($clients);
is(cg_total($node, 'crash'), '0', 'no charge survived the crash');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'conngov worker'"),
	'1',
	'the worker runs again');

# counting works after the restart: exactly the budget
my $r = cg_storm(
	$node,
	clients => 8,
	app => 'crash-app',
	user => 'regress_app',
	sql => 'SELECT pg_sleep(2)');
is($r->{admitted}, 5, '5 admitted after the crash restart');
is($r->{refused}, 3, '3 refused after the crash restart');
$node->poll_query_until('postgres',
	"SELECT total = 0 FROM conngov.usage() WHERE budget = 'crash'");
is(cg_total($node, 'crash'), '0', 'all released');

# a clean restart keeps the budgets (they are in the table)
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
	"SELECT current_setting('conngov.mode') = 'monitor'");
usleep(200_000);
$r = cg_storm(
	$node,
	clients => 7,
	app => 'crash-app',
	user => 'regress_app',
	sql => 'SELECT pg_sleep(1)');
is($r->{admitted}, 7, 'monitor mode after reload: all 7 admitted');
is( $node->safe_psql(
		'postgres', "SELECT would_refuse FROM conngov.stats() WHERE budget = 'crash'"),
	'2',
	'and 2 recorded as would_refuse');

$node->stop;
done_testing();
