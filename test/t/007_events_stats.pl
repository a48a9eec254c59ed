
# Copyright (c) 2026, conngov developers

# events() and stats(): refusals are counted and recorded, reset_stats()
# zeroes the counters, client_addr is shown only to pg_read_all_stats, and
# a ring of conngov.event_capacity keeps the newest events.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $refusal_re = qr/FATAL:  connection budget "refuse" exhausted/;

# refuse(node, from, to, %opt): logins with application_name refuse-N,
# each refused; returns how many were refused by conngov.
sub refuse
{
	my ($node, $from, $to, %opt) = @_;
	my $n = 0;
	for my $i ($from .. $to)
	{
		my ($rc, $out, $err) = cg_login(
			$node,
			user => 'regress_app',
			app => "refuse-$i",
			%opt);
		if ($rc != 0 && $err =~ $refusal_re)
		{
			$n++;
		}
		else
		{
			diag("refuse-$i: rc $rc, $err");
		}
	}
	return $n;
}

# the application_names of events(), in the order it returns them
my $apps_sql =
  "SELECT string_agg(application_name, ',' ORDER BY ordinality) FROM conngov.events(%s) WITH ORDINALITY";

# --- counters and events ---------------------------------------------------
my $node = cg_node('events', conf => "listen_addresses = '127.0.0.1'\n");
cg_budgets(
	$node,
	"('refuse', 'refuse%', NULL, 0)",
	"('okapp', 'okapp%', NULL, 5)");

my $reset0 = $node->safe_psql('postgres',
	"SELECT stats_reset FROM conngov.stats() WHERE budget = 'refuse'");
isnt($reset0, '', 'stats_reset is set from the start');

for my $i (1 .. 3)
{
	my ($rc) = cg_login($node, user => 'regress_app', app => "okapp-$i");
	is($rc, 0, "okapp login $i admitted");
}
is(refuse($node, 1, 20), 20, '20 logins refused by budget "refuse"');

is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM conngov.events() WHERE kind = 'refused' AND budget = 'refuse'"
	),
	20,
	'exactly 20 refused events for the budget');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM conngov.events() WHERE kind = 'refused' AND budget = 'refuse' AND pid IS NOT NULL AND role_name = 'regress_app' AND database_name = 'postgres' AND application_name LIKE 'refuse-%' AND at IS NOT NULL"
	),
	20,
	'each with pid, role_name, database_name and application_name');
is( $node->safe_psql(
		'postgres',
		"SELECT count(DISTINCT pid) FROM conngov.events() WHERE kind = 'refused'"),
	20,
	'20 distinct pids');
is( $node->safe_psql('postgres',
		sprintf($apps_sql, "NULL") . " WHERE kind = 'refused'"),
	join(',', map { "refuse-$_" } reverse 1 .. 20),
	'newest first');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM conngov.events() WHERE kind = 'refused' AND client_addr IS NOT NULL"
	),
	0,
	'client_addr is NULL for unix-socket clients, even for a superuser');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM conngov.events() WHERE kind <> 'refused' AND budget = 'refuse'"
	),
	0,
	'no other events for the budget');
note $node->safe_psql('postgres',
	'SELECT kind, budget, application_name, detail FROM conngov.events() LIMIT 3');

is( $node->safe_psql(
		'postgres',
		"SELECT budget, admitted, refused, would_refuse, ended_idle, would_end_idle, peak BETWEEN 1 AND 3, last_refused_at IS NOT NULL, last_refused_at > stats_reset FROM conngov.stats() ORDER BY budget"
	),
	"okapp|3|0|0|0|0|t|f|\nrefuse|0|20|0|0|0|f|t|t",
	'stats(): refused = 20 and last_refused_at set; okapp admitted 3');

# reset_stats()
usleep(10_000);
$node->safe_psql('postgres', 'SELECT conngov.reset_stats()');
is( $node->safe_psql(
		'postgres',
		"SELECT budget, admitted, refused, would_refuse, ended_idle, would_end_idle, peak, last_refused_at IS NULL FROM conngov.stats() ORDER BY budget"
	),
	"okapp|0|0|0|0|0|0|t\nrefuse|0|0|0|0|0|0|t",
	'reset_stats() zeroes admitted, refused and the rest');
is( $node->safe_psql(
		'postgres',
		"SELECT bool_and(stats_reset > '$reset0') FROM conngov.stats()"),
	't',
	'stats_reset is later than before');

is(refuse($node, 21, 22), 2, 'two more refusals');
is( $node->safe_psql(
		'postgres',
		"SELECT refused FROM conngov.stats() WHERE budget = 'refuse'"),
	2,
	'counting resumes from zero');

