
# Copyright (c) 2026, conngov developers

# Clients see why, and every client is governed (SPEC): late naming,
# self-describing idle endings, listeners spared, full vs exhausted,
# conngov.log_refusals = sampled, read-your-writes, exempt_roles applied to
# open sessions.
#
# As in 004, "not ended" is asserted only after the deadline has passed and
# the worker has run a whole pass since (cg_worker_pass); endings are
# waited for, bounded by timeout_default.  The one sleep (sampled logging)
# is a lower bound: it can only make the test slower.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = cg_node('clients', max_connections => 40);
$node->safe_psql('postgres',
	    'CREATE ROLE regress_ops NOLOGIN; '
	  . 'CREATE ROLE regress_opsuser LOGIN IN ROLE regress_ops;');

# the poller: a superuser session, never governed
my $mon = cg_psql($node, 'postgres');

sub sql { return $mon->query_safe($_[0]); }

sub reload_conf
{
	my ($setting, $value) = @_;
	sql("ALTER SYSTEM SET $setting = '$value'");
	sql('SELECT pg_reload_conf()');
	# a new session forks from the postmaster, which has reloaded and
	# signalled every process by the time it shows the new value
	$node->poll_query_until('postgres', "SHOW $setting", $value)
	  or die "$setting not reloaded";
	return;
}

sub usage_of
{
	my ($budget, $col) = @_;
	return sql("SELECT $col FROM conngov.usage() WHERE budget = '$budget'");
}

my $cols =
  'name, application_pattern, role_name, max_connections, idle_timeout, '
  . 'idle_in_transaction_timeout';

###########################################################################
# 1. Late naming: SET application_name (or set_config) before the first
# statement that is not a SET re-charges the session, or ends it with the
# login's refusal; later names change nothing.
{
	cg_set_budgets($node, $cols,
		"('java', 'java-api%', NULL, 2, NULL, NULL)",
		"('other', 'other%', NULL, 10, NULL, NULL)",
		{ monitor => $mon });
	my $unb0 = usage_of('(unbudgeted)', 'total');

	# what pgjdbc sends after login, without assumeMinServerVersion
	my $jdbc = "SET extra_float_digits = 3; SET application_name = 'java-api-%d';";
	my @s = map {
		cg_session($node, '', 'regress_app', sql => sprintf($jdbc, $_))
	} 1 .. 2;
	is(usage_of('java', 'total'), 2, 'late naming: two sessions charged to "java"');
	is(usage_of('(unbudgeted)', 'total'),
		$unb0, 'late naming: the unbudgeted total is as before');
	is( sql("SELECT string_agg(budget || ',' || login_application_name || ',' || current_budget, ' ' ORDER BY login_application_name) FROM conngov.sessions() WHERE pid IN ($s[0]{pid}, $s[1]{pid})"),
		'java,java-api-1,java java,java-api-2,java',
		'late naming: sessions() shows the budget and the name charged by');

	my ($rc, $out, $err) = cg_login(
		$node,
		user => 'regress_app',
		app => "''",
		sql => sprintf($jdbc, 3) . ' SELECT 1');
	isnt($rc, 0, 'late naming: a third session is ended');
	like(
		$err,
		qr/FATAL:  connection budget "java" exhausted\nDETAIL:  Budget "java" allows 2 connections \(application_name LIKE 'java-api%'\); 2 are in use\.\nHINT:  /,
		'late naming: with the login\'s refusal, DETAIL and HINT');
	is( sql("SELECT application_name || '|' || detail FROM conngov.events() WHERE kind = 'refused' AND budget = 'java'"),
		'java-api-3|2 in use, limit 2',
		'late naming: the refused event names the late name');

	($rc, $out, $err) = cg_login(
		$node,
		user => 'regress_app',
		app => "''",
		sql => "SELECT set_config('application_name', 'java-api-4', false)");
	like($err, qr/FATAL:  connection budget "java" exhausted/,
		'late naming: set_config as the first statement is refused too');
	is(usage_of('java', 'total') . '|' . usage_of('(unbudgeted)', 'total'),
		"2|$unb0", 'late naming: refused sessions leave no charge');

	# a statement that is not a SET closes naming
	$s[0]{psql}->query_safe("SET application_name = 'other-1'");
	is(usage_of('java', 'total') . '|' . usage_of('other', 'total'),
		'2|0', 'late naming: a name set after the first statement changes nothing');
	is( sql("SELECT budget || ',' || login_application_name || ',' || application_name || ',' || current_budget FROM conngov.sessions() WHERE pid = $s[0]{pid}"),
		'java,java-api-1,other-1,other',
		'late naming: sessions() shows the charge and current_budget apart');

	# a superuser is never refused: charged over the budget
	my $su = cg_session($node, '', undef,
		sql => "SET application_name = 'java-api-su';");
	is(usage_of('java', 'total'), 3,
		'late naming: a superuser is charged over the budget, not refused');

	# SET to a name of another budget, then to none: the last name counts
	my $o = cg_session($node, '', 'regress_app',
		sql => "SET application_name = 'other-3'; SET application_name = '';");
	is(usage_of('other', 'total') . '|' . usage_of('(unbudgeted)', 'total'),
		"0|" . ($unb0 + 1),
		'late naming: SETs before the first statement follow the last name');

	# 1.2: a login that came with a name keeps it, whatever it SETs
	my $named = cg_session($node, 'other-2', 'regress_app',
		sql => "SET application_name = 'java-api-9';");
	is(usage_of('other', 'total') . '|' . usage_of('java', 'total'),
		'1|3', 'a login that came with a name keeps it: SET changes nothing');
	cg_quit(@s, $su, $o, $named);
	cg_poll_is($node, "SELECT total FROM conngov.usage() WHERE budget = 'java'",
		'0', 'late naming: the charges are given back at exit', monitor => $mon);
}

