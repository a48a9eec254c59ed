
# Copyright (c) 2026, conngov developers

# From 1.0 to the latest: a cluster with 1.0's SQL (CREATE EXTENSION
# conngov VERSION '1.0') and budgets, restarted with the new library,
# enforces the 1.0 table as before; ALTER EXTENSION conngov UPDATE (through
# 1.1) keeps every row and adds the new columns, which then apply (a floor,
# a wait); pg_dump and pg_restore keep the new columns.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

# A started cluster with conngov preloaded and no extension created.
sub preloaded
{
	my ($name) = @_;
	my $n = PostgreSQL::Test::Cluster->new($name);
	$n->init;
	$n->append_conf(
		'postgresql.conf', q{
shared_preload_libraries = 'conngov'
conngov.database = 'postgres'
max_connections = 40
log_line_prefix = '%m [%p] %e %q%a '
});
	$n->start;
	return $n;
}

my $node = preloaded('up11');
$node->safe_psql('postgres',
	"CREATE EXTENSION conngov VERSION '1.0'; CREATE ROLE regress_app LOGIN;");
is( $node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'conngov'"),
	'1.0', 'installed at 1.0');
cg_set_budgets(
	$node,
	'name, application_pattern, role_name, max_connections, mode, idle_timeout, idle_keep, priority, comment',
	"('small', 'small%', 'regress_app', 1, 'enforce', NULL, 0, 100, 'one only')",
	"('watch', 'watch%', NULL, 5, 'monitor', '10 min', 2, 50, NULL)");
my $rows_sql = 'SELECT name, application_pattern, role_name, max_connections, mode, idle_timeout, idle_in_transaction_timeout, idle_keep, priority, comment FROM conngov.budgets ORDER BY name';
my $rows = $node->safe_psql('postgres', $rows_sql);

# the 1.1 library (the one installed) after a restart, on the 1.0 table
$node->restart;
cg_poll_for($node, 'SELECT conngov.reload()', '2');
my $m = cg_psql($node, 'postgres');
my $h = cg_hold($node, user => 'regress_app', app => 'small-1', monitor => $m);
ok($h->{ok}, '1.0 table, 1.1 library: the one place of "small" is taken');
my ($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'small-2');
like($err,
	qr/FATAL:  connection budget "small" exhausted\nDETAIL:  Budget "small" allows 1 connection \(application_name LIKE 'small%' AND role_name = 'regress_app'\); 1 is in use\./,
	'1.0 table, 1.1 library: the second is refused as in 1.0');
is( $m->query_safe(
		"SELECT string_agg(budget || ':' || total, ',' ORDER BY budget) FROM conngov.usage()"),
	'(unbudgeted):1,small:1,watch:0',
	'usage() answers its 1.0 declaration');
is($m->query_safe('SELECT count(*) FROM conngov.stats()'), '2',
	'stats() answers its 1.0 declaration');
is($m->query_safe('SELECT normal_slots FROM conngov.headroom()'), '37',
	'headroom() answers its 1.0 declaration');
cg_release($node, $m, $h);

# the update
$node->safe_psql('postgres', 'ALTER EXTENSION conngov UPDATE');
is( $node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'conngov'"),
	'1.2', 'ALTER EXTENSION conngov UPDATE: at 1.2 (through 1.1)');
is($node->safe_psql('postgres', $rows_sql), $rows, 'every row kept');
is( $node->safe_psql('postgres',
		q{SELECT string_agg(name || ':' || min_connections || ':' || coalesce(login_wait::text, 'null') || ':' || coalesce(max_waiting::text, 'null'), ',' ORDER BY name) FROM conngov.budgets}
	),
	'small:0:null:null,watch:0:null:null',
	'the new columns, at their defaults');

# the new columns apply
$node->safe_psql('postgres',
	"UPDATE conngov.budgets SET min_connections = 1, login_wait = '30 s' WHERE name = 'small'"
);
cg_poll_for($node, 'SELECT conngov.reload()', '2');
is( $m->query_safe(
		"SELECT min_connections || ':' || guaranteed_unused || ':' || waiting FROM conngov.usage() WHERE budget = 'small'"
	),
	'1:1:0',
	'usage() has the 1.1 columns: a floor of 1, unused');
is($m->query_safe('SELECT guaranteed_unused FROM conngov.headroom()'),
	'1', 'headroom() has the 1.1 columns');
$h = cg_hold($node, user => 'regress_app', app => 'small-1', monitor => $m);
my ($wout, $werr) = ('', '');
my $w = IPC::Run::start(
	[
		'psql', '-X', '-A', '-t', '-d',
		cg_connstr($node, user => 'regress_app', app => 'small-2'),
		'-c', 'SELECT 1'
	],
	'<', \undef, '>', \$wout, '2>', \$werr);
cg_poll_for($node,
	"SELECT waiting FROM conngov.usage() WHERE budget = 'small'",
	'1', monitor => $m);
cg_release($node, $m, $h);
$w->finish;
is($w->result(0), 0, 'after the update, a login over the budget waits and gets in');

# pg_dump and pg_restore keep the new columns
my $dump = $node->basedir . '/conngov.dump';
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump of conngov.database');
my $copy = preloaded('copy');
$copy->command_ok(
	[ 'pg_restore', '-d', $copy->connstr('postgres'), $dump ],
	'pg_restore into a new cluster');
my $all = 'SELECT * FROM conngov.budgets ORDER BY name';
is($copy->safe_psql('postgres', $all), $node->safe_psql('postgres', $all),
	'the restored rows have the new columns and their values');
is( $copy->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'conngov'"),
	'1.2', 'the restored extension is 1.2');

$m->quit;
$copy->stop;
$node->stop;
done_testing();
