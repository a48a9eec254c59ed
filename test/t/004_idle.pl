
# Copyright (c) 2026, conngov developers

# Idle endings by the worker: timeouts, idle_keep, exemptions, monitor, sweep().
#
# Nothing here depends on how fast the machine is.  Where a test must see
# sessions in a state before the worker may end them, it sets them up with
# the worker stopped (cg_worker_paused).  An ending is asserted never
# before its deadline (from the server's own records: state_change, the
# log line, events()) and no later than cg_late() after it (a bound that
# scales with timeout_default; the lateness is shown).  "Not ended" is
# asserted after the deadline has passed and the worker has run a whole
# pass since (cg_worker_pass), so that a slow machine cannot hide an
# ending.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $late = cg_late();

my $node = cg_node('idle', max_connections => 60);
$node->safe_psql('postgres', 'CREATE ROLE regress_dba LOGIN; '
	  . 'CREATE ROLE regress_ops NOLOGIN; '
	  . 'CREATE ROLE regress_opsuser LOGIN IN ROLE regress_ops;');

# the poller: a superuser session, never governed
my $mon = cg_psql($node, 'postgres');

my $cols =
  'name, application_pattern, role_name, max_connections, mode, '
  . 'idle_timeout, idle_in_transaction_timeout, idle_keep';

# what the client of a session ended for idleness sees (015 checks the rest)
sub closed_re
{
	my ($budget) = @_;
	return
	  qr/FATAL:  terminating connection due to idle timeout of connection budget "$budget"/;
}

sub sql { return $node->safe_psql('postgres', $_[0]); }

# ended_idle|would_end_idle of a budget in stats()
sub counts
{
	my ($budget) = @_;
	return sql(
		"SELECT ended_idle || '|' || would_end_idle FROM conngov.stats() WHERE budget = '$budget'"
	);
}

# the pids of a budget's events of one kind, sorted, comma-separated
sub event_pids
{
	my ($kind, $budget) = @_;
	return sql(
		"SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') FROM conngov.events() WHERE kind = '$kind' AND budget = '$budget'"
	);
}

sub pids { return join(',', sort { $a <=> $b } map { $_->{pid} } @_); }

# server epoch of the session's state_change, and its state
sub state_change
{
	my ($s) = @_;
	return split /\|/,
	  sql("SELECT extract(epoch FROM state_change)::numeric(20,6) || '|' || state FROM pg_stat_activity WHERE pid = $s->{pid}"
	  );
}

# on failure: what a dry run and a real sweep see now
sub sweep_diag
{
	diag("sweep(true):\n"
		  . sql('SELECT pid, budget, state, idle_for, timeout, action FROM conngov.sweep(true) ORDER BY pid'));
	diag("then sweep(false):\n"
		  . sql('SELECT pid, budget, state, idle_for, timeout, action FROM conngov.sweep(false) ORDER BY pid'));
	return;
}

# how many of the idle times (seconds) are at least limit and less than
# limit + cg_late() + slack (time the test kept the worker stopped), with a
# diag of their lateness
sub n_not_before
{
	my ($limit, $slack, @idle) = @_;
	diag(sprintf('idle times past the %.1f s limit: %s (worker stopped %.3f s)',
			$limit, join(' ', map { sprintf('%.3f', $_ - $limit) } @idle),
			$slack));
	return scalar grep { $_ >= $limit && $_ < $limit + $late + $slack } @idle;
}

