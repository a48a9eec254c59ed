
# Copyright (c) 2026, conngov developers

# A COMMIT that holds the budgets table's ACCESS EXCLUSIVE lock (LOCK
# TABLE, TRUNCATE, ALTER TABLE, CREATE EXTENSION and INSERT in one
# transaction, a psql --single-transaction restore) does not wait for a
# publish that cannot happen before its locks are released: it returns at
# once, and the change applies right after.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval);

my $TO = $PostgreSQL::Test::Utils::timeout_default;

# Any wait would last timeout_default here (1.1 waited its fixed 2 s); a
# COMMIT that does not wait takes milliseconds.  The bound asserted below,
# 1 s, is half of 1.1's 2 s, so that it tells the two apart on a slow
# machine too.
my $no_wait = 1.0;
my $node = cg_node('commit_locked',
	conf => "conngov.commit_wait_timeout = '${TO}s'\n");
my $mon = cg_psql($node, 'postgres');
my $tx = cg_psql($node, 'postgres');

# applies(label, name, t0): the budget name is published within cg_late()
# of t0 (the return of COMMIT); the time it took goes to a diag line.
sub applies
{
	my ($label, $name, $t0) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $ok = defined cg_poll_for($node, cg_published_sql($name), 1,
		monitor => $mon);
	my $took = tv_interval($t0);
	diag(sprintf('%s: applied %.3f s after COMMIT returned', $label, $took));
	ok($ok && $took < cg_late(),
		"$label: the change applies right after COMMIT (bound: cg_late())");
	return;
}

# locked_commit(label, name, statements): run statements (which take the
# table's ACCESS EXCLUSIVE lock and add budget name) in a transaction, then
# COMMIT it and time the COMMIT alone.
sub locked_commit
{
	my ($label, $name, $sql) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$tx->query_safe("BEGIN; $sql");
	is($tx->query_safe(
			"SELECT count(*) FROM pg_locks WHERE relation = 'conngov.budgets'::regclass AND pid = pg_backend_pid() AND mode = 'AccessExclusiveLock' AND granted"
		),
		1,
		"$label: the transaction holds the table's ACCESS EXCLUSIVE lock");
	my $t0 = [gettimeofday];
	$tx->query('COMMIT');
	my $took = tv_interval($t0);
	my $t1 = [gettimeofday];
	diag(sprintf('%s: COMMIT took %.3f s', $label, $took));
	ok($took < $no_wait, "$label: COMMIT does not wait (under $no_wait s)");
	is($tx->{stderr}, '', "$label: no WARNING");
	$tx->{stderr} = '';
	applies($label, $name, $t1);
	return;
}

locked_commit('LOCK TABLE', 'lock',
	'LOCK TABLE conngov.budgets IN ACCESS EXCLUSIVE MODE; ' . cg_insert_sql('lock'));

locked_commit('TRUNCATE', 'truncate',
	'TRUNCATE conngov.budgets; ' . cg_insert_sql('truncate'));

locked_commit('ALTER TABLE', 'alter',
	"ALTER TABLE conngov.budgets ALTER COLUMN comment SET DEFAULT 'altered'; "
	  . cg_insert_sql('alter'));
$mon->query_safe(
	'ALTER TABLE conngov.budgets ALTER COLUMN comment DROP DEFAULT');

$mon->query_safe('DROP EXTENSION conngov');
locked_commit('CREATE EXTENSION', 'created',
	'CREATE EXTENSION conngov; ' . cg_insert_sql('created'));

# a restore of a dump in one transaction: CREATE EXTENSION, then COPY of
# the budgets (an extension configuration table, so pg_dump keeps its rows)
$mon->query_safe(
	"DELETE FROM conngov.budgets; " . cg_insert_sql('restored'));
my $dump = $node->basedir . '/conngov.sql';
$node->command_ok(
	[ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ],
	'restore: pg_dump of the database');
$mon->query_safe('DROP EXTENSION conngov; DROP SCHEMA conngov');
my ($out, $err) = ('', '');
my $t0 = [gettimeofday];
my $ok = IPC::Run::run(
	[
		'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction',
		'-d', $node->connstr('postgres'), '-f', $dump
	],
	'>', \$out, '2>', \$err);
my $took = tv_interval($t0);
my $t1 = [gettimeofday];
diag(sprintf('restore: psql --single-transaction took %.3f s', $took));
ok($ok, 'restore: psql --single-transaction succeeds') or diag($err);
unlike($err, qr/WARNING/, 'restore: no WARNING');
ok($took < $no_wait,
	"restore: its COMMIT does not wait (the whole restore under $no_wait s)");
applies('restore', 'restored', $t1);

# a COMMIT that holds only weaker locks still waits, and the change is
# published when COMMIT returns (read-your-writes)
$tx->query_safe('BEGIN; LOCK TABLE conngov.budgets IN SHARE MODE; '
	  . cg_insert_sql('shared'));
$tx->query_safe('COMMIT');
is($mon->query_safe(cg_published_sql('shared')),
	1, 'SHARE lock: the budget is published when COMMIT returns');

$tx->quit;
$mon->quit;
$node->stop;
done_testing();
