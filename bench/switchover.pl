
# Copyright (c) 2026, conngov developers

# bench/switchover.pl: run by bench/switchover.sh (see there).  Two Patroni
# fleets of the fleet suite's harness (test/fleet/FleetTest.pm) side by
# side: A without conngov (shared_preload_libraries empty), B with conngov
# preloaded and budgets loaded (a catch-all of 0 with a 1 s idle timeout,
# and role budgets).  Then ROUNDS switchovers on each, A and B in turn, the
# leader handing over to the next node each time.  Per switchover:
#   command: how long `patronictl switchover --force` took (it returns
#            once the candidate has taken the leader lock and promoted);
#   writable: from the command's start until the candidate answers
#            pg_is_in_recovery() = false (polled every 20 ms);
#   healthy: from the command's start until the old primary streams from
#            the new one and every standby has replayed its writes.
# Prints each figure, the medians and B/A.
use strict;
use warnings FATAL => 'all';

# PostgreSQL::Test::Utils sends STDOUT and STDERR to its log once loaded:
# keep the originals for the report and the progress lines
my ($out, $err);

BEGIN
{
	open($out, '>&', \*STDOUT) or die "dup STDOUT: $!";
	open($err, '>&', \*STDERR) or die "dup STDERR: $!";
	$out->autoflush(1);
	$err->autoflush(1);
}

use FleetTest;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time);

my $rounds = $ARGV[0] // 5;

my %fleet = (
	A => FleetTest->new(conngov => 0, prefix => 'a_'),
	B => FleetTest->new(conngov => 1, prefix => 'b_'));
print $err "bench: starting fleet A (no conngov) and fleet B (conngov)\n";
$_->start for @fleet{qw(A B)};
$fleet{B}->node('node1')->safe_psql(
	'postgres', q{INSERT INTO conngov.budgets
	(name, application_pattern, max_connections, priority, node_role, idle_timeout) VALUES
	('rw_primary', 'rw-%', 2, 10, 'primary', NULL),
	('ro_standby', 'ro-%', 3, 10, 'standby', NULL),
	('zz_all', '%', 0, 1000, 'any', '1s')});
$fleet{B}->wait_healthy('node1');

my %leader = (A => 'node1', B => 'node1');
my %fig;    # side => figure => [values]
for my $round (1 .. $rounds)
{
	for my $side (qw(A B))
	{
		my $f = $fleet{$side};
		my $from = $leader{$side};
		my $to = $from eq 'node3' ? 'node1' : 'node' . (substr($from, 4) + 1);
		my $cand = $f->node($to);
		my $t0 = time;
		my $command = $f->switchover($from, $to);
		FleetTest::fl_poll(
			sub {
				my ($rc, $out) = $cand->psql('postgres', 'SELECT pg_is_in_recovery()');
				$rc == 0 && $out eq 'f';
			},
			every => 0.02);
		my $writable = time - $t0;
		$f->wait_healthy($to);
		my $healthy = time - $t0;
		$leader{$side} = $to;
		push @{ $fig{$side}{command} }, $command;
		push @{ $fig{$side}{writable} }, $writable;
		push @{ $fig{$side}{healthy} }, $healthy;
		printf $err "bench: round %d %s %s -> %s: command %.2f s, writable %.2f s, healthy %.2f s\n",
		  $round, $side, $from, $to, $command, $writable, $healthy;
	}
}
$_->stop for @fleet{qw(A B)};

sub median
{
	my @v = sort { $a <=> $b } @_;
	return @v % 2 ? $v[ $#v / 2 ] : ($v[ @v / 2 - 1 ] + $v[ @v / 2 ]) / 2;
}

print $out "Patroni switchover, $rounds per side, A and B in turn (median [min .. max], seconds)\n";
print $out "A: no conngov (shared_preload_libraries empty)\n";
print $out "B: conngov preloaded, 3 budgets (catch-all 0 with idle_timeout 1s, node_role budgets)\n\n";
print $out "| figure | A | B | B/A |\n|---|--:|--:|--:|\n";
for my $what (qw(command writable healthy))
{
	my ($va, $vb) = map { $fig{$_}{$what} } qw(A B);
	my @s = sort { $a <=> $b } @$va;
	my @t = sort { $a <=> $b } @$vb;
	printf $out "| %s | %.2f [%.2f .. %.2f] | %.2f [%.2f .. %.2f] | %.2f |\n", $what,
	  median(@$va), $s[0], $s[-1], median(@$vb), $t[0], $t[-1],
	  median(@$vb) / median(@$va);
}
