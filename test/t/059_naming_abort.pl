
# Copyright (c) 2026, conngov developers

# Review of 1.2: late naming never re-charges a session while its
# transaction aborts.  Naming closes at the end of a session's first
# statement that is not a SET (ExecutorEnd).  A portal left suspended by
# the extended protocol (Execute with a row limit) ends only when it is
# dropped; the review feared that an error in the next message (here a
# Parse with a syntax error, which no hook of conngov sees) would drop it
# inside AbortTransaction and run the ExecutorEnd hook there, re-charging
# the session by the name its first row set, with interrupts held: with a
# full budget and login_wait, an abort waiting for a place that no cancel
# could end.  PostgreSQL marks such a portal failed at abort and skips its
# executor shutdown, so this does not happen; the hook also checks that
# the transaction is in progress before a re-charge.  The test holds the
# path: the abort returns at once, nobody waits, nothing is re-charged, and
# the name is rolled back.
#
# The client speaks the protocol itself over the node's Unix socket (no
# driver suspends a portal and then sends a bad Parse on demand).  Every
# wait is bounded by timeout_default.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use IO::Socket::UNIX;
use IO::Select;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node('abort');
$node->safe_psql('postgres',
	'CREATE TABLE public.t (i int); GRANT SELECT ON public.t TO PUBLIC');
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, login_wait, max_waiting',
	"('full', 'full%', NULL, 1, '50 s', 5)");
my $m = cg_psql($node, 'postgres');
my $hold = cg_hold($node, user => 'regress_app', app => 'full-1', monitor => $m);
ok($hold->{ok}, '"full" is full');

# the protocol, version 3
my $sock = IO::Socket::UNIX->new(
	Type => SOCK_STREAM(),
	Peer => $node->host . '/.s.PGSQL.' . $node->port)
  or die "connect: $!";
my $sel = IO::Select->new($sock);
my $inbuf = '';

sub msg { my ($type, $body) = @_; return $type . pack('N', 4 + length $body) . $body; }
sub put { print $sock $_[0] or die "write: $!"; return; }

# next_msg(): (type, body) of the next message from the server, or ()
# after timeout_default
sub next_msg
{
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	for (;;)
	{
		if (length($inbuf) >= 5)
		{
			my ($type, $len) = unpack('a N', $inbuf);
			if (length($inbuf) >= 1 + $len)
			{
				my $body = substr($inbuf, 5, $len - 4);
				substr($inbuf, 0, 1 + $len) = '';
				return ($type, $body);
			}
		}
		my $left = $deadline - time();
		return () if $left <= 0 || !$sel->can_read($left);
		my $n = sysread($sock, $inbuf, 65536, length $inbuf);
		return () unless $n;
	}
}

# until(types...): the messages up to the first of one of types
sub until_msg
{
	my %want = map { $_ => 1 } @_;
	my @got;
	while (my ($type, $body) = next_msg())
	{
		push @got, [ $type, $body ];
		return @got if $want{$type};
	}
	return @got;
}

# startup without application_name: naming is open
my $startup = pack('N', 196608) . "user\0regress_app\0database\0postgres\0\0";
put(pack('N', 4 + length $startup) . $startup);
my @got = until_msg('Z', 'E');
is($got[-1][0], 'Z', 'the session is ready');
my ($pid) = map { unpack('N', $_->[1]) } grep { $_->[0] eq 'K' } @got;
ok($pid, "its pid is $pid");

# first statement: its first row names the session "full-2"; one row only,
# so the portal stays suspended
put(msg('P', "\0SELECT set_config('application_name', 'full-2', false), g FROM generate_series(1, 3) g\0" . pack('n', 0))
	  . msg('B', "\0\0" . pack('n n n', 0, 0, 0))
	  . msg('E', "\0" . pack('N', 1))
	  . msg('H', ''));
@got = until_msg('s', 'E');
is($got[-1][0], 's', 'the portal is suspended after one row');
is( $m->query_safe("SELECT application_name FROM pg_stat_activity WHERE pid = $pid"),
	'full-2', 'the session calls itself full-2 now');

# a Parse with a syntax error: the transaction aborts and drops the portal
put(msg('P', "\0SELEC\0" . pack('n', 0)) . msg('S', ''));
@got = until_msg('Z');
my ($err) = map { $_->[1] } grep { $_->[0] eq 'E' } @got;
like($err // '', qr/syntax error/, 'the bad Parse gets its syntax error');
is($got[-1][0] // '', 'Z', 'and the session is ready again: the abort did not wait');
is( $m->query_safe(
		"SELECT total || '|' || waiting FROM conngov.usage() WHERE budget = 'full'"),
	'1|0', '"full" still holds one session, nobody waits');

# the session goes on: a statement runs, by its rolled-back name
put(msg('Q', "SELECT current_setting('application_name')\0"));
@got = until_msg('Z');
my ($row) = map { $_->[1] } grep { $_->[0] eq 'D' } @got;
is(defined $row ? substr($row, 6) : undef, '', 'the name is rolled back to none');

put(msg('X', ''));
close($sock);
cg_release($node, $m, $hold);
$m->quit;
$node->stop;
done_testing();
