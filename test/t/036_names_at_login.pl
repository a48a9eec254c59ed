
# Copyright (c) 2026, conngov developers

# Names given at login count at login (1.2).  A name from the startup
# packet's options (-c application_name=...) or from a role or database
# default is the login's name: charged before the session runs any
# statement, so a refused session's CALL or INSERT never runs; a later SET
# of a session that came with a name changes nothing.  A login without a
# name is judged by the empty name, and its refusal says so and names the
# remedy.  Late naming queues behind the logins already waiting for the
# budget, like a login.  Every step polls the server's own record.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

my $node = cg_node('names', max_connections => 40);
$node->safe_psql(
	'postgres', q{
CREATE ROLE regress_def LOGIN;
CREATE ROLE regress_anon LOGIN;
ALTER ROLE regress_def SET application_name = 'named-role';
CREATE DATABASE regress_namedb;
ALTER DATABASE regress_namedb SET application_name = 'named-db';
CREATE TABLE public.work (who text);
GRANT INSERT, SELECT ON public.work TO PUBLIC;
CREATE PROCEDURE public.p(who text) LANGUAGE plpgsql
  AS $$ BEGIN INSERT INTO public.work VALUES (who); COMMIT; END $$;
});
# the same table and procedure in the database with a default name
$node->safe_psql(
	'regress_namedb', q{
CREATE TABLE public.work (who text);
GRANT INSERT, SELECT ON public.work TO PUBLIC;
CREATE PROCEDURE public.p(who text) LANGUAGE plpgsql
  AS $$ BEGIN INSERT INTO public.work VALUES (who); COMMIT; END $$;
});
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, login_wait, max_waiting',
	"('named', 'named%', NULL, 1, NULL, NULL)",
	"('other', 'other%', NULL, 5, NULL, NULL)",
	"('anon', '', 'regress_anon', 0, NULL, NULL)",
	"('q', 'q%', NULL, 1, '50 s', 5)");
my $m = cg_psql($node, 'postgres');
sub sql { return $m->query_safe($_[0]); }

sub total
{
	return sql("SELECT total FROM conngov.usage() WHERE budget = '$_[0]'");
}

my $full = cg_hold($node, user => 'regress_app', app => 'named-1', monitor => $m);
ok($full->{ok}, '"named" is full');

###########################################################################
# a name in the startup options is charged at login: the CALL never runs
my ($rc, $out, $err) = cg_login(
	$node,
	connstr => $node->connstr('postgres')
	  . " user=regress_app application_name='' options='-c application_name=named-opt'",
	sql => "CALL public.p('options')");
isnt($rc, 0, 'options: the login over "named" fails');
like($err, qr/FATAL:  connection budget "named" exhausted/,
	'options: refused by the budget its options name');
is(sql("SELECT count(*) FROM public.work WHERE who = 'options'"), '0',
	'options: the refused session\'s CALL (which commits) did not run');

# a role default, and a database default: re-charged before the first
# statement runs
($rc, $out, $err) = cg_login(
	$node,
	connstr => $node->connstr('postgres') . " user=regress_def application_name=''",
	sql => "CALL public.p('role')");
like($err, qr/FATAL:  connection budget "named" exhausted/,
	'role default: refused by the budget its default names');
is(sql("SELECT count(*) FROM public.work WHERE who = 'role'"), '0',
	'role default: the refused session\'s CALL (which commits) did not run');
($rc, $out, $err) = cg_login(
	$node,
	connstr => $node->connstr('regress_namedb') . " user=regress_app application_name=''",
	sql => "CALL public.p('db')");
like($err, qr/FATAL:  connection budget "named" exhausted/,
	'database default: refused by the budget its default names');
is($node->safe_psql('regress_namedb', "SELECT count(*) FROM public.work WHERE who = 'db'"), '0',
	'database default: the refused session\'s CALL did not run');
is(total('named'), '1', 'refused sessions leave no charge');

###########################################################################
# a session that came with a name keeps it: SET changes nothing
my $s = cg_session($node, 'other-1', 'regress_app',
	sql => "SET application_name = 'named-x'; SELECT 1;");
