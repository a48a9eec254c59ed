
# Copyright (c) 2026, conngov developers

# Release of the charge on every exit path: 500 logins of one budget end by
# normal exit, a FATAL after the charge (unknown database, PostgreSQL's
# reserved-slot refusal), pg_terminate_backend or a client that vanished;
# afterwards the counters equal the real sessions.  CG_RELEASE_ROUNDS (100
# logins each, default 5) makes it longer: "run-tests.sh long" runs 50, that
# is 5000 cycles.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval);

my $t_start = [gettimeofday];

# 20 slots, 3 of them reserved for superusers: 17 for everyone else.  A
# backend polls its client every 100 ms, so one whose client vanished
# notices even while it sleeps.
my $node = cg_node(
	'release',
	max_connections => 20,
	conf => qq(superuser_reserved_connections = 3
client_connection_check_interval = '100ms'
));
cg_budgets($node, "('cycle', 'cycle%', NULL, 50)");
my $su = $node->safe_psql('postgres', 'SELECT current_user');

# "budget total|real sessions" of the budgeted application
my $cycle_state = cg_total_real_sql('cycle', 'cycle%');

# wait until n sessions of app sleep in pg_sleep ($cg_held_sql: they sleep
# until the test terminates them or kills their client)
sub wait_sleeping
{
	my ($app, $n) = @_;
	return cg_poll_for(
		$node,
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app' AND wait_event = 'PgSleep'",
		$n);
}

# how many of the clients' stderr texts match re
sub count_errors
{
	my ($r, $re) = @_;
	return scalar(grep { $_ =~ $re } @{ $r->{errors} });
}

sub log_count
{
	my ($log, $re) = @_;
	my $n = () = $log =~ /$re/g;
	return $n;
}

# end the n sessions of app with pg_terminate_backend (test "round R: name"),
# then wait for their clients (from cg_start_clients): all n must have been
# told of the termination
sub terminate_clients
{
	my ($round, $app, $clients, $n, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '$app'"
		),
		$n,
		"round $round: $name");
	my $r = cg_finish_clients($clients);
	is( count_errors(
			$r,
			qr/FATAL:  terminating connection due to administrator command/),
		$n,
		"round $round: the $n clients were told of the termination");
	return;
}

# "peak|total" of the budget
my $peak_total =
  q{SELECT peak || '|' || total FROM conngov.usage() WHERE budget = 'cycle'};

my $log_start = -s $node->logfile;
my $cycles = 0;

