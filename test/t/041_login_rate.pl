
# Copyright (c) 2026, conngov developers

# login_rate is exact under concurrency: N clients, released together at a
# barrier (an advisory lock the test holds), log in as fast as they can for
# a few seconds against a budget with a login rate; over the storm the
# budget admits at most rate * t + burst and at least rate * t - 1 logins,
# for several rates and bursts.  t is measured on the server's clock, never
# the client's:
#  - at most: t from the release of the barrier (clock_timestamp() in the
#    statement that releases it) to after every client exited, an interval
#    that holds every admission;
#  - at least: t from the first admission ("connection authorized" in the
#    log, written after the check) to the last refusal for the rate
#    (events()' at), an interval in which logins were always asking.
# How long the storm lasts only changes t, never the verdict.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use POSIX ();
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $clients = 6;
my $storm_s = 3;

my $node = cg_node(
	'login_rate',
	max_connections => 60,
	conf => "log_connections = on\nconngov.log_refusals = off\n"
	  . "conngov.event_capacity = 20000\n");
my $m = cg_psql($node, 'postgres');

# the storm's client (bench/storm.c): libpq in a loop, far faster than a
# psql per login, so that a few clients ask for more than any rate here
my $storm = "$PostgreSQL::Test::Utils::tmp_check/storm";
my $pgc = $ENV{PG_CONFIG} // 'pg_config';
system("gcc -O2 -o $storm bench/storm.c -I\$($pgc --includedir) "
	  . "-L\$($pgc --libdir) -lpq") == 0
  or die 'cannot build bench/storm.c';

my @runs = (
	{ name => 'r5', rate => 5, burst => undef, eff_burst => 5 },
	{ name => 'r20', rate => 20, burst => undef, eff_burst => 20 },
	{ name => 'r10b4', rate => 10, burst => 4, eff_burst => 4 },);
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections, login_rate, login_burst',
	(map { "('$_->{name}', '$_->{name}-%', 'regress_app', 15, $_->{rate}, "
		  . ($_->{burst} // 'NULL') . ')' } @runs),
	{ monitor => $m });

sub sql { return $m->query_safe($_[0]); }

# storm(app, key): fork the clients; each waits at the barrier (advisory
# lock key, held by the test) in a superuser session, then logs in as
# regress_app with application_name app again and again until the stop
# file exists.  Returns the server's epoch at the release and after the
# last client exited.
sub storm
{
	my ($app, $key) = @_;
	my $stop = "$PostgreSQL::Test::Utils::tmp_check/stop-$app";
	unlink $stop;
	sql("SELECT pg_advisory_lock($key)");
	my @pids;
	for my $i (1 .. $clients)
	{
		my $pid = fork();
		die "fork: $!" unless defined $pid;
		if ($pid == 0)
		{
			open STDOUT, '>', '/dev/null';
			open STDERR, '>', '/dev/null';
			system('psql', '-X', '-q', '-d',
				$node->connstr('postgres') . ' application_name=rate-gate',
				'-c', "SELECT pg_advisory_lock_shared($key)");
			system($storm,
				$node->connstr('postgres')
				  . " user=regress_app application_name=$app-$i",
				$PostgreSQL::Test::Utils::timeout_default, $stop);
			POSIX::_exit(0);
		}
		push @pids, $pid;
	}
	cg_poll_for($node,
		"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $key",
		$clients, monitor => $m);
	my $released = sql(
		"SELECT pg_advisory_unlock($key), extract(epoch FROM clock_timestamp())::numeric(20,6)"
	);
	$released =~ s/^t\|//;
	# the length of the storm decides nothing: t is measured on the server
	usleep($storm_s * 1_000_000);
	open my $fh, '>', $stop or die "$stop: $!";
	close $fh;
	waitpid($_, 0) for @pids;
	my $ended = sql("SELECT extract(epoch FROM clock_timestamp())::numeric(20,6)");
	return ($released, $ended);
}

# the epoch of the first "connection authorized" of app since offset
sub first_admission
{
	my ($app, $offset) = @_;
	my $log = slurp_file($node->logfile, $offset);
	my ($ts) = $log =~
	  /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+) \[\d+\] .*connection authorized: user=regress_app .*application_name=$app-\d/m;
	return defined $ts ? cg_epoch($node, $ts) : undef;
}

my $key = 7100;
for my $r (@runs)
{
	my $offset = -s $node->logfile;
	my ($released, $ended) = storm($r->{name}, ++$key);
	my ($admitted, $refused) = split /\|/,
	  sql("SELECT admitted || '|' || refused_rate FROM conngov.stats() WHERE budget = '$r->{name}'");
	my $last_refusal = sql(
		"SELECT extract(epoch FROM max(at))::numeric(20,6) FROM conngov.events() WHERE kind = 'refused_rate' AND budget = '$r->{name}'"
	);
	my $first = first_admission($r->{name}, $offset);

	my $t_up = $ended - $released;
	my $max = $r->{rate} * $t_up + $r->{eff_burst};
	my $t_low = (defined $first && $last_refusal ne '') ? $last_refusal - $first : 0;
	my $min = $r->{rate} * $t_low - 1;
	diag(sprintf(
			'%s: rate %g burst %d: %d admitted, %d refused for the rate; '
			  . 'at most %.1f (t %.3f s), at least %.1f (t %.3f s)',
			$r->{name}, $r->{rate}, $r->{eff_burst}, $admitted, $refused,
			$max, $t_up, $min, $t_low));
	ok($refused > 0, "$r->{name}: the storm asked for more than the rate");
	ok($admitted <= $max,
		"$r->{name}: at most rate * t + burst admitted over the storm");
	ok($t_low > 0 && $admitted >= $min,
		"$r->{name}: at least rate * t - 1 admitted while logins kept asking");
}

$m->quit;
$node->stop;
done_testing();
