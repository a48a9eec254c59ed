
# Copyright (c) 2026, conngov developers

# On a streaming standby whose free worker slots parallel queries hold, a budget lowered on the primary refuses on the standby within about a second of replay.
#
# The standby has no trigger: its loader re-reads the table every second.
# The time runs from just before COMMIT on the primary to the end of the
# first login the standby refuses (a new psql each try); it includes the
# replay, which is shown.  The bound is the SPEC's second plus a stated
# margin for a slow, busy 2-core machine.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# seconds allowed beyond the SPEC's one second (replay, psql starts, a
# loaded machine)
my $MARGIN = 1.5;

my $primary = cg_node(
	'primary',
	init => { allows_streaming => 1 },
	conf => q{
max_worker_processes = 8
max_parallel_workers = 8
});
cg_budgets($primary, "('replica_slots', 'rslots-%', NULL, 5)");
$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);
$standby->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM conngov.usage() WHERE budget = 'replica_slots'")
  or diag('budgets not loaded on the standby');

my $loader0 = cg_loader_pid($standby);
like($loader0, qr/^\d+\|postgres$/,
	'standby: a conngov loader is connected to conngov.database');

my $offset = -s $standby->logfile;
my $held = cg_hold_worker_slots($standby, user => 'regress_app');
is(cg_free_worker_slots($standby), 0,
	'standby: pg_stat_activity counts max_worker_processes background workers, no slot is free'
);
my $probe = $standby->safe_psql('postgres',
	    $held->{set}
	  . 'SET enable_indexonlyscan = off; SET enable_bitmapscan = off; '
	  . 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM pg_catalog.pg_attribute'
);
like($probe, qr/Workers Planned: 2/, 'standby: a parallel probe plans 2 workers');
like($probe, qr/Workers Launched: 0/, '... and launches none');

my ($rc0) = cg_login($standby, app => 'rslots-1', user => 'regress_app');
is($rc0, 0, 'standby, before: a login of budget replica_slots is admitted');

my $t0 = time();
$primary->safe_psql('postgres',
	"UPDATE conngov.budgets SET max_connections = 0 WHERE name = 'replica_slots'"
);
my $lsn = $primary->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
my $took = cg_first_outcome(
	$standby, $t0,
	want => 'refused',
	app => 'rslots-1',
	user => 'regress_app');
my $replayed = $standby->safe_psql('postgres',
	"SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn");
diag(sprintf('first login refused on the standby %.3f s after COMMIT began on the primary',
		$took // -1));
is($replayed, 't', 'the change was replayed on the standby');
ok(defined $took && $took < 1 + $MARGIN,
	"standby refuses within 1 s of the primary's COMMIT (+ $MARGIN s margin) with no free worker slot"
);

# reload() on the standby returns
$t0 = time();
my ($rc, $out, $err) = $standby->psql('postgres', 'SELECT conngov.reload()');
my $reload = time() - $t0;
diag(sprintf('reload() on the standby took %.3f s', $reload));
is("$rc|$out", '0|1', 'standby: reload() returns 1 with no free worker slot')
  or diag($err);
ok($reload < 1 + $MARGIN, "standby: reload() within 1 s (+ $MARGIN s margin)");

is(cg_free_worker_slots($standby), 0, 'standby: still no free slot');
is(cg_loader_pid($standby), $loader0,
	'standby: the same loader process throughout (no process per load)');
unlike(
	slurp_file($standby->logfile, $offset),
	qr/nothing is enforced|could not start a loader|conngov loader.*exited/,
	'standby: nothing logged for the loads');

$standby->safe_psql('postgres',
	"SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'cg-slots-%' AND backend_type = 'client backend'"
);
cg_finish_clients($held->{clients});

$standby->stop;
$primary->stop;
done_testing();
