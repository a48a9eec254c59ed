
# Copyright (c) 2026, conngov developers

# Promotions under Patroni: a `patronictl switchover`, then a failover (the
# primary's postmaster killed with SIGKILL; primary_start_timeout 0 makes
# Patroni fail over instead of restarting it).  Each time the new primary
# enforces the primary budgets within one second of its promotion, and the
# old primary rejoins as a standby (through pg_rewind after the failover)
# and enforces the standby budgets.  A catch-all budget of 0 with a 1 s
# idle timeout is in force all along, and Patroni's own sessions (its
# superuser checks, replication, pg_rewind) are never refused or ended.
# No charge leaks on any node.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use lib 'test/fleet';
use ConngovTest;
use FleetTest;
use PostgreSQL::Test::Utils;
use Test::More;

# the budgets are in force before the standbys are cloned: pg_basebackup
# and every Patroni session log in under the catch-all budget
my $cols =
  'name, application_pattern, role_name, max_connections, priority, node_role, idle_timeout';
my $fleet = FleetTest->new(reserved => [ 3, 8, 13 ]);
$fleet->start(setup_sql => "INSERT INTO conngov.budgets ($cols) VALUES
	('rw_primary', 'rw-%', NULL, 2, 10, 'primary', NULL),
	('rw_standby', 'rw-%', NULL, 0, 20, 'standby', NULL),
	('ro_standby', 'ro-%', NULL, 3, 10, 'standby', NULL),
	('ro_primary', 'ro-%', NULL, 0, 20, 'primary', NULL),
	('zz_all', '%', NULL, 0, 1000, 'any', '1s')");
for my $n (qw(node2 node3))
{
	ConngovTest::cg_poll_for($fleet->node($n),
		"SELECT count(*) FROM conngov.usage() WHERE budget IN ('ro_standby', 'zz_all')", '2');
}

# what conngov spares: Patroni's superuser sessions are counted (charged
# to the catch-all) but exempt; walsenders are not counted
for my $n ($fleet->names)
{
	my $node = $fleet->node($n);
	ConngovTest::cg_poll_is($node,
		"SELECT string_agg(DISTINCT budget || ' ' || exempt, ',') FROM conngov.sessions() WHERE application_name = 'Patroni'",
		'zz_all true', "$n: Patroni's sessions are charged to the catch-all and exempt");
}
is( $fleet->node('node1')->safe_psql('postgres',
		'SELECT count(*) FROM pg_stat_replication r JOIN conngov.sessions() s USING (pid)'),
	'0', 'node1: its walsenders are not counted');

# check_roles(leader, label): the primary budgets on the leader, the
# standby budgets on the others, with exact counts
sub check_roles
{
	my ($leader, $label) = @_;
	for my $n ($fleet->names)
	{
		my $node = $fleet->node($n);
		my $primary = $n eq $leader;
		my $role = $primary ? 'primary' : 'standby';
		my $u = fl_usage($node);
		is( join(' ', sort grep { $_ ne '(unbudgeted)' } keys %$u),
			"ro_$role rw_$role zz_all",
			"$label: $n ($role) has its role's budgets");
		# application, logins, admitted on the primary, on a standby
		for my $s ([ 'rw', 4, 2, 0 ], [ 'ro', 5, 0, 3 ])
		{
			my ($app, $clients, $on_primary, $on_standby) = @$s;
			fl_storm_is(
				$node, "$label: $n",
				app => "$app-1",
				clients => $clients,
				admitted => $primary ? $on_primary : $on_standby,
				budget => "${app}_$role");
		}
	}
	return;
}

# promoted(name, offset, label): checks that the member enforces the
# primary budgets within 1 s of its promotion: from the promotion recorded
# in its server log after offset ("received promote request", written by
# the startup process when Patroni promotes it: the earliest moment of the
# promotion, so the figure is never flattered) to conngov's first publish
# as the primary after it (a budgets_reloaded event "... this node is the
# primary").
sub promoted
{
	my ($name, $offset, $label) = @_;
	my $node = $fleet->node($name);
	my $log = '';
	fl_poll(
		sub {
			$log = substr($fleet->log_content($name), $offset);
			$log =~ /received promote request/;
		});
	my ($ts) = $log =~ /^(\d{4}-\S+ \S+ \S+) \[\d+\] \S+ LOG:  received promote request/m;
	BAIL_OUT("$label: no promotion of $name in its log") unless $ts;
	my $t_promote = cg_epoch($node, $ts);
	my $at = '';
	fl_poll(
		sub {
			$at = fl_loaded_since($node, $t_promote, '%this node is the primary%');
			$at ne ''
			  && $node->safe_psql('postgres',
				"SELECT count(*) FROM conngov.usage() WHERE budget = 'rw_primary'") eq '1';
		});
	my $delay = $at eq '' ? undef : $at - $t_promote;
	note(sprintf('%s: %s promoted at %s (%s), primary budgets published at %s: %s s',
			$label, $name, $t_promote, $ts, $at, defined $delay ? sprintf('%.3f', $delay) : '?'));
	ok(defined $delay && $delay <= 1.0,
		"$label: $name enforces the primary budgets within 1 s of its promotion");
	return;
}

check_roles('node1', 'before');

# switchover node1 -> node2
my %offset = map { $_ => length($fleet->log_content($_)) } $fleet->names;
my $took = $fleet->switchover('node1', 'node2');
note(sprintf('switchover node1 -> node2: patronictl took %.2f s', $took));
promoted('node2', $offset{node2}, 'switchover');
$fleet->wait_healthy('node2');
check_roles('node2', 'after the switchover');
fl_no_leaks($fleet, 'after the switchover');

# failover: SIGKILL to node2's postmaster; Patroni fails over to node1 or
# node3.  Its walsenders are stopped first and a budget written on node2
# then, so node2 dies with WAL that no standby has: it must rejoin through
# pg_rewind, which drops that budget.
%offset = map { $_ => length($fleet->log_content($_)) } $fleet->names;
my $patroni_offset = length(slurp_file($fleet->patroni_log('node2')));
my @walsenders = $fleet->freeze_walsenders('node2');
$fleet->node('node2')->safe_psql('postgres',
	"INSERT INTO conngov.budgets ($cols) VALUES ('lost', 'lost-%', NULL, 1, 100, 'any', NULL)");
my $pid = $fleet->kill_postmaster('node2');
kill('KILL', @walsenders);
note("failover: killed node2's postmaster $pid (and its stopped walsenders @walsenders)");
my $leader = '';
fl_poll(
	sub {
		$leader = $fleet->leader;
		$leader ne '' && $leader ne 'node2';
	});
isnt($leader, '', "failover: a new leader ($leader)");
promoted($leader, $offset{$leader}, 'failover');
$fleet->wait_healthy($leader);
my $plog = substr(slurp_file($fleet->patroni_log('node2')), $patroni_offset);
like($plog, qr/running pg_rewind from $leader/, 'failover: node2 rejoined through pg_rewind');
like($plog, qr/pg_rewind exit code=0/, 'failover: pg_rewind succeeded');
is($fleet->node('node2')->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', 'failover: node2 is a standby');
like(substr($fleet->log_content($leader), $offset{$leader}),
	qr/connection authorized: user=rewinder database=postgres/,
	"failover: pg_rewind logged in to $leader as rewinder, under the catch-all budget");
check_roles($leader, 'after the failover');

# Patroni's sessions: neither refused nor ended on any node (events() of
# each node since its start, and every server log since the fleet
# started: each refusal or ending there is of the test's role)
my $patroni_sessions = q{(role_name IN ('postgres', 'replicator', 'rewinder')
	OR application_name IN ('Patroni', 'Patroni ctl', 'pg_rewind', 'pg_basebackup', 'node1', 'node2', 'node3'))};
for my $n ($fleet->names)
{
	my $node = $fleet->node($n);
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM conngov.events() WHERE kind <> 'budgets_reloaded' AND $patroni_sessions"),
		'0',
		"$n: no event (refusal, ending) for Patroni's sessions");
	my @refusals = grep { /FATAL:  (?:connection budget|terminating connection due to idle timeout)/ }
	  split /\n/, $fleet->log_content($n);
	my @not_ours = grep { !/ regress_app FATAL:/ } @refusals;
	note(scalar(@refusals) . " refusals in $n\'s log");
	is(scalar(@not_ours), 0, "$n: the server log has no refusal or ending but the test's")
	  or diag(join("\n", @not_ours));
}

fl_no_leaks($fleet, 'after the failover');

# the control: without conngov.exempt_roles the catch-all budget refuses
# Patroni's pg_rewind role (a rewind would fail); superusers stay exempt
$fleet->set_parameter('conngov.exempt_roles', undef);
my ($rc, $out, $err) = ConngovTest::cg_login($fleet->node($leader), user => 'rewinder');
like($err, qr/FATAL:  connection budget "zz_all" exhausted/,
	'without conngov.exempt_roles, the catch-all refuses the rewind role');
$fleet->set_parameter('conngov.exempt_roles', 'rewinder');
($rc, $out, $err) = ConngovTest::cg_login($fleet->node($leader), user => 'rewinder');
is($rc, 0, "with conngov.exempt_roles = 'rewinder', it logs in");
$fleet->stop;
done_testing();
