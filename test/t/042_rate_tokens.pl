
# Copyright (c) 2026, conngov developers

# Login-rate limits, who uses a token and what a refused client reads: a
# login refused for the budget's limit or for the others' floors uses no
# token; exempt roles are never limited and use none; late naming is rated
# like a login; the refusal's text, SQLSTATE class and retry-after; stats()
# and events().  The rates are so low (one token per 1000 s) that no token
# comes back during the test: every outcome is decided by the tokens
# counted, never by the clock.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node('rate_tokens', max_connections => 20);
$node->safe_psql('postgres', 'CREATE ROLE regress_dba LOGIN SUPERUSER;');
my $m = cg_psql($node, 'postgres');

my $cols =
  'name, application_pattern, role_name, max_connections, min_connections, login_rate, login_burst';
# (oversubscribed on purpose: the floor takes every free slot below)
$node->psql('postgres',
	"INSERT INTO conngov.budgets ($cols) VALUES "
	  . "('batch', 'batch%', 'regress_app', 2, 0, 0.001, 3), "
	  . "('ex', 'ex%', NULL, 10, 0, 0.001, 1), "
	  . "('fl', 'fl%', 'regress_app', 10, 0, 0.001, 2), "
	  . "('late', 'late%', 'regress_app', 10, 0, 0.001, 1), "
	  . "('floor', 'floorapp%', 'regress_app', 17, 0, NULL, NULL)");
$node->psql('postgres',
	"INSERT INTO conngov.budgets (name, application_pattern, max_connections, mode, login_rate, login_burst) "
	  . "VALUES ('mon', 'mon%', 10, 'monitor', 0.001, 1)");
$m->query_safe('SELECT conngov.reload()');

sub sql { return $m->query_safe($_[0]); }

sub login
{
	my ($app, %opt) = @_;
	return cg_login($node, user => $opt{user} // 'regress_app', app => $app,
		%opt);
}

my $rate_re = sub {
	my ($budget, $rate, $burst) = @_;
	my $logins = $rate eq '1' ? 'login' : 'logins';
	return
	  qr/FATAL:  connection budget "$budget": login rate exceeded\nDETAIL:  Budget "$budget" admits $rate $logins per second \(burst $burst\)\.\nHINT:  Retry in \d+ (?:ms|s), or raise conngov\.budgets\.login_rate for "$budget"\./;
};

###########################################################################
# the limit's refusals use no token
my $h1 = cg_hold($node, user => 'regress_app', app => 'batch-h1', monitor => $m);
my $h2 = cg_hold($node, user => 'regress_app', app => 'batch-h2', monitor => $m);
ok($h1->{ok} && $h2->{ok}, 'two logins take two of the three tokens');
for my $i (1 .. 5)
{
	my ($rc, $out, $err) = login("batch-r$i");
	like($err, qr/FATAL:  connection budget "batch" exhausted/,
		"limit refusal $i: the budget's own refusal");
}
cg_release($node, $m, $h1);
cg_poll_for($node, "SELECT total FROM conngov.usage() WHERE budget = 'batch'",
	'1', monitor => $m);
my ($rc, $out, $err) = login('batch-3');
is($rc, 0, 'after 5 refusals for the limit, the third token is still there');
($rc, $out, $err) = login('batch-4');
like($err, $rate_re->('batch', '0.001', 3),
	'the fourth login is refused for the rate, with the SPEC\'s text');
like($err, qr/HINT:  Retry in \d+ s/, '... and the time until the next token');
cg_release($node, $m, $h2);

is( sql("SELECT admitted || '|' || refused || '|' || refused_rate || '|' || refused_for_floors FROM conngov.stats() WHERE budget = 'batch'"),
	'3|5|1|0', 'stats(): 3 admitted, 5 refused for the limit, 1 for the rate');
is( sql("SELECT count(*) || '|' || min(detail) FROM conngov.events() WHERE kind = 'refused_rate' AND budget = 'batch'"),
	'1|login_rate 0.001, burst 3; next token in '
	  . sql("SELECT substring(detail from 'next token in (\\d+ ms)') FROM conngov.events() WHERE kind = 'refused_rate' AND budget = 'batch'"),
	'events(): one refused_rate, with the rate, burst and next token');

###########################################################################
# the floors' refusals use no token
my $free = sql('SELECT normal_free FROM conngov.headroom()');
# (the oversubscription WARNING again: not through the monitor)
$node->psql('postgres',
	"UPDATE conngov.budgets SET min_connections = $free WHERE name = 'floor'");
sql('SELECT conngov.reload()');
for my $i (1 .. 4)
{
	($rc, $out, $err) = login("fl-r$i");
	like($err,
		qr/FATAL:  connection budget "fl": the free connection slots are guaranteed to other budgets/,
		"floor refusal $i");
}
$node->psql('postgres',
	"UPDATE conngov.budgets SET min_connections = 0 WHERE name = 'floor'");
