
# Copyright (c) 2026, conngov developers

# Every committed change applies (COMMIT PREPARED, session_replication_role = replica), a failed or empty load keeps the counters, a non-superuser owner of conngov.database makes the budgets untrusted, and health() reports a load that is late.
#
# Timing runs from just before the COMMIT (PREPARED) to the end of the
# first login with the new outcome (a new psql each try); the bound is
# the SPEC's second plus a stated margin for a slow, busy 2-core machine.
# Waits poll the server's own record, bounded by timeout_default.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $MARGIN = 1.5;
my $TO = $PostgreSQL::Test::Utils::timeout_default;

my $node = cg_node('applykeep', conf => "max_prepared_transactions = 5\n");
my $mon = cg_psql($node, 'postgres');
cg_budgets($node, "('ak', 'ak-%', NULL, 5)");

sub sql { return $mon->query_safe($_[0]); }

# applies(what, want, code): code commits a change; the next login of
# budget ak has outcome want within a second (+ margin) of the call
sub applies
{
	my ($what, $want, $code) = @_;
	my $t0 = time();
	$code->();
	my $took = cg_first_outcome(
		$node, $t0,
		want => $want,
		app => 'ak-1',
		user => 'regress_app');
	diag(sprintf('%s: %s %.3f s after the commit began',
			$what, $want, $took // -1));
	ok(defined $took && $took < 1 + $MARGIN,
		"$what: applies within 1 s (+ $MARGIN s margin)");
	return;
}

# loads_check(): health()'s "loads" check
sub loads_check
{
	return sql(
		"SELECT c FROM jsonb_array_elements(conngov.health()->'checks') c WHERE c->>'name' = 'loads'"
	);
}

###########################################################################
# (b) COMMIT PREPARED
{
	sql( "BEGIN; UPDATE conngov.budgets SET max_connections = 0 WHERE name = 'ak'; "
		  . "PREPARE TRANSACTION 'regress_cg_1'");
	sql('SELECT conngov.reload()');
	my ($rc) = cg_login($node, app => 'ak-1', user => 'regress_app');
	is($rc, 0, 'a prepared change does not apply before COMMIT PREPARED');
	applies('COMMIT PREPARED', 'refused',
		sub { sql("COMMIT PREPARED 'regress_cg_1'") });

	# across a restart: prepared before, committed after
	sql( "BEGIN; UPDATE conngov.budgets SET max_connections = 5 WHERE name = 'ak'; "
		  . "PREPARE TRANSACTION 'regress_cg_2'");
	$mon->quit;
	$node->restart;
	$mon = cg_psql($node, 'postgres');
	ok( defined cg_first_outcome(
			$node, time(),
			want => 'refused',
			app => 'ak-1',
			user => 'regress_app'),
		'after a restart: the committed budget (0) is loaded');
	applies('COMMIT PREPARED after a restart',
		'admitted', sub { sql("COMMIT PREPARED 'regress_cg_2'") });
}

###########################################################################
# (b) session_replication_role = replica (a restore, logical replication)
{
	# from a known state: 5, loaded, admitted
	sql("UPDATE conngov.budgets SET max_connections = 5 WHERE name = 'ak'");
	sql('SELECT conngov.reload()');
	my ($rc) = cg_login($node, app => 'ak-1', user => 'regress_app');
	is($rc, 0, 'budget ak admits before the replica change');
	applies(
		'session_replication_role = replica',
		'refused',
		sub {
			sql("SET session_replication_role = replica; UPDATE conngov.budgets SET max_connections = 0 WHERE name = 'ak'; RESET session_replication_role"
			);
		});
	sql("UPDATE conngov.budgets SET max_connections = 5 WHERE name = 'ak'");
}

###########################################################################
# (c) a failed or empty load keeps a budget's counters
{
	my ($rc) = cg_login($node, app => 'ak-1', user => 'regress_app');
	is($rc, 0, 'a login of budget ak');
	my $stats_sql =
	  "SELECT admitted > 0, refused > 0, admitted || '/' || refused FROM conngov.stats() WHERE budget = 'ak'";
	my $before = sql($stats_sql);
	like($before, qr/^t\|t\|/, "budget ak has admitted and refused logins ($before)");
	my ($counts) = $before =~ /\|([^|]+)$/;

	# an empty load (no rows), then the row again
	sql('CREATE TABLE regress_saved AS SELECT * FROM conngov.budgets');
	sql('DELETE FROM conngov.budgets; SELECT conngov.reload()');
	is(sql("SELECT count(*) FROM conngov.usage() WHERE budget = 'ak'"),
		0, 'empty load: budget ak is gone');
	sql('INSERT INTO conngov.budgets SELECT * FROM regress_saved; SELECT conngov.reload()');
	is(sql("SELECT admitted || '/' || refused FROM conngov.stats() WHERE budget = 'ak'"),
		$counts, 'after an empty load: budget ak kept its stats()');

	# a load with no table (renamed away), then the table again
	sql('ALTER TABLE conngov.budgets RENAME TO budgets_away');
	ok( defined cg_poll_for(
			$node,
			"SELECT c->>'state' FROM jsonb_array_elements(conngov.health()->'checks') c WHERE c->>'name' = 'budgets'",
			'no_table',
			monitor => $mon),
		'table renamed away: nothing loaded');
	sql('ALTER TABLE conngov.budgets_away RENAME TO budgets');
	ok( defined cg_poll_for(
			$node,
			"SELECT count(*) FROM conngov.usage() WHERE budget = 'ak'",
			'1', monitor => $mon),
		'table back: budget ak loaded');
	is(sql("SELECT admitted || '/' || refused FROM conngov.stats() WHERE budget = 'ak'"),
		$counts, 'after a load with no table: budget ak kept its stats()');
	sql('DROP TABLE regress_saved');
}

###########################################################################
# (a) a non-superuser owner of conngov.database
{
	sql("UPDATE conngov.budgets SET max_connections = 0 WHERE name = 'ak'");
	my ($rc, $out, $err) =
	  cg_login($node, app => 'ak-1', user => 'regress_app');
	like($err, qr/connection budget "ak" exhausted/, 'budget ak refuses');
	my $offset = -s $node->logfile;
	sql('CREATE ROLE regress_dbowner');
	sql('ALTER DATABASE postgres OWNER TO regress_dbowner');
	ok( defined cg_poll_for(
			$node,
			"SELECT c->>'state' FROM jsonb_array_elements(conngov.health()->'checks') c WHERE c->>'name' = 'budgets'",
			'untrusted',
			monitor => $mon),
		'owner regress_dbowner: state untrusted');
	like(
		sql("SELECT c->>'reason' FROM jsonb_array_elements(conngov.health()->'checks') c WHERE c->>'name' = 'budgets'"),
		qr/database "postgres" is owned by role "regress_dbowner", which is not a superuser/,
		'health() names the owner');
	($rc) = cg_login($node, app => 'ak-1', user => 'regress_app');
	is($rc, 0, 'untrusted: nothing is enforced');
	# more loads: still one line
	for (1 .. 2)
	{
		my ($r, $o, $e) = $node->psql('postgres', 'SELECT conngov.reload()');
		like($e, qr/conngov could not load the budgets/,
			'untrusted: reload() says it could not load');
	}
	my $n = () = slurp_file($node->logfile, $offset) =~
	  /LOG:  conngov: database "postgres" is owned by role "regress_dbowner", which is not a superuser; nothing is enforced/g;
	is($n, 1, 'one LOG line for it');

	my $su = sql('SELECT current_user');
	sql(qq{ALTER DATABASE postgres OWNER TO "$su"});
	ok( defined cg_first_outcome(
			$node, time(),
			want => 'refused',
			app => 'ak-1',
			user => 'regress_app'),
		'owner a superuser again: budget ak refuses again');
	sql('DROP ROLE regress_dbowner');
}

###########################################################################
# health(): a load requested and not done within a second is degraded
{
	like(loads_check(), qr/"status": "ok"/, 'health(): loads ok');
	my $loader = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'conngov loader'");
	like($loader, qr/^\d+$/, 'the loader runs');
	kill 'STOP', $loader;
	my $ok = eval {
		# the COMMIT would wait for the stopped loader (and warn): no wait
		sql("BEGIN; SET LOCAL conngov.commit_wait_timeout = 0; UPDATE conngov.budgets SET max_connections = 3 WHERE name = 'ak'; COMMIT");
		ok( defined cg_poll_for(
				$node,
				"SELECT conngov.health()->>'status' || ' ' || (SELECT c->>'status' FROM jsonb_array_elements(conngov.health()->'checks') c WHERE c->>'name' = 'loads')",
				'degraded warning',
				monitor => $mon),
			'loader stopped: health() degraded by the loads check');
		like(loads_check(), qr/"reason": "a load requested \d+ ms ago has not happened/,
			'with the reason');
		1;
	};
	kill 'CONT', $loader;
	die $@ unless $ok;
	ok( defined cg_poll_for(
			$node,
			"SELECT c->>'status' FROM jsonb_array_elements(conngov.health()->'checks') c WHERE c->>'name' = 'loads'",
			'ok', monitor => $mon),
		'loader continued: loads ok again');
}

$mon->quit;
$node->stop;
done_testing();