###########################################################################
# 2. Self-describing idle endings, 57P01 by default, 57P05 / 25P03 with
# conngov.ending_sqlstate = timeout; a person's pg_terminate_backend keeps
# PostgreSQL's message.
{
	cg_set_budgets($node, $cols,
		"('reporting', 'rep%', NULL, 10, '2s', '2s')",
		"('longer', 'long%', NULL, 10, '1h', NULL)",
		{ monitor => $mon });
	my $offset = -s $node->logfile;

	my $s = cg_session($node, 'rep-1', 'regress_app');
	my %gone = cg_wait_gone($mon, undef, $s->{pid});
	ok(defined $gone{ $s->{pid} }, 'ending: the idle session was ended');
	my $err = cg_closed($s) // 'query ran';
	like(
		$err,
		qr/FATAL:  terminating connection due to idle timeout of connection budget "reporting"\nDETAIL:  The session was idle for \d+\.\d s; the budget's idle_timeout is 2 s\./,
		'ending: the client sees why, with DETAIL');
	cg_wait_log($node, qr/\[$s->{pid}\] \S+ .*FATAL:  terminating connection due to idle timeout/, $offset);
	like(slurp_file($node->logfile, $offset),
		qr/\[$s->{pid}\] 57P01 \S* ?FATAL:  terminating connection due to idle timeout of connection budget "reporting"/,
		'ending: the server log has it with SQLSTATE 57P01');

	reload_conf('conngov.ending_sqlstate', 'timeout');
	cg_worker_pass($node, $mon);
	$offset = -s $node->logfile;
	my $t = cg_session($node, 'rep-2', 'regress_app');
	my $x = cg_session($node, 'rep-3', 'regress_app', sql => 'BEGIN;');
	%gone = cg_wait_gone($mon, undef, $t->{pid}, $x->{pid});
	is(scalar(keys %gone), 2, 'ending: idle and idle in transaction ended');
	like(
		cg_closed($x) // 'query ran',
		qr/FATAL:  terminating connection due to idle in transaction timeout of connection budget "reporting"\nDETAIL:  The session was idle in transaction for \d+\.\d s; the budget's idle_in_transaction_timeout is 2 s\./,
		'ending: idle in transaction says so');
	cg_closed($t);
	cg_wait_log($node, qr/\[$x->{pid}\] \S+ .*FATAL/, $offset);
	my $log = slurp_file($node->logfile, $offset);
	like($log, qr/\[$t->{pid}\] 57P05 \S* ?FATAL:  terminating connection due to idle timeout/,
		'ending_sqlstate = timeout: 57P05 for idle');
	like($log, qr/\[$x->{pid}\] 25P03 \S* ?FATAL:  terminating connection due to idle in transaction timeout/,
		'ending_sqlstate = timeout: 25P03 for idle in transaction');
	reload_conf('conngov.ending_sqlstate', 'admin');

	# a person's termination keeps PostgreSQL's message
	my $p = cg_session($node, 'long-1', 'regress_app');
	sql("SELECT pg_terminate_backend($p->{pid})");
	like(
		cg_closed($p) // 'query ran',
		qr/FATAL:  terminating connection due to administrator command/,
		'ending: pg_terminate_backend by a person keeps PostgreSQL\'s message');
}

