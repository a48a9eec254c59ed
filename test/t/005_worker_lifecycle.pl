
# Copyright (c) 2026, conngov developers

# The worker's lifecycle: running, restarted when killed, SIGHUP, no CPU when idle.
#
# No outcome depends on the machine's speed: waits are bounded by
# timeout_default (cg_late() for how late a worker action may be, with the
# time taken shown), the worker's SIGHUP is awaited through a whole worker
# pass (cg_worker_pass), and the idle test counts wake-ups, which load does
# not add.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use POSIX ();
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $node = cg_node('lifecycle');
my $mon = cg_psql($node, 'postgres');

my $cols =
  'name, application_pattern, role_name, max_connections, mode, '
  . 'idle_timeout, idle_in_transaction_timeout, idle_keep';

sub sql { return $node->safe_psql('postgres', $_[0]); }


###########################################################################
# the worker runs, once, connected to no database (the loader, connected
# to conngov.database, makes way for whole-database operations: 025)
is( sql("SELECT count(*) || '|' || count(datname) FROM pg_stat_activity WHERE backend_type = 'conngov worker'"),
	'1|0',
	'one conngov worker, connected to no database');
my $log = slurp_file($node->logfile);
my $starts = () = $log =~ /LOG:  conngov worker started; budgets are read from database "postgres"/g;
is($starts, 1, 'the worker logged its start once');
is( sql("SELECT count(*) FROM conngov.sessions() s JOIN pg_stat_activity a USING (pid) WHERE a.backend_type = 'conngov worker'"),
	0, 'the worker is not counted');

###########################################################################
# pg_terminate_backend(worker): back after its restart time (1 s), sweeps
# resume
{
	cg_set_budgets($node, $cols,
		"('lc_pre', 'pre-%', NULL, 10, 'enforce', '2s', NULL, 0)");
	my $pre = cg_session($node, 'pre-1', 'regress_app');
	my $old = cg_worker_pid($node);
	my $offset = -s $node->logfile;
	my $t0 = time();
	is(sql("SELECT pg_terminate_backend($old)"), 't', 'worker terminated');
	my $new = '';
	while (time() - $t0 < $PostgreSQL::Test::Utils::timeout_default)
	{
		$new = $mon->query_safe(
			"SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity WHERE backend_type = 'conngov worker'"
		);
		last if $new =~ /^\d+$/ && $new ne $old;
		usleep(20_000);
	}
	my $took = time() - $t0;
	diag(sprintf('new worker after %.2f s', $took));
	ok($new =~ /^\d+$/ && $new ne $old && $took < 1.0 + cg_late(),
		'a new worker runs (bound: restart time 1 s + cg_late())')
	  or diag("worker pid(s) after $took s: '$new' (old $old)");
	ok( cg_wait_log(
			$node, qr/LOG:  conngov worker started; budgets are read from database "postgres"/,
			$offset),
		'the new worker logged "conngov worker started" again');
	unlike(
		slurp_file($node->logfile, $offset),
		qr/terminated by signal|terminating any other active server processes|reinitializing/,
		'no crash restart of the server');

	# a new budget: the new worker loads it and ends its idle session
	cg_set_budgets(
		$node, $cols,
		"('lc_pre', 'pre-%', NULL, 10, 'enforce', '2s', NULL, 0)",
		"('lc_post', 'post-%', NULL, 10, 'enforce', '1s', NULL, 0)");
	my $post = cg_session($node, 'post-1', 'regress_app');
	my %gone = cg_wait_gone($mon, undef, $pre->{pid}, $post->{pid});
	ok(defined $gone{ $pre->{pid} },
		'a session idle since before the restart is ended by the new worker');
	ok(defined $gone{ $post->{pid} },
		'a session of a budget added after the restart is ended');
	cg_wait_log($node, qr/conngov ended session $post->{pid} /, $offset);
	my %e = map { $_->{pid} => $_ } cg_log_endings($node, $offset);
	is( join(',', map { $e{$_} ? "$e{$_}{verb} $e{$_}{budget}" : 'none' } $pre->{pid}, $post->{pid}),
		'ended lc_pre,ended lc_post', 'both endings logged');
	cg_not_before($e{ $post->{pid} }{idle}, 1.0,
		'the new budget\'s session ended 1.0 s after it went idle, not before');
	cg_quit($pre, $post);
}

