
# Copyright (c) 2026, conngov developers

# A connection storm: budget 10, 60 simultaneous logins, 5 rounds.  Exactly
# 10 are admitted each round, the other 50 are refused with SQLSTATE 53300
# and the budget's name, and the budget's total is back to 0 afterwards.
# Admitted clients hold their session at a gate (an advisory lock held by a
# superuser session, unbudgeted) until every client is either refused or
# waiting there, so nobody leaves before the last login, at any speed.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node('storm', max_connections => 100);
cg_budgets($node, "('core_api', 'core-api%', NULL, 10)");
my $gate = cg_gate($node);

for my $round (1 .. 5)
{
	my $offset = -s $node->logfile;
	my $r = cg_storm(
		$node,
		clients => 60,
		app => 'core-api-storm',
		user => 'regress_app',
		gate => $gate);
	is($r->{admitted}, 10, "round $round: exactly 10 admitted");
	is($r->{refused}, 50, "round $round: the other 50 refused");
	is($r->{other}, 0, "round $round: no other failure")
	  or diag(join("\n", @{ $r->{errors} }));
	like(
		$r->{errors}[0] // '',
		qr/FATAL:  connection budget "core_api" exhausted\nDETAIL:  Budget "core_api" allows 10 connections \(application_name LIKE 'core-api%'\); 10 are in use\.\nHINT:  Close idle connections of this application, or raise conngov.budgets.max_connections for "core_api"\./,
		"round $round: the refusal names the budget, its limit and usage");

	# one log line per refusal, with SQLSTATE 53300
	my $log = slurp_file($node->logfile, $offset);
	my $lines = () = $log =~ /53300 \S* ?FATAL:  connection budget "core_api" exhausted/g;
	is($lines, 50, "round $round: 50 refusals logged with SQLSTATE 53300");

	$node->poll_query_until('postgres',
		"SELECT total = 0 FROM conngov.usage() WHERE budget = 'core_api'")
	  or diag("total stuck at " . cg_total($node, 'core_api'));
	is(cg_total($node, 'core_api'), 0, "round $round: total back to 0");
}

is( $node->safe_psql(
		'postgres', "SELECT peak FROM conngov.usage() WHERE budget = 'core_api'"),
	10,
	'peak never went over the budget');

cg_gate_quit($gate);
$node->stop;
done_testing();