###########################################################################
# 3. Listeners are spared: a session that LISTENs is never ended for
# idleness; after UNLISTEN * it is governed again.
{
	my $l = cg_session($node, 'rep-listen', 'regress_app', sql => 'LISTEN jobs;');
	my $n = cg_session($node, 'rep-plain', 'regress_app');
	my %gone = cg_wait_gone($mon, undef, $n->{pid});
	ok(defined $gone{ $n->{pid} }, 'listen: the plain idle session was ended');
	cg_worker_pass($node, $mon);
	is(join(',', cg_alive($node, $l->{pid})), $l->{pid},
		'listen: the listening session, idle as long, remains');
	$l->{psql}->query_safe('UNLISTEN *');
	%gone = cg_wait_gone($mon, undef, $l->{pid});
	ok(defined $gone{ $l->{pid} }, 'listen: after UNLISTEN * it is ended');
	cg_quit($n, $l);
}

###########################################################################
# 4. full is not exhausted: at the limit without refusals, status full and
# healthy; refusals in conngov.refusal_window make it exhausted.
# 5. conngov.log_refusals = sampled.
{
	cg_set_budgets($node, $cols, "('fixed', 'fixed%', NULL, 1, NULL, NULL)",
		{ monitor => $mon });
	my $h = cg_session($node, 'fixed-1', 'regress_app');
	is(usage_of('fixed', 'status'), 'full', 'full: a budget at its limit is full');
	is(sql(q{SELECT conngov.health()->>'status'}), 'healthy',
		'full: health() counts it as healthy');

	reload_conf('conngov.log_refusals', 'sampled');
	my $offset = -s $node->logfile;
	my $t1;
	my $told = 0;
	for (1 .. 5)
	{
		my ($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'fixed-2');
		$told++ if $err =~ /FATAL:  connection budget "fixed" exhausted\nDETAIL:  /;
		# the first line was written before this
		$t1 //= time();
	}
	is($told, 5, 'sampled: every refused client gets the full error');
	is(usage_of('fixed', 'status'), 'exhausted', 'exhausted: after refusals');
	is(sql(q{SELECT conngov.health()->>'status'}), 'unhealthy',
		'exhausted: health() is unhealthy');
	is(sql(q{SELECT refused FROM conngov.stats() WHERE budget = 'fixed'}), 5,
		'sampled: stats() counts every refusal');

	# 10 s after the first line, the next refusal logs the count of those
	# since (4 not logged, and itself) instead
	cg_sleep_until($t1 + 10.1);
	cg_login($node, user => 'regress_app', app => 'fixed-3');
	cg_wait_log($node, qr/conngov: \d+ logins refused by connection budget "fixed"/, $offset);
	my $log = slurp_file($node->logfile, $offset);
	my @full = $log =~ /FATAL:  connection budget "fixed" exhausted/g;
	is(scalar @full, 1, 'sampled: the first refusal is logged in full, once');
	like($log,
		qr/LOG:  conngov: 5 logins refused by connection budget "fixed" in the last \d+\.\d s/,
		'sampled: then one line with the count');
	is(sql(q{SELECT count(*) FROM conngov.events() WHERE kind = 'refused' AND budget = 'fixed'}),
		6, 'sampled: events() keeps every refusal');
	reload_conf('conngov.log_refusals', 'on');

	reload_conf('conngov.refusal_window', '1s');
	cg_poll_is($node, "SELECT status FROM conngov.usage() WHERE budget = 'fixed'",
		'full', 'refusal_window: full again once the window has passed',
		monitor => $mon);
	reload_conf('conngov.refusal_window', '1min');
	cg_quit($h);
}

