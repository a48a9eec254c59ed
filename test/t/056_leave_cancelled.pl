
# Copyright (c) 2026, conngov developers

# Review of 1.2: a whole-database operation on conngov.database that is
# cancelled while it waits for the loader to leave gives the loader back.
# guard.c asked the loader to leave (loader.leaving + 1) before its
# PG_TRY, so a cancel during that wait never called cg_loader_back(): the
# count stayed one too high for good, and after every later operation the
# loader kept away (left after each load, COMMITs did not wait for their
# publish) for 5 s instead of coming back when the operation was over.
#
# The loader is stopped (SIGSTOP) so that the operation waits for it; the
# test then cancels it, lets the loader go on, runs one more operation
# that succeeds, and checks that right after it a load leaves the loader
# connected.  Waits poll pg_stat_activity, bounded by timeout_default.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('leave');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'conngov'
conngov.database = 'regress_cg'
log_line_prefix = '%m [%p] %e %q%a '
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE regress_cg');
$node->safe_psql('regress_cg', 'CREATE EXTENSION conngov');
$node->safe_psql('regress_cg', 'SELECT conngov.reload()');

my $loader_sql =
  "SELECT pid FROM pg_stat_activity WHERE backend_type = 'conngov loader' AND datname = 'regress_cg'";
ok(defined cg_poll_for($node, "SELECT count(*) FROM ($loader_sql) l", '1'),
	'the loader is connected to regress_cg');
my $loader = $node->safe_psql('postgres', $loader_sql);

# the copy waits for the stopped loader to leave; cancel it then
kill 'STOP', $loader;
my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_until(qr/copying/,
	"\\echo copying\nCREATE DATABASE regress_c1 TEMPLATE regress_cg;\n");
my $copy_sql =
  "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE regress_c1%' AND wait_event_type = 'Extension'";
ok(defined cg_poll_for($node, "SELECT count(*) FROM ($copy_sql) c", '1'),
	'the copy waits for the loader to leave');
$node->safe_psql('postgres', "SELECT pg_cancel_backend(pid) FROM ($copy_sql) c");
ok( defined cg_poll_for(
		$node,
		"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE regress_c1%' AND state = 'active'",
		'0'),
	'the copy was cancelled');
kill 'CONT', $loader;
$s->quit;
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_database WHERE datname = 'regress_c1'"),
	'0', 'no copy was made');

# one more operation, which succeeds; then the loader may stay connected
$node->safe_psql('postgres', 'CREATE DATABASE regress_c2 TEMPLATE regress_cg');
$node->safe_psql('regress_cg', 'SELECT conngov.reload()');
ok(defined cg_poll_for($node, "SELECT count(*) FROM ($loader_sql) l", '1'),
	'after the operation a load leaves the loader connected to regress_cg');

$node->stop;
done_testing();
