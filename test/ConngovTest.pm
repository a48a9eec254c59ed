
# Copyright (c) 2026, conngov developers

# ConngovTest: helpers shared by the TAP tests in test/t/.
#
#   use lib 'test';
#   use ConngovTest;
#   my $node = cg_node('main', max_connections => 100);
#   cg_budgets($node, "('core_api', 'core-api%', NULL, 10)");
#   my $r = cg_storm($node, clients => 60, app => 'core-api-1',
#       user => 'regress_app', hold => 3);
#
package ConngovTest;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);
use Test::More;

our @EXPORT = qw(cg_node cg_budgets cg_total cg_storm cg_start_clients
  cg_finish_clients cg_real_sessions);

# cg_node(name, conf => "extra lines", max_connections => N): a started
# cluster with conngov preloaded, conngov.database = postgres, the
# extension created and its budgets loaded, and a plain login role
# regress_app.
sub cg_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $maxconn = $opt{max_connections} // 100;
	$node->append_conf(
		'postgresql.conf', qq(
shared_preload_libraries = 'conngov'
conngov.database = 'postgres'
max_connections = $maxconn
log_min_messages = log
log_line_prefix = '%m [%p] %e %q%a '
) . ($opt{conf} // ''));
	$node->start;
	$node->safe_psql('postgres',
		'CREATE EXTENSION conngov; CREATE ROLE regress_app LOGIN;');
	$node->safe_psql('postgres', 'SELECT conngov.reload()');
	return $node;
}

# cg_budgets(node, rows...): replace the budgets with rows given as
# "(name, application_pattern, role_name, max_connections)" tuples, and
# wait until they are loaded.
sub cg_budgets
{
	my ($node, @rows) = @_;
	my $sql = 'DELETE FROM conngov.budgets;';
	$sql .=
		'INSERT INTO conngov.budgets (name, application_pattern, role_name, max_connections) VALUES '
	  . join(', ', @rows) . ';'
	  if @rows;
	$node->safe_psql('postgres', $sql);
	$node->safe_psql('postgres', 'SELECT conngov.reload()');
	return;
}

# cg_total(node, budget): the budget's total in usage().
sub cg_total
{
	my ($node, $budget) = @_;
	return $node->safe_psql('postgres',
		"SELECT total FROM conngov.usage() WHERE budget = '$budget'");
}

# cg_real_sessions(node, app_like): client backends whose application_name
# is LIKE app_like, from pg_stat_activity.
sub cg_real_sessions
{
	my ($node, $like) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name LIKE '$like'"
	);
}

# cg_start_clients(node, clients => N, app => name, user => role,
#   sql => "SELECT pg_sleep(3)", dbname => 'postgres'): start N psql
# clients at once, each running sql.  Returns a handle for
# cg_finish_clients.
sub cg_start_clients
{
	my ($node, %opt) = @_;
	my $n = $opt{clients};
	my $sql = $opt{sql} // 'SELECT pg_sleep(3)';
	my $db = $opt{dbname} // 'postgres';
	my @clients;
	for my $i (1 .. $n)
	{
		my ($out, $err) = ('', '');
		my $connstr = $node->connstr($db)
		  . " user=$opt{user} application_name=$opt{app}";
		my $h = IPC::Run::start(
			[
				'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
				'-d', $connstr, '-c', $sql
			],
			'<', \undef, '>', \$out, '2>', \$err);
		push @clients, { h => $h, out => \$out, err => \$err };
	}
	return \@clients;
}

# cg_finish_clients(handle): wait for every client; returns a hash with
# admitted (exit 0), refused (SQLSTATE 53300 budget refusal), other, and the
# list of stderr texts.
sub cg_finish_clients
{
	my ($clients) = @_;
	my %r = (admitted => 0, refused => 0, other => 0, errors => []);
	for my $c (@$clients)
	{
		$c->{h}->finish;
		my $err = ${ $c->{err} };
		if ($c->{h}->result == 0)
		{
			$r{admitted}++;
		}
		elsif ($err =~ /FATAL:  connection budget "[^"]+" exhausted/)
		{
			$r{refused}++;
			push @{ $r{errors} }, $err;
		}
		else
		{
			$r{other}++;
			push @{ $r{errors} }, $err;
		}
	}
	return \%r;
}

# cg_storm: cg_start_clients then cg_finish_clients.
sub cg_storm
{
	my ($node, %opt) = @_;
	return cg_finish_clients(cg_start_clients($node, %opt));
}

1;
