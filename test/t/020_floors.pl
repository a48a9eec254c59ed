
# Copyright (c) 2026, conngov developers

# Floors (min_connections): a budget with floor 20, below it, keeps its 20
# normal slots while another budget storms against max_connections = 100,
# round after round.  Each round: a storm of 150 logins of "batch" (limit
# 200, so only the floor stops it) is admitted up to the floor and no
# further; then "core_api" opens its 20 connections while a second storm
# wave of 100 runs at the same moment: all 20 get in, none sees
# PostgreSQL's reserved-slots error or a floor refusal, and every login of
# the wave is refused for the floor with the SPEC's message.  An exempt
# role may take a floor slot.  Admitted clients hold their session at a
# gate until every outcome is counted.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $floor_refusal =
  qr/FATAL:  connection budget "batch": the free connection slots are guaranteed to other budgets\nDETAIL:  \d+ normal connection slots? (?:is|are) free; budget "core_api" \(\d+ unused of 20 guaranteed\) is guaranteed them\.\nHINT:  Lower min_connections of those budgets or raise max_connections of the server\./;
# PostgreSQL's own refusal when no PGPROC is free at all: it comes before
# any extension runs (InitProcess), so a client may meet it in a storm
my $too_many = qr/FATAL:  sorry, too many clients already/;

# classify(handle): finish the clients; counts of admitted, refused for
# floors, PostgreSQL's reserved-slots refusal, no PGPROC free, other.
sub classify
{
	my ($clients) = @_;
	my %r = (admitted => 0, floors => 0, reserved => 0, toomany => 0,
		other => 0, errors => []);
	for my $c (@$clients)
	{
		$c->{h}->finish;
		my $err = ${ $c->{err} };
		if ($c->{h}->result == 0) { $r{admitted}++; next; }
		push @{ $r{errors} }, $err;
		if ($err =~ $floor_refusal) { $r{floors}++; }
		elsif ($err =~ $cg_reserved_refusal) { $r{reserved}++; }
		elsif ($err =~ $too_many) { $r{toomany}++; }
		else { $r{other}++; }
	}
	return \%r;
}

# storm(clients, app): batch logins at once, the admitted ones held at the
# gate; returns once each is decided (refused, or waiting at the gate).
my ($node, $gate);

sub storm
{
	my ($n, $app) = @_;
	my $c = cg_start_clients(
		$node,
		clients => $n,
		app => $app,
		user => 'regress_app',
		gate => $gate);
	cg_gate_wait($gate, $c);
	return $c;
}

$node = cg_node('floors', max_connections => 100,
	conf => "conngov.event_capacity = 100000\n");
$node->safe_psql('postgres',
	'CREATE ROLE regress_dba LOGIN; ALTER SYSTEM SET conngov.exempt_roles = regress_dba; SELECT pg_reload_conf();');
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, min_connections',
	"('core_api', 'core-api%', 'regress_app', 30, 20)",
	"('batch', 'batch%', NULL, 200, 0)");
$gate = cg_gate($node);
my $g = $gate->{psql};
my $normal =
  $g->query_safe('SELECT normal_slots FROM conngov.headroom()');
is($normal, 97, '97 normal slots (100 minus 3 for superusers)');