###########################################################################
# 6. Read-your-writes: once COMMIT returns, logins and monitoring calls see
# the new budgets, without reload().
{
	cg_set_budgets($node, $cols, "('ryw', 'ryw%', NULL, 5, NULL, NULL)",
		{ monitor => $mon });
	my ($seen, $judged) = (0, 0);
	for my $round (1 .. 10)
	{
		my $max = $round % 2 ? 0 : 5;
		my $shown = sql(
			"UPDATE conngov.budgets SET max_connections = $max WHERE name = 'ryw'; "
			  . "SELECT max_connections FROM conngov.usage() WHERE budget = 'ryw'");
		$seen++ if $shown eq $max;
		my ($rc) = cg_login($node, user => 'regress_app', app => 'ryw-1');
		$judged++ if ($rc == 0) == ($max > 0);
	}
	is($seen, 10, 'read-your-writes: usage() right after COMMIT shows the new budget (10 of 10)');
	is($judged, 10, 'read-your-writes: the next login is judged by it (10 of 10)');
}

###########################################################################
# 7. conngov.exempt_roles applies to open sessions.
{
	cg_set_budgets($node, $cols, "('ops', 'ops%', NULL, 10, NULL, NULL)",
		{ monitor => $mon });
	my $s = cg_session($node, 'ops-1', 'regress_opsuser');
	my $exempt = "SELECT exempt FROM conngov.sessions() WHERE pid = $s->{pid}";
	is(sql($exempt), 'f', 'exempt_roles: not exempt at login');
	reload_conf('conngov.exempt_roles', 'regress_ops');
	cg_worker_pass($node, $mon);
	is(sql($exempt), 't', 'exempt_roles: exempt once the setting is reloaded');

	cg_set_budgets($node, $cols, "('ops', 'ops%', NULL, 10, '2s', NULL)",
		{ monitor => $mon });
	cg_sleep_until($s->{idle_at} + 2.1);
	cg_worker_pass($node, $mon);
	is(join(',', cg_alive($node, $s->{pid})), $s->{pid},
		'exempt_roles: the exempt session is not ended for idleness');

	reload_conf('conngov.exempt_roles', '');
	cg_worker_pass($node, $mon);
	my %gone = cg_wait_gone($mon, undef, $s->{pid});
	ok(defined $gone{ $s->{pid} },
		'exempt_roles: no longer exempt, the idle session is ended');
	cg_quit($s);
}

###########################################################################
# 8. sessions() works with 1.0's declaration (11 columns) and gains
# current_budget with ALTER EXTENSION conngov UPDATE.
{
	sql('DROP EXTENSION conngov');
	sql(q{CREATE EXTENSION conngov VERSION '1.0'});
	sql('SELECT conngov.reload()');
	is(sql('SELECT count(*) > 0 FROM conngov.sessions() WHERE pid = pg_backend_pid()'),
		't', '1.0 SQL: sessions() works with the 1.1 library');
	sql(q{ALTER EXTENSION conngov UPDATE TO '1.1'});
	is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'conngov'}), '1.1',
		'ALTER EXTENSION conngov UPDATE: 1.1');
	is(sql('SELECT budget || \'|\' || current_budget FROM conngov.sessions() WHERE pid = pg_backend_pid()'),
		'(unbudgeted)|(unbudgeted)', '1.1: sessions() shows current_budget');
	is(sql(q{SELECT has_function_privilege('pg_monitor', 'conngov.sessions()', 'EXECUTE')::text
		|| has_function_privilege('public', 'conngov.sessions()', 'EXECUTE')::text}),
		'truefalse', '1.1: sessions() for pg_monitor, not PUBLIC, as in 1.0');
}

$mon->quit;
$node->stop;
done_testing();
