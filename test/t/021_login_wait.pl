
# Copyright (c) 2026, conngov developers

# login_wait and max_waiting: logins over a full budget wait, first come
# first served, and are admitted one by one as places free; max_waiting + 1
# is refused at once; a client that goes away, or a waiting backend that is
# terminated, leaves the queue; a wait that runs out is refused with the
# time waited; an exempt login never waits; a crash or a restart leaves no
# waiter counted.  Each step waits for a server-side record (usage()'s
# waiting, pg_stat_activity), never for a fixed time.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

my $node = cg_node('wait', max_connections => 40,
	conf => "restart_after_crash = on\n");
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, login_wait, max_waiting',
	"('queued', 'queued%', 'regress_app', 2, '50 s', 3)",
	"('short', 'short%', 'regress_app', 0, '1 s', 5)",
	"('nowait', 'nowait%', 'regress_app', 0, '1 s', NULL)");
my $m = cg_psql($node, 'postgres');

sub waiting
{
	return $m->query_safe(
		"SELECT waiting FROM conngov.usage() WHERE budget = 'queued'");
}

# start_waiter(app): a psql login that will wait; once admitted it holds
# its session ($cg_held_sql).  Returns after usage() counts it waiting
# (want: the count then).
sub start_waiter
{
	my ($app, $want) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-d',
			cg_connstr($node, user => 'regress_app', app => $app),
			'-c', $cg_held_sql
		],
		'<', \undef, '>', \$out, '2>', \$err);
	cg_poll_for($node,
		"SELECT waiting FROM conngov.usage() WHERE budget = 'queued'",
		$want, monitor => $m);
	return { h => $h, err => \$err, app => $app };
}

# The sessions of queued-* in pg_stat_activity (a waiting login is not
# there yet: it has not finished logging in).
sub admitted
{
	return $m->query_safe(
		"SELECT coalesce(string_agg(application_name, ',' ORDER BY application_name), '') FROM pg_stat_activity WHERE application_name LIKE 'queued-%' AND state = 'active'"
	);
}

sub pid_of
{
	my ($app) = @_;
	return $m->query_safe(
		"SELECT pid FROM pg_stat_activity WHERE application_name = '$app'");
}


# two places, both taken
my $h1 = cg_hold($node, user => 'regress_app', app => 'queued-h1', monitor => $m);
my $h2 = cg_hold($node, user => 'regress_app', app => 'queued-h2', monitor => $m);
ok($h1->{ok} && $h2->{ok}, 'the two places of "queued" are taken');

# three waiters, in this order
my $w1 = start_waiter('queued-w1', 1);
my $w2 = start_waiter('queued-w2', 2);
my $w3 = start_waiter('queued-w3', 3);
is(waiting(), 3, 'three logins wait');

# the fourth finds max_waiting (3) waiting: refused at once
my $t0 = Time::HiRes::time();
my ($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'queued-w4');
my $took = Time::HiRes::time() - $t0;
like(
	$err,
	qr/FATAL:  connection budget "queued" exhausted\nDETAIL:  Budget "queued" allows 2 connections \(application_name LIKE 'queued%' AND role_name = 'regress_app'\); 2 are in use\. 3 logins wait for a place already, the budget's max_waiting\./,
	'max_waiting + 1 is refused, saying so');
ok($took < 25, sprintf('... at once (%.2f s; login_wait is 50 s)', $took));

# an exempt login never waits
$t0 = Time::HiRes::time();
($rc, $out, $err) = cg_login($node, app => 'queued-dba', sql => 'SELECT 1');
is($rc, 0, 'a superuser over the full budget is admitted');
ok(Time::HiRes::time() - $t0 < 25, '... without waiting');
is(waiting(), 3, 'still three waiting');

# places free one by one: the oldest waiter gets each
cg_release($node, $m, $h1);
cg_poll_is($node,
	"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'queued-w1' AND state = 'active'",
	'1', 'first place freed: the first waiter is admitted', monitor => $m);
is(admitted(), 'queued-h2,queued-w1', '... and only it');
is(waiting(), 2, '... two still wait');

$m->query_safe("SELECT pg_terminate_backend(" . pid_of('queued-h2') . ")");
cg_poll_is($node,
	"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'queued-w2' AND state = 'active'",
	'1', 'second place freed: the second waiter is admitted', monitor => $m);
