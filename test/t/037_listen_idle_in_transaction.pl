
# Copyright (c) 2026, conngov developers

# LISTEN spares a session from idle_timeout only (1.2): a listener idle
# in a transaction holds its locks and snapshot like any other, and is
# ended at idle_in_transaction_timeout; a listener merely idle is spared.
# Endings are waited for, bounded; "spared" is asserted only after the
# deadline has passed and the worker has run a whole pass since.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node('listen', max_connections => 20);
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, idle_timeout, idle_in_transaction_timeout',
	"('lis', 'lis%', NULL, 10, '1s', '1s')");
my $m = cg_psql($node, 'postgres');

my $idle = cg_session($node, 'lis-idle', 'regress_app', sql => 'LISTEN jobs;');
my $xact = cg_session($node, 'lis-xact', 'regress_app',
	sql => 'LISTEN jobs; BEGIN; SELECT 1;');
my %gone = cg_wait_gone($m, cg_late() + 1, $xact->{pid});
ok(defined $gone{ $xact->{pid} },
	'a listener idle in a transaction is ended at idle_in_transaction_timeout');
like(
	cg_closed($xact) // 'query ran',
	qr/FATAL:  terminating connection due to idle in transaction timeout of connection budget "lis"/,
	'... and told why');
cg_sleep_until($idle->{idle_at} + 1.1);
cg_worker_pass($node, $m);
is(join(',', cg_alive($node, $idle->{pid})), $idle->{pid},
	'a listener merely idle is spared from idle_timeout');
cg_quit($idle);

$m->quit;
$node->stop;
done_testing();
