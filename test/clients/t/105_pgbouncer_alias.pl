
# Copyright (c) 2026, conngov developers

# A PgBouncer alias budget holds against clients that send names (1.2).
# The alias (application_name= in [databases]) is in the startup packet of
# every server connection PgBouncer opens, so it is the connection's name
# at login and final: the SET application_name PgBouncer sends for each
# client (psql's default name "psql" included) changes what
# pg_stat_activity shows, not what the connection is charged to.  The
# budget's limit holds: a pool of 5 gets 2 server connections, PgBouncer
# retries the refused third while its clients wait, and they get in as
# places free.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use lib 'test/clients';
use ConngovTest;
use ClientsTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'pgbouncer is not installed (run-tests.sh clients installs it)'
  unless cl_pgbouncer_path();

my $node = cg_node('alias', max_connections => 40,
	conf => "listen_addresses = '127.0.0.1'\n");
$node->safe_psql('postgres', 'CREATE ROLE regress_a LOGIN;');
my $mon = cg_psql($node, 'postgres');
sub sql { return $mon->query_safe($_[0]); }
# the alias budget, and budgets the clients' own names would match
cg_set_budgets($node, 'name, application_pattern, role_name, max_connections',
	"('alias', 'bouncer-alias', NULL, 2)",
	"('psql', 'psql%', NULL, 10)",
	"('client', 'client-%', NULL, 10)", { monitor => $mon });

my $pgb = cl_pgbouncer($node,
	databases => { aliasdb => 'pool_mode=session application_name=bouncer-alias' },
	users => ['regress_a'],
	up => { dbname => 'aliasdb', user => 'regress_a' });
my $connstr = "$pgb->{connstr} dbname=aliasdb user=regress_a";
ok($pgb->{up}, 'pgbouncer is up');
# that login's server connection stays in the pool, charged by the alias
is( sql("SELECT string_agg(budget || '|' || login_application_name, ',') FROM conngov.sessions() WHERE role_name = 'regress_a'"),
	'alias|bouncer-alias', 'a pooled server connection is charged to the alias budget');
sql('SELECT conngov.reset_stats()');

# clients through PgBouncer: each runs a statement to its end (a name set
# at login would be re-charged by then), then waits at the gate
my $gate = cg_gate($node);
sub start_clients
{
	my ($app, $n) = @_;
	my @c;
	# without a name, psql sends its own: "psql"
	delete local $ENV{PGAPPNAME} unless defined $app;
	for (1 .. $n)
	{
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start(
			[
				'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d',
				$connstr . (defined $app ? " application_name=$app" : ''),
				'-c', 'SELECT 1',
				'-c', "SELECT pg_advisory_lock_shared($gate->{key})"
			],
			'<', \undef, '>', \$out, '2>', \$err);
		push @c, { h => $h, out => \$out, err => \$err };
	}
	return @c;
}

# psql's default name, and a name of the client's own
my @first = (start_clients(undef, 1), start_clients('client-1', 1));
is(cg_gate_wait($gate, \@first), 2, 'two clients hold server connections');
is( sql("SELECT string_agg(budget || '|' || login_application_name, ',' ORDER BY application_name) FROM conngov.sessions() WHERE role_name = 'regress_a'"),
	'alias|bouncer-alias,alias|bouncer-alias',
	'both server connections are charged to the alias budget, by the alias');
is( sql("SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_activity WHERE usename = 'regress_a'"),
	'client-1,psql', "pg_stat_activity shows the clients' names");
is( sql("SELECT string_agg(budget || ':' || total, ',' ORDER BY budget) FROM conngov.usage() WHERE budget IN ('alias', 'psql', 'client')"),
	'alias:2,client:0,psql:0', 'the alias budget is full; the name budgets hold nothing');

# two more clients: PgBouncer's third server login is refused and retried
my @more = (start_clients(undef, 1), start_clients('client-2', 1));
ok( defined cg_poll_for(
		$node, "SELECT refused > 0 FROM conngov.stats() WHERE budget = 'alias'",
		't', monitor => $mon),
	'a third server connection is refused by the alias budget');
is( sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'regress_a'"),
	'2', 'PgBouncer holds 2 server connections for 4 clients');

cg_gate_release($gate);
my $r = cg_finish_clients([ @first, @more ]);
is("$r->{admitted}|$r->{refused}|$r->{other}", '4|0|0',
	'the waiting clients got in once places freed; nobody saw an error')
  or diag(join("\n", @{ $r->{errors} }));
is(sql("SELECT peak FROM conngov.usage() WHERE budget = 'alias'"), '2',
	'never more than 2 server connections on the alias budget');
is( sql("SELECT string_agg(budget || ':' || admitted, ',' ORDER BY budget) FROM conngov.stats() WHERE budget IN ('psql', 'client')"),
	'client:0,psql:0', 'no server connection was ever charged by a client\'s name');
cg_gate_quit($gate);

cl_pgbouncer_stop($pgb);
$mon->quit;
$node->stop;
done_testing();
