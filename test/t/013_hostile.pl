
# Copyright (c) 2026, conngov developers

# A hostile non-superuser against conngov: no escalation, no look-alikes, no squatting, no stalls.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use Time::HiRes qw(usleep time);

my $TO = $PostgreSQL::Test::Utils::timeout_default;
my $crash_re =
  qr/terminated by signal|server process .* was terminated|all server processes terminated; reinitializing/;
my $cols =
  'name, application_pattern, role_name, max_connections, mode, '
  . 'idle_timeout, idle_in_transaction_timeout, idle_keep';

# poll_until(code, timeout): run code every 50 ms until it returns true, at
# most timeout seconds (default timeout_default); returns its last result.
sub poll_until
{
	my ($code, $timeout) = @_;
	my $end = time() + ($timeout // $TO);
	for (;;)
	{
		my $r = $code->();
		return $r if $r;
		return $r if time() > $end;
		usleep(50_000);
	}
}

# not_before(gone, session): whether a session ended (gone: server epoch of
# the first poll that missed it) no sooner than its 1 s deadline.  idle_at
# is taken by the client after the server went idle, so allow the round
# trip (50 ms).
sub not_before
{
	my ($gone, $s) = @_;
	return !defined $gone || $gone >= $s->{idle_at} + 1.0 - 0.05;
}

# login(node, app, user => role, dbname => db): (exit code, stderr) of one
# short session.
sub login
{
	my ($node, $app, %opt) = @_;
	my ($rc, $out, $err) = cg_login(
		$node,
		app => $app,
		user => $opt{user} // 'regress_app',
		dbname => $opt{dbname} // 'postgres');
	return ($rc, $err);
}

# refused_by(node, app, budget, user => role): whether a login is refused
# with that budget's exact refusal.
sub refused_by
{
	my ($node, $app, $budget, %opt) = @_;
	my ($rc, $err) = login($node, $app, %opt);
	return $rc != 0 && $err =~ /FATAL:  connection budget "\Q$budget\E" exhausted/;
}

sub admitted
{
	my ($node, $app, %opt) = @_;
	my ($rc, $err) = login($node, $app, %opt);
	return $rc == 0;
}

# hostile(node, db, sql): run sql as regress_hostile; (exit code, stdout,
# stderr).
sub hostile
{
	my ($node, $db, $sql) = @_;
	my ($rc, $out, $err) = $node->psql(
		$db, $sql,
		extra_params => [ '-U', 'regress_hostile' ],
		on_error_stop => 1);
	return ($rc, $out, $err);
}

sub hostile_ok
{
	my ($node, $db, $sql, $name) = @_;
	my ($rc, $out, $err) = hostile($node, $db, $sql);
	is($rc, 0, $name) or diag($err);
	return;
}

# su(node, db, sql): run sql as the bootstrap superuser; (exit code,
# stdout, stderr), never dies.
sub su
{
	my ($node, $db, $sql) = @_;
	my ($rc, $out, $err) = $node->psql($db, $sql, on_error_stop => 1);
	return ($rc, $out, $err);
}

# hostile_role(node): the hostile role, with CREATE on postgres and public.
sub hostile_role
{
	my ($node) = @_;
	$node->safe_psql(
		'postgres', q{
CREATE ROLE regress_hostile LOGIN;
GRANT CREATE ON DATABASE postgres TO regress_hostile;
GRANT CREATE ON SCHEMA public TO regress_hostile;
});
	return;
}

# wait_server_seconds(node, s): wait until s seconds of server time passed.
sub wait_server_seconds
{
	my ($node, $s) = @_;
	my $t0 = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
	ok( defined cg_poll_for(
			$node,
			"SELECT clock_timestamp() >= '$t0'::timestamptz + interval '$s s'",
			't', timeout => $TO),
		"$s s of server time passed");
	return;
}

sub log_since
{
	my ($node, $offset) = @_;
	return slurp_file($node->logfile, $offset);
}

sub worker_pid_wait
{
	my ($node) = @_;
	my $pid = '';
	poll_until(
		sub {
			my ($rc, $out) = su($node, 'postgres',
				"SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'conngov worker'"
			);
			$pid = $out // '';
			return $rc == 0 && $pid =~ /^\d+$/;
		});
	return $pid;
}

sub postmaster_pid
{
	my ($node) = @_;
	my $f = slurp_file($node->data_dir . '/postmaster.pid');
	my ($pid) = $f =~ /\A(\d+)/;
	return $pid;
}

# preloaded_node(name, database): a started cluster with conngov preloaded
# and conngov.database set, but no extension created (cg_node creates it)
sub preloaded_node
{
	my ($name, $db) = @_;
	my $n = PostgreSQL::Test::Cluster->new($name);
	$n->init;
	$n->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'conngov'
conngov.database = '$db'
log_line_prefix = '%m [%p] %e %q%a '
});
	$n->start;
	return $n;
}

