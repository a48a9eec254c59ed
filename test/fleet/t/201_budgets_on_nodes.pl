
# Copyright (c) 2026, conngov developers

# One budgets table for a Patroni fleet: a primary and two standbys of
# different sizes (Patroni sets max_connections = 30 on every node; each
# node has its own superuser_reserved_connections, 3, 8 and 13, so 27, 22
# and 17 normal slots).  Budgets written on the primary are enforced on
# both standbys within one second of replay; a max_share budget gives each
# node its own limit; node_role budgets apply on their role only, and a
# login falls through to the next budget where one is not in force.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use lib 'test/fleet';
use ConngovTest;
use FleetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $fleet = FleetTest->new(reserved => [ 3, 8, 13 ]);
$fleet->start;
my ($n1, $n2, $n3) = map { $fleet->node($_) } qw(node1 node2 node3);
my %normal = (node1 => 27, node2 => 22, node3 => 17);
for my $n ($fleet->names)
{
	is( $fleet->node($n)->safe_psql('postgres',
			'SELECT max_connections, normal_slots FROM conngov.headroom()'),
		"30|$normal{$n}",
		"$n: 30 connections, $normal{$n} normal slots");
}

my $cols =
  'name, application_pattern, role_name, max_connections, priority, node_role, max_share, idle_timeout';

# the budgets, in one transaction on the primary; a catch-all of 0 (with a
# 1 s idle timeout) stays in force all along: nothing else may log in, and
# Patroni's sessions must still never be refused or ended
my $budgets = "INSERT INTO conngov.budgets ($cols) VALUES
	('app', 'app-%', 'regress_app', 2, 100, 'any', NULL, NULL),
	('share', 'share-%', 'regress_app', 100, 100, 'any', 0.2, NULL),
	('ro_standby', 'ro-%', NULL, 3, 10, 'standby', NULL, NULL),
	('ro_primary', 'ro-%', NULL, 0, 20, 'primary', NULL, NULL),
	('rw_primary', 'rw-%', NULL, 2, 10, 'primary', NULL, NULL),
	('rw_standby', 'rw-%', NULL, 0, 20, 'standby', NULL, NULL),
	('zz_all', '%', NULL, 0, 1000, 'any', NULL, '1s')";
# on_primary(label, change, visible, loaded): run the SQL change on the
# primary; check that both standbys enforce it within 1 s of its replay
# (fl_replayed_then_loaded: visible and loaded are true once it is
# replayed, and once usage() shows it)
sub on_primary
{
	my ($label, $change, $visible, $loaded) = @_;
	my $delay = fl_replayed_then_loaded($n1, [ $n2, $n3 ], $change, $visible, $loaded);
	for my $n (qw(node2 node3))
	{
		ok(defined $delay->{$n} && $delay->{$n} <= 1.0,
			"$n: $label enforced within 1 s of replay")
		  or diag("$n: " . ($delay->{$n} // 'never'));
	}
	return;
}

on_primary(
	'new budgets', $budgets,
	"EXISTS (SELECT FROM conngov.budgets WHERE name = 'zz_all')",
	"EXISTS (SELECT FROM conngov.usage() WHERE budget = 'zz_all')");

# the budgets in force on each node, and each one's limit there
my %in_force = (
	node1 => 'app=2 ro_primary=0 rw_primary=2 share=5 zz_all=0',
	node2 => 'app=2 ro_standby=3 rw_standby=0 share=4 zz_all=0',
	node3 => 'app=2 ro_standby=3 rw_standby=0 share=3 zz_all=0');
for my $n ($fleet->names)
{
	my $u = fl_usage($fleet->node($n));
	is( join(' ',
			map { "$_=" . (split /\|/, $u->{$_})[0] }
			sort grep { $_ ne '(unbudgeted)' } keys %$u),
		$in_force{$n},
		"$n: usage() lists the budgets in force there with their limits");
}
is( $n2->safe_psql('postgres',
		"SELECT conngov.match('ro-1', 'regress_app'), conngov.match('rw-1', 'regress_app')"),
	'ro_standby|rw_standby',
	'node2: match() skips the primary budgets');

# exact counts on every node: application, logins, admitted and the
# budget that refuses the rest, on the primary and on a standby
my %share = (node1 => 5, node2 => 4, node3 => 3);
for my $n ($fleet->names)
{
	my $node = $fleet->node($n);
	my $primary = $n eq 'node1';
	for my $s (
		[ 'app-1', 5, 2, 'app', 2, 'app' ],
		[ 'share-1', $share{$n} + 2, $share{$n}, 'share', $share{$n}, 'share' ],
		[ 'ro-1', 5, 0, 'ro_primary', 3, 'ro_standby' ],
		[ 'rw-1', 4, 2, 'rw_primary', 0, 'rw_standby' ],
		[ 'other', 2, 0, 'zz_all', 0, 'zz_all' ])
	{
		my ($app, $clients, @by_role) = @$s;
		my ($admitted, $budget) = $primary ? @by_role[ 0, 1 ] : @by_role[ 2, 3 ];
		fl_storm_is(
			$node, $n,
			app => $app,
			clients => $clients,
			admitted => $admitted,
			budget => $budget);
	}
}

# a change on the primary: within one second of replay on both standbys,
# then exact there
on_primary(
	'changed budget',
	"UPDATE conngov.budgets SET max_connections = 3 WHERE name = 'app'",
	"(SELECT max_connections = 3 FROM conngov.budgets WHERE name = 'app')",
	"(SELECT max_connections = 3 FROM conngov.usage() WHERE budget = 'app')");
for my $n (qw(node2 node3))
{
	fl_storm_is($fleet->node($n), $n, app => 'app-2', clients => 5, admitted => 3,
		budget => 'app');
}

# a share above the node's size is capped by max_connections; a share
# that a standby's size floors to 0 refuses every login there
on_primary(
	'capped share and new budget',
	"UPDATE conngov.budgets SET max_connections = 4, max_share = 1 WHERE name = 'share';"
	  . "INSERT INTO conngov.budgets ($cols) VALUES ('tiny', 'tiny-%', NULL, 10, 100, 'any', 0.05, NULL)",
	"EXISTS (SELECT FROM conngov.budgets WHERE name = 'tiny')",
	"EXISTS (SELECT FROM conngov.usage() WHERE budget = 'tiny')");
my %tiny = (node1 => 1, node2 => 1, node3 => 0);    # floor(0.05 * 27, 22, 17)
for my $n ($fleet->names)
{
	my $u = fl_usage($fleet->node($n));
	is( (split /\|/, $u->{share})[0] . ' ' . (split /\|/, $u->{tiny})[0],
		"4 $tiny{$n}", "$n: share capped at 4, tiny = floor(0.05 * $normal{$n})");
	fl_storm_is($fleet->node($n), $n, app => 'tiny-1', clients => 2,
		admitted => $tiny{$n}, budget => 'tiny');
}

fl_no_leaks($fleet, 'after the storms');
$fleet->stop;
done_testing();