sql('SELECT conngov.reload()');
($rc) = login('fl-1');
is($rc, 0, 'after 4 refusals for the floors, the first token is there');
($rc) = login('fl-2');
is($rc, 0, '... and the second');
($rc, $out, $err) = login('fl-3');
like($err, $rate_re->('fl', '0.001', 2), 'the third is refused for the rate');
is( sql("SELECT admitted || '|' || refused_for_floors || '|' || refused_rate FROM conngov.stats() WHERE budget = 'fl'"),
	'2|4|1', 'stats(): 2 admitted, 4 refused for the floors, 1 for the rate');

###########################################################################
# exempt roles are never limited, and use no token
for my $i (1 .. 3)
{
	($rc) = login("ex-dba$i", user => 'regress_dba');
	is($rc, 0, "a superuser login $i is never limited");
}
($rc) = login('ex-1');
is($rc, 0, 'the exempt logins used no token: the one token is there');
($rc, $out, $err) = login('ex-2');
like($err, $rate_re->('ex', '0.001', 1), 'then the budget is out of tokens');
($rc) = login('ex-dba4', user => 'regress_dba');
is($rc, 0, '... and a superuser still logs in');
is( sql("SELECT admitted || '|' || refused_rate FROM conngov.stats() WHERE budget = 'ex'"),
	'5|1', 'stats(): exempt logins are admitted, never refused');

###########################################################################
# late naming is rated like a login
my $unnamed = $node->connstr('postgres') . " user=regress_app application_name=''";
($rc, $out, $err) = cg_login($node, connstr => $unnamed,
	sql => "SET application_name = 'late-1'; SELECT 'late ran'");
ok($rc == 0 && $out =~ /late ran/, 'a late name takes the budget\'s one token');
($rc, $out, $err) = cg_login($node, connstr => $unnamed,
	sql => "SET application_name = 'late-2'; SELECT 'late ran'");
like($err, $rate_re->('late', '0.001', 1), 'the next late name is refused for the rate');
unlike($out, qr/late ran/, '... before its statement runs');
is( sql("SELECT admitted || '|' || refused_rate || '|' || total FROM conngov.stats() JOIN conngov.usage() USING (budget) WHERE budget = 'late'"),
	'1|1|0', 'stats(): the late names counted like logins, no charge left');

###########################################################################
# a monitor budget admits logins over the rate and records them
for my $i (1 .. 3)
{
	($rc) = login("mon-$i");
	is($rc, 0, "monitor budget: login $i admitted");
}
is( sql("SELECT admitted || '|' || would_refuse || '|' || refused_rate FROM conngov.stats() WHERE budget = 'mon'"),
	'3|2|0', 'stats(): two would have been refused for the rate');
is( sql("SELECT count(*) FROM conngov.events() WHERE kind = 'would_refuse_rate' AND budget = 'mon'"),
	'2', 'events(): two would_refuse_rate');

###########################################################################
# the usage history counts refusals by reason: once the worker has closed
# the minutes of the refusals above (within a second of their end)
cg_poll_is($node,
	"SELECT sum(refused_limit) || '|' || sum(refused_rate) FROM conngov.history(now() - interval '1 hour', now() + interval '1 hour', 'batch')",
	'5|1', 'history(): 5 refusals for the limit and 1 for the rate',
	monitor => $m);

###########################################################################
# validation
my ($vrc, $vout, $verr) = $node->psql('postgres',
	"INSERT INTO conngov.budgets (name, max_connections, login_rate) VALUES ('bad', 1, 0)");
like($verr, qr/login_rate of budget "bad" must be between 0\.001 and 1000000 logins per second, not 0/,
	'a zero rate is refused, saying what is allowed');
($vrc, $vout, $verr) = $node->psql('postgres',
	"INSERT INTO conngov.budgets (name, max_connections, login_burst) VALUES ('bad', 1, 5)");
like($verr, qr/login_burst of budget "bad" needs a login_rate/,
	'a burst without a rate is refused');
($vrc, $vout, $verr) = $node->psql('postgres',
	"INSERT INTO conngov.budgets (name, max_connections, login_rate, login_burst) VALUES ('bad', 1, 5, 0)");
like($verr, qr/login_burst of budget "bad" must be between 1 and 1000000, not 0/,
	'a zero burst is refused');
($vrc, $vout, $verr) = $node->psql('postgres',
	"INSERT INTO conngov.budgets (name, max_connections, on_lower) VALUES ('bad', 1, 'kill')");
like($verr, qr/invalid on_lower "kill" for budget "bad"/, 'an unknown on_lower is refused');
is( sql("SELECT login_burst IS NULL AND on_lower = 'refuse_new' FROM conngov.budgets WHERE name = 'floor'"),
	't', 'defaults: no burst, on_lower refuse_new');

$m->quit;
$node->stop;
done_testing();
