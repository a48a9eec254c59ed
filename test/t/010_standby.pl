
# Copyright (c) 2026, conngov developers

# A streaming standby enforces the budgets it received by replication,
# reports its own headroom, applies a change made on the primary within a
# few seconds, and runs the worker (idle endings included).
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $primary = cg_node(
	'primary',
	max_connections => 30,
	init => { allows_streaming => 1 });
$primary->safe_psql('postgres',
	"INSERT INTO conngov.budgets (name, application_pattern, max_connections, idle_timeout)"
	  . " VALUES ('replica_app', 'replica%', 2, NULL)");
$primary->safe_psql('postgres', 'SELECT conngov.reload()');

$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->append_conf('postgresql.conf', "max_connections = 35\n");
$standby->start;
$primary->wait_for_catchup($standby);

ok($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()') eq 't',
	'standby is in recovery');
$standby->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'conngov worker'")
  or diag('no worker on the standby');
$standby->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM conngov.usage() WHERE budget = 'replica_app'")
  or diag('budgets not loaded on the standby');

# enforcement on the standby, from the replicated table; the admitted
# clients wait at a gate (an advisory lock, which works in recovery) until
# every client is decided
my $gate = cg_gate($standby);
my $r = cg_storm(
	$standby,
	clients => 5,
	app => 'replica-1',
	user => 'regress_app',
	gate => $gate);
is($r->{admitted}, 2, 'standby admits exactly the budget');
is($r->{refused}, 3, 'standby refuses the rest');

# its own headroom
is( $standby->safe_psql(
		'postgres', 'SELECT max_connections, normal_slots FROM conngov.headroom()'),
	'35|32',
	"standby reports its own max_connections and normal slots");

# a change on the primary applies on the standby by itself (the worker
# re-reads every second; the bound scales with timeout_default, the lag is
# shown)
$standby->poll_query_until('postgres',
	"SELECT total = 0 FROM conngov.usage() WHERE budget = 'replica_app'");
my $t0 = time;
$primary->safe_psql('postgres',
	"UPDATE conngov.budgets SET max_connections = 4, idle_timeout = '1s' WHERE name = 'replica_app'"
);
my $applied = $standby->poll_query_until('postgres',
	"SELECT max_connections = 4 FROM conngov.usage() WHERE budget = 'replica_app'"
);
my $lag = time - $t0;
diag(sprintf('primary change applied on the standby after %.3f s', $lag));
ok($applied && $lag < cg_late(),
	'primary change applied on the standby by itself (bound: cg_late())');

$r = cg_storm(
	$standby,
	clients => 6,
	app => 'replica-2',
	user => 'regress_app',
	gate => $gate);
is($r->{admitted}, 4, 'standby admits the new budget of 4');
cg_gate_quit($gate);

# the worker ends idle sessions on the standby too
my $offset = -s $standby->logfile;
local $ENV{PGAPPNAME} = 'replica-idle';
my $idle = $standby->background_psql('postgres',
	extra_params => [ '-U', 'regress_app' ]);
$idle->query_safe('SELECT 1');
$standby->wait_for_log(qr/conngov ended session \d+ of budget "replica_app"/, $offset);
pass('worker ended an idle session on the standby');
eval { $idle->quit; };

$standby->stop;
$primary->stop;
done_testing();