###########################################################################
# 1. idle_timeout 2s, idle_keep 0: ended 2 s after going idle, not before
{
	cg_set_budgets($node, $cols,
		"('t1', 'idle-one%', NULL, 10, 'enforce', '2s', NULL, 0)");
	my $offset = -s $node->logfile;
	my ($s, $since, $state) = cg_worker_paused(
		$node,
		sub {
			my $s = cg_session($node, 'idle-one', 'regress_app');
			return ($s, state_change($s));
		});
	is($state, 'idle', 't1: the session is idle');

	my %gone = cg_wait_gone($mon, undef, $s->{pid});
	ok(defined $gone{ $s->{pid} }, 't1: the idle session was ended');
	cg_not_before(($gone{ $s->{pid} } // 0) - $since,
		2.0, 't1: gone from pg_stat_activity 2.0 s after it went idle, not before',
		cg_last_pause());

	cg_wait_log($node, qr/conngov ended session $s->{pid} /, $offset);
	my @e = grep { $_->{budget} eq 't1' } cg_log_endings($node, $offset);
	is(scalar @e, 1, 't1: one ending logged');
	is( join('|', map { $e[0]{$_} } qw(verb pid state limit app role)),
		"ended|$s->{pid}|idle|2.0|idle-one|regress_app",
		't1: the log line names pid, budget, state, limit, application, role');
	cg_not_before($e[0]{idle}, 2.0, 't1: logged idle time 2.0 s, not less',
		cg_last_pause());
	# the event's time has microseconds; the log line's %m only milliseconds
	my $ended_at = sql(
		"SELECT extract(epoch FROM at) FROM conngov.events() WHERE kind = 'ended_idle' AND pid = $s->{pid}"
	);
	cg_not_before($ended_at - $since,
		2.0, 't1: ended (events()) 2.0 s after state_change, not before',
		cg_last_pause());

	like(cg_closed($s) // 'query ran', closed_re('t1'),
		't1: the client sees the connection closed');
	is(counts('t1'), '1|0', 't1: stats ended_idle = 1');
	is( sql("SELECT pid || '|' || application_name || '|' || role_name || '|' || database_name FROM conngov.events() WHERE kind = 'ended_idle' AND budget = 't1'"),
		"$s->{pid}|idle-one|regress_app|postgres",
		't1: one ended_idle event with pid, application, role, database');
}

###########################################################################
# 2. idle_keep 3, 8 sessions going idle 150 ms apart: the 5 oldest go.
# The worker is stopped until all 8 went idle in order, so that none is
# past its deadline before the order is set, however slow the setup.
{
	cg_set_budgets($node, $cols,
		"('t2', 'pool-%', NULL, 20, 'enforce', '3s', NULL, 3)");
	my $offset = -s $node->logfile;
	my (@s, @since);
	cg_worker_paused(
		$node,
		sub {
			@s = map { cg_session($node, "pool-$_", 'regress_app') } 1 .. 8;
			for my $s (@s)
			{
				$s->{psql}->query_safe('SELECT 1');
				$s->{idle_at} = time();
				usleep(150_000);
			}
			@since = map { (state_change($_))[0] } @s;
		});
	my $t2_pause = cg_last_pause();
	ok((grep { $since[$_] > $since[ $_ - 1 ] } 1 .. 7) == 7,
		't2: the 8 sessions went idle one after another');

	my @old = @s[ 0 .. 4 ];
	my @new = @s[ 5 .. 7 ];
	my %gone = cg_wait_gone($mon, undef, map { $_->{pid} } @old);
	is(scalar keys %gone, 5, 't2: the 5 least recently active were ended');

	# all 8 past their deadline, and a whole worker pass since: the 3 most
	# recent must still be there
	cg_sleep_until($s[7]{idle_at} + 3.0 + 1.5);
	cg_worker_pass($node, $mon);
	is(join(',', cg_alive($node, map { $_->{pid} } @s)),
		pids(@new), 't2: exactly the 3 most recently active survive');

	my @e = grep { $_->{budget} eq 't2' } cg_log_endings($node, $offset);
	is( join(',', sort { $a <=> $b } map { $_->{pid} } @e),
		pids(@old), 't2: 5 endings logged, for the 5 oldest');
	is(n_not_before(3.0, $t2_pause, map { $_->{idle} } @e),
		5, 't2: each ended 3.0 s after it went idle, not before')
	  or diag(join(' ', map { $_->{idle} } @e));
	is(counts('t2'), '5|0', 't2: stats ended_idle = 5');
	is(event_pids('ended_idle', 't2'), pids(@old), 't2: 5 ended_idle events');
	is((grep { defined cg_closed($_) } @old),
		5, 't2: the clients of the 5 see the connection closed');
	is((grep { !defined cg_closed($_) } @new),
		3, 't2: the clients of the 3 kept still run queries');
}

###########################################################################
# 3. idle_in_transaction_timeout alone, and idle_timeout alone
{
	cg_set_budgets(
		$node, $cols,
		"('t3x', 'itx-%', NULL, 10, 'enforce', NULL, '2s', 0)",
		"('t3i', 'idl-%', NULL, 10, 'enforce', '2s', NULL, 0)");
	my $offset = -s $node->logfile;
	my %s;
	# the worker is stopped while the 6 sessions reach their states and the
	# test looks at them, so that none is ended before it is seen
	my $states = cg_worker_paused(
		$node,
		sub {
			$s{x_tx} = cg_session($node, 'itx-tx', 'regress_app',
				sql => 'BEGIN; SELECT 1;');
			$s{x_idle} = cg_session($node, 'itx-idle', 'regress_app');
			$s{i_tx} = cg_session($node, 'idl-tx', 'regress_app',
				sql => 'BEGIN; SELECT 1;');
			$s{i_idle} = cg_session($node, 'idl-idle', 'regress_app');
			for my $k (qw(x_abort i_abort))
			{
				my $app = $k eq 'x_abort' ? 'itx-abort' : 'idl-abort';
				$s{$k} = cg_session($node, $app, 'regress_app',
					sql => 'BEGIN;', on_error_stop => 0);
				$s{$k}{psql}->query('SELECT 1/0');
				$s{$k}{idle_at} = time();
			}
			return join(',',
				map { (state_change($s{$_}))[1] // 'gone' }
				  qw(x_tx x_abort x_idle i_tx i_abort i_idle));
		});
	is( $states,
		'idle in transaction,idle in transaction (aborted),idle,'
		  . 'idle in transaction,idle in transaction (aborted),idle',
		't3: sessions idle in transaction, aborted, idle');

	my $t3_pause = cg_last_pause();
	my @ended = @s{qw(x_tx x_abort i_idle)};
	my @kept = @s{qw(x_idle i_tx i_abort)};
	my %gone = cg_wait_gone($mon, undef, map { $_->{pid} } @ended);
	is(scalar keys %gone, 3,
		't3: idle in transaction (and aborted) ended by idle_in_transaction_timeout, idle ended by idle_timeout'
	);
	# all past their 2 s deadlines, and a whole worker pass since
	my $last = (sort { $b <=> $a } map { $_->{idle_at} } values %s)[0];
	cg_sleep_until($last + 4.0);
	cg_worker_pass($node, $mon);
	is(join(',', cg_alive($node, map { $_->{pid} } @kept)),
		pids(@kept),
		't3: plain idle survives idle_in_transaction_timeout, idle in transaction survives idle_timeout (4 s)'
	);

	my %e = map { $_->{pid} => $_ } cg_log_endings($node, $offset);
	is(join(',', sort { $a <=> $b } keys %e), pids(@ended), 't3: 3 endings logged');
	is( join('|', map { "$e{$_->{pid}}{budget} $e{$_->{pid}}{state} $e{$_->{pid}}{limit}" } @ended),
		't3x idle in transaction 2.0|t3x idle in transaction 2.0|t3i idle 2.0',
		't3: the log lines give budget, state and limit');
	is(n_not_before(2.0, $t3_pause, map { $_->{idle} } values %e),
		3, 't3: each ended 2.0 s after it went idle, not before');
	is(counts('t3x') . ' ' . counts('t3i'), '2|0 1|0', 't3: stats ended_idle 2 and 1');
	is((grep { defined cg_closed($_) } @ended), 3, 't3: the 3 clients see the connection closed');
	cg_quit(@kept);
}

###########################################################################
# 4. superusers and exempt roles are never ended
{
	sql("ALTER SYSTEM SET conngov.exempt_roles = 'regress_dba, regress_ops'");
	sql('SELECT pg_reload_conf()');
	$node->poll_query_until('postgres', 'SHOW conngov.exempt_roles',
		'regress_dba, regress_ops')
	  or die 'exempt_roles not reloaded';
	cg_set_budgets($node, $cols,
		"('t4', '%', NULL, 50, 'enforce', '1s', '1s', 0)");
	my $offset = -s $node->logfile;
	# (cg_set_budgets' reload: the worker has had its SIGHUP too)
	my ($su, $dba, $ops, $plain, $sutx, $flags);
	cg_worker_paused(
		$node,
		sub {
			$su = cg_session($node, 'ex-su');
			$dba = cg_session($node, 'ex-dba', 'regress_dba');
			$ops = cg_session($node, 'ex-ops', 'regress_opsuser');
			$plain = cg_session($node, 'ex-plain', 'regress_app');
			$sutx = cg_session($node, 'ex-sutx', undef, sql => 'BEGIN; SELECT 1;');
			$flags = sql(
				"SELECT string_agg(application_name || '=' || exempt, ',' ORDER BY application_name) FROM conngov.sessions() WHERE budget = 't4' AND application_name LIKE 'ex-%'"
			);
		});
	my @exempt = ($su, $dba, $ops, $sutx);

	is($flags,
		'ex-dba=true,ex-ops=true,ex-plain=false,ex-su=true,ex-sutx=true',
		't4: sessions() flags superuser and exempt-role sessions');
	my %gone = cg_wait_gone($mon, undef, $plain->{pid});
	ok(defined $gone{ $plain->{pid} }, 't4: the plain session was ended');
	cg_sleep_until($sutx->{idle_at} + 3.0);
	cg_worker_pass($node, $mon);
	is(join(',', cg_alive($node, map { $_->{pid} } @exempt)),
		pids(@exempt),
		't4: superuser, exempt role and member-of-exempt-role sessions survive 3 s');
	my @e = grep { $_->{budget} eq 't4' } cg_log_endings($node, $offset);
	is(join(',', map { "$_->{verb} $_->{pid}" } @e),
		"ended $plain->{pid}", 't4: only the plain session was ended');
	is(counts('t4'), '1|0', 't4: stats ended_idle = 1, no would_end_idle for exempt sessions');
	cg_quit(@exempt, $plain);
	sql('ALTER SYSTEM RESET conngov.exempt_roles');
	sql('SELECT pg_reload_conf()');
	$node->poll_query_until('postgres', 'SHOW conngov.exempt_roles', '')
	  or die 'exempt_roles not reset';
}

###########################################################################
# 5. monitor budget, and conngov.mode = monitor: recorded once, not ended
{
	cg_set_budgets($node, $cols,
		"('t5m', 'mon-%', NULL, 10, 'monitor', '1s', NULL, 0)");
	my $offset = -s $node->logfile;
	my @s = map { cg_session($node, "mon-$_", 'regress_app') } 1 .. 3;
	# the worker's own record that each was past its deadline
	cg_poll_is(
		$node,
		"SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') FROM conngov.events() WHERE kind = 'would_end_idle' AND budget = 't5m'",
		pids(@s),
		't5m: one would_end_idle event per session',
		monitor => $mon);
	cg_sleep_until($s[2]{idle_at} + 4.0);
	cg_worker_pass($node, $mon);
	is(join(',', cg_alive($node, map { $_->{pid} } @s)),
		pids(@s), 't5m: monitor budget: no session ended after 4 s');
	is(event_pids('ended_idle', 't5m'), '', 't5m: no ended_idle event');
	is(counts('t5m'), '0|3', 't5m: stats would_end_idle = 3');
	my @e = grep { $_->{budget} eq 't5m' } cg_log_endings($node, $offset);
	is( join(',', sort map { "$_->{verb} $_->{pid}" } @e),
		join(',', sort map { "would end $_->{pid}" } @s),
		't5m: one "would end" log line per session');
	is(n_not_before(1.0, 0, map { $_->{idle} } @e),
		3, 't5m: recorded 1.0 s after going idle, not before');

	# the budget switches to enforce: sessions past their deadline go
	$offset = -s $node->logfile;
	sql("UPDATE conngov.budgets SET mode = 'enforce' WHERE name = 't5m'");
	my $t = time();
	my %gone = cg_wait_gone($mon, undef, map { $_->{pid} } @s);
	diag(sprintf('t5m: %d of 3 ended within %.3f s of the UPDATE',
			scalar keys %gone, time() - $t));
	is(scalar keys %gone, 3,
		't5m: switched to enforce, its sessions past their deadline are ended')
	  or sweep_diag();
	cg_quit(@s);

	sql("ALTER SYSTEM SET conngov.mode = 'monitor'");
	sql('SELECT pg_reload_conf()');
	$node->poll_query_until('postgres', 'SHOW conngov.mode', 'monitor')
	  or die 'conngov.mode not reloaded';
	# cg_set_budgets ends with reload(): the worker has had its SIGHUP too
	cg_set_budgets($node, $cols,
		"('t5g', 'gmon-%', NULL, 10, 'enforce', '1s', NULL, 0)");
	$offset = -s $node->logfile;
	@s = map { cg_session($node, "gmon-$_", 'regress_app') } 1 .. 2;
	cg_poll_is(
		$node,
		"SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') FROM conngov.events() WHERE kind = 'would_end_idle' AND budget = 't5g'",
		pids(@s),
		't5g: one would_end_idle event per session',
		monitor => $mon);
	cg_sleep_until($s[1]{idle_at} + 4.0);
	cg_worker_pass($node, $mon);
	is(join(',', cg_alive($node, map { $_->{pid} } @s)),
		pids(@s), 't5g: conngov.mode = monitor: no session ended after 4 s');
	is(counts('t5g'), '0|2', 't5g: stats would_end_idle = 2');
	@e = grep { $_->{budget} eq 't5g' } cg_log_endings($node, $offset);
	is( join(',', sort map { "$_->{verb} $_->{pid}" } @e),
		join(',', sort map { "would end $_->{pid}" } @s),
		't5g: one "would end" log line per session');

	# back to enforce: sessions past their deadline go
	sql('ALTER SYSTEM RESET conngov.mode');
	sql('SELECT pg_reload_conf()');
	$t = time();
	%gone = cg_wait_gone($mon, undef, map { $_->{pid} } @s);
	diag(sprintf('t5g: %d of 2 ended within %.3f s of pg_reload_conf()',
			scalar keys %gone, time() - $t));
	is(scalar keys %gone, 2,
		't5g: conngov.mode back to enforce, sessions past their deadline are ended')
	  or sweep_diag();
	cg_quit(@s);
	$node->poll_query_until('postgres', 'SHOW conngov.mode', 'enforce')
	  or die 'conngov.mode not reset';
	cg_worker_pass($node, $mon);    # the worker has its SIGHUP too
}

###########################################################################
# 6. a session active again before its deadline is not ended.  The timeout
# ($t6 s, a thirtieth of timeout_default, at least 2) leaves the client
# $t6 - 1.5 s of scheduling delay per round; the rounds span more than it.
{
	my $t6 = int($PostgreSQL::Test::Utils::timeout_default / 30);
	$t6 = 2 if $t6 < 2;
	my $rounds = int($t6 / 1.5) + 1;
	cg_set_budgets($node, $cols,
		"('t6', 'act-%', NULL, 10, 'enforce', '${t6}s', NULL, 0)");
	my $offset = -s $node->logfile;
	my $s = cg_session($node, 'act-1', 'regress_app');
	my $t0 = time();
	my $ran = 0;
	for (1 .. $rounds)
	{
		cg_sleep_until($s->{idle_at} + 1.5);
		$ran++ if eval { $s->{psql}->query_safe('SELECT 1') eq '1' };
		$s->{idle_at} = time();
	}
	is($ran, $rounds,
		sprintf('t6: %d queries 1.5 s apart ran (%.1f s in all, timeout %d s)',
			$rounds, time() - $t0, $t6));
	is(join(',', cg_alive($node, $s->{pid})), $s->{pid}, 't6: the session is still there');
	my ($since) = state_change($s);
	my %gone = cg_wait_gone($mon, undef, $s->{pid});
	cg_not_before(($gone{ $s->{pid} } // 0) - $since,
		$t6, "t6: once left idle, ended $t6 s after its last query, not before");
	cg_wait_log($node, qr/conngov ended session $s->{pid} /, $offset);
	my @e = grep { $_->{budget} eq 't6' } cg_log_endings($node, $offset);
	is(scalar @e, 1, 't6: one ending logged');
	is(counts('t6'), '1|0', 't6: stats ended_idle = 1');
	cg_quit($s);
}

###########################################################################
# 7. sweep(): dry run lists, sweep(false) ends; worker held with SIGSTOP
{
	cg_set_budgets(
		$node, $cols,
		"('t7m', 'sw-mon%', NULL, 10, 'monitor', '1s', NULL, 0)",
		"('t7e', 'sw-enf%', NULL, 10, 'enforce', '1s', NULL, 0)");
	my $wpid = cg_worker_pid($node);
	like($wpid, qr/^\d+$/, 't7: one worker');
	my $offset = -s $node->logfile;
	my ($sm, $se);
	my $t7_start = time();
	cg_worker_paused($node, sub {
		$sm = cg_session($node, 'sw-mon-1', 'regress_app');
		$se = cg_session($node, 'sw-enf-1', 'regress_app');
		cg_sleep_until($se->{idle_at} + 1.5);

		# idle_for: past the timeout, and no longer than the sessions exist
		# (plus cg_late() for the query to get there)
		my $q =
		  "SELECT pid, budget, application_name, role_name, state, idle_for >= timeout AND idle_for < interval '%.3f s', timeout, action FROM conngov.sweep(%s) ORDER BY budget";
		is( sql(sprintf($q, time() - $t7_start + $late, 'true')),
			"$se->{pid}|t7e|sw-enf-1|regress_app|idle|t|00:00:01|would end\n"
			  . "$sm->{pid}|t7m|sw-mon-1|regress_app|idle|t|00:00:01|would end",
			't7: sweep(true) lists both sessions past their deadline, "would end"');
		is(sql('SELECT count(*) FROM conngov.sweep()'), 2, 't7: sweep() is a dry run too');
		is(join(',', cg_alive($node, $sm->{pid}, $se->{pid})),
			pids($sm, $se), 't7: the dry runs ended nobody');
		is(counts('t7m') . ' ' . counts('t7e'), '0|0 0|0', 't7: the dry runs counted nothing');

		my $r = sql(sprintf($q, time() - $t7_start + $late, 'false'));
		like(
			$r,
			qr/^$se->{pid}\|t7e\|sw-enf-1\|regress_app\|idle\|t\|00:00:01\|ended\n$sm->{pid}\|t7m\|sw-mon-1\|regress_app\|idle\|t\|00:00:01\|would end[^\n]*$/,
			't7: sweep(false) ends the enforce budget\'s session, not the monitor one\'s');
		my %gone = cg_wait_gone($mon, undef, $se->{pid});
		ok(defined $gone{ $se->{pid} }, 't7: sweep(false) ended it');
		like(cg_closed($se) // 'query ran', closed_re('t7e'), 't7: its client sees the connection closed');
		is(join(',', cg_alive($node, $sm->{pid})), $sm->{pid}, 't7: the monitor budget\'s session remains');
		is(counts('t7m') . ' ' . counts('t7e'), '0|1 1|0',
			't7: stats: would_end_idle 1 (t7m), ended_idle 1 (t7e)');
		is(event_pids('ended_idle', 't7e') . ' ' . event_pids('would_end_idle', 't7m'),
			"$se->{pid} $sm->{pid}", 't7: one event each');
		is(sql('SELECT count(*) FROM conngov.sweep(false)'), 0,
			't7: sweep(false) again: nothing new in this idle period');
		is(sql('SELECT count(*) FROM conngov.sweep(true)'), 1,
			't7: sweep(true) still lists the monitor budget\'s session');
		my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM conngov.sweep(false)',
			extra_params => [ '-U', 'regress_app' ]);
		like($err, qr/permission denied for function sweep/, 't7: sweep() is for superusers');
	});
	# the worker runs again: a whole pass of it, then look
	cg_worker_pass($node, $mon);
	is(counts('t7m'), '0|1', 't7: the worker does not record the monitor session again');
	my @e = cg_log_endings($node, $offset);
	is( join(',', map { "$_->{verb} $_->{pid} $_->{budget}" } @e),
		"ended $se->{pid} t7e,would end $sm->{pid} t7m",
		't7: one log line each');
	cg_quit($sm);
}

$mon->quit;
$node->stop;
done_testing();
