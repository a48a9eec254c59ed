
# Copyright (c) 2026, conngov developers

# postgres.js (the "postgres" package from npm): a refused login rejects
# with code 53300, DETAIL and HINT; after an idle ending, the next query
# on the pool runs on a new connection, or fails with a network error when
# postgres.js has not noticed the close yet (both were seen); inside a
# transaction the ending reaches the application only as
# CONNECTION_CLOSED.  postgres.js never shows conngov's message.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use lib 'test/clients';
use ConngovTest;
use ClientsTest;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'node or the postgres package missing (run-tests.sh clients installs it)'
  unless cl_node_has('postgres');

my $node = cg_node('postgresjs', max_connections => 40,
	conf => "listen_addresses = '127.0.0.1'\n");
my $mon = cg_psql($node, 'postgres');
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, idle_timeout, idle_in_transaction_timeout',
	"('pj', 'pj-api%', 'regress_app', 2, '2s', '2s')",
	"('pjzero', 'pj-zero%', 'regress_app', 0, NULL, NULL)", { monitor => $mon });
sub sql { return $mon->query_safe($_[0]); }

local $ENV{NODE_PATH} = cl_node_modules();
sub probe
{
	my ($mode, $app) = @_;
	return cl_start('node', 'test/clients/postgresjs_probe.js', $mode, '127.0.0.1',
		$node->port, 'regress_app', $app);
}

# 1. a refusal
my $c = probe('refuse', 'pj-zero');
my $j = cl_json($c, 'refuse');
cl_finish($c);
is("$j->{admitted}|$j->{code}", '0|53300', 'postgres.js: the refusal has code 53300')
  or diag($c->{out} . $c->{err});
is($j->{message}, 'connection budget "pjzero" exhausted', 'postgres.js: and the message');
like($j->{detail} // '', qr/^Budget "pjzero" allows 0 connections/, 'postgres.js: and the DETAIL');
like($j->{hint} // '', qr/^Close idle connections of this application/, 'postgres.js: and the HINT');

# 2. an idle pooled connection ended: the next query runs on a new one,
# or fails as a network error (a race with postgres.js seeing the close)
$c = probe('pool', 'pj-api-1');
my $pid = cl_json($c, 'open')->{pid} // 0;
my %gone = cg_wait_gone($mon, undef, $pid);
is(scalar(keys %gone), 1, 'postgres.js pool: the idle connection is ended');
cl_send($c, "go\n");
$j = cl_json($c, 'ending');
is(cl_finish($c), 0, 'postgres.js pool: the program ended normally') or diag($c->{err});
ok( (!$j->{error} && ($j->{pid} // $pid) != $pid)
	  || ($j->{error}{code} // '') =~ /^(ECONNRESET|EPIPE|CONNECTION_CLOSED)$/,
	'postgres.js pool: the next query runs on a new connection, or fails as a network error')
  or diag($c->{out});
diag('postgres.js pool: the next query '
	  . ($j->{error} ? "failed with $j->{error}{code}" : 'ran on a new connection'));
unlike($j->{error}{message} // '', qr/idle|connection budget/,
	'postgres.js pool: without conngov\'s message');

# 3. a transaction ended while idle: CONNECTION_CLOSED, no message
$c = probe('xact', 'pj-api-2');
$pid = cl_json($c, 'open')->{pid} // 0;
%gone = cg_wait_gone($mon, undef, $pid);
is(scalar(keys %gone), 1, 'postgres.js transaction: the idle-in-transaction session is ended');
cl_send($c, "go\n");
$j = cl_json($c, 'ending');
is(cl_finish($c), 0, 'postgres.js transaction: the program ended normally') or diag($c->{err});
is($j->{error}{code} // '', 'CONNECTION_CLOSED',
	'postgres.js transaction: the transaction fails with CONNECTION_CLOSED') or diag($c->{out});
unlike($j->{error}{message} // '', qr/idle|connection budget/,
	'postgres.js transaction: without conngov\'s message');
is(sql("SELECT string_agg(kind || ':' || split_part(detail, ' for ', 1), ' | ' ORDER BY at) FROM conngov.events() WHERE budget = 'pj'"),
	'ended_idle:idle | ended_idle:idle in transaction', 'postgres.js: one ending of each kind');

$mon->quit;
$node->stop;
done_testing();