my $node = cg_node('hostile');
hostile_role($node);
my $su_name = $node->safe_psql('postgres', 'SELECT current_user');
my $mon = $node->background_psql('postgres');
# the session lives through the whole file: time each query, not the session
$mon->set_query_timer_restart;

###########################################################################
# the worker sits in no database (so it blocks no whole-database operation)
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) || '|' || count(*) FILTER (WHERE datname IS NULL) FROM pg_stat_activity WHERE backend_type = 'conngov worker'"
	),
	'1|1',
	'one conngov worker, connected to no database');

###########################################################################
# 9: sessions() inside a transaction sees a session opened after its first
# call in its real state
{
	my $tx = $node->background_psql('postgres');
	$tx->set_query_timer_restart;
	$tx->query_safe('BEGIN');
	$tx->query_safe('SELECT count(*) FROM conngov.sessions()');
	my $s = cg_session($node, 'sess9-1', 'regress_app');
	is( $tx->query_safe(
			"SELECT state FROM conngov.sessions() WHERE pid = $s->{pid}"),
		'idle',
		'sessions() in a transaction: a session opened meanwhile shows as idle');
	$tx->query_safe('COMMIT');
	$tx->quit;
	cg_quit($s);
}

###########################################################################
# 9: events() are stamped under their lock, so the ring is in time order:
# after a storm of refused logins (many backends appending at once), the
# newest-first list never goes forward in time, and events(since) of any of
# them returns exactly the newer ones
{
	cg_set_budgets($node, $cols,
		"('h9', 'ev9-%', NULL, 0, 'enforce', NULL, NULL, 0)");
	my $t0 = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
	my $r = cg_finish_clients(
		cg_start_clients(
			$node,
			clients => 40,
			app => 'ev9-storm',
			user => 'regress_app',
			sql => 'SELECT 1'));
	is($r->{refused}, 40, '9: 40 logins refused by a budget of 0');
	my $q = "SELECT at FROM conngov.events('$t0') WHERE budget = 'h9'";
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) || '|' || count(*) FILTER (WHERE at < lead) FROM (SELECT at, lead(at) OVER () FROM ($q) e) x"
		),
		'40|0',
		'9: events() newest first: 40 refusals, none older than the next one');
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FILTER (WHERE n IS DISTINCT FROM newer) FROM (SELECT e.at, (SELECT count(*) FROM conngov.events(e.at) f WHERE f.budget = 'h9') AS n, (SELECT count(*) FROM ($q) g WHERE g.at > e.at) AS newer FROM ($q) e) x"
		),
		0,
		'9: events(since) of each refusal returns exactly the newer ones');
}

