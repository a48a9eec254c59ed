
# Copyright (c) 2026, conngov developers

# Review of 1.2: a paced login that then waits for a place does not keep
# its token.  A login whose token was reserved (pacing) gives its place
# back while it waits for the token; when the token is due and the budget
# is full, it queues for a place (login_wait).  It used to keep the token
# while queued, so logins paced one interval apart and then queued were all
# admitted at the same instant once places freed together (a pool
# restart): two admissions of a budget with login_rate 0.1 (burst 1) a few
# milliseconds apart, against "over any interval of t seconds at most
# login_rate * t + login_burst logins".  A queued login now gives its token
# back and is rated again once it has a place.
#
# The rate is low (a token every 10 s), so that how fast the machine is
# decides nothing; steps wait on the server's own figures (stats(),
# usage()), admission times are the "connection authorized" log lines.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node('pacedq', max_connections => 20,
	conf => "log_connections = on\nauthentication_timeout = '10min'\n");
my $m = cg_psql($node, 'postgres');
sub sql { return $m->query_safe($_[0]); }

cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, login_rate, login_burst, login_wait, max_waiting',
	"('r', 'r-%', NULL, 2, 0.1, 1, '5 min', 5)", { monitor => $m });

# r-1 takes the burst's token and a place
my $h1 = cg_hold($node, user => 'regress_app', app => 'r-1', monitor => $m);
ok($h1->{ok}, 'r-1 admitted');

# r-2 and r-3 find a place but no token: each reserves one and paces
my $offset = -s $node->logfile;
my @c;
for my $n (2, 3)
{
	my ($out, $err) = ('', '');
	push @c,
	  IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-d',
			cg_connstr($node, user => 'regress_app', app => "r-$n"),
			'-c', $cg_held_sql
		],
		'<', \undef, '>', \$out, '2>', \$err);
	cg_poll_is($node, "SELECT paced FROM conngov.stats() WHERE budget = 'r'",
		$n - 1, "r-$n paces for its token", monitor => $m);
}

# the budget fills with an exempt session (a superuser is never rated);
# r-2 and r-3 come back for a place when their tokens are due, and queue
my $su = cg_hold($node, app => 'r-su', monitor => $m);
ok($su->{ok}, 'a superuser session takes the last place');
cg_poll_is($node, "SELECT total || '|' || waiting FROM conngov.usage() WHERE budget = 'r'",
	'2|2', 'r-2 and r-3 wait for a place', monitor => $m);

# two places free at once
sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name IN ('r-1', 'r-su')");
cg_poll_is($node,
	"SELECT count(*) FROM pg_stat_activity WHERE application_name IN ('r-2', 'r-3') AND state = 'active'",
	'2', 'r-2 and r-3 are admitted', monitor => $m);
my @at = sort { $a <=> $b } map { cg_epoch($node, $_) } (
	slurp_file($node->logfile, $offset) =~
	  /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+) \[\d+\] .*connection authorized: user=regress_app .*application_name=r-[23]/mg
);
is(scalar(@at), 2, 'two admissions in the log');
diag(sprintf('gap between the admissions: %.3f s', $at[1] - $at[0])) if @at == 2;
# at most 0.1 * t + 1 logins in any t seconds: the second one 10 s after
# the first at the earliest (less 50 ms for the log lines' scheduling)
cmp_ok($at[1] - $at[0], '>=', 10 - 0.050,
	'the second admission comes one interval (10 s) after the first');

sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'r-%'");
$_->finish for @c;
$h1->{h}->finish;
$su->{h}->finish;
cg_poll_is($node, "SELECT total || '|' || waiting FROM conngov.usage() WHERE budget = 'r'",
	'0|0', 'no charge left', monitor => $m);
$m->quit;
$node->stop;
done_testing();
