
# Copyright (c) 2026, conngov developers

# node-postgres (pg from npm): a refused login rejects with code 53300 and
# the DETAIL; an idle ending reaches the pool's 'error' handler with the
# self-describing message; the pool recovers by itself.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use lib 'test/clients';
use ConngovTest;
use ClientsTest;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'node or the pg package missing (run-tests.sh clients installs it)'
  unless cl_node_has('pg');

my $node = cg_node('nodepg', max_connections => 40,
	conf => "listen_addresses = '127.0.0.1'\n");
my $mon = cg_psql($node, 'postgres');
cg_set_budgets($node, 'name, application_pattern, role_name, max_connections, idle_timeout',
	"('node', 'node-api%', 'regress_app', 2, '2s')", { monitor => $mon });
sub sql { return $mon->query_safe($_[0]); }

local $ENV{NODE_PATH} = cl_node_modules();
local $ENV{CG_WAIT_MS} = 1000 * $PostgreSQL::Test::Utils::timeout_default;
my $c = cl_start('node', 'test/clients/node_probe.js', '127.0.0.1', $node->port,
	'regress_app', 'node-api-1');

my $r = cl_json($c, 'connect');
is($r->{admitted}, 2, 'node-postgres: 2 of 3 concurrent checkouts admitted');
is(scalar @{ $r->{refused} // [] }, 1, 'node-postgres: 1 refused');
my $e = $r->{refused}[0] // {};
is($e->{code}, '53300', 'node-postgres: the refusal has code 53300');
is($e->{message}, 'connection budget "node" exhausted', 'node-postgres: and the message');
like($e->{detail} // '', qr/^Budget "node" allows 2 connections \(application_name LIKE 'node-api%' AND role_name = 'regress_app'\); 2 are in use\.$/,
	'node-postgres: and the DETAIL');
is($e->{hint} // '', 'Close idle connections of this application, or raise conngov.budgets.max_connections for "node".',
	'node-postgres: and the HINT');
is(sql("SELECT total FROM conngov.usage() WHERE budget = 'node'"), 2,
	'node-postgres: 2 sessions charged');

cl_send($c, "go\n");
$r = cl_json($c, 'ended');
my @errors = @{ $r->{errors} // [] };
is(scalar @errors, 2, "node-postgres: the pool's 'error' handler got both idle endings");
is(join('|', map { "$_->{code} $_->{message}" } @errors),
	join('|', ('57P01 terminating connection due to idle timeout of connection budget "node"') x 2),
	'node-postgres: each with code 57P01 and the self-describing message');
$r = cl_json($c, 'recovered');
is($r->{one}, 1, 'node-postgres: the pool recovers with a new connection');
is(cl_finish($c), 0, 'node-postgres: the application did not crash') or diag($c->{err});
is(sql("SELECT admitted || '|' || refused || '|' || ended_idle FROM conngov.stats() WHERE budget = 'node'"),
	'3|1|2', 'node-postgres: stats: 3 admitted, 1 refused, 2 ended');

$mon->quit;
$node->stop;
done_testing();