###########################################################################
# 8: timeout arithmetic
{
	# (a) idle_timeout NULL: a plain idle session is never ended, one idle
	# in a transaction is
	cg_set_budgets($node, $cols,
		"('h8a', 'idle8a-%', NULL, 10, 'enforce', NULL, '1s', 0)");
	my $plain = cg_session($node, 'idle8a-plain', 'regress_app');
	my $xact = cg_session($node, 'idle8a-xact', 'regress_app',
		sql => 'BEGIN; SELECT 1;');
	my %gone = cg_wait_gone($mon, 1 + $TO / 6, $xact->{pid});
	ok(defined $gone{ $xact->{pid} },
		'8a: the session idle in a transaction is ended');
	ok(not_before($gone{ $xact->{pid} }, $xact),
		'8a: not before its deadline')
	  or diag("gone at $gone{$xact->{pid}}, idle at $xact->{idle_at}");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM conngov.sweep(true) WHERE pid = $plain->{pid}"),
		0, '8a: sweep(true) does not list the plain idle session (NULL = never)');
	is(join(',', cg_alive($node, $plain->{pid})), $plain->{pid},
		'8a: the plain idle session is still there');
	cg_quit($plain, $xact);

	# (b) a 30-day and a 100 000 000-year budget next to a 1 s one
	cg_set_budgets(
		$node, $cols,
		"('h8b_long', 'idle8b-long%', NULL, 10, 'enforce', '30 days', NULL, 0)",
		"('h8b_huge', 'idle8b-huge%', NULL, 10, 'enforce', '100000000 years', '100000000 years', 0)",
		"('h8b_short', 'idle8b-short%', NULL, 10, 'enforce', '1s', NULL, 0)");
	my $long = cg_session($node, 'idle8b-long', 'regress_app');
	my $huge = cg_session($node, 'idle8b-huge', 'regress_app');
	my $huge_x = cg_session($node, 'idle8b-huge-x', 'regress_app',
		sql => 'BEGIN; SELECT 1;');
	# let the worker settle on the long deadlines before the short one
	$node->safe_psql('postgres', 'SELECT conngov.reload()');
	my $short = cg_session($node, 'idle8b-short', 'regress_app');
	%gone = cg_wait_gone($mon, 1 + $TO / 6, $short->{pid});
	ok(defined $gone{ $short->{pid} },
		'8b: the 1 s session is ended next to 30-day and huge budgets');
	ok(not_before($gone{ $short->{pid} }, $short),
		'8b: not before its deadline');
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM conngov.sweep(true) WHERE pid IN ($long->{pid}, $huge->{pid}, $huge_x->{pid})"
		),
		0,
		'8b: sweep(true) lists none of the 30-day and huge sessions');
	is( join(',', cg_alive($node, $long->{pid}, $huge->{pid}, $huge_x->{pid})),
		join(',', sort { $a <=> $b } ($long->{pid}, $huge->{pid}, $huge_x->{pid})),
		'8b: the long-timeout sessions are still there');
	cg_quit($long, $huge, $huge_x, $short);

	# (c) a sub-millisecond timeout is a timeout, not "never"
	cg_set_budgets($node, $cols,
		"('h8c', 'idle8c-%', NULL, 10, 'enforce', '0.3 ms', NULL, 0)");
	# the session is idle from the moment it logs in, so it may be ended
	# before its first query: a psql that connects and waits on stdin, and
	# the worker's own record of the ending
	my $offset = -s $node->logfile;
	my ($in, $out, $err) = ('', '', '');
	my $tiny = IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-d',
			$node->connstr('postgres')
			  . ' user=regress_app application_name=idle8c-1'
		],
		'<', \$in, '>', \$out, '2>', \$err);
	ok( cg_wait_log(
			$node,
			qr/LOG:  conngov ended session \d+ of budget "h8c": idle for [\d.]+ s \(limit 0\.0 s\)/,
			$offset, $TO),
		"8c: a session of a budget with idle_timeout '0.3 ms' is ended");
	$in .= "SELECT 1;\n";
	$tiny->finish;
	isnt($tiny->result(0), 0, '8c: its client finds the connection closed');
}

###########################################################################
# 10: conngov.exempt_roles names roles as SQL identifiers
{
	$node->safe_psql('postgres', 'CREATE ROLE "DBA_Team" LOGIN');
	cg_set_budgets($node, $cols,
		"('h10', 'dba10-%', NULL, 0, 'enforce', NULL, NULL, 0)");
	my $offset = -s $node->logfile;
	$node->append_conf('postgresql.conf', "conngov.exempt_roles = 'DBA_Team'");
	$node->reload;
	ok( defined cg_poll_for(
			$node, 'SHOW conngov.exempt_roles', 'DBA_Team', timeout => $TO),
		'10: exempt_roles = DBA_Team applied');
	ok( cg_wait_log(
			$node, qr/conngov\.exempt_roles .*"dba_team".* does not exist/,
			$offset, $TO),
		'10: unquoted DBA_Team: the log says role "dba_team" does not exist');
	ok(refused_by($node, 'dba10-1', 'h10', user => 'DBA_Team'),
		'10: unquoted: DBA_Team is not exempt, refused by budget h10');

	$node->append_conf('postgresql.conf',
		q{conngov.exempt_roles = '"DBA_Team"'});
	$node->reload;
	ok( defined cg_poll_for(
			$node, 'SHOW conngov.exempt_roles', '"DBA_Team"', timeout => $TO),
		'10: exempt_roles = "DBA_Team" applied');
	ok(admitted($node, 'dba10-1', user => 'DBA_Team'),
		'10: quoted: DBA_Team is exempt, admitted over a budget of 0');

	$node->append_conf('postgresql.conf', "conngov.exempt_roles = ''");
	$node->reload;
	cg_poll_for($node, 'SHOW conngov.exempt_roles', '', timeout => $TO);
}