is( sql("SELECT budget || '|' || application_name FROM conngov.sessions() WHERE pid = $s->{pid}"),
	'other|named-x',
	'a SET after a login with a name changes nothing: still charged to "other"');
my $o = cg_session($node, '', 'regress_app',
	sql => "SET application_name = 'other-2';");
is(sql("SELECT budget FROM conngov.sessions() WHERE pid = $o->{pid}"),
	'other', 'an unnamed login is still named late (pgjdbc)');
my $opt;
{
	local $ENV{PGOPTIONS} = '-c application_name=other-3';
	$opt = cg_session($node, '', 'regress_app',
		sql => "SET application_name = 'named-y';");
}
is(sql("SELECT budget FROM conngov.sessions() WHERE pid = $opt->{pid}"),
	'other', 'a name from the options is final too');
cg_quit($s, $o, $opt);

###########################################################################
# a login without a name, refused: the DETAIL says so and names the remedy
($rc, $out, $err) = cg_login(
	$node,
	connstr => $node->connstr('postgres') . " user=regress_anon application_name=''");
like(
	$err,
	qr/FATAL:  connection budget "anon" exhausted\nDETAIL:  Budget "anon" allows 0 connections \(application_name LIKE '' AND role_name = 'regress_anon'\); 0 are in use\. The login sent no application_name, so it is judged by the empty name; send the name at login \(for pgjdbc, assumeMinServerVersion=9\.0 in the URL\)\./,
	'an unnamed login\'s refusal says it came without a name, and the remedy');

###########################################################################
# late naming queues behind a waiting login
my $qh = cg_hold($node, user => 'regress_app', app => 'q-holder', monitor => $m);
my ($wout, $werr) = ('', '');
my $w1 = IPC::Run::start(
	[
		'psql', '-X', '-A', '-t', '-d',
		cg_connstr($node, user => 'regress_app', app => 'q-w1'),
		'-c', $cg_held_sql
	],
	'<', \undef, '>', \$wout, '2>', \$werr);
cg_poll_for($node, "SELECT waiting FROM conngov.usage() WHERE budget = 'q'",
	'1', monitor => $m);
my ($lout, $lerr) = ('', '');
my $late = IPC::Run::start(
	[
		'psql', '-X', '-A', '-t', '-d',
		$node->connstr('postgres') . " user=regress_app application_name=''",
		'-c', "SET application_name = 'q-late'",
		'-c', "SELECT 'late ran'",
		'-c', $cg_held_sql
	],
	'<', \undef, '>', \$lout, '2>', \$lerr);
ok( defined cg_poll_for(
		$node, "SELECT waiting FROM conngov.usage() WHERE budget = 'q'",
		'2', monitor => $m),
	'late naming: the renamed session waits behind the login');
sql("SELECT pg_terminate_backend($qh->{pid})");
cg_poll_is($node,
	"SELECT string_agg(application_name, ',') FROM pg_stat_activity WHERE application_name LIKE 'q-%' AND wait_event = 'PgSleep'",
	'q-w1', 'late naming: the place goes to the older waiting login', monitor => $m);
is(sql("SELECT waiting FROM conngov.usage() WHERE budget = 'q'"), '1',
	'late naming: the renamed session still waits');
$late->pump_nb;
unlike($lout, qr/late ran/, 'late naming: its statement has not run');
sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'q-w1'");
cg_poll_is($node,
	"SELECT string_agg(application_name, ',') FROM pg_stat_activity WHERE application_name LIKE 'q-%' AND wait_event = 'PgSleep'",
	'q-late', 'late naming: then the renamed session gets the next place', monitor => $m);
my $end = Time::HiRes::time() + $PostgreSQL::Test::Utils::timeout_default;
while ($lout !~ /late ran/ && $late->pumpable && Time::HiRes::time() < $end)
{
	$late->pump_nb;
	Time::HiRes::usleep(50_000);
}
like($lout, qr/late ran/, 'late naming: and its statement runs');
is( sql("SELECT budget FROM conngov.sessions() WHERE application_name = 'q-late'"),
	'q', 'late naming: charged to "q"');
sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'q-late'");
$_->finish for ($w1, $late);
$qh->{h}->finish;

cg_release($node, $m, $full);
$m->quit;
$node->stop;
done_testing();
