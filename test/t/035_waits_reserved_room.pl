
# Copyright (c) 2026, conngov developers

# Waiting logins never take reserved room (1.2).  max_connections = 40,
# superuser_reserved_connections = 3, a role with LOGIN only: one session
# holds the only place of a budget with login_wait '30 s' and a large
# max_waiting, and 39 more logins of that budget try to wait.  A waiting
# login holds a server process slot, so only as many wait as leave the
# superuser-reserved slots and the other budgets' unused floors free; the
# others are refused at once, saying there was no room to wait.  While the
# waiters wait, the DBA connects 3 times of 3 and a min_connections 3
# budget opens its 3 guaranteed sessions.  Then places free one by one:
# each goes to the oldest waiter, in arrival order, and to it only.
#
# Nothing here is decided by a fixed sleep: sessions are held by
# $cg_held_sql, and every wait polls usage() or pg_stat_activity, bounded
# by timeout_default.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# The budgets are written on a larger server, so that the table's own
# check (waits and floors must fit the normal slots) lets a large
# max_waiting in, and the server is then restarted with 40 slots: the
# runtime rule alone must keep the reserve.
my $node = cg_node('waits_room', max_connections => 100,
	conf => "superuser_reserved_connections = 3\n");
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, min_connections, login_wait, max_waiting',
	"('one', 'w%', 'regress_app', 1, 0, '30 s', 60)",
	"('floor', 'f%', 'regress_app', 3, 3, NULL, NULL)");
$node->append_conf('postgresql.conf', "max_connections = 40\n");
$node->restart;
cg_poll_for($node, 'SELECT conngov.reload()', '2');

my $m = cg_psql($node, 'postgres');
sub sql { return $m->query_safe($_[0]); }

sub waiting
{
	return sql("SELECT waiting FROM conngov.usage() WHERE budget = 'one'");
}

# settle(clients): wait until each client has exited or is counted
# waiting; returns (waiting, exited).
sub settle
{
	my ($clients) = @_;
	my $end = Time::HiRes::time() + $PostgreSQL::Test::Utils::timeout_default;
	my ($w, $exited);
	for (;;)
	{
		$exited = 0;
		for my $c (@$clients)
		{
			if ($c->{h}->pumpable) { $c->{h}->pump_nb; }
			else { $exited++; }
		}
		$w = waiting();
		last if $w + $exited >= @$clients || Time::HiRes::time() > $end;
		usleep(50_000);
	}
	return ($w, $exited);
}

# start(app): one login of "one" that waits (or is refused); once
# admitted it holds its session.
sub start
{
	my ($app) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-d',
			cg_connstr($node, user => 'regress_app', app => $app),
			'-c', $cg_held_sql
		],
		'<', \undef, '>', \$out, '2>', \$err);
	return { h => $h, err => \$err, app => $app };
}

is(sql('SELECT normal_slots FROM conngov.headroom()'), '37',
	'40 slots, 3 reserved for superusers: 37 normal slots');

my $holder = cg_hold($node, user => 'regress_app', app => 'w-holder', monitor => $m);
ok($holder->{ok}, 'the only place of "one" is taken');

###########################################################################
# 39 logins try to wait
my @storm = map { start("w-storm-$_") } 1 .. 39;
my ($w, $exited) = settle(\@storm);
diag("$w logins wait, $exited were refused");
cmp_ok($w, '>', 0, 'some logins wait');
cmp_ok($exited, '>', 0, 'the others were refused at once');
my $free = sql('SELECT normal_free FROM conngov.headroom()');
# the floor's 3 unused slots stay free too
cmp_ok($free, '>=', 3, "the waiters left the floor's 3 slots free ($free normal slots free)");
my @refusals = map { ${ $_->{err} } } grep { !$_->{h}->pumpable } @storm;
like(
	(grep { /no room to wait/ } @refusals)[0] // join("\n", @refusals),
	qr/FATAL:  connection budget "one" exhausted\nDETAIL:  Budget "one" allows 1 connection \(application_name LIKE 'w%' AND role_name = 'regress_app'\); 1 is in use\. (?:There was|The login waited \d+\.\d s for a place; then there was) no room to wait: a waiting login holds a server connection slot, and \d+ (?:is|are) free, fewer than the \d+ kept for superusers, reserved connections and other budgets' guaranteed slots\./,
	'a login with no room to wait is refused with the usual refusal, saying so');
is(scalar(grep { !/no room to wait|too many clients already/ } @refusals),
	0, 'no login was refused for anything else')
  or diag(join("\n", @refusals));

# the DBA connects 3 times of 3 while they wait (a waiter that then finds
# the reserve in use gives up its slot: it may not wait on reserved room)
my @dba = map { cg_hold($node, app => "dba-$_", monitor => $m) } 1 .. 3;
is(scalar(grep { $_->{ok} } @dba), 3, 'the DBA connects 3 times of 3 while logins wait')
  or diag(join("\n", map { $_->{err} // '' } @dba));
my $w2 = waiting();
cmp_ok($w2, '>', 0, "logins still wait while the DBA is connected ($w2)");
cg_release($node, $m, @dba);

# the floor budget opens its 3 guaranteed sessions while they wait
my @floor =
  map { cg_hold($node, user => 'regress_app', app => "f-$_", monitor => $m) } 1 .. 3;
is(scalar(grep { $_->{ok} } @floor), 3,
	'a min_connections 3 budget opens its 3 guaranteed sessions while logins wait')
  or diag(join("\n", map { $_->{err} // '' } @floor));
cmp_ok(waiting(), '>', 0, '... while logins still wait');
cg_release($node, $m, @floor);

# end the storm's waiters
sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> $holder->{pid}");
$_->{h}->finish for @storm;
cg_poll_is($node, "SELECT waiting FROM conngov.usage() WHERE budget = 'one'",
	'0', 'terminated waiters leave the queue', monitor => $m);

###########################################################################
# FIFO: five waiters, started one after the other; each release admits
# the oldest, and only it
my @q;
for my $i (1 .. 5)
{
	push @q, start("w-q$i");
	cg_poll_for($node, "SELECT waiting FROM conngov.usage() WHERE budget = 'one'",
		$i, monitor => $m);
}
is(waiting(), 5, 'five logins wait');
my $order = '';
my $prev = $holder->{pid};
for my $i (1 .. 5)
{
	sql("SELECT pg_terminate_backend($prev)");
	cg_poll_for($node, "SELECT count(*) FROM pg_stat_activity WHERE pid = $prev",
		'0', monitor => $m);
	cg_poll_for($node,
		"SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'w-q%' AND state = 'active'",
		'1', monitor => $m);
	my $in = sql("SELECT application_name || ' ' || pid FROM pg_stat_activity WHERE application_name LIKE 'w-q%' AND state = 'active'");
	my ($app, $pid) = split / /, $in;
	$order .= ($order eq '' ? '' : ',') . ($app // '?');
	is(waiting(), 5 - $i, "release $i: one login admitted, " . (5 - $i) . ' still wait');
	$prev = $pid;
}
is($order, 'w-q1,w-q2,w-q3,w-q4,w-q5', 'places go to the waiters in arrival order');
sql("SELECT pg_terminate_backend($prev)");
$_->{h}->finish for @q;
$holder->{h}->finish;

$m->quit;
$node->stop;
done_testing();
