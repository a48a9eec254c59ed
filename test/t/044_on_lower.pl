
# Copyright (c) 2026, conngov developers

# on_lower = 'end_idle': within a second of a committed lowering the worker
# ends idle sessions above the new limit, longest idle first; never an
# active, listening or exempt session, never below the new limit; each
# ending names the lowering.  on_lower = 'refuse_new' ends nobody.  Who is
# idle since when is the server's own record (pg_stat_activity), who was
# ended is events(); "nothing ends" is asserted after the worker has run a
# whole pass since the change (cg_worker_pass).
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node('on_lower', max_connections => 60);
my $m = cg_psql($node, 'postgres');

sub sql { return $m->query_safe($_[0]); }

cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, on_lower',
	"('low', 'low-%', NULL, 30, 'end_idle')",
	{ monitor => $m });

# 10 active, 5 listening, 15 idle, opened in that order: the idle ones
# go idle one after the other, i1 first (longest idle)
my @active = map {
	cg_hold($node, user => 'regress_app', app => "low-a$_", monitor => $m)
} 1 .. 10;
ok((grep { $_->{ok} } @active) == 10, '10 active sessions');
my @listen = map {
	cg_session($node, "low-l$_", 'regress_app', sql => 'LISTEN low_channel;')
} 1 .. 5;
my @idle = map { cg_session($node, "low-i$_", 'regress_app') } 1 .. 15;
is(sql("SELECT total FROM conngov.usage() WHERE budget = 'low'"),
	'30', 'the budget holds 30 sessions');
is( sql("SELECT string_agg(application_name, ',' ORDER BY state_change, application_name) FROM pg_stat_activity WHERE application_name LIKE 'low-i%' AND state = 'idle'"),
	join(',', map { "low-i$_" } 1 .. 15),
	'the idle sessions went idle in the order they were opened');

sub ended_pids
{
	return sql(
		"SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') FROM conngov.events() WHERE kind = 'ended_lowered' AND budget = 'low'"
	);
}

sub pids { return join(',', sort { $a <=> $b } map { $_->{pid} } @_); }

# lower it and return the server's time right after COMMIT returned (the
# publish is done by then: read-your-writes)
sub lower_to
{
	my ($limit) = @_;
	sql("UPDATE conngov.budgets SET max_connections = $limit WHERE name = 'low'");
	return sql("SELECT extract(epoch FROM clock_timestamp())::numeric(20,6)");
}

# how long after the commit the last ending of the budget was recorded
sub ending_lag
{
	my ($committed) = @_;
	my $last = sql(
		"SELECT extract(epoch FROM max(at))::numeric(20,6) FROM conngov.events() WHERE kind = 'ended_lowered' AND budget = 'low'"
	);
	return $last - $committed;
}

###########################################################################
# 30 -> 20: exactly the 10 longest-idle sessions end
my $t = lower_to(20);
cg_poll_for($node,
	"SELECT count(*) FROM conngov.events() WHERE kind = 'ended_lowered' AND budget = 'low'",
	'10', monitor => $m);
is(ended_pids(), pids(@idle[0 .. 9]),
	'30 -> 20: the 10 longest-idle sessions were ended');
my $lag = ending_lag($t);
diag(sprintf('30 -> 20: last ending %.3f s after the commit', $lag));
ok($lag < 1 + cg_late(), 'within a second of the commit (plus the machine\'s lateness)');
my %gone = cg_wait_gone($m, undef, map { $_->{pid} } @idle[0 .. 9]);
is(scalar(keys %gone), 10, '... and they are gone');
like(cg_closed($idle[0]) // 'query ran',
	qr/FATAL:  terminating connection because connection budget "low" was lowered to 20/,
	'the ended session reads why');
cg_quit(@idle[1 .. 9]);
cg_poll_is($node, "SELECT total FROM conngov.usage() WHERE budget = 'low'",
	'20', 'the budget is at its new limit', monitor => $m);
is(scalar(cg_alive($node, map { $_->{pid} } @active, @listen, @idle[10 .. 14])),
	20, 'the active, listening and 5 newer idle sessions stay');

###########################################################################
# 20 -> 12: the 5 other idle end; the 15 others stay, over the limit
$t = lower_to(12);
cg_poll_for($node,
	"SELECT count(*) FROM conngov.events() WHERE kind = 'ended_lowered' AND budget = 'low'",
	'15', monitor => $m);
is(ended_pids(), pids(@idle), '-> 12: all 15 idle sessions were ended');
diag(sprintf('20 -> 12: last ending %.3f s after the commit', ending_lag($t)));
cg_wait_gone($m, undef, map { $_->{pid} } @idle[10 .. 14]);
cg_quit(@idle[10 .. 14]);
cg_poll_is($node, "SELECT total FROM conngov.usage() WHERE budget = 'low'",
	'15', 'the 10 active and 5 listening sessions stay, above the limit',
	monitor => $m);
my ($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'low-new');
like($err, qr/FATAL:  connection budget "low" exhausted/,
	'new logins are refused until the budget is below its limit');
is( sql("SELECT ended_lowered || '|' || ended_idle FROM conngov.stats() WHERE budget = 'low'"),
	'15|0', 'stats(): 15 ended for the lowering');

###########################################################################
# an exempt idle session is never ended; nor below the limit
my $dba = cg_session($node, 'low-dba', undef);
is(sql("SELECT total FROM conngov.usage() WHERE budget = 'low'"),
	'16', 'a superuser session is counted in the budget');
lower_to(11);
cg_worker_pass($node, $m);
is(ended_pids(), pids(@idle), '-> 11: the exempt idle session is not ended');
is(scalar(cg_alive($node, $dba->{pid})), 1, '... it is still there');

###########################################################################
# on_lower = 'refuse_new' ends nobody
my @more = map { cg_session($node, "keep-i$_", 'regress_app') } 1 .. 3;
sql("INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('keep', 'keep-%', 3)");
sql("UPDATE conngov.budgets SET max_connections = 1 WHERE name = 'keep'");
cg_worker_pass($node, $m);
is(scalar(cg_alive($node, map { $_->{pid} } @more)), 3,
	'refuse_new: lowering 3 -> 1 ends none of the 3 idle sessions');
is( sql("SELECT count(*) FROM conngov.events() WHERE kind = 'ended_lowered' AND budget = 'keep'"),
	'0', '... and records no ending');

cg_quit(@listen, @more, $dba);
cg_release($node, $m, @active);
$m->quit;
$node->stop;
done_testing();
