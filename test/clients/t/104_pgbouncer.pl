
# Copyright (c) 2026, conngov developers

# PgBouncer (Debian's pgbouncer) in session and transaction pooling, with
# budgets by role: PgBouncer's server connections are what conngov counts;
# a refused server login is retried by PgBouncer while its clients wait,
# and the pool recovers when a place frees; the first client of a cold pool
# gets the refusal at once; budgets by application_name apply to a new
# server connection through late naming (PgBouncer's SET application_name).
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

my $node = cg_node('bouncer', max_connections => 40,
	conf => "listen_addresses = '127.0.0.1'\n");
$node->safe_psql('postgres',
	'CREATE ROLE regress_s LOGIN IN ROLE pg_monitor; CREATE ROLE regress_t LOGIN IN ROLE pg_monitor; CREATE ROLE regress_z LOGIN; '
	  . 'CREATE ROLE regress_n LOGIN;');
my $mon = cg_psql($node, 'postgres');
sub sql { return $mon->query_safe($_[0]); }
cg_set_budgets($node, 'name, application_pattern, role_name, max_connections',
	"('sess', '%', 'regress_s', 2)",
	"('xact', '%', 'regress_t', 2)",
	"('zero', '%', 'regress_z', 0)",
	"('napp', 'n-app%', 'regress_n', 1)", { monitor => $mon });

# PgBouncer on 127.0.0.1, pools of 5 (more than the budgets), a refused
# server login retried every second
my $pgb = cl_pgbouncer($node,
	databases => { sessdb => 'pool_mode=session', xactdb => 'pool_mode=transaction' },
	users => [qw(regress_s regress_t regress_z regress_n)],
	up => { dbname => 'sessdb', user => 'regress_s' });
my $connstr = $pgb->{connstr};
my $dir = $pgb->{dir};
ok($pgb->{up}, 'pgbouncer is up');

# clients through PgBouncer: psql, each waiting at the gate once it runs
sub start_clients
{
	my ($n, $db, $user, $gate) = @_;
	my @c;
	for (1 .. $n)
	{
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start(
			[
				'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d',
				"$connstr dbname=$db user=$user",
				'-c', "SELECT pg_advisory_lock_shared($gate->{key})"
			],
			'<', \undef, '>', \$out, '2>', \$err);
		push @c, { h => $h, out => \$out, err => \$err };
	}
	return \@c;
}

sub stat_of
{
	my ($budget, $cols) = @_;
	return sql("SELECT $cols FROM conngov.stats() s JOIN conngov.usage() u USING (budget) WHERE budget = '$budget'");
}

###########################################################################
# 1. session pooling: a budget of 2 for the role, a pool of 5
{
	my $gate = cg_gate($node);
	my $held = start_clients(2, 'sessdb', 'regress_s', $gate);
	is(cg_gate_wait($gate, $held), 2, 'session: 2 clients hold server connections');
	my $third = start_clients(1, 'sessdb', 'regress_s', $gate);
	# PgBouncer tries a third server connection: refused, retried
	cg_poll_for($node, "SELECT refused > 0 FROM conngov.stats() WHERE budget = 'sess'",
		't', monitor => $mon);
	is(stat_of('sess', 'u.total'), 2, 'session: conngov counts the 2 server connections');
	cg_gate_release($gate);
	my $r = cg_finish_clients([ @$held, @$third ]);
	is("$r->{admitted}|$r->{refused}|$r->{other}", '3|0|0',
		'session: the waiting client got in once a place freed; nobody saw an error')
	  or diag(join("\n", @{ $r->{errors} }));
	is(stat_of('sess', 's.peak'), 2, 'session: never more than 2 server connections');
	cg_gate_quit($gate);
}

###########################################################################
# 2. transaction pooling: the same with transactions sharing 2 connections
{
	my $gate = cg_gate($node);
	my $held = start_clients(2, 'xactdb', 'regress_t', $gate);
	is(cg_gate_wait($gate, $held), 2, 'transaction: 2 transactions hold server connections');
	my $more = start_clients(8, 'xactdb', 'regress_t', $gate);
	cg_poll_for($node, "SELECT refused > 0 FROM conngov.stats() WHERE budget = 'xact'",
		't', monitor => $mon);
	cg_gate_release($gate);
	my $r = cg_finish_clients([ @$held, @$more ]);
	is("$r->{admitted}|$r->{refused}|$r->{other}", '10|0|0',
		'transaction: 10 of 10 clients ran on the 2 server connections')
	  or diag(join("\n", @{ $r->{errors} }));
	is(stat_of('xact', 's.peak'), 2, 'transaction: never more than 2 server connections');
	cg_gate_quit($gate);
}

###########################################################################
# 3. a cold pool: the first client gets the refusal at once
{
	my ($rc, $out, $err) = cg_login($node, connstr => "$connstr dbname=sessdb",
		user => 'regress_z');
	isnt($rc, 0, 'cold pool: the client is refused');
	like($err, qr/connection budget "zero" exhausted/,
		'cold pool: PgBouncer passes the message on');
}

###########################################################################
# 4. budgets by application_name behind PgBouncer: PgBouncer opens a server
# connection without the client's application_name and SETs it before the
# first query, so late naming charges a new server connection to the
# budget of the first client that uses it; one over that budget is ended,
# and PgBouncer's client sees only "invalid server parameter".
{
	my $gate = cg_gate($node);
	my $held;
	{
		local $ENV{PGAPPNAME} = 'n-app-1';
		$held = start_clients(1, 'sessdb', 'regress_n', $gate);
	}
	is(cg_gate_wait($gate, $held), 1, 'by name: the first client runs');
	is( sql("SELECT string_agg(application_name || '|' || login_application_name || '|' || budget, ' ') FROM conngov.sessions() WHERE role_name = 'regress_n'"),
		'n-app-1|n-app-1|napp',
		'by name: its new server connection is charged by late naming');
	my ($rc, $out, $err) = cg_login($node, app => 'n-app-2', user => 'regress_n',
		connstr => "$connstr dbname=sessdb");
	isnt($rc, 0, 'by name: a second client over the budget fails');
	like($err, qr/FATAL:  invalid server parameter/,
		'by name: and sees only PgBouncer\'s "invalid server parameter"');
	is( sql("SELECT string_agg(kind || '|' || application_name, ' ') FROM conngov.events() WHERE budget = 'napp'"),
		'refused|n-app-2', 'by name: one refused event names the client\'s application');
	cg_gate_release($gate);
	cg_finish_clients($held);
	cg_gate_quit($gate);
}

my $log = slurp_file("$dir/pgbouncer.log");
like($log, qr/connection budget "sess" exhausted/,
	"PgBouncer's log shows the server's refusal");

cl_pgbouncer_stop($pgb);
$mon->quit;
$node->stop;
done_testing();
