
# Copyright (c) 2026, conngov developers

# psycopg2 (libpq) and SQLAlchemy: a refused login is an OperationalError
# whose text is the only thing to match (libpq gives no SQLSTATE for a
# failed login); with pool_pre_ping, an idle sweep costs the application
# no error at all.
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

# 1. the pool: two connections, checked in, idle
my $c = cl_start($python, 'test/clients/py_probe.py', 'pool', $dsn, 10);
is(cl_json($c, 'pooled')->{checked_in}, 2, 'sqlalchemy: 2 connections idle in the pool')
  or diag($c->{err});
is(sql("SELECT total FROM conngov.usage() WHERE budget = 'py'"), 2,
	'sqlalchemy: 2 sessions charged');
my @pids = split /\n/, sql("SELECT pid FROM conngov.sessions() WHERE budget = 'py' ORDER BY pid");

# 2. over the budget: psycopg2 sees the message, no SQLSTATE
my $r = cl_start($python, 'test/clients/py_probe.py', 'refuse', $dsn);
my $j = cl_json($r, 'refuse');
cl_finish($r);
ok(!$j->{admitted}, 'psycopg2: the third login is refused');
is($j->{pgcode}, undef, 'psycopg2: no SQLSTATE for a refused login (libpq)');
like($j->{message} // '', qr/FATAL:  connection budget "py" exhausted\nDETAIL:  Budget "py" allows 2 connections/,
	'psycopg2: the message text is what an application can match');

# 3. conngov ends the two idle connections; then 10 queries, no error
my %gone = cg_wait_gone($mon, undef, @pids);
is(scalar(keys %gone), 2, 'sqlalchemy: both idle connections ended');
cl_send($c, "go\n");
$j = cl_json($c, 'queries');
is("$j->{ran}|$j->{failed}", '10|0',
	'sqlalchemy with pool_pre_ping: 10 queries, 0 errors across the sweep');
is(cl_finish($c), 0, 'sqlalchemy: the program ended normally') or diag($c->{err});
is(sql("SELECT admitted || '|' || refused || '|' || ended_idle FROM conngov.stats() WHERE budget = 'py'"),
	'4|1|2', 'stats: 4 admitted (2, then the pool replaces both), 1 refused, 2 ended');

$mon->quit;
$node->stop;
done_testing();
