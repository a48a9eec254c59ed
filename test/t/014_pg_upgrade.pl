
# Copyright (c) 2026, conngov developers

# pg_upgrade of a cluster with conngov preloaded succeeds and keeps the budgets.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use Cwd ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $conf = q{
shared_preload_libraries = 'conngov'
conngov.database = 'postgres'
log_line_prefix = '%m [%p] %e %q%a '
};

my $old = cg_node('old');
cg_set_budgets(
	$old,
	'name, application_pattern, role_name, max_connections, mode, idle_timeout, idle_keep, priority, comment',
	"('up_zero', 'upzero%', NULL, 0, 'enforce', NULL, 0, 100, 'refuses everyone')",
	"('up_role', 'uprole%', 'regress_app', 5, 'monitor', '10 min', 2, 50, NULL)",
	"('up_any', '%', NULL, 90, 'enforce', '1 hour', 0, 1000, 'catch-all')");
my $rows_sql = 'SELECT * FROM conngov.budgets ORDER BY name';
my $rows = $old->safe_psql('postgres', $rows_sql);
my $version = $old->safe_psql('postgres',
	"SELECT extversion FROM pg_extension WHERE extname = 'conngov'");
my ($rc, $out, $err) = cg_login($old, user => 'regress_app', app => 'upzero-1');
like($err, qr/FATAL:  connection budget "up_zero" exhausted/,
	'before pg_upgrade: budget up_zero refuses');
$old->stop;

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf', $conf);

my $bindir = $old->config_data('--bindir');
my $cwd = Cwd::getcwd();
chdir PostgreSQL::Test::Utils::tempdir() or die "chdir: $!";
my @cmd = (
	'pg_upgrade', '--no-sync',
	'-d', $old->data_dir,
	'-D', $new->data_dir,
	'-b', $bindir,
	'-B', $bindir,
	'-s', $new->host,
	'-p', $old->port,
	'-P', $new->port);
command_ok([ @cmd, '--check' ], 'pg_upgrade --check succeeds');
command_ok(\@cmd, 'pg_upgrade succeeds');
chdir $cwd or die "chdir: $!";

# on failure, show pg_upgrade's own logs
if (!Test::More->builder->is_passing)
{
	for my $f (glob($new->data_dir . '/pg_upgrade_output.d/*/log/pg_upgrade_{server,dump_*}.log'),
		glob($new->data_dir . '/pg_upgrade_output.d/*.txt'))
	{
		my $text = slurp_file($f);
		diag("=== $f (last 3000 characters)\n" . substr($text, -3000));
	}
}

# after a failed upgrade the new cluster may lack anything: never die
sub query
{
	my ($node, $sql) = @_;
	my ($r, $o, $e) = $node->psql('postgres', $sql);
	return $r == 0 ? $o : "(failed: $e)";
}

$new->start;
is(query($new, $rows_sql), $rows,
	'after pg_upgrade: the budget rows are identical');
is( query($new,
		"SELECT extversion FROM pg_extension WHERE extname = 'conngov'"),
	$version, 'after pg_upgrade: the extension is there, same version');
query($new, 'SELECT conngov.reload()');
($rc, $out, $err) = cg_login($new, user => 'regress_app', app => 'upzero-1');
isnt($rc, 0, 'after pg_upgrade: a login of budget up_zero is refused');
like($err, qr/FATAL:  connection budget "up_zero" exhausted/,
	'with the budget refusal');
($rc, $out, $err) = cg_login($new, user => 'regress_app', app => 'uprole-1');
is($rc, 0, 'after pg_upgrade: a login of budget up_role is admitted')
  or diag($err);
$new->stop;

done_testing();
