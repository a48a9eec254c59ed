
# Copyright (c) 2026, conngov developers

# The postmaster dies (kill -9) while a COMMIT waits for its budget change
# to be published: the wait ends with a WARNING and the session ends after
# its commit, never with a PANIC; after a restart the change is there and
# applies.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $TO = $PostgreSQL::Test::Utils::timeout_default;

# alive(pid): the process exists and is not a zombie (an orphan's exit
# status may wait for a reaper that a container does not have)
sub alive
{
	my ($pid) = @_;
	return 0 unless kill 0, $pid;
	open my $fh, '<', "/proc/$pid/stat" or return 0;
	my $stat = <$fh>;
	close $fh;
	return $stat !~ /^\d+ \(.*\) Z /s;
}

my $node = cg_node('pm_death',
	conf => "conngov.commit_wait_timeout = '${TO}s'\n");
my $mon = cg_psql($node, 'postgres');
my $log_start = -s $node->logfile;

# every server process but the postmaster, to know when they are all gone
my @server = grep { /^\d+$/ } split /\n/,
  $mon->query_safe('SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');

# hold the loads back (the worker and any loader stopped), so that the
# COMMIT waits; then kill the postmaster
my @conngov = cg_conngov_pids($node);
my $postmaster = $node->{_pid};
my $c;
cg_loads_paused(
	$node,
	sub {
		$c = cg_commit_start(
			$node,
			app => 'pmdeath',
			sql => cg_insert_sql('pmdeath'),
			monitor => $mon,
			wait => 1);
		$mon->quit;
		$node->kill9;
		cg_commit_finish($c);
	});
ok(defined $c->{pid}, 'the COMMIT waited for the publish');
is($c->{ret}, 0, 'COMMIT succeeds after the postmaster died');
like(
	${ $c->{err} },
	qr/WARNING:  canceling the wait for the new connection budgets and terminating connection because the postmaster exited\nDETAIL:  The change to conngov.budgets is committed/,
	'the WARNING says the wait ended because the postmaster exited');

# the old processes leave by themselves: the session after its commit,
# conngov's on their next look, the others on theirs
my $end = time() + $TO;
my @left;
while (1)
{
	@left = grep { alive($_) } ($c->{pid}, @conngov, @server);
	# the postmaster.pid check of the restart needs the postmaster reaped
	push @left, $postmaster if kill 0, $postmaster;
	last if !@left || time() > $end;
	usleep(50_000);
}
is("@left", '', 'every server process has exited');

my $log = slurp_file($node->logfile, $log_start);
unlike($log, qr/PANIC/, 'no PANIC in the server log');

# a restart (crash recovery) finds the change committed, and applies it
$node->start;
is($node->safe_psql('postgres',
		"SELECT count(*) FROM conngov.budgets WHERE name = 'pmdeath'"),
	1, 'after a restart, the row is there');
ok( defined cg_poll_for(
		$node, "SELECT count(*) FROM conngov.usage() WHERE budget = 'pmdeath'",
		1),
	'and it applies');

$node->stop;
done_testing();