is(admitted(), 'queued-w1,queued-w2', '... and only it');
is(waiting(), 1, '... one still waits');

$m->query_safe("SELECT pg_terminate_backend(" . pid_of('queued-w1') . ")");
cg_poll_is($node,
	"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'queued-w3' AND state = 'active'",
	'1', 'third place freed: the third waiter is admitted', monitor => $m);
is(admitted(), 'queued-w2,queued-w3', '... in arrival order');
is(waiting(), 0, 'nobody waits');
$h2->{h}->finish;
$w1->{h}->finish;

# a client that goes away while waiting frees its place in the queue
my $w5 = start_waiter('queued-w5', 1);
my $w6 = start_waiter('queued-w6', 2);
$w5->{h}->kill_kill;
cg_poll_is($node,
	"SELECT waiting FROM conngov.usage() WHERE budget = 'queued'",
	'1', 'the client that went away no longer waits', monitor => $m);
$m->query_safe("SELECT pg_terminate_backend(" . pid_of('queued-w2') . ")");
cg_poll_is($node,
	"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'queued-w6' AND state = 'active'",
	'1', 'the next place goes to the waiter behind it', monitor => $m);
is(waiting(), 0, 'nobody waits');
$w2->{h}->finish;

# a waiting backend can be terminated like any other
my $w7 = start_waiter('queued-w7', 1);
my @wp = cg_waiter_pids($node, 'regress_app');
is(scalar(@wp), 1, 'the waiting backend shows "authentication" in its title');
my $offset = -s $node->logfile;
$m->query_safe("SELECT pg_terminate_backend($wp[0])");
$w7->{h}->finish;
# PostgreSQL's own words for a backend ended while authenticating (the
# client gets nothing: errors are not sent during authentication)
ok( cg_wait_log(
		$node, qr/\[$wp[0]\] 57014 \S* ?FATAL:  canceling authentication due to timeout/,
		$offset),
	'a terminated waiter ends as any authenticating backend does');
isnt($w7->{h}->result, 0, '... and its client fails');
cg_poll_is($node,
	"SELECT waiting FROM conngov.usage() WHERE budget = 'queued'",
	'0', '... and leaves the queue', monitor => $m);

# a wait that runs out: refused with the time waited
$t0 = Time::HiRes::time();
($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'short-1');
$took = Time::HiRes::time() - $t0;
like(
	$err,
	qr/FATAL:  connection budget "short" exhausted\nDETAIL:  Budget "short" allows 0 connections \(application_name LIKE 'short%' AND role_name = 'regress_app'\); 0 are in use\. The login waited 1\.\d s for a place\./,
	'after login_wait the login is refused, saying how long it waited');
ok($took >= 1.0, sprintf('... not before login_wait (%.2f s)', $took));

# max_waiting NULL is least(max_connections, 5): 0 here, so nobody waits
($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'nowait-1');
like($err, qr/0 logins wait for a place already, the budget's max_waiting\./,
	'max_waiting NULL is at most max_connections (0: refused at once)');

is( $m->query_safe(
		"SELECT string_agg(budget || ':' || waited || ':' || wait_timeouts || ':' || refused || ':' || (wait_seconds_total > 0), ',' ORDER BY budget) FROM conngov.stats()"
	),
	'nowait:0:0:1:false,queued:6:0:1:true,short:1:1:1:true',
	'stats(): waited, wait_timeouts, refused, wait_seconds_total');
is( $m->query_safe(
		"SELECT string_agg(kind || ':' || budget, ',' ORDER BY kind, budget) FROM (SELECT kind, budget, count(*) FROM conngov.events() WHERE kind IN ('waited', 'wait_timeout') GROUP BY 1, 2) e"
	),
	'wait_timeout:short,waited:queued',
	'events(): waited and wait_timeout');
is( $m->query_safe(
		"SELECT count(*) FROM conngov.events() WHERE kind = 'waited' AND budget = 'queued'"),
	'4', 'one waited event per admitted waiter');

# a publish while logins wait: raising the budget admits the oldest at
# once; dropping the budget admits the others unbudgeted
my $wa = start_waiter('queued-wa', 1);
my $wb = start_waiter('queued-wb', 2);
$m->query_safe(
	"UPDATE conngov.budgets SET max_connections = 3 WHERE name = 'queued'");