my $rounds = 5;
my ($floor_refused_seen, $toomany_core, $toomany_batch) = (0, 0, 0);
for my $round (1 .. $rounds)
{
	# the storm: batch takes every slot but the floor's
	my $storm = storm(150, 'batch-storm');
	my $free = $g->query_safe(
		'SELECT normal_free || \'|\' || guaranteed_unused || \'|\' || shared_free FROM conngov.headroom()');
	is($free, '20|20|0',
		"round $round: after the storm 20 normal slots are free, all guaranteed to core_api");

	if ($round == 1)
	{
		# an exempt role may take a floor slot, and gives it back
		my ($rc, $out, $err) = cg_login($node, user => 'regress_dba',
			app => 'batch-dba', sql => 'SELECT 1');
		is($rc, 0, 'an exempt role gets in while the free slots are floors')
		  or diag($err);
	}

	# core_api opens its 20 while a second wave of batch storms; a client
	# that finds no PGPROC at all (PostgreSQL's check, before any hook)
	# tries again
	my $wave = cg_start_clients(
		$node,
		clients => 100,
		app => 'batch-wave',
		user => 'regress_app',
		gate => $gate);
	my @core;
	my $core_in = 0;
	my %core_bad = (floors => 0, reserved => 0, other => 0);
	for my $try (1 .. 20)
	{
		my $c = cg_start_clients(
			$node,
			clients => 20 - $core_in,
			app => 'core-api-1',
			user => 'regress_app',
			gate => $gate);
		cg_gate_wait($gate, $c);
		# admitted clients are waiting at the gate: count the exits
		my @exited = grep { !$_->{h}->pumpable } @$c;
		my $r = classify(\@exited);
		$core_bad{$_} += $r->{$_} for qw(floors reserved other);
		$toomany_core += $r->{toomany};
		diag("round $round: core_api: " . join("\n", @{ $r->{errors} }))
		  if $r->{floors} + $r->{reserved} + $r->{other};
		push @core, grep { $_->{h}->pumpable } @$c;
		$core_in = @core;
		last if $core_in >= 20 || $r->{toomany} == 0;
	}
	is($core_in, 20, "round $round: core_api opened its 20 connections");
	is( "$core_bad{floors}|$core_bad{reserved}|$core_bad{other}",
		'0|0|0',
		"round $round: core_api met no floor refusal and no reserved-slots error"
	);
	cg_gate_wait($gate, $wave);

	is( $g->query_safe(
			"SELECT total || '|' || guaranteed_unused FROM conngov.usage() WHERE budget = 'core_api'"
		),
		'20|0',
		"round $round: core_api at its floor, nothing guaranteed is unused");

	cg_gate_release($gate);
	my $rs = classify($storm);
	my $rw = classify($wave);
	classify(\@core);
	cg_gate_close($gate);
	is($rs->{admitted}, 76,
		"round $round: the storm got the 76 slots left (97 - 20 floor - the gate)");
	is($rs->{reserved} + $rs->{other}, 0,
		"round $round: the storm met no reserved-slots error, nothing else")
	  or diag(join("\n", @{ $rs->{errors} }));
	is($rw->{admitted}, 0, "round $round: the wave got nothing");
	is($rw->{reserved} + $rw->{other}, 0,
		"round $round: the wave was refused by the floor, not by PostgreSQL")
	  or diag(join("\n", @{ $rw->{errors} }));
	$floor_refused_seen += $rs->{floors} + $rw->{floors};
	$toomany_batch += $rs->{toomany} + $rw->{toomany};
	like(
		(grep { $_ =~ $floor_refusal } @{ $rw->{errors} }, @{ $rs->{errors} })[0] // '',
		$floor_refusal,
		"round $round: the refusal names core_api's floor");

	cg_poll_is($node,
		"SELECT string_agg(total::text, ',' ORDER BY budget) FROM conngov.usage() WHERE budget IN ('batch', 'core_api')",
		'0,0', "round $round: totals back to 0", monitor => $g);
}
diag("clients that found no PGPROC free (PostgreSQL's own limit, retried for core_api): "
	  . "core_api $toomany_core, batch $toomany_batch");

is( $g->query_safe(
		"SELECT refused_for_floors FROM conngov.stats() WHERE budget = 'batch'"),
	$floor_refused_seen,
	"stats() counts every floor refusal ($floor_refused_seen)");
is( $g->query_safe(
		"SELECT count(*) FROM conngov.events() WHERE kind = 'refused_for_floors' AND budget = 'batch'"
	),
	$floor_refused_seen,
	'one refused_for_floors event per refusal');
is( $g->query_safe(
		"SELECT refused_for_floors FROM conngov.stats() WHERE budget = 'core_api'"),
	0, 'core_api was never refused for floors');

# without the floor, the same storm leaves core_api PostgreSQL's error
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, min_connections',
	"('core_api', 'core-api%', 'regress_app', 30, 0)",
	"('batch', 'batch%', NULL, 200, 0)");
my $storm = storm(150, 'batch-storm');
my ($rc, $out, $err) =
  cg_login($node, user => 'regress_app', app => 'core-api-1');
like($err, $cg_reserved_refusal,
	'control: without a floor the storm leaves core_api the reserved-slots error');
cg_gate_release($gate);
classify($storm);
cg_gate_close($gate);

# two floor budgets: both named in the refusal, both kept
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, min_connections',
	"('core_api', 'core-api%', 'regress_app', 30, 20)",
	"('admin_api', 'admin-api%', 'regress_app', 10, 5)",
	"('batch', 'batch%', NULL, 200, 0)");
$storm = storm(150, 'batch-storm');
is($g->query_safe('SELECT normal_free || \'|\' || guaranteed_unused FROM conngov.headroom()'),
	'25|25', 'two floors: the storm leaves 20 + 5 slots free');
cg_gate_release($gate);
my $r2 = classify($storm);
cg_gate_close($gate);
is($r2->{admitted}, 71, 'two floors: the storm got 97 - 25 - 1 = 71');
like(
	(grep { /guaranteed/ } @{ $r2->{errors} })[0] // '',
	qr/DETAIL:  \d+ normal connection slots? (?:is|are) free; budgets "admin_api" \(5 unused of 5 guaranteed\) and "core_api" \(20 unused of 20 guaranteed\) are guaranteed them\./,
	'two floors: the refusal names both budgets');

cg_gate_quit($gate);
$node->stop;
done_testing();