###########################################################################
# 6: a lock on the table's index stalls neither idle endings nor later
# changes
{
	cg_set_budgets($node, $cols,
		"('h6', 'idle6-%', NULL, 10, 'enforce', '1s', NULL, 0)");
	my $locker = $node->background_psql('postgres');
	$locker->set_query_timer_restart;
	$locker->query_safe('BEGIN; REINDEX INDEX conngov.budgets_pkey;');
	# a reload request while the index is locked (reload() may wait: cut it)
	{
		local $ENV{PGOPTIONS} = '-c statement_timeout=200';
		su($node, 'postgres', 'SELECT conngov.reload()');
	}
	my $s = cg_session($node, 'idle6-1', 'regress_app');
	my %gone = cg_wait_gone($mon, 1 + $TO / 6, $s->{pid});
	ok(defined $gone{ $s->{pid} },
		'6: an idle session is ended while conngov.budgets_pkey is locked');
	ok(not_before($gone{ $s->{pid} }, $s),
		'6: not before its deadline');
	cg_quit($s);
	$locker->query_safe('COMMIT');
	$locker->quit;

	$node->safe_psql('postgres',
		"INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('h6b', 'after6-%', 0)"
	);
	ok(poll_until(sub { refused_by($node, 'after6-1', 'h6b') }),
		'6: a change committed after the lock is released applies');
}

###########################################################################
# 7: an ERROR in loading (a retyped column) is recovered in place, logged
# once, and nothing is enforced until the column is right again
{
	cg_set_budgets($node, $cols,
		"('h7', 'zero7-%', NULL, 0, 'enforce', NULL, NULL, 0)");
	ok(refused_by($node, 'zero7-1', 'h7'), '7: budget h7 refuses');
	my $wpid = worker_pid_wait($node);
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres',
		'ALTER TABLE conngov.budgets ALTER COLUMN idle_keep TYPE bigint');
	su($node, 'postgres', 'SELECT conngov.reload()');
	ok(poll_until(sub { admitted($node, 'zero7-1') }),
		'7: idle_keep retyped to bigint: nothing is enforced (fail open)');
	# the server's own lines, not the statements the test ran
	my $line_re =
	  qr/^.*(?:LOG|WARNING|ERROR):  (?!statement: ).*(?:idle_keep|conngov\.budgets).*$/m;
	ok(cg_wait_log($node, $line_re, $offset, $TO),
		'7: the log says why the budgets are not loaded');
	my $n0 = () = log_since($node, $offset) =~ /$line_re/g;
	wait_server_seconds($node, 3);
	my $n1 = () = log_since($node, $offset) =~ /$line_re/g;
	ok($n0 >= 1 && $n1 == $n0,
		'7: logged once, not once per retry')
	  or diag("matching lines: $n0 then $n1 after 3 s:\n"
		  . join("\n", log_since($node, $offset) =~ /$line_re/g));
	ok($wpid =~ /^\d+$/ && cg_worker_pid($node) eq $wpid,
		'7: the same worker, not restarted');
	unlike(log_since($node, $offset), $crash_re, '7: no crash');

	$node->safe_psql('postgres',
		'ALTER TABLE conngov.budgets ALTER COLUMN idle_keep TYPE integer');
	su($node, 'postgres', 'SELECT conngov.reload()');
	ok(poll_until(sub { refused_by($node, 'zero7-1', 'h7') }),
		'7: idle_keep back to integer: budget h7 refuses again');
	is(cg_worker_pid($node), $wpid, '7: still the same worker');
}

