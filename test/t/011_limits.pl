
# Copyright (c) 2026, conngov developers

# Limits and hostile conditions: more budgets than conngov.max_budgets, the
# extension dropped while sessions are connected and logins arrive, odd
# application names at login, and a budget of 0 matching everything that
# never locks a superuser out.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node('limits', conf => "conngov.max_budgets = 2\n");

# shared memory full: the first two in matching order load, a WARNING says
# how many are not enforced (once per load, not a list of every name)
my $offset = -s $node->logfile;
cg_budgets($node, "('a_first', 'a%', NULL, 1)", "('b_second', 'b%', NULL, 1)",
	"('c_third', 'c%', NULL, 1)");
ok( $node->wait_for_log(
		qr/WARNING:  conngov loaded 2 of 3 budgets: conngov.max_budgets is 2\n.*DETAIL:  The last 1 budgets in matching order \(priority, name\) are not enforced\./,
		$offset),
	'WARNING says how many budgets did not fit');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(budget, ',' ORDER BY budget) FROM conngov.usage()"),
	'(unbudgeted),a_first,b_second',
	'the two first budgets are loaded');

# the INSERT that goes past max_budgets warns at once, health() is
# degraded and says how many rows are not enforced, and a reload that
# changes nothing does not log the WARNING again
my ($ret, $out, $err) = $node->psql('postgres',
	"INSERT INTO conngov.budgets (name, application_pattern, max_connections)"
	  . " VALUES ('d_fourth', 'd%', 1)");
like(
	$err,
	qr/WARNING:  conngov.budgets has 4 rows, more than conngov.max_budgets \(2\): 2 of them will not be enforced/,
	'INSERT past max_budgets warns');
$node->safe_psql('postgres', 'SELECT conngov.reload()');
is( $node->safe_psql(
		'postgres', q{
	SELECT c->>'status', c->>'not_enforced', c->>'max_budgets', h->>'status'
	  FROM conngov.health() AS h, jsonb_array_elements(h->'checks') AS c
	 WHERE c->>'name' = 'budgets'}),
	'warning|2|2|degraded',
	'health() is degraded and counts the rows not enforced');
my $warnings = () =
  slurp_file($node->logfile) =~ /conngov loaded 2 of \d budgets/g;
$node->safe_psql('postgres', 'SELECT conngov.reload()');
$node->safe_psql('postgres', 'SELECT 1');
is( scalar(() = slurp_file($node->logfile) =~ /conngov loaded 2 of \d budgets/g),
	$warnings, 'an unchanged reload does not log the WARNING again');

# odd application names at login: quotes, backslashes, %, _, 63+ bytes,
# non-ASCII (PostgreSQL 15 turns each non-ASCII byte into "?")
cg_budgets(
	$node,
	"('quotes', 'it''s \"q\"', NULL, 5)",
	"('long', '" . ('x' x 63) . "', NULL, 5)");
$node->safe_psql('postgres',
	'GRANT EXECUTE ON FUNCTION conngov.sessions() TO regress_app');