cg_poll_is($node,
	"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'queued-wa' AND state = 'active'",
	'1', 'a raised budget admits the oldest waiter', monitor => $m);
is(waiting(), 1, '... the other still waits (re-matched to the new budgets)');
$m->query_safe("DELETE FROM conngov.budgets WHERE name = 'queued'");
cg_poll_is($node,
	"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'queued-wb' AND state = 'active'",
	'1', 'a dropped budget admits its waiter, unbudgeted', monitor => $m);
is( $m->query_safe(
		"SELECT budget FROM conngov.sessions() WHERE login_application_name = 'queued-wb'"),
	'(unbudgeted)', '... charged as unbudgeted');
$m->query_safe(
	"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name IN ('queued-wa', 'queued-wb')"
);
$_->{h}->finish for ($wa, $wb);
$m->query_safe(
	"INSERT INTO conngov.budgets (name, application_pattern, role_name, max_connections, login_wait, max_waiting) VALUES ('queued', 'queued%', 'regress_app', 2, '50 s', 3)"
);
cg_poll_for($node, "SELECT conngov.reload()", '3', monitor => $m);

# a crash leaves no waiter counted
my $w8 = start_waiter('queued-w8', 1);
@wp = cg_waiter_pids($node, 'regress_app');
is(scalar(@wp), 1, 'one backend waits');
$m->quit;
kill 'KILL', $wp[0];
$w8->{h}->finish;
$_->{h}->finish for ($w3, $w6);
$node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'conngov worker'")
  or diag('no worker after the crash');
cg_poll_for($node, "SELECT conngov.reload() >= 0", 't');
is( $node->safe_psql('postgres',
		"SELECT string_agg(budget || ':' || total || ':' || waiting, ',' ORDER BY budget) FROM conngov.usage() WHERE budget <> '(unbudgeted)'"
	),
	'nowait:0:0,queued:0:0,short:0:0',
	'after a crash restart nobody is counted, nobody waits');

# a clean restart too
$m = cg_psql($node, 'postgres');
my $ha = cg_hold($node, user => 'regress_app', app => 'queued-ha', monitor => $m);
my $hb = cg_hold($node, user => 'regress_app', app => 'queued-hb', monitor => $m);
my $w9 = start_waiter('queued-w9', 1);
$m->quit;
$node->restart;
$_->{h}->finish for ($ha, $hb, $w9);
cg_poll_for($node, "SELECT conngov.reload() >= 0", 't');
is( $node->safe_psql('postgres',
		"SELECT total || ':' || waiting FROM conngov.usage() WHERE budget = 'queued'"),
	'0:0', 'after a restart nobody waits');

# 1.2: max_waiting NULL is least(max_connections, 5): a budget of 6 lets
# 5 logins wait, not 6
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, login_wait, max_waiting',
	"('dflt', 'dflt%', 'regress_app', 6, '50 s', NULL)");
$m = cg_psql($node, 'postgres');
my @dh = map {
	cg_hold($node, user => 'regress_app', app => "dflt-h$_", monitor => $m)
} 1 .. 6;
is(scalar(grep { $_->{ok} } @dh), 6, 'the 6 places of "dflt" are taken');
my @dw;
for my $i (1 .. 5)
{
	push @dw,
	  IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-d',
			cg_connstr($node, user => 'regress_app', app => "dflt-w$i"),
			'-c', $cg_held_sql
		],
		'<', \undef, '>', \my $o, '2>', \my $e);
	cg_poll_for($node, "SELECT waiting FROM conngov.usage() WHERE budget = 'dflt'",
		$i, monitor => $m);
}
($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'dflt-w6');
like($err, qr/5 logins wait for a place already, the budget's max_waiting\./,
	'max_waiting NULL: at most 5 logins wait, whatever the budget allows');
# the waiters' clients go away (they leave the queue), then the holders
$_->kill_kill for @dw;
cg_poll_for($node, "SELECT waiting FROM conngov.usage() WHERE budget = 'dflt'",
	'0', monitor => $m);
cg_release($node, $m, @dh);
$m->quit;

$node->stop;
done_testing();
