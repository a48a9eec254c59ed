
# Copyright (c) 2026, conngov developers

# Fleets (1.2): node_role and max_share on a primary and a larger standby
# built by hand (the Patroni suite, test/fleet/, does the same under a real
# HA manager).  Checks, with exact counts:
# - each node loads the budgets of its role, with its own max_share limit;
# - a change committed on the primary is published on the standby within
#   one second (the standby's own event against the commit's return);
# - after promotion the new primary applies the primary's budgets within
#   one second of the promotion (its log line against its own event),
#   and the sessions it holds are charged to them: no charge leaks.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# primary: 20 - 3 = 17 normal slots; standby: 40 - 3 = 37
my $primary = cg_node(
	'primary',
	max_connections => 20,
	init => { allows_streaming => 1 });
cg_set_budgets(
	$primary,
	'name, application_pattern, max_connections, node_role, max_share, priority',
	"('reports_primary', 'reports%', 0, 'primary', NULL, 10)",
	"('reports_standby', 'reports%', 2, 'standby', NULL, 20)",
	"('web', 'web%', 100, 'any', 0.25, 30)");

$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->append_conf('postgresql.conf', "max_connections = 40\n");
$standby->start;
$primary->wait_for_catchup($standby);

my $limits = q{SELECT string_agg(budget || '=' || max_connections, ',' ORDER BY budget)
  FROM conngov.usage() WHERE budget <> '(unbudgeted)'};
is($primary->safe_psql('postgres', $limits),
	'reports_primary=0,web=4',
	'primary: its budgets only, web at floor(0.25 * 17)');
cg_poll_is($standby, $limits, 'reports_standby=2,web=9',
	'standby: its budgets only, web at floor(0.25 * 37)');

# "reporting may not use the primary": refused there, admitted on the
# standby up to its budget there
my ($rc, $out, $err) =
  cg_login($primary, user => 'regress_app', app => 'reports-daily');
like($err, qr/FATAL:  connection budget "reports_primary" exhausted/,
	'primary refuses the reporting application');
my $gate = cg_gate($standby);
my $r = cg_storm(
	$standby,
	clients => 5,
	app => 'reports-daily',
	user => 'regress_app',
	gate => $gate);
is($r->{admitted}, 2, 'standby admits 2 reporting sessions');
is($r->{refused}, 3, 'standby refuses 3 more');
cg_gate_quit($gate);

# a max_share budget on each node: 4 of 6 on the primary
$gate = cg_gate($primary);
$r = cg_storm(
	$primary,
	clients => 6,
	app => 'web-1',
	user => 'regress_app',
	gate => $gate);
is($r->{admitted}, 4, 'primary admits floor(0.25 * 17) = 4 web sessions');
is($r->{refused}, 2, 'primary refuses 2 web sessions');
cg_gate_quit($gate);

# a change on the primary: published on the standby within one second of
# the COMMIT (replay included), by the standby's own record
$standby->poll_query_until('postgres',
	"SELECT total = 0 FROM conngov.usage() WHERE budget = 'reports_standby'")
  or die 'reporting sessions did not end on the standby';
my $committed = $primary->safe_psql('postgres',
	"UPDATE conngov.budgets SET max_connections = 3 WHERE name = 'reports_standby';"
	  . " SELECT clock_timestamp()");
cg_poll_is($standby,
	"SELECT max_connections FROM conngov.usage() WHERE budget = 'reports_standby'",
	'3', 'standby applies the change');
my $lag = $standby->safe_psql('postgres',
	"SELECT extract(epoch FROM min(at) - '$committed'::timestamptz)"
	  . " FROM conngov.events() WHERE kind = 'budgets_reloaded' AND at > '$committed'");
note("standby published the change $lag s after the COMMIT returned");
cmp_ok($lag, '<', 1.0, 'standby publishes within one second of the commit');

# sessions on the standby before promotion: 3 reporting sessions (charged
# to reports_standby) and 2 web sessions
my @held;
push @held, cg_hold($standby, user => 'regress_app', app => "reports-$_")
  for 1 .. 3;
push @held, cg_hold($standby, user => 'regress_app', app => "web-$_")
  for 1 .. 2;
is(scalar(grep { $_->{ok} } @held), 5, 'standby holds 5 sessions');
is(cg_total($standby, 'reports_standby'), '3',
	'reporting sessions charged to the standby budget');

# promotion: within one second of it (its log line), the node publishes
# the primary's budgets; the held reporting sessions move to
# reports_primary (over its limit of 0), none is lost
my $offset = -s $standby->logfile;
$standby->promote;
$standby->wait_for_log(qr/selected new timeline ID/, $offset);
my ($promoted) = slurp_file($standby->logfile, $offset) =~
  /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+) \[\d+\] .*selected new timeline ID/m;
ok(defined $promoted, "promotion's log line found");
cg_poll_is($standby, $limits, 'reports_primary=0,web=9',
	'promoted node: the primary budgets, web still floor(0.25 * 37)');
my $after = $standby->safe_psql('postgres',
	"SELECT extract(epoch FROM min(at) - '$promoted'::timestamptz)"
	  . " FROM conngov.events() WHERE kind = 'budgets_reloaded'"
	  . " AND detail LIKE '%this node is the primary%'");
note("promoted node published the primary's budgets $after s after promotion");
cmp_ok($after, '<', 1.0,
	"primary's budgets in force within one second of promotion");
is($standby->safe_psql('postgres',
		"SELECT string_agg(budget || '=' || total, ',' ORDER BY budget) FROM conngov.usage()"),
	'(unbudgeted)=1,reports_primary=3,web=2',
	'held sessions re-charged by role, none lost (unbudgeted: this query)');
($rc, $out, $err) =
  cg_login($standby, user => 'regress_app', app => 'reports-late');
like($err, qr/FATAL:  connection budget "reports_primary" exhausted/,
	'promoted node refuses the reporting application');
cg_release($standby, undef, @held);
cg_poll_is($standby,
	"SELECT string_agg(budget || '=' || total, ',' ORDER BY budget) FROM conngov.usage()",
	'(unbudgeted)=1,reports_primary=0,web=0',
	'no charge left once the sessions ended (unbudgeted: this query)');

$standby->stop;
$primary->stop;
done_testing();