sub login_budget
{
	my ($app) = @_;
	local $ENV{PGAPPNAME} = $app;
	return $node->safe_psql('postgres',
		'SELECT budget FROM conngov.sessions() WHERE pid = pg_backend_pid()',
		extra_params => [ '-U', 'regress_app' ]);
}
is(login_budget(q{it's "q"}), 'quotes', 'quotes in application_name');
is(login_budget('x' x 63), 'long', '63-byte application_name');
is(login_budget('x' x 80), 'long',
	'longer application_name is cut to 63 bytes, as PostgreSQL does');
is(login_budget('x' x 62), '(unbudgeted)', '62 bytes do not match');
is(login_budget('caf' . "\xc3\xa9"), '(unbudgeted)', 'non-ASCII name');
is( $node->safe_psql(
		'postgres',
		"SELECT conngov.match('caf??', 'regress_app', 'postgres')"),
	'(unbudgeted)', 'match() agrees');

# a budget of 0 matching everything: superusers still log in, plain roles
# do not
cg_budgets($node, "('nobody', '%', NULL, 0)");
is($node->safe_psql('postgres', 'SELECT 1'), '1',
	'a superuser logs in over a budget of 0 matching %');
($ret, $out, $err) = $node->psql('postgres', 'SELECT 1',
	extra_params => [ '-U', 'regress_app' ]);
like($err, qr/connection budget "nobody" exhausted/,
	'a plain role is refused');

# conngov.log_refusals = off: the client still gets the refusal, the server
# log does not, and the event is still recorded
$node->safe_psql('postgres',
	'ALTER SYSTEM SET conngov.log_refusals = off; SELECT pg_reload_conf();');
$node->poll_query_until('postgres',
	"SELECT current_setting('conngov.log_refusals') = 'off'");
$offset = -s $node->logfile;
($ret, $out, $err) = $node->psql('postgres', 'SELECT 1',
	extra_params => [ '-U', 'regress_app' ]);
like($err, qr/connection budget "nobody" exhausted/,
	'log_refusals off: the client is still refused');
$node->safe_psql('postgres', 'SELECT 1');
unlike(slurp_file($node->logfile, $offset), qr/connection budget "nobody" exhausted/,
	'log_refusals off: no refusal line in the server log');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM conngov.events() WHERE kind = 'refused' AND budget = 'nobody'"),
	'2',
	'both refusals are events');
$node->safe_psql('postgres',
	'ALTER SYSTEM RESET conngov.log_refusals; SELECT pg_reload_conf();');

$node->safe_psql('postgres', 'DELETE FROM conngov.budgets');
$node->safe_psql('postgres', 'SELECT conngov.reload()');

# the extension dropped while sessions are connected and logins arrive;
# the 3 held sessions wait at a gate until the test lets them go
cg_budgets($node, "('drop_me', 'drop%', NULL, 3)");
my $gate = cg_gate($node);
my $held = cg_start_clients(
	$node,
	clients => 3,
	app => 'drop-app',
	user => 'regress_app',
	gate => $gate);
$node->poll_query_until('postgres',
	"SELECT total = 3 FROM conngov.usage() WHERE budget = 'drop_me'")
  or diag('the 3 held sessions did not connect');
my $storm = cg_start_clients(
	$node,
	clients => 10,
	app => 'drop-app',
	user => 'regress_app',
	sql => 'SELECT pg_sleep(1)');
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'DROP EXTENSION conngov');
ok( $node->wait_for_log(
		qr/conngov: table conngov.budgets does not exist in database "postgres"; nothing is enforced/,
		$offset),
	'LOG line: enforcement stopped');
cg_finish_clients($storm);
my $r = cg_storm(
	$node,
	clients => 5,
	app => 'drop-app',
	user => 'regress_app',
	sql => 'SELECT 1');
is($r->{admitted}, 5, 'after DROP EXTENSION nothing is refused');
# the storms' backends may outlive their clients a little: only the 3 held
# sessions of drop-app remain before the budget is re-created
$node->poll_query_until('postgres',
	"SELECT count(*) = 3 FROM pg_stat_activity WHERE application_name = 'drop-app'")
  or diag('storm backends still there');
$node->safe_psql('postgres', 'CREATE EXTENSION conngov');
$node->safe_psql('postgres',
	"INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('drop_me', 'drop%', 3)"
);
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM conngov.usage() WHERE budget = 'drop_me'");
is(cg_total($node, 'drop_me'), '3',
	're-created: the held sessions are charged again');
$r = cg_storm(
	$node,
	clients => 2,
	app => 'drop-app',
	user => 'regress_app',
	sql => 'SELECT 1');
is($r->{refused}, 2, 're-created: enforcement is back');
cg_gate_release($gate);
is(cg_finish_clients($held)->{admitted}, 3,
	'the 3 held sessions stayed until released');
cg_gate_quit($gate);
$node->poll_query_until('postgres',
	"SELECT total = 0 FROM conngov.usage() WHERE budget = 'drop_me'");
is(cg_total($node, 'drop_me'), '0', 'no stuck charge');

# a locked budgets table never stalls the worker: while a transaction holds
# it, reload() gives up after 10 s with a clear error, idle sessions are
# still ended, and the load happens as soon as the lock is gone
$node->safe_psql('postgres',
	"INSERT INTO conngov.budgets (name, application_pattern, max_connections, idle_timeout) VALUES ('locked', 'locked%', 5, '1s')"
);
$node->safe_psql('postgres', 'SELECT conngov.reload()');
my $locker = cg_session($node, 'locker');
$locker->{psql}->query_safe(
	'BEGIN; LOCK TABLE conngov.budgets IN ACCESS EXCLUSIVE MODE;');
my $idler = cg_session($node, 'locked-idle', 'regress_app');
($ret, $out, $err) = $node->psql('postgres', 'SELECT conngov.reload()');
like($err,
	qr/ERROR:  conngov loader did not reload the budgets within 10 seconds/,
	'reload() gives up while the table is locked');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $idler->{pid}"),
	'the worker still ends idle sessions meanwhile');
$locker->{psql}->query_safe('COMMIT');
is($node->safe_psql('postgres', 'SELECT conngov.reload()'),
	'2', 'loaded once the lock is gone');
cg_quit($locker);

unlike(slurp_file($node->logfile), qr/PANIC|server process .* was terminated/,
	'no crash');

$node->stop;
done_testing();
