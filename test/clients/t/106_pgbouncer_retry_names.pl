
# Copyright (c) 2026, conngov developers

# What PgBouncer's clients see of a refused server login, and the name it
# gives a server connection without an alias.  The first client of a cold
# pool gets the refusal at once, as SQLSTATE 08P01 without DETAIL or HINT
# (seen through node-postgres); a client that comes while PgBouncer waits
# server_login_retry after that refusal waits until the retry.  Without an
# alias, application_name_add_host makes the name late naming charges
# "NAME - ADDRESS:PORT"; a psycopg2 client whose new server connection is
# refused by that name's budget connects, and its first query fails with a
# bare "server closed the connection unexpectedly".
use strict;
use warnings FATAL => 'all';

use lib 'test';
use lib 'test/clients';
use ConngovTest;
use ClientsTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

plan skip_all => 'pgbouncer is not installed (run-tests.sh clients installs it)'
  unless cl_pgbouncer_path();
my $python = '/usr/bin/python3';
my $have_py = -x $python && system($python, '-c', 'import psycopg2') == 0;
my $have_node = cl_node_has('pg');

my $node = cg_node('retry', max_connections => 40,
	conf => "listen_addresses = '127.0.0.1'\n");
$node->safe_psql('postgres',
	'CREATE ROLE regress_z LOGIN; CREATE ROLE regress_n LOGIN; CREATE ROLE regress_u LOGIN;');
my $mon = cg_psql($node, 'postgres');
sub sql { return $mon->query_safe($_[0]); }
cg_set_budgets($node, 'name, application_pattern, role_name, max_connections',
	"('zero', '%', 'regress_z', 0)",
	"('napp', 'n-app%', 'regress_n', 1)", { monitor => $mon });

# server_login_retry 3 s (the default is 15 s): long enough to tell a wait
# for the retry from an answer at once
my $retry = 3;
# PgBouncer is up once regress_u, which no budget matches, logs in: the
# pools of the others stay cold
my $pgb = cl_pgbouncer($node,
	databases => { db => 'pool_mode=session' },
	users => [qw(regress_z regress_n regress_u)],
	settings => {
		server_login_retry => $retry,
		query_wait_timeout => int(cg_late()) + $retry,
		application_name_add_host => 1
	},
	up => { dbname => 'db', user => 'regress_u' });
my $connstr = "$pgb->{connstr} dbname=db";
my $bport = $pgb->{port};
ok($pgb->{up}, 'pgbouncer is up');

###########################################################################
# 1. a cold pool: the first client is refused at once, the next waits for
# PgBouncer's server_login_retry
{
	my $t0 = time();
	my ($rc, $out, $err) = cg_login($node, connstr => $connstr, user => 'regress_z');
	my $first = time() - $t0;
	isnt($rc, 0, 'cold pool: the first client is refused');
	like($err, qr/FATAL:  connection budget "zero" exhausted/,
		'cold pool: with conngov\'s message');
	cmp_ok($first, '<', $retry - 0.5, 'cold pool: at once') or diag("took $first s");

	$t0 = time();
	($rc, $out, $err) = cg_login($node, connstr => $connstr, user => 'regress_z');
	my $second = time() - $t0;
	isnt($rc, 0, 'cold pool: the next client is refused too');
	cmp_ok($second, '>=', $retry - 1,
		"cold pool: but only after PgBouncer's server_login_retry ($retry s)")
	  or diag("took $second s");
	diag(sprintf('cold pool: first client %.2f s, next client %.2f s (server_login_retry %d s)',
		$first, $second, $retry));

  SKIP:
	{
		skip 'node or the pg package missing', 3 unless $have_node;
		select(undef, undef, undef, $retry + 0.5);  # a cold pool again
		my $js = q{const { Client } = require('pg');
const c = new Client({ host: '127.0.0.1', port: Number(process.argv[1]), user: 'regress_z', database: 'db' });
c.connect().then(() => { console.log('{"admitted": true}'); return c.end(); },
  (e) => console.log(JSON.stringify({ code: e.code, message: e.message, detail: e.detail, hint: e.hint })));};
		local $ENV{NODE_PATH} = cl_node_modules();
		my $c = cl_start('node', '-e', $js, $bport);
		cl_finish($c);
		my $j = eval { JSON::PP::decode_json($c->{out}) } // {};
		is($j->{code}, '08P01', 'cold pool: node-postgres sees SQLSTATE 08P01')
		  or diag($c->{out} . $c->{err});
		is($j->{message}, 'connection budget "zero" exhausted', 'cold pool: and the message');
		ok(!defined $j->{detail} && !defined $j->{hint}, 'cold pool: without DETAIL or HINT');
	}
}

###########################################################################
# 2. application_name_add_host: the name late naming charges carries the
# client's address; a psycopg2 client refused by that budget sees a bare
# disconnect at its first query
{
	my $gate = cg_gate($node);
	my ($out, $err) = ('', '');
	my $h;
	{
		local $ENV{PGAPPNAME} = 'n-app-1';
		$h = IPC::Run::start(
			[
				'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d',
				"$connstr user=regress_n",
				'-c', "SELECT pg_advisory_lock_shared($gate->{key})"
			],
			'<', \undef, '>', \$out, '2>', \$err);
	}
	my $held = [ { h => $h, out => \$out, err => \$err } ];
	is(cg_gate_wait($gate, $held), 1, 'add_host: the first client runs');
	like(sql("SELECT budget || '|' || login_application_name FROM conngov.sessions() WHERE role_name = 'regress_n'"),
		qr/^napp\|n-app-1 - 127\.0\.0\.1:\d+$/,
		'add_host: its server connection is charged by "n-app-1 - ADDRESS:PORT"');

  SKIP:
	{
		skip 'python3-psycopg2 missing', 4 unless $have_py;
		my $py = q{import json, sys, psycopg2
try:
    c = psycopg2.connect(sys.argv[1])
except psycopg2.Error as e:
    print(json.dumps({'connected': False, 'message': str(e)})); sys.exit(0)
try:
    c.cursor().execute('SELECT 1')
    print(json.dumps({'connected': True, 'ran': True}))
except psycopg2.Error as e:
    print(json.dumps({'connected': True, 'ran': False, 'pgcode': e.pgcode, 'message': str(e)}))};
		my $c = cl_start($python, '-c', $py,
			"$connstr user=regress_n application_name=n-app-2");
		cl_finish($c);
		my $j = eval { JSON::PP::decode_json($c->{out}) } // {};
		is("$j->{connected}|$j->{ran}", '1|0',
			'by name: psycopg2 connects to PgBouncer, its first query fails')
		  or diag($c->{out} . $c->{err});
		like($j->{message} // '', qr/^server closed the connection unexpectedly/,
			'by name: psycopg2 sees a bare disconnect');
		unlike($j->{message} // '', qr/connection budget/,
			'by name: without conngov\'s message');
		like(sql("SELECT string_agg(kind || '|' || application_name, ' ') FROM conngov.events() WHERE budget = 'napp' AND kind = 'refused'"),
			qr/^refused\|n-app-2 - 127\.0\.0\.1:\d+$/,
			'by name: conngov refused it by its name with the address');
	}
	cg_gate_release($gate);
	cg_finish_clients($held);
	cg_gate_quit($gate);
}

cl_pgbouncer_stop($pgb);
$mon->quit;
$node->stop;
done_testing();
