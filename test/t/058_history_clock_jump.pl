
# Copyright (c) 2026, conngov developers

# Review of 1.2: the usage history after the clock moves forward.  The
# worker closed every missed minute one by one, whatever the gap: a clock
# set a year ahead meant half a million closes in a row, with no interrupt
# check (a stop waited for them) and a ring flooded with minutes that did
# not happen.  Now a gap of up to 60 minutes is closed minute by minute
# (sessions held through it are in each minute), and a longer one is
# skipped: the open minute is closed, the minutes in between get no
# record and no server row, one LOG line and health() say how many.
#
# The server runs under libfaketime, its clock offset read from a file
# that the test rewrites (the monotonic clock is left alone, so sleeps and
# timeouts keep their length).  Two sessions are held all along, so every
# closed minute has a record of peak 2.  The worker is woken by
# pg_reload_conf() (its SIGHUP sets its latch) until it has closed the
# minutes before the clock's; every wait is bounded by timeout_default.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my ($faketime) = grep { -e $_ } map { "$_/faketime/libfaketime.so.1" }
  ('/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib');
plan skip_all => 'libfaketime is not installed' unless $faketime;

my $offset_file = PostgreSQL::Test::Utils::tempdir() . '/faketime';
my $offset;
sub set_offset
{
	my ($secs) = @_;
	$offset = $secs;
	open(my $fh, '>', "$offset_file.new") or die $!;
	print $fh "+$secs\n";
	close($fh);
	rename("$offset_file.new", $offset_file) or die $!;
	return;
}
set_offset(0);

my $node = do
{
	local $ENV{LD_PRELOAD} = $faketime;
	local $ENV{FAKETIME_TIMESTAMP_FILE} = $offset_file;
	local $ENV{FAKETIME_NO_CACHE} = '1';
	local $ENV{FAKETIME_DISABLE_SHM} = '1';
	local $ENV{FAKETIME_DONT_FAKE_MONOTONIC} = '1';
	cg_node('clock');
};
cg_budgets($node, "('held', 'held%', NULL, 5)");
my $mon = cg_psql($node, 'postgres');

# A process the postmaster forks while it starts does not see libfaketime's
# offset (the library is not set up in it yet); a worker restarted later
# does.  So end the first worker and wait for the next one.
my $worker_sql =
  "SELECT pid FROM pg_stat_activity WHERE backend_type = 'conngov worker'";
my $first = $mon->query_safe($worker_sql);
$mon->query_safe("SELECT pg_terminate_backend($first)");
ok( defined cg_poll_for(
		$node,
		"SELECT count(*) FROM ($worker_sql) w WHERE pid <> $first",
		'1', monitor => $mon),
	'a new worker runs');
my @held = map { cg_hold($node, app => "held-$_", monitor => $mon) } 1 .. 2;
is(scalar(grep { $_->{ok} } @held), 2, 'two sessions held');

# the worker has closed every minute before the clock's (poked by SIGHUP)
# (libfaketime re-reads the offset at every clock read: the server's clock
# shows it at once; checked anyway)
sub caught_up
{
	my ($what) = @_;
	my $at_least = time() + $offset - 5;
	my $sql =
	    "SELECT pg_reload_conf() AND clock_timestamp() > to_timestamp($at_least) "
	  . "AND coalesce(max(minute), '-infinity') >= "
	  . "date_trunc('minute', clock_timestamp()) - interval '1 minute' "
	  . "FROM conngov.server_history('-infinity', 'infinity')";
	ok(defined cg_poll_for($node, $sql, 't', monitor => $mon),
		"$what: the worker closed the minutes before the clock's");
	return;
}
# the minutes of the server rows after minute $after, and their gaps
sub rows_after
{
	my ($after) = @_;
	return $mon->query_safe(
		"SELECT count(*) || ' ' || "
		  . "count(*) FILTER (WHERE minute - prev > interval '1 minute') || ' ' || "
		  . "coalesce(sum(extract(epoch FROM minute - prev)::int / 60 - 1), 0) || ' ' || "
		  . "count(*) FILTER (WHERE held IS DISTINCT FROM 2) "
		  . "FROM (SELECT minute, lag(minute, 1, '$after') OVER (ORDER BY minute) AS prev, "
		  . "(SELECT peak FROM conngov.history(s.minute, s.minute, 'held')) AS held "
		  . "FROM conngov.server_history('$after', 'infinity') s "
		  . "WHERE minute > '$after') r");
}
my $skipped_sql =
  "SELECT h->>'skipped_minutes' FROM jsonb_path_query(conngov.health(), "
  . "'\$.checks[*] ? (\@.name == \"history\")') AS h";

# a minute ahead first: the open minute closes now, not at the next one
set_offset(60);
caught_up('at the start');
my $start = $mon->query_safe(
	"SELECT max(minute) FROM conngov.server_history('-infinity', 'infinity')");

# 1. ten minutes ahead: closed one by one, each with the held sessions
set_offset(60 + 600);
caught_up('ten minutes ahead');
my ($n, $gaps, $missing, $bad) = split / /, rows_after($start);
cmp_ok($n, '>=', 10, "ten minutes ahead: $n minutes closed");
is("$gaps $missing", '0 0', 'ten minutes ahead: every minute has its server row');
is($bad, 0, 'ten minutes ahead: every minute has the held sessions at peak 2');
is($mon->query_safe($skipped_sql), '0', 'ten minutes ahead: health() skipped none');

# 2. three days ahead: the open minute closed, the gap skipped, one LOG
my $mid = $mon->query_safe(
	"SELECT max(minute) FROM conngov.server_history('-infinity', 'infinity')");
my $log_offset = -s $node->logfile;
set_offset(60 + 600 + 3 * 86400);
caught_up('three days ahead');
like(slurp_file($node->logfile, $log_offset),
	qr/conngov history skips \d+ minutes, from .* to .*: the clock moved forward by more than 60 minutes/,
	'three days ahead: the skip is logged');
# then two more minutes, closed one by one after the skip
set_offset(60 + 600 + 3 * 86400 + 120);
caught_up('two minutes more');
my ($logged, $from, $to) = slurp_file($node->logfile, $log_offset) =~
  /conngov history skips (\d+) minutes, from (.*) to (.*): the clock/;
is($mon->query_safe("SELECT extract(epoch FROM '$to'::timestamptz - '$from'::timestamptz)::int / 60 + 1"),
	$logged, 'three days ahead: the LOG line names the first and last minutes skipped');
my $skipped = $mon->query_safe($skipped_sql);
is($skipped, $logged, "three days ahead: health() counts the $logged minutes logged");
cmp_ok($skipped, '>=', 3 * 1440 - 2, 'three days ahead: about three days skipped');
cmp_ok($skipped, '<=', 3 * 1440 + 1, 'three days ahead: no more');
($n, $gaps, $missing, $bad) = split / /, rows_after($mid);
is("$gaps $missing", "1 $skipped",
	'three days ahead: one gap in the server rows, of the minutes skipped');
cmp_ok($n, '>=', 3, "three days ahead: $n minutes closed around the gap");
is($bad, 0, 'three days ahead: every minute closed has the held sessions at peak 2');
my @skips = slurp_file($node->logfile, $log_offset) =~ /conngov history skips/g;
is(scalar(@skips), 1, 'three days ahead: one LOG line');

# the worker still does its work: the held sessions are counted, the
# worker is the same process
is(cg_total($node, 'held'), 2, 'the budget still counts the held sessions');
cg_release($node, $mon, @held);
$mon->quit;
$node->stop;
done_testing();
