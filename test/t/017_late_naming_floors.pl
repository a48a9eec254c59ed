
# Copyright (c) 2026, conngov developers

# Late naming keeps the floors.  A hostile plain role logs in without a
# name, charged by the empty name to a floor budget while that budget is
# below its floor (so its login is not checked against the others'
# floors), then names its session: giving the guaranteed slot back while
# keeping the process slot would let it take a slot the floor needs.  The
# rename is refused like a login, with the floor refusal, before the
# statement runs, when the free slots no longer cover the unused floors;
# with room to spare the same rename goes through.  (1.2: a login that
# came with a name keeps it, so only a login without one can rename.)
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

# 20 slots, 3 for superusers: 17 normal slots
my $node = cg_node('late_floors', max_connections => 20);
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, min_connections',
	"('core', '', 'regress_app', 15, 10)");
my $monitor = cg_psql($node, 'postgres');

# the monitor (a superuser) and 6 unbudgeted sessions: 10 normal slots stay
# free, all of them core's floor
my @held =
  map { cg_hold($node, user => 'regress_app', app => "other-$_", monitor => $monitor) } 1 .. 6;
is(scalar(grep { $_->{ok} } @held), 6, 'six unbudgeted sessions are in');
my ($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'other-7');
like($err, qr/the free connection slots are guaranteed to other budgets/,
	'a seventh unbudgeted login is refused for the floor');

# the hostile session: logs in without a name (core, within its floor),
# then names itself
my ($ret, $stdout, $stderr) = $node->psql(
	'postgres',
	"SET application_name = 'other-sneak'; SELECT 'renamed'",
	extra_params => [ '-U', 'regress_app' ],
	connstr => $node->connstr('postgres') . " application_name=''");
like(
	$stderr,
	qr/FATAL:  connection budget "\(unbudgeted\)": the free connection slots are guaranteed to other budgets/,
	'naming out of a floor budget is refused when the floor needs the slot');
unlike($stdout, qr/renamed/, 'the renamed session never ran its query');
is( $monitor->query_safe(
		"SELECT refused_for_floors FROM conngov.stats() WHERE budget = 'core'"),
	0, 'the refusal is not counted against core');
is( $monitor->query_safe(
		"SELECT count(*) FROM conngov.events() WHERE kind = 'refused_for_floors'"
		  . " AND application_name = 'other-sneak'"),
	1, 'the event names the new application');

# with room to spare the same rename goes through
cg_release($node, $monitor, @held[ 0 .. 2 ]);
ok( defined cg_poll_for(
		$node,
		"SELECT total FROM conngov.usage() WHERE budget = '(unbudgeted)'",
		4, monitor => $monitor),
	'three sessions left (the monitor is the fourth)');
($ret, $stdout, $stderr) = $node->psql(
	'postgres',
	"SET application_name = 'other-ok'; SELECT current_setting('application_name')",
	extra_params => [ '-U', 'regress_app' ],
	connstr => $node->connstr('postgres') . " application_name=''");
is($stdout, 'other-ok', 'with room to spare the rename goes through');
is($ret, 0, 'and the session ends normally') or diag($stderr);

cg_release($node, $monitor, @held[ 3 .. 5 ]);
$monitor->quit;
$node->stop;
done_testing();
