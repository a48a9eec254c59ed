
# Copyright (c) 2026, conngov developers

# Loads need no free background-worker slot: with parallel queries of a LOGIN-only role holding every free slot, a lowered budget refuses within a second of COMMIT and reload() returns.
#
# The queries hold the slots until the test cancels them (a parallel scan
# that sleeps 1 s a row); that no slot is free is read from the server
# twice: pg_stat_activity counts max_worker_processes background workers,
# and a parallel probe launches none of its planned workers.  Timing runs
# from just before COMMIT to the end of the first refused login (a new
# psql each try); the bound is the SPEC's second plus a stated margin for
# a slow, busy 2-core machine.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# seconds allowed beyond the SPEC's one second: process starts of psql,
# scheduling on a loaded machine
my $MARGIN = 1.5;

my $node = cg_node(
	'slots',
	conf => q{
max_worker_processes = 8
max_parallel_workers = 8
});
my $mon = cg_psql($node, 'postgres');
cg_budgets($node, "('slots', 'slots-%', NULL, 5)");

my $loader0 = cg_loader_pid($node);
like($loader0, qr/^\d+\|postgres$/,
	'a conngov loader is connected to conngov.database');

my $offset = -s $node->logfile;
my $held = cg_hold_worker_slots($node, user => 'regress_app');
is(cg_free_worker_slots($node), 0,
	'pg_stat_activity: max_worker_processes background workers run, no slot is free'
);
my $probe = $mon->query_safe($held->{set}
	  . 'SET enable_indexonlyscan = off; SET enable_bitmapscan = off; '
	  . 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM pg_catalog.pg_attribute'
);
like($probe, qr/Workers Planned: 2/, 'a parallel probe plans 2 workers');
like($probe, qr/Workers Launched: 0/, '... and launches none: no slot is free');

# a budget lowered to 0: refused within a second of COMMIT
my ($rc0) = cg_login($node, app => 'slots-1', user => 'regress_app');
is($rc0, 0, 'before: a login of budget slots is admitted');
my $t0 = time();
$mon->query_safe(
	"UPDATE conngov.budgets SET max_connections = 0 WHERE name = 'slots'");
my $commit = time() - $t0;
my $took = cg_first_outcome(
	$node, $t0,
	want => 'refused',
	app => 'slots-1',
	user => 'regress_app');
diag(sprintf('COMMIT took %.3f s; first refused login %.3f s after COMMIT began',
		$commit, $took // -1));
ok(defined $took && $took < 1 + $MARGIN,
	"budget lowered to 0 refuses within 1 s of COMMIT (+ $MARGIN s margin) with no free worker slot"
);

# back up: admitted again, as fast
$t0 = time();
$mon->query_safe(
	"UPDATE conngov.budgets SET max_connections = 5 WHERE name = 'slots'");
$took = cg_first_outcome(
	$node, $t0,
	want => 'admitted',
	app => 'slots-1',
	user => 'regress_app');
ok(defined $took && $took < 1 + $MARGIN,
	"budget raised again: admitted within 1 s of COMMIT (+ $MARGIN s margin)")
  or diag('took ' . ($took // 'undef'));

# reload() returns, and says how many budgets it loaded
$t0 = time();
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT conngov.reload()');
my $reload = time() - $t0;
diag(sprintf('reload() took %.3f s', $reload));
is("$rc|$out", '0|1', 'reload() returns 1 with no free worker slot')
  or diag($err);
ok($reload < 1 + $MARGIN, "reload() within 1 s (+ $MARGIN s margin)");

is(cg_free_worker_slots($node), 0, 'still no free slot after the loads');
is(cg_loader_pid($node), $loader0,
	'the same loader process did every load (no process started per load)');
unlike(
	slurp_file($node->logfile, $offset),
	qr/nothing is enforced|could not start a loader|conngov loader.*exited/,
	'nothing logged for the loads');
like(
	$mon->query_safe(
		"SELECT c FROM jsonb_array_elements(conngov.health()->'checks') c WHERE c->>'name' = 'loads'"
	),
	qr/"status": "ok"/,
	'health(): the loads check is ok');

# end the parallel queries
$mon->query_safe(
	'SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE \'cg-slots-%\' AND backend_type = \'client backend\''
);
cg_finish_clients($held->{clients});

$mon->quit;
$node->stop;
done_testing();
