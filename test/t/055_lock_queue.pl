
# Copyright (c) 2026, conngov developers

# A role with no privilege on conngov.budgets cannot stop the loads.  The
# loader takes the table's ACCESS SHARE lock only if it is free (it never
# waits on a lock), and PostgreSQL queues a new lock request behind any
# waiting request it conflicts with.  Role A holds ACCESS SHARE in an open
# transaction without reading a row (parse analysis locks the table before
# any privilege check: PREPARE p AS SELECT ... FROM conngov.budgets), and
# role B queues an ACCESS EXCLUSIVE request behind it (CREATE RULE ... ON
# conngov.budgets takes the lock before checking ownership).  Before 1.2's
# fix, from then on the loader found the table locked at every try: no
# change applied and reload() failed.  Now the loader cancels B's request
# (it could only fail) and loads; a LOG line names the role.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node('lockq', max_connections => 20);
$node->safe_psql('postgres',
	'CREATE ROLE regress_a LOGIN; CREATE ROLE regress_b LOGIN;'
	  . ' GRANT USAGE ON SCHEMA conngov TO regress_a, regress_b');
cg_budgets($node, "('one', 'one%', NULL, 1)");

my $a = $node->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-U', 'regress_a' ]);
$a->query('BEGIN');
$a->query('PREPARE p AS SELECT 1 FROM conngov.budgets');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
		  . " WHERE l.relation = 'conngov.budgets'::regclass AND a.usename = 'regress_a' AND l.granted"),
	'1',
	'role A holds ACCESS SHARE on the table');

my $offset = -s $node->logfile;
my $b = $node->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-U', 'regress_b' ]);
$b->query_until(qr/rule/,
	"\\echo rule\nCREATE RULE r AS ON INSERT TO conngov.budgets DO INSTEAD NOTHING;\n\\echo done\n");
ok( defined cg_poll_for(
		$node,
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'regress_b' AND wait_event_type = 'Lock'",
		'1'),
	"role B's CREATE RULE waits for its lock behind A");

# a load goes through: B's request is cancelled; then a change commits
# (a superuser's UPDATE would queue behind B's request too, as behind any
# waiting lock request: the load that cancels B comes first here)
my ($rc, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '20s'; SELECT conngov.reload()");
is($rc, 0, 'a load happens while A holds and B waited') or diag($err);
($rc, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '20s';"
	  . " UPDATE conngov.budgets SET max_connections = 2 WHERE name = 'one'");
is($rc, 0, 'then a change commits while A still holds') or diag($err);
is( $node->safe_psql('postgres',
		"SELECT max_connections FROM conngov.usage() WHERE budget = 'one'"),
	'2', 'the change is in force');
$node->wait_for_log(
	qr/conngov cancelled the lock request of process \d+ on conngov\.budgets\n.*DETAIL:  Role "regress_b" waited/,
	$offset);
pass('the loader logged the cancelled request and its role');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'regress_b' AND wait_event_type = 'Lock'"),
	'0', "B no longer waits");

$a->quit;
$b->quit;
$node->stop('immediate');
done_testing();