# --- client_addr over TCP --------------------------------------------------
my $tcp = 'host=127.0.0.1 port=' . $node->port . ' dbname=postgres';
my ($rc, $out, $err) = cg_login(
	$node,
	user => 'regress_app',
	app => 'refuse-tcp',
	connstr => $tcp);
like($err, $refusal_re, 'a login over TCP is refused');

$node->safe_psql(
	'postgres', q{
CREATE ROLE regress_mon LOGIN IN ROLE pg_monitor;
CREATE ROLE regress_ev LOGIN;
GRANT EXECUTE ON FUNCTION conngov.events(timestamptz) TO regress_ev;
});
my $addr_sql =
  "SELECT coalesce(host(client_addr), 'NULL') || ' ' || application_name || ' ' || role_name FROM conngov.events() WHERE application_name = 'refuse-tcp'";
is($node->safe_psql('postgres', $addr_sql),
	'127.0.0.1 refuse-tcp regress_app',
	'a superuser sees client_addr 127.0.0.1');
is($node->safe_psql('postgres', $addr_sql, extra_params => [ '-U', 'regress_mon' ]),
	'127.0.0.1 refuse-tcp regress_app',
	'a pg_monitor member sees client_addr 127.0.0.1');
is($node->safe_psql('postgres', $addr_sql, extra_params => [ '-U', 'regress_ev' ]),
	'NULL refuse-tcp regress_app',
	'a role with EXECUTE but without pg_read_all_stats sees NULL');
my $stderr = '';
$node->psql(
	'postgres', 'SELECT count(*) FROM conngov.events()',
	extra_params => [ '-U', 'regress_app' ],
	stderr => \$stderr);
like($stderr, qr/permission denied for function events/,
	'a plain role may not call events()');

$node->stop;

# --- a ring of 16 ----------------------------------------------------------
my $ring = cg_node('ring', conf => "conngov.event_capacity = 16\n");
is($ring->safe_psql('postgres', 'SHOW conngov.event_capacity'),
	16, 'conngov.event_capacity = 16');
cg_budgets($ring, "('refuse', 'refuse%', NULL, 0)");
is(refuse($ring, 1, 40), 40, '40 logins refused');

is($ring->safe_psql('postgres', 'SELECT count(*) FROM conngov.events()'),
	16, 'events() returns exactly 16 rows');
is( $ring->safe_psql('postgres', sprintf($apps_sql, 'NULL')),
	join(',', map { "refuse-$_" } reverse 25 .. 40),
	'the 16 newest: refuse-40 .. refuse-25, newest first');
is( $ring->safe_psql(
		'postgres',
		"SELECT count(*) FROM conngov.events() WHERE kind = 'refused' AND budget = 'refuse'"
	),
	16,
	'all of them refusals of the budget');
is( $ring->safe_psql(
		'postgres',
		"SELECT refused FROM conngov.stats() WHERE budget = 'refuse'"),
	40,
	'stats() still counts all 40');

my $at30 = $ring->safe_psql('postgres',
	"SELECT at FROM conngov.events() WHERE application_name = 'refuse-30'");
is( $ring->safe_psql('postgres', sprintf($apps_sql, "'$at30'")),
	join(',', map { "refuse-$_" } reverse 31 .. 40),
	'events(since) returns only the newer ones: refuse-40 .. refuse-31');
my $at40 = $ring->safe_psql('postgres',
	"SELECT at FROM conngov.events() WHERE application_name = 'refuse-40'");
is( $ring->safe_psql(
		'postgres', "SELECT count(*) FROM conngov.events('$at40')"),
	0,
	'events(since the newest) is empty');

# 4 more overwrite the 4 oldest
is(refuse($ring, 41, 44), 4, '4 more refused');
is( $ring->safe_psql('postgres', sprintf($apps_sql, 'NULL')),
	join(',', map { "refuse-$_" } reverse 29 .. 44),
	'the ring now holds refuse-44 .. refuse-29');

$ring->stop;

# --- more events than one copy batch (256) -------------------------------
# events() copies the ring a batch at a time, the lock released between
# batches: every event comes back once, newest first, across the batches.
my $many = cg_node('many', conf => "conngov.event_capacity = 1024\n");
cg_budgets($many, "('refuse', 'refuse%', NULL, 0)");
is(refuse($many, 1, 300), 300, "300 logins refused");
is( $many->safe_psql(
		'postgres',
		"SELECT count(*) FROM conngov.events() WHERE kind = 'refused'"),
	300,
	'events() returns all 300 refusals (two batches)');
is( $many->safe_psql('postgres', sprintf($apps_sql, 'NULL')),
	join(',', map { "refuse-$_" } reverse 1 .. 300),
	'in order, newest first, across the batches');
$many->stop;
done_testing();