my $rounds = $ENV{CG_RELEASE_ROUNDS} || 5;
for my $round (1 .. $rounds)
{
	my $offset = -s $node->logfile;

	# 20 logins to a database that does not exist: FATAL after the charge.
	# The very first one, alone, shows the charge was taken (peak 1) and
	# given back (total 0).
	if ($round == 1)
	{
		my ($ret, $out, $err) = cg_login(
			$node,
			app => 'cycle-nodb',
			user => 'regress_app',
			dbname => 'nosuchdb');
		like(
			$err,
			qr/FATAL:  database "nosuchdb" does not exist/,
			'first login to a missing database refused by PostgreSQL');
		cg_poll_is($node, $peak_total, '1|0',
			'it was charged (peak 1) and released (total 0)');
		$cycles += 1;
	}
	for my $batch (1 .. 2)
	{
		my $n = ($round == 1 && $batch == 2) ? 9 : 10;
		my $r = cg_storm(
			$node,
			clients => $n,
			app => 'cycle-nodb',
			user => 'regress_app',
			dbname => 'nosuchdb',
			sql => 'SELECT 1');
		is(count_errors($r, qr/FATAL:  database "nosuchdb" does not exist/),
			$n, "round $round, no-database batch $batch: $n refused by PostgreSQL")
		  or diag(join("\n", @{ $r->{errors} }));
		cg_poll_is($node, $cycle_state, '0|0',
			"round $round, no-database batch $batch: budget total back to 0");
		$cycles += $n;
	}

	# 30 normal exits, 10 at a time
	for my $batch (1 .. 3)
	{
		my $r = cg_storm(
			$node,
			clients => 10,
			app => 'cycle-normal',
			user => 'regress_app',
			sql => 'SELECT 1');
		is($r->{admitted}, 10, "round $round, normal batch $batch: 10 admitted")
		  or diag(join("\n", @{ $r->{errors} }));
		cg_poll_is($node, $cycle_state, '0|0',
			"round $round, normal batch $batch: budget total back to 0");
		$cycles += 10;
	}

	# 10 sessions terminated by pg_terminate_backend
	{
		my $h = cg_start_clients(
			$node,
			clients => 10,
			app => 'cycle-term',
			user => 'regress_app',
			sql => $cg_held_sql);
		wait_sleeping('cycle-term', 10);
		cg_poll_is($node, $cycle_state, '10|10',
			"round $round: 10 sleeping sessions, budget total 10");
		terminate_clients($round, 'cycle-term', $h, 10,
			'10 sessions terminated');
		cg_poll_is($node, $cycle_state, '0|0',
			"round $round: after the terminations, budget total back to 0");
		$cycles += 10;
	}

	# 10 clients killed (kill -9) while their query runs: the backends find
	# the socket closed at the next client connection check and exit
	{
		my $h = cg_start_clients(
			$node,
			clients => 10,
			app => 'cycle-drop',
			user => 'regress_app',
			sql => $cg_held_sql);
		wait_sleeping('cycle-drop', 10);
		cg_poll_is($node, $cycle_state, '10|10',
			"round $round: 10 sessions about to lose their client, budget total 10"
		);
		for my $c (@$h)
		{
			$c->{h}->signal('KILL');
			eval { $c->{h}->finish; };
		}
		my $took = cg_poll_for(
			$node,
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cycle-drop'",
			'0');
		ok(defined $took,
			"round $round: the 10 backends whose client vanished are gone");
		cg_poll_is($node, $cycle_state, '0|0',
			"round $round: after the lost clients, budget total back to 0");
		$cycles += 10;
	}

	# PostgreSQL's own reserved-slot refusal, after our charge: 17 sessions
	# hold every non-reserved slot (14 of regress_app, then 3 superuser
	# ones so that the harness's own superuser polls never take one of the
	# 17 places), then 13 logins of regress_app one after another
	{
		my $fill = cg_start_clients(
			$node,
			clients => 14,
			app => 'cycle-fill',
			user => 'regress_app',
			sql => $cg_held_sql);
		wait_sleeping('cycle-fill', 14);
		push @$fill,
		  @{
			cg_start_clients(
				$node,
				clients => 3,
				app => 'cycle-fill',
				user => $su,
				sql => $cg_held_sql)
		  };
		wait_sleeping('cycle-fill', 17);
		cg_poll_is($node, $cycle_state, '17|17',
			"round $round: 17 sessions hold the non-reserved slots, budget total 17"
		);

		# in round 1 nothing has gone past 17 before: the peak moves to 18
		# with the first refused login, which was therefore charged
		cg_poll_is($node, $peak_total, '17|17', 'the peak so far is 17')
		  if $round == 1;

		my ($pg_refused, $ours) = (0, 0);
		my @other;
		for my $i (1 .. 13)
		{
			my ($ret, $out, $err) =
			  cg_login($node, app => 'cycle-reserved', user => 'regress_app');
			cg_poll_is($node, $peak_total, '18|17',
				'the first refused login was charged (peak 18) and released (total 17)')
			  if $round == 1 && $i == 1;
			if ($ret != 0
				&& $err =~
				/$cg_reserved_refusal\n?\z/
			  )
			{
				$pg_refused++;
			}
			else
			{
				push @other, "exit $ret: $err";
			}
			$ours++ if $err =~ /connection budget/;
		}
		is($pg_refused, 13,
			"round $round: 13 logins refused by PostgreSQL's reserved slots")
		  or diag(join("\n", @other));
		is($ours, 0, "round $round: none of them refused by conngov");
		cg_poll_is($node, $cycle_state, '17|17',
			"round $round: after the 13 refusals, budget total back to 17");

		terminate_clients($round, 'cycle-fill', $fill, 17,
			'the 17 holding sessions terminated');
		$cycles += 30;
	}

	cg_poll_is($node, $cycle_state, '0|0',
		"round $round: after the reserved-slot phase, budget total back to 0");

	# every exit path shows in the server log with its SQLSTATE
	my $log = slurp_file($node->logfile, $offset);
	is( log_count(
			$log, qr/ 3D000 \S* ?FATAL:  database "nosuchdb" does not exist/),
		20,
		"round $round: 20 unknown-database FATALs logged");
	is( log_count(
			$log,
			qr/ 57P01 \S* ?FATAL:  terminating connection due to administrator command/
		),
		27,
		"round $round: 27 terminations logged");
	is(log_count($log, qr/ 08006 \S* ?FATAL:  connection to client lost/),
		10, "round $round: 10 lost clients logged");
	is( log_count(
			$log,
			qr/ 53300 \S* ?$cg_reserved_refusal/
		),
		13,
		"round $round: 13 reserved-slot refusals logged");
	is(log_count($log, qr/connection budget/),
		0, "round $round: no conngov refusal logged");
}

is($cycles, 100 * $rounds, 100 * $rounds . ' login cycles in all');

# quiet: the budget holds exactly the sessions that exist, i.e. none
cg_poll_is($node, $cycle_state, '0|0',
	'at the end the budget total equals the real sessions: 0');

# the unbudgeted row holds exactly the other client backends: this query's
cg_poll_is(
	$node,
	cg_total_real_sql('(unbudgeted)', 'cycle%', not_like => 1),
	'1|1',
	'the unbudgeted total equals the other client backends: 1');

# the sessions view agrees
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM conngov.sessions() WHERE login_application_name LIKE 'cycle%'"
	),
	0,
	'sessions() lists no session of the budget');

my $log = slurp_file($node->logfile, $log_start);
my @bad = grep { / (WARNING|ERROR|PANIC):  / } split /\n/, $log;
is(scalar(@bad), 0,
	'no WARNING or ERROR in the server log, from conngov or anything else')
  or diag(join("\n", @bad));
is( log_count(
		$log,
		qr/terminated by signal|background worker "conngov worker" \(PID \d+\) exited/
	),
	0,
	'no process crashed and the conngov worker never exited');

note(sprintf('002_release took %.1f s', tv_interval($t_start)));

$node->stop;
done_testing();
