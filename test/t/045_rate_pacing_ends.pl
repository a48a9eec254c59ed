
# Copyright (c) 2026, conngov developers

# How a wait for a token ends when it does not end in a login: a paced
# login that is terminated leaves no charge and gives its token back (when
# nobody reserved one after it), so the next login is paced, not refused;
# a late name whose statement is cancelled while it waits for its token is
# refused (the session ends) instead of staying charged without one.  One
# token every 20 s and a login_wait of 30 s: a token given back is due
# within the wait, one lost is not; no outcome depends on the clock.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node('rate_pacing_ends', max_connections => 20);
my $m = cg_psql($node, 'postgres');

sub sql { return $m->query_safe($_[0]); }

cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, login_rate, login_burst, login_wait, max_waiting',
	"('tw', 'tw-%', 'regress_app', 5, 0.05, 1, '30 s', 0)",
	"('ln', 'ln-%', 'regress_app', 5, 0.05, 1, '30 s', 0)",
	{ monitor => $m });


sub start_login
{
	my ($app) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-d',
			cg_connstr($node, user => 'regress_app', app => $app),
			'-c', 'SELECT 1'
		],
		'<', \undef, '>', \$out, '2>', \$err);
	return $h;
}

###########################################################################
# a paced login terminated: no charge left, its token given back
my ($rc) = cg_login($node, user => 'regress_app', app => 'tw-1');
is($rc, 0, 'the first login takes the only token');
my $h2 = start_login('tw-2');
cg_poll_is($node, "SELECT paced FROM conngov.stats() WHERE budget = 'tw'",
	'1', 'the second login waits for its token', monitor => $m);
my @wp = cg_waiter_pids($node, 'regress_app');
is(scalar(@wp), 1, 'one backend waits (authenticating)');
sql("SELECT pg_terminate_backend($wp[0])");
$h2->finish;
isnt($h2->result, 0, 'the terminated login fails');
cg_poll_is($node, "SELECT total FROM conngov.usage() WHERE budget = 'tw'",
	'0', 'it left no charge', monitor => $m);
my $h3 = start_login('tw-3');
cg_poll_is($node,
	"SELECT paced || '|' || refused_rate FROM conngov.stats() WHERE budget = 'tw'",
	'2|0',
	'its token was given back: the next login is paced within login_wait, not refused',
	monitor => $m);
@wp = cg_waiter_pids($node, 'regress_app');
sql("SELECT pg_terminate_backend($_)") for @wp;
$h3->finish;

###########################################################################
# a late name cancelled while it waits for its token: refused
my $unnamed = $node->connstr('postgres') . " user=regress_app application_name=''";
my ($out, $err);
($rc, $out, $err) = cg_login($node, connstr => $unnamed,
	sql => "SET application_name = 'ln-1'; SELECT 'first ran'");
like($out, qr/first ran/, 'a late name takes the only token');
($rc, $out, $err) = cg_login($node, connstr => $unnamed,
	sql => "SET statement_timeout = '1s'; SET application_name = 'ln-2'; SELECT 'second ran'");
like($err, qr/FATAL:  connection budget "ln": login rate exceeded/,
	'the next late name, cancelled while waiting for its token, is refused');
unlike($out, qr/second ran/, '... and its statement never ran');
cg_poll_is($node, "SELECT total FROM conngov.usage() WHERE budget = 'ln'",
	'0', 'no charge left', monitor => $m);
is( sql("SELECT paced || '|' || refused_rate FROM conngov.stats() WHERE budget = 'ln'"),
	'1|1', 'stats(): paced, then refused for the rate');

$m->quit;
$node->stop;
done_testing();