###########################################################################
# SIGHUP: conngov.mode off ends nothing, back to enforce ends
{
	# A logs in under enforce; the budget gets its timeout once mode is off
	cg_set_budgets($node, $cols,
		"('lc_hup', 'hup-%', NULL, 10, 'enforce', NULL, NULL, 0)");
	my $sa = cg_session($node, 'hup-a', 'regress_app');
	sql("ALTER SYSTEM SET conngov.mode = 'off'");
	sql('SELECT pg_reload_conf()');
	$node->poll_query_until('postgres', 'SHOW conngov.mode', 'off')
	  or die 'conngov.mode not reloaded';
	cg_worker_pass($node, $mon);    # the worker has its SIGHUP too
	sql("UPDATE conngov.budgets SET idle_timeout = '1s' WHERE name = 'lc_hup'");
	sql('SELECT conngov.reload()');
	my $offset = -s $node->logfile;
	# B logs in while conngov.mode = off
	my $sb = cg_session($node, 'hup-b', 'regress_app');
	# both past their 1 s deadline for 2 s more, and a whole worker pass since
	cg_sleep_until($sb->{idle_at} + 3.0);
	cg_worker_pass($node, $mon);
	is(join(',', cg_alive($node, $sa->{pid}, $sb->{pid})),
		join(',', sort { $a <=> $b } $sa->{pid}, $sb->{pid}),
		'conngov.mode = off: nothing ended over 3 s');
	is(sql("SELECT count(*) FROM conngov.events() WHERE budget = 'lc_hup' AND kind IN ('ended_idle', 'would_end_idle')"),
		0, 'conngov.mode = off: nothing recorded');

	sql("ALTER SYSTEM SET conngov.mode = 'enforce'");
	sql('SELECT pg_reload_conf()');
	my $t = time();
	my %gone = cg_wait_gone($mon, undef, $sa->{pid}, $sb->{pid});
	my $took = time() - $t;
	diag(sprintf('%d of 2 ended %.3f s after pg_reload_conf()',
			scalar keys %gone, $took));
	ok(defined $gone{ $sa->{pid} } && $took < cg_late(),
		'conngov.mode = enforce after SIGHUP: the worker ends the session past its deadline (bound: cg_late())');
	ok(defined $gone{ $sb->{pid} },
		'... and the session that logged in while conngov.mode was off too')
	  or diag('sessions() rows for it: '
		  . sql("SELECT count(*) FROM conngov.sessions() WHERE pid = $sb->{pid}")
		  . '; lc_hup total in usage(): '
		  . sql("SELECT total FROM conngov.usage() WHERE budget = 'lc_hup'"));
	cg_wait_log($node, qr/conngov ended session $sa->{pid} /, $offset)
	  if defined $gone{ $sa->{pid} };
	is(sql("SELECT ended_idle FROM conngov.stats() WHERE budget = 'lc_hup'"),
		2, 'stats ended_idle = 2');
	cg_quit($sa, $sb);
}

###########################################################################
# no CPU while nothing is due
{
	cg_set_budgets($node, $cols,
		"('lc_cpu', 'cpu-%', NULL, 10, 'enforce', '1 hour', '1 hour', 0)");
	my @s = map { cg_session($node, "cpu-$_", 'regress_app') } 1 .. 5;
	my $wpid = cg_worker_pid($node);
	# the worker has done its work (a whole pass since the sessions logged
	# in) and sleeps in its main wait (wait_event_type Extension)
	cg_worker_pass($node, $mon);
	cg_poll_for(
		$node,
		"SELECT wait_event_type FROM pg_stat_activity WHERE pid = $wpid",
		'Extension',
		monitor => $mon)
	  or diag('the worker is not in its main wait');
	my $tick = POSIX::sysconf(POSIX::_SC_CLK_TCK());
	my $cpu0 = cg_cpu_ticks($wpid);
	my $ctx0 = voluntary_switches($wpid);
	sleep 5;    # the window: a longer one (load) only catches more wake-ups
	my $cpu1 = cg_cpu_ticks($wpid);
	my $ctx1 = voluntary_switches($wpid);
	note("clock tick: 1/$tick s; worker used "
		  . ($cpu1 - $cpu0)
		  . ' ticks and '
		  . ($ctx1 - $ctx0)
		  . ' voluntary context switches in 5 s');
	cmp_ok($cpu1 - $cpu0, '<=', 2,
		"the worker used at most 2 clock ticks (1/$tick s each) of CPU in 5 s");
	cmp_ok($ctx1 - $ctx0, '<=', 2,
		'the worker slept through: at most 2 wake-ups in 5 s (no fixed poll)');
	is(cg_worker_pid($node), $wpid, 'same worker throughout');
	is(join(',', cg_alive($node, map { $_->{pid} } @s)),
		join(',', sort { $a <=> $b } map { $_->{pid} } @s),
		'the 5 idle sessions are still there');
	cg_quit(@s);
}

# voluntary context switches of a process: one per sleep it woke from
sub voluntary_switches
{
	my ($pid) = @_;
	my $status = slurp_file("/proc/$pid/status");
	my ($n) = $status =~ /^voluntary_ctxt_switches:\s+(\d+)/m;
	return $n;
}

$mon->quit;
$node->stop;
done_testing();