###########################################################################
# 1: operators and functions a non-superuser plants on the search_path
# never run as a superuser
{
	my $shadows = <<'EOS';
CREATE FUNCTION SCH.cg_escalate() RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
	ALTER ROLE regress_hostile SUPERUSER;
EXCEPTION WHEN OTHERS THEN NULL;
END $f$;
CREATE FUNCTION SCH.h_mul_ni(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN $1 OPERATOR(pg_catalog.*) $2::numeric; END $f$;
CREATE OPERATOR SCH.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = SCH.h_mul_ni);
CREATE FUNCTION SCH.h_mul_in(integer, numeric) RETURNS numeric LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN $1::numeric OPERATOR(pg_catalog.*) $2; END $f$;
CREATE OPERATOR SCH.* (LEFTARG = integer, RIGHTARG = numeric, FUNCTION = SCH.h_mul_in);
CREATE FUNCTION SCH.h_mul_vi(interval, integer) RETURNS interval LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN $1 OPERATOR(pg_catalog.*) $2::float8; END $f$;
CREATE OPERATOR SCH.* (LEFTARG = interval, RIGHTARG = integer, FUNCTION = SCH.h_mul_vi);
CREATE FUNCTION SCH.h_div_ni(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN $1 OPERATOR(pg_catalog./) $2::numeric; END $f$;
CREATE OPERATOR SCH./ (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = SCH.h_div_ni);
CREATE FUNCTION SCH.h_lt_nb(numeric, bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN $1 OPERATOR(pg_catalog.<) $2::numeric; END $f$;
CREATE OPERATOR SCH.< (LEFTARG = numeric, RIGHTARG = bigint, FUNCTION = SCH.h_lt_nb);
CREATE FUNCTION SCH.h_eq_tt(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
CREATE OPERATOR SCH.= (LEFTARG = text, RIGHTARG = text, FUNCTION = SCH.h_eq_tt);
CREATE FUNCTION SCH.h_lt_tt(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN $1 OPERATOR(pg_catalog.<) $2; END $f$;
CREATE OPERATOR SCH.< (LEFTARG = text, RIGHTARG = text, FUNCTION = SCH.h_lt_tt);
CREATE FUNCTION SCH.h_eq_tn(text, name) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2::text; END $f$;
CREATE OPERATOR SCH.= (LEFTARG = text, RIGHTARG = name, FUNCTION = SCH.h_eq_tn);
CREATE FUNCTION SCH.h_cat_tt(text, text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN $1 OPERATOR(pg_catalog.||) $2; END $f$;
CREATE OPERATOR SCH.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = SCH.h_cat_tt);
CREATE FUNCTION SCH.h_cat_tn(text, name) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN $1 OPERATOR(pg_catalog.||) $2::text; END $f$;
CREATE OPERATOR SCH.|| (LEFTARG = text, RIGHTARG = name, FUNCTION = SCH.h_cat_tn);
CREATE FUNCTION SCH.lower(name) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN pg_catalog.lower($1::text); END $f$;
CREATE FUNCTION SCH.lower(text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN pg_catalog.lower($1); END $f$;
CREATE FUNCTION SCH.upper(name) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN pg_catalog.upper($1::text); END $f$;
CREATE FUNCTION SCH.extract(text, interval) RETURNS numeric LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN pg_catalog.extract($1, $2); END $f$;
CREATE FUNCTION SCH.date_part(text, interval) RETURNS double precision LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN pg_catalog.date_part($1, $2); END $f$;
CREATE FUNCTION SCH.int8(numeric) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN pg_catalog.int8($1); END $f$;
CREATE FUNCTION SCH.now() RETURNS timestamptz LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN pg_catalog.now(); END $f$;
CREATE FUNCTION SCH.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM SCH.cg_escalate(); RETURN pg_catalog.current_setting($1, $2); END $f$;
EOS
	my $user_schema = qq{"$su_name"};
	hostile_ok($node, 'postgres',
		qq{CREATE SCHEMA $user_schema AUTHORIZATION regress_hostile;},
		qq{1: the hostile role creates schema $user_schema (the superuser's "\$user")});
	for my $sch ('public', $user_schema)
	{
		(my $sql = $shadows) =~ s/SCH/$sch/g;
		hostile_ok($node, 'postgres', $sql,
			"1: the hostile role plants operators and functions in $sch");
	}

	# a reload the hostile role triggers itself: a conngov.budgets dropped
	# in a database of its own
	$node->safe_psql('postgres',
		'CREATE DATABASE regress_hostile_db OWNER regress_hostile');
	hostile_ok($node, 'regress_hostile_db',
		'CREATE SCHEMA conngov; CREATE TABLE conngov.budgets (name text); DROP TABLE conngov.budgets;',
		'1: the hostile role drops a conngov.budgets of its own elsewhere');

	# reloads and every function, as the superuser
	cg_set_budgets(
		$node, $cols,
		"('h1', 'zero1-%', NULL, 0, 'enforce', '1 hour', '1 hour', 0)",
		"('h1b', 'other1-%', NULL, 10, 'monitor', NULL, '2 hours', 1)");
	$node->safe_psql('postgres',
		"UPDATE conngov.budgets SET idle_timeout = '2 hours' WHERE name = 'h1b'");
	for my $f ('conngov.reload()', 'conngov.sweep()', 'conngov.sweep(false)',
		'conngov.usage()', 'conngov.health()', 'conngov.sessions()',
		'conngov.stats()', 'conngov.events()', 'conngov.headroom()')
	{
		my ($rc, $out, $err) = su($node, 'postgres', "SELECT * FROM $f");
		is($rc, 0, "1: SELECT * FROM $f runs") or diag($err);
	}
	# the shadows are still there, so the worker met them on every load
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE n.nspname IN ('public', '$su_name')"
		),
		20,
		'1: the 20 shadow operators are in place');
	is( $node->safe_psql(
			'postgres',
			"SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_hostile'"),
		'f',
		'1: regress_hostile is still not a superuser');
	my ($rc, $err) = login($node, 'zero1-1');
	isnt($rc, 0, '1: budgets still enforce: a login over h1 is refused');
	like($err, qr/FATAL:  connection budget "h1" exhausted/,
		'1: with the budget refusal');

	# clean up after the hostile role (and undo an escalation)
	$node->safe_psql(
		'postgres', q{
ALTER ROLE regress_hostile NOSUPERUSER;
DROP OWNED BY regress_hostile CASCADE;
GRANT CREATE ON DATABASE postgres TO regress_hostile;
GRANT CREATE ON SCHEMA public TO regress_hostile;
});
}

###########################################################################
# 4 (in part): CREATE DATABASE ... TEMPLATE conngov.database
{
	# a query first: it restarts the session's timer, which quit waits on
	$mon->query_safe('SELECT 1');
	$mon->quit;
	my ($rc, $out, $err) = su($node, 'template1',
		'CREATE DATABASE regress_copy TEMPLATE postgres');
	is($rc, 0, '4: CREATE DATABASE regress_copy TEMPLATE postgres succeeds')
	  or diag($err);
}

$node->stop;

###########################################################################
# 2a, 3, 2b: a node where the extension is not created yet
my $bare = preloaded_node('bare', 'postgres');
hostile_role($bare);
$bare->safe_psql('postgres', 'CREATE ROLE regress_app LOGIN');
hostile_ok($bare, 'postgres', 'CREATE SCHEMA conngov',
	'2a: the hostile role creates schema conngov before CREATE EXTENSION');

my %shapes = (
	'name integer' => [
		q{name integer PRIMARY KEY, application_pattern text NOT NULL DEFAULT '%', role_name name, database_name name, max_connections integer NOT NULL, mode text NOT NULL DEFAULT 'enforce', idle_timeout interval, idle_in_transaction_timeout interval, idle_keep integer NOT NULL DEFAULT 0, priority integer NOT NULL DEFAULT 100, comment text},
		q{(name, application_pattern, max_connections) VALUES (1, 'lookalike%', 0)}
	],
	'max_connections text' => [
		q{name text PRIMARY KEY, application_pattern text NOT NULL DEFAULT '%', role_name name, database_name name, max_connections text NOT NULL, mode text NOT NULL DEFAULT 'enforce', idle_timeout interval, idle_in_transaction_timeout interval, idle_keep integer NOT NULL DEFAULT 0, priority integer NOT NULL DEFAULT 100, comment text},
		q{(name, application_pattern, max_connections) VALUES ('la', 'lookalike%', '0')}
	],
	'idle_timeout text' => [
		q{name text PRIMARY KEY, application_pattern text NOT NULL DEFAULT '%', role_name name, database_name name, max_connections integer NOT NULL, mode text NOT NULL DEFAULT 'enforce', idle_timeout text, idle_in_transaction_timeout interval, idle_keep integer NOT NULL DEFAULT 0, priority integer NOT NULL DEFAULT 100, comment text},
		q{(name, application_pattern, max_connections, idle_timeout) VALUES ('la', 'lookalike%', 0, '1s')}
	],
	'two columns' => [
		q{name text PRIMARY KEY, application_pattern text},
		q{(name, application_pattern) VALUES ('la', 'lookalike%')}
	],
	'columns reordered' => [
		q{max_connections integer NOT NULL, priority integer NOT NULL DEFAULT 100, idle_keep integer NOT NULL DEFAULT 0, mode text NOT NULL DEFAULT 'enforce', idle_in_transaction_timeout interval, idle_timeout interval, database_name name, role_name name, application_pattern text NOT NULL DEFAULT '%', name text PRIMARY KEY, comment text},
		q{(name, application_pattern, max_connections) VALUES ('la', 'lookalike%', 0)}
	],
	'the exact shape' => [
		q{name text PRIMARY KEY, application_pattern text NOT NULL DEFAULT '%', role_name name, database_name name, max_connections integer NOT NULL, mode text NOT NULL DEFAULT 'enforce', idle_timeout interval, idle_in_transaction_timeout interval, idle_keep integer NOT NULL DEFAULT 0, priority integer NOT NULL DEFAULT 100, comment text},
		q{(name, application_pattern, max_connections) VALUES ('la', 'lookalike%', 0)}
	]);

# lookalike(node, label, ddl, insert): the hostile role swaps in a
# look-alike conngov.budgets (the DROP alone asks today's worker for a
# reload); the server restarts so that any worker loads it.  Nothing of it
# may be enforced, nothing may crash, and the log says why it is ignored.
sub lookalike
{
	my ($node, $label, $ddl, $ins) = @_;
	my $offset = -s $node->logfile;
	hostile_ok(
		$node, 'postgres',
		"BEGIN; DROP TABLE IF EXISTS conngov.budgets; CREATE TABLE conngov.budgets ($ddl); INSERT INTO conngov.budgets $ins; COMMIT;",
		"$label: the hostile role swaps in a look-alike conngov.budgets");
	$node->restart;
	my $pm = postmaster_pid($node);
	ok( cg_wait_log(
			$node,
			qr/conngov: .*not created by CREATE EXTENSION conngov|$crash_re/,
			$offset, $TO)
		  && log_since($node, $offset) =~
		  /conngov: .*not created by CREATE EXTENSION conngov/,
		"$label: the log says the look-alike is ignored");
	my ($rc, $out, $err) = cg_login($node, sql => 'SELECT 1');
	is("$rc|$out", '0|1', "$label: the superuser connects");
	ok(admitted($node, 'lookalike-1'),
		"$label: the look-alike row of max_connections 0 is not enforced");
	is(postmaster_pid($node), $pm, "$label: the same postmaster");
	unlike(log_since($node, $offset), $crash_re,
		"$label: no server process crashed");
	return;
}

for my $shape (sort keys %shapes)
{
	lookalike($bare, "2a ($shape)", @{ $shapes{$shape} });
}
hostile_ok($bare, 'postgres', 'DROP TABLE conngov.budgets',
	'2a: the hostile role drops its look-alike, keeps its schema');

###########################################################################
# 3: schema squatting
{
	my ($rc, $out, $err) = su($bare, 'postgres', 'CREATE EXTENSION conngov');
	isnt($rc, 0, '3: CREATE EXTENSION fails in a schema the hostile role owns');
	like($err, qr/schema "conngov" .*owned by .*"regress_hostile"/,
		'3: naming the schema and its owner');
	if ($rc == 0)
	{
		# today: the extension went into the squatted schema; its owner can
		# drop every budget
		$bare->safe_psql('postgres',
			"INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('sq', 'squat%', 0)"
		);
		$bare->safe_psql('postgres', 'SELECT conngov.reload()');
		hostile($bare, 'postgres', 'DROP SCHEMA conngov CASCADE');
		is( $bare->safe_psql(
				'postgres',
				"SELECT count(*) FROM pg_extension WHERE extname = 'conngov'"),
			1,
			'3: the squatter cannot drop the extension with its schema');
	}
	else
	{
		pass('3: nothing was created for the squatter to drop');
	}
	su($bare, 'postgres', 'DROP EXTENSION IF EXISTS conngov');
	hostile_ok($bare, 'postgres', 'DROP SCHEMA IF EXISTS conngov CASCADE',
		'3: the hostile role drops its schema');
	($rc, $out, $err) = su($bare, 'postgres', 'CREATE EXTENSION conngov');
	is($rc, 0, '3: then CREATE EXTENSION succeeds') or diag($err);
	$bare->safe_psql('postgres',
		"INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('sq', 'squat%', 0)"
	);
	$bare->safe_psql('postgres', 'SELECT conngov.reload()');
	ok(refused_by($bare, 'squat-1', 'sq'), '3: budget sq refuses');
	($rc, $out, $err) =
	  hostile($bare, 'postgres', 'DROP SCHEMA conngov CASCADE');
	isnt($rc, 0, '3: the hostile role cannot drop schema conngov now');
	is( $bare->safe_psql(
			'postgres',
			"SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'conngov') || '|' || (SELECT count(*) FROM conngov.budgets)"
		),
		'1|1',
		'3: the extension and its budget are still there');
	ok(refused_by($bare, 'squat-1', 'sq'), '3: budget sq still refuses');
}

###########################################################################
# 2b: after DROP EXTENSION, a look-alike of the exact shape is ignored
{
	# the DBA removes conngov and the schema CREATE EXTENSION made
	$bare->safe_psql('postgres',
		'DROP EXTENSION conngov; DROP SCHEMA IF EXISTS conngov;');
	ok(poll_until(sub { admitted($bare, 'squat-1') }),
		'2b: DROP EXTENSION: budget sq is gone');
	hostile_ok($bare, 'postgres', 'CREATE SCHEMA conngov',
		'2b: the hostile role creates schema conngov');
	lookalike($bare, '2b (the exact shape)', @{ $shapes{'the exact shape'} });
	ok(admitted($bare, 'squat-1'), '2b: budget sq did not come back');
}
$bare->stop;

###########################################################################
# 5: budgets do not outlive their database
{
	my $sep = preloaded_node('sepdb', 'regress_cg');
	$sep->safe_psql('postgres',
		'CREATE DATABASE regress_cg; CREATE ROLE regress_app LOGIN;');
	$sep->safe_psql('regress_cg', 'CREATE EXTENSION conngov');
	$sep->safe_psql('regress_cg',
		"INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('gone', 'gone%', 0)"
	);
	su($sep, 'regress_cg', 'SELECT conngov.reload()');
	ok(poll_until(sub { refused_by($sep, 'gone-1', 'gone') }),
		'5: budget gone refuses');

	my ($rc, $out, $err) = su($sep, 'postgres',
		'DROP DATABASE regress_cg WITH (FORCE)');
	is($rc, 0, '5: DROP DATABASE regress_cg WITH (FORCE) succeeds')
	  or diag($err);
	ok(poll_until(sub { admitted($sep, 'gone-1') }),
		'5: the budget did not outlive its database: the login is admitted');

	my $wpid = worker_pid_wait($sep);
	like($wpid, qr/^\d+$/, '5: a conngov worker runs');
	my $offset = -s $sep->logfile;
	wait_server_seconds($sep, 3);
	my $now = cg_worker_pid($sep);
	ok($wpid =~ /^\d+$/ && $now eq $wpid,
		'5: the same worker 3 s later (no restart loop)')
	  or diag("worker pid '$wpid', 3 s later '$now'");
	my $n = () = log_since($sep, $offset) =~
	  /^.*(?:LOG|WARNING|ERROR|FATAL):  (?!statement: ).*(?:regress_cg|"conngov worker".*exited with exit code).*$/mg;
	ok($n <= 2, '5: no error repeated every second')
	  or diag("$n lines in 3 s:\n" . log_since($sep, $offset));
	ok(admitted($sep, 'gone-1'), '5: still admitted');
	unlike(slurp_file($sep->logfile), $crash_re, '5: no crash');
	$sep->stop;
}

done_testing();
