
# Copyright (c) 2026, conngov developers

# Publishing never loosens or leaks a charge, at scale.  With 20 000
# budgets loaded and the budgets published back to back by a DBA's loop
# (one row changes per commit), storms against a budget of 10 still admit
# exactly 10 each round and leave its total at 0.  Sessions whose budget
# changes under them move: a new budget that comes first in matching order
# takes them at once, exactly, and gives them back when it goes; counters
# follow a budget by name across publishes.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node(
	'publish',
	max_connections => 100,
	conf => "conngov.max_budgets = 20010\n");

# 20 000 per-tenant budgets (half by role, half by application prefix), a
# budget of 10 that storms will hit, and one that holds five sessions
$node->safe_psql(
	'postgres', q{
	SET client_min_messages = error;
	INSERT INTO conngov.budgets (name, application_pattern, role_name, max_connections)
	SELECT format('tenant-%s', lpad(i::text, 5, '0')),
		   CASE WHEN i % 2 = 0 THEN '%' ELSE format('tenant-%s-%%', i) END,
		   CASE WHEN i % 2 = 0 THEN format('tenant_%s', i) END, 10
	  FROM generate_series(1, 20000) i;
	INSERT INTO conngov.budgets (name, application_pattern, max_connections, priority)
	VALUES ('core_api', 'core-api%', 10, 100), ('mover_old', 'mv-%', 50, 100);
	CREATE TABLE publisher_stop ();
});
is($node->safe_psql('postgres', 'SELECT conngov.reload()'),
	20002, 'all budgets loaded');

my @movers = map { cg_session($node, "mv-$_", 'regress_app') } 1 .. 5;
is(cg_total($node, 'mover_old'), 5, 'five sessions charged to mover_old');

# a DBA's loop: one row changes per commit, each commit makes the worker
# publish all 20 002 budgets again, until the test says stop
my $reloads0 = $node->safe_psql('postgres',
	"SELECT count(*) FROM conngov.events() WHERE kind = 'budgets_reloaded'");
my ($pub_out, $pub_err) = ('', '');
my $publisher = IPC::Run::start(
	[
		'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
		'-d', $node->connstr('postgres'),
		'-c', q{DO $$
		DECLARE i int := 0;
		BEGIN
			SET client_min_messages = error;
			LOOP
				i := i + 1;
				UPDATE conngov.budgets SET max_connections = 10 + i % 5
				 WHERE name = 'tenant-00001';
				COMMIT;
				EXIT WHEN EXISTS (SELECT FROM publisher_stop);
				PERFORM pg_sleep(0.01);
			END LOOP;
		END $$}
	],
	'>', \$pub_out, '2>', \$pub_err);

my $gate = cg_gate($node);
for my $round (1 .. 3)
{
	my $r = cg_storm(
		$node,
		clients => 40,
		app => 'core-api-storm',
		user => 'regress_app',
		gate => $gate);
	is($r->{admitted}, 10, "round $round: exactly 10 admitted while publishing");
	is($r->{refused}, 30, "round $round: the other 30 refused");
	is($r->{other}, 0, "round $round: no other failure")
	  or diag(join("\n", @{ $r->{errors} }));
	$node->poll_query_until('postgres',
		"SELECT total = 0 FROM conngov.usage() WHERE budget = 'core_api'")
	  or diag("total stuck at " . cg_total($node, 'core_api'));
	is(cg_total($node, 'core_api'), 0, "round $round: total back to 0");
}

$node->safe_psql('postgres', 'INSERT INTO publisher_stop DEFAULT VALUES');
$publisher->finish;
is($publisher->result(0), 0, 'the publishing loop ran without error')
  or diag($pub_err);
my $reloads = $node->safe_psql('postgres',
	"SELECT count(*) FROM conngov.events() WHERE kind = 'budgets_reloaded'");
cmp_ok($reloads - $reloads0, '>=', 3,
	'budgets were published during the storms');
diag("publishes during the storms: " . ($reloads - $reloads0));

is( $node->safe_psql(
		'postgres', "SELECT peak FROM conngov.usage() WHERE budget = 'core_api'"),
	10,
	'peak never went over the budget across publishes');
is( $node->safe_psql(
		'postgres', "SELECT admitted FROM conngov.stats() WHERE budget = 'core_api'"),
	30,
	'counters follow the budget by name across publishes');

# a budget that comes first takes the five sessions at once, exactly, and
# gives them back when it goes
$node->safe_psql('postgres',
	"INSERT INTO conngov.budgets (name, application_pattern, max_connections, priority)"
	  . " VALUES ('mover_new', 'mv-%', 50, 1); SELECT conngov.reload()");
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(budget || '=' || total, ',' ORDER BY budget)"
		  . " FROM conngov.usage() WHERE budget LIKE 'mover%'"),
	'mover_new=5,mover_old=0',
	'a new first budget takes the sessions');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM conngov.sessions() WHERE budget = 'mover_new'"),
	5, 'sessions() shows them charged to it');
$node->safe_psql('postgres',
	"DELETE FROM conngov.budgets WHERE name = 'mover_new'; SELECT conngov.reload()");
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(budget || '=' || total, ',' ORDER BY budget)"
		  . " FROM conngov.usage() WHERE budget LIKE 'mover%'"),
	'mover_old=5',
	'removing it gives them back');

# when they leave, every total is exact: nothing leaked into a slot
$_->{psql}->quit for @movers;
$node->poll_query_until('postgres',
	"SELECT total = 0 FROM conngov.usage() WHERE budget = 'mover_old'")
  or diag("total stuck at " . cg_total($node, 'mover_old'));
is( $node->safe_psql(
		'postgres',
		"SELECT coalesce(sum(total), 0) FROM conngov.usage() WHERE budget <> '(unbudgeted)'"),
	0, 'no budget keeps a charge once its sessions are gone');

cg_gate_quit($gate);
$node->stop;
done_testing();
