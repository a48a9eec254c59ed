
# Copyright (c) 2026, conngov developers

# psycopg2 (libpq) and SQLAlchemy: a refused login is an OperationalError
# whose text is the only thing to match (libpq gives no SQLSTATE for a
# failed login); with pool_pre_ping, an idle sweep costs the application
# no error at all; without it, one error per sweep (SQLAlchemy invalidates
# the whole pool at the first disconnect), not one per ended connection.
# psycopg2 does not show an idle ending's message: idle or idle in a
# transaction, its next query fails as a bare disconnect.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use lib 'test/clients';
use ConngovTest;
use ClientsTest;
use PostgreSQL::Test::Utils;
use Test::More;

# Debian's modules are for Debian's python3, whatever else is on PATH
my $python = '/usr/bin/python3';
plan skip_all => 'python3-psycopg2 or python3-sqlalchemy missing (run-tests.sh clients installs them)'
  unless -x $python && system($python, '-c', 'import psycopg2, sqlalchemy') == 0;

my $node = cg_node('py', max_connections => 40);
my $mon = cg_psql($node, 'postgres');
cg_set_budgets($node, 'name, application_pattern, role_name, max_connections, idle_timeout',
	"('py', 'py-api%', 'regress_app', 2, '2s')", { monitor => $mon });
sub sql { return $mon->query_safe($_[0]); }

my $dsn = 'host=' . $node->host . ' port=' . $node->port
  . ' dbname=postgres user=regress_app application_name=py-api-1';

# start_pool(label, args...): py_probe.py's SQLAlchemy pool, its two
# connections idle in it; returns the program and their pids
sub start_pool
{
	my ($label, @args) = @_;
	my $c = cl_start($python, 'test/clients/py_probe.py', 'pool', $dsn, 10, @args);
	is(cl_json($c, 'pooled')->{checked_in}, 2, "$label: 2 connections idle in the pool")
	  or diag($c->{err});
	is(sql("SELECT total FROM conngov.usage() WHERE budget = 'py'"), 2,
		"$label: 2 sessions charged");
	return ($c, split /\n/, sql("SELECT pid FROM conngov.sessions() WHERE budget = 'py' ORDER BY pid"));
}

# sweep_pool(label, c, pids...): conngov ends the pool's two idle
# connections; then the program runs its 10 queries and ends.  Returns
# what it printed about the queries.
sub sweep_pool
{
	my ($label, $c, @pids) = @_;
	my %gone = cg_wait_gone($mon, undef, @pids);
	is(scalar(keys %gone), 2, "$label: both idle connections ended");
	cl_send($c, "go\n");
	my $j = cl_json($c, 'queries');
	is(cl_finish($c), 0, "$label: the program ended normally") or diag($c->{err});
	return $j;
}

# 1. the pool: two connections, checked in, idle
my ($c, @pids) = start_pool('sqlalchemy');

# 2. over the budget: psycopg2 sees the message, no SQLSTATE
my $r = cl_start($python, 'test/clients/py_probe.py', 'refuse', $dsn);
my $j = cl_json($r, 'refuse');
cl_finish($r);
ok(!$j->{admitted}, 'psycopg2: the third login is refused');
is($j->{pgcode}, undef, 'psycopg2: no SQLSTATE for a refused login (libpq)');
like($j->{message} // '', qr/FATAL:  connection budget "py" exhausted\nDETAIL:  Budget "py" allows 2 connections/,
	'psycopg2: the message text is what an application can match');

# 3. conngov ends the two idle connections; then 10 queries, no error
$j = sweep_pool('sqlalchemy', $c, @pids);
is("$j->{ran}|$j->{failed}", '10|0',
	'sqlalchemy with pool_pre_ping: 10 queries, 0 errors across the sweep');
is(sql("SELECT admitted || '|' || refused || '|' || ended_idle FROM conngov.stats() WHERE budget = 'py'"),
	'4|1|2', 'stats: 4 admitted (2, then the pool replaces both), 1 refused, 2 ended');

# 4. without pool_pre_ping: the sweep ends both pooled connections, and the
# application sees one error, not two
cg_set_budgets($node, 'name, application_pattern, role_name, max_connections, idle_timeout, idle_in_transaction_timeout',
	"('py', 'py-api%', 'regress_app', 4, '2s', '2s')", { monitor => $mon });
cg_poll_is($node, "SELECT total FROM conngov.usage() WHERE budget = 'py'",
	'0', 'the first pool is gone', monitor => $mon);
($c, @pids) = start_pool('sqlalchemy without pre-ping', 'noping');
$j = sweep_pool('sqlalchemy without pre-ping', $c, @pids);
is("$j->{ran}|$j->{failed}", '10|1',
	'sqlalchemy without pre-ping: 10 queries, 1 error for the sweep (not one per ended connection)');
cg_poll_is($node, "SELECT total FROM conngov.usage() WHERE budget = 'py'",
	'0', 'the second pool is gone', monitor => $mon);

# 5. what psycopg2 sees of an idle ending, idle and idle in a transaction
$c = cl_start($python, 'test/clients/py_probe.py', 'ending', $dsn);
$j = cl_json($c, 'open');
my %gone = cg_wait_gone($mon, undef, $j->{idle} // 0, $j->{xact} // 0);
is(scalar(keys %gone), 2, 'psycopg2: the idle and the idle-in-transaction session ended');
cl_send($c, "go\n");
$j = cl_json($c, 'ending');
cl_finish($c);
for my $k ('idle', 'xact')
{
	my $e = $j->{$k} // {};
	is($e->{error} // '', 'OperationalError', "psycopg2 ($k): the next query raises OperationalError");
	like($e->{message} // '', qr/^server closed the connection unexpectedly/,
		"psycopg2 ($k): as a bare disconnect");
	unlike($e->{message} // '', qr/idle timeout|connection budget/,
		"psycopg2 ($k): without conngov's message");
}
is(sql("SELECT string_agg(kind || ':' || detail, ' | ' ORDER BY detail) FROM conngov.events() WHERE budget = 'py' AND kind = 'ended_idle' AND pid IN ("
	  . join(',', keys %gone) . ')') =~ s/[\d.]+ s/N s/gr,
	'ended_idle:idle for N s (limit N s) | ended_idle:idle in transaction for N s (limit N s)',
	'psycopg2: one ending of each kind');

$mon->quit;
$node->stop;
done_testing();
