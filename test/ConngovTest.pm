
# Copyright (c) 2026, conngov developers

# ConngovTest: helpers shared by the TAP tests in test/t/.
#
#   use lib 'test';
#   use ConngovTest;
#   my $node = cg_node('main', max_connections => 100);
#   cg_budgets($node, "('core_api', 'core-api%', NULL, 10)");
#   my $gate = cg_gate($node);
#   my $r = cg_storm($node, clients => 60, app => 'core-api-1',
#       user => 'regress_app', gate => $gate);
#
# No helper decides an outcome by the clock: sessions are held by barriers
# (an advisory lock the test holds, or a sleep the test ends), waits poll a
# server-side record, and every wait is bounded by
# $PostgreSQL::Test::Utils::timeout_default (PG_TEST_TIMEOUT_DEFAULT).
#
package ConngovTest;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);
use Test::More;

# PostgreSQL's own refusal when only superuser-reserved slots are left: its
# wording changed in 16.
our $cg_reserved_refusal =
  qr/FATAL:  remaining connection slots are reserved for (?:non-replication superuser connections|roles with the SUPERUSER attribute)/;

# A statement that runs until the test ends its session (pg_terminate_backend,
# a killed client, a crash): pg_sleep('infinity') sleeps in 10-minute naps
# for ever, and shows wait_event PgSleep.
our $cg_held_sql = q{SELECT pg_sleep('infinity')};

our @EXPORT = qw($cg_reserved_refusal $cg_held_sql cg_node cg_budgets cg_total
  cg_storm cg_start_clients cg_gate cg_gate_wait cg_gate_release cg_gate_close
  cg_gate_quit cg_late cg_sleep_until cg_psql
  cg_finish_clients cg_real_sessions cg_connstr cg_hold cg_release cg_login
  cg_poll_for cg_poll_is cg_total_real_sql);

# cg_node(name, conf => "extra lines", max_connections => N,
#   init => { allows_streaming => 1 }): a started
# cluster with conngov preloaded, conngov.database = postgres, the
# extension created and its budgets loaded, and a plain login role
# regress_app.
sub cg_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opt{init} // {} });
	my $maxconn = $opt{max_connections} // 100;
	$node->append_conf(
		'postgresql.conf', qq(
shared_preload_libraries = 'conngov'
conngov.database = 'postgres'
max_connections = $maxconn
log_line_prefix = '%m [%p] %e %q%a '
) . ($opt{conf} // ''));
	$node->start;
	$node->safe_psql('postgres',
		'CREATE EXTENSION conngov; CREATE ROLE regress_app LOGIN;');
	$node->safe_psql('postgres', 'SELECT conngov.reload()');
	return $node;
}

# cg_budgets(node, rows...): replace the budgets with rows given as
# "(name, application_pattern, role_name, max_connections)" tuples, and
# wait until they are loaded (cg_set_budgets with these columns).
sub cg_budgets
{
	my ($node, @rows) = @_;
	cg_set_budgets($node,
		'name, application_pattern, role_name, max_connections', @rows);
	return;
}

# _cg_sql(node, monitor, sql): run sql through monitor (a superuser
# background_psql session) when given, else in a new superuser session;
# dies if it fails.  Returns its output.
sub _cg_sql
{
	my ($node, $monitor, $sql) = @_;
	return $monitor
	  ? $monitor->query_safe($sql)
	  : $node->safe_psql('postgres', $sql);
}

# cg_total(node, budget): the budget's total in usage().
sub cg_total
{
	my ($node, $budget) = @_;
	return $node->safe_psql('postgres',
		"SELECT total FROM conngov.usage() WHERE budget = '$budget'");
}

# cg_total_real_sql(budget, app_like, not_like => 1): a query returning
# "total|sessions": the budget's total in usage() and, in the same
# statement, the client backends in pg_stat_activity whose application_name
# is LIKE app_like (NOT LIKE, with not_like).
sub cg_total_real_sql
{
	my ($budget, $like, %opt) = @_;
	my $op = $opt{not_like} ? 'NOT LIKE' : 'LIKE';
	return
	  "SELECT (SELECT total FROM conngov.usage() WHERE budget = '$budget')"
	  . " || '|' || (SELECT count(*) FROM pg_stat_activity"
	  . " WHERE backend_type = 'client backend' AND application_name $op '$like')";
}

# cg_real_sessions(node, app_like): client backends whose application_name
# is LIKE app_like, from pg_stat_activity.
sub cg_real_sessions
{
	my ($node, $like) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name LIKE '$like'"
	);
}

# cg_start_clients(node, clients => N, app => name, user => role,
#   sql => "SELECT 1", gate => cg_gate(...), dbname => 'postgres'): start
# N psql clients at once, each running sql; with gate, each admitted client
# waits at the gate until cg_gate_release (sql is then ignored); without
# either, each runs $cg_held_sql.  Returns a handle for cg_finish_clients.
sub cg_start_clients
{
	my ($node, %opt) = @_;
	my $n = $opt{clients};
	my $sql =
	  $opt{gate}
	  ? "SELECT pg_advisory_lock_shared($opt{gate}{key})"
	  : ($opt{sql} // $cg_held_sql);
	my $db = $opt{dbname} // 'postgres';
	my @clients;
	for my $i (1 .. $n)
	{
		my ($out, $err) = ('', '');
		my $connstr = $node->connstr($db)
		  . " user=$opt{user} application_name=$opt{app}";
		my $h = IPC::Run::start(
			[
				'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
				'-d', $connstr, '-c', $sql
			],
			'<', \undef, '>', \$out, '2>', \$err);
		push @clients, { h => $h, out => \$out, err => \$err };
	}
	return \@clients;
}

# cg_finish_clients(handle): wait for every client; returns a hash with
# admitted (exit 0), refused (SQLSTATE 53300 budget refusal), other, and the
# list of stderr texts.
sub cg_finish_clients
{
	my ($clients) = @_;
	my %r = (admitted => 0, refused => 0, other => 0, errors => []);
	for my $c (@$clients)
	{
		$c->{h}->finish;
		my $err = ${ $c->{err} };
		if ($c->{h}->result == 0)
		{
			$r{admitted}++;
		}
		elsif ($err =~ /FATAL:  connection budget "[^"]+" exhausted/)
		{
			$r{refused}++;
			push @{ $r{errors} }, $err;
		}
		else
		{
			$r{other}++;
			push @{ $r{errors} }, $err;
		}
	}
	return \%r;
}

# cg_storm(node, %opt): cg_start_clients then cg_finish_clients.  With
# gate => cg_gate(...), the admitted clients hold their session until every
# client has either been refused (exited) or is waiting at the gate, so
# that the counts are exact at any speed; then the gate opens, the clients
# finish, and the gate is closed again for the next storm.
sub cg_storm
{
	my ($node, %opt) = @_;
	my $clients = cg_start_clients($node, %opt);
	return cg_finish_clients($clients) unless $opt{gate};
	cg_gate_wait($opt{gate}, $clients);
	cg_gate_release($opt{gate});
	my $r = cg_finish_clients($clients);
	cg_gate_close($opt{gate});
	return $r;
}

# cg_late(): how late after its deadline a worker action may be seen,
# seconds: a tenth of timeout_default (18 s at the default 180), so that a
# slow machine (which sets PG_TEST_TIMEOUT_DEFAULT higher) gets more.  The
# measured lateness goes to diag() lines.
sub cg_late
{
	return $PostgreSQL::Test::Utils::timeout_default / 10;
}

# cg_sleep_until(t): sleep until Time::HiRes::time() is at least t (no
# sleep when it already is).  Only a lower bound: waits that use it can
# make a test slower, never decide what it sees.
sub cg_sleep_until
{
	my ($t) = @_;
	my $d = $t - Time::HiRes::time();
	usleep(int($d * 1e6)) if $d > 0;
	return;
}

# cg_psql(node, dbname, background_psql options...): a background_psql
# session whose timeout (timeout_default) applies to each query, not to
# the session's whole life: a monitor held through a slow test must not
# time out.
sub cg_psql
{
	my ($node, $dbname, %opt) = @_;
	my $psql = $node->background_psql($dbname, %opt);
	$psql->set_query_timer_restart();
	return $psql;
}

# The gate: a barrier for clients that must hold their session until the
# test has counted every outcome.  A superuser background_psql session
# (application_name cg_gate, or app) holds an exclusive advisory lock;
# clients started with gate => $gate run pg_advisory_lock_shared on it, so
# every admitted client blocks there.  The gate's session also serves as
# the poller, so waiting takes no further slot.  Advisory locks belong to
# one database: the gate's (dbname, default postgres) must be the clients'.
my $cg_gate_seq = 0;

# cg_gate(node, app => name, dbname => 'postgres'): a new gate, closed.
sub cg_gate
{
	my ($node, %opt) = @_;
	local $ENV{PGAPPNAME} = $opt{app} // 'cg_gate';
	my $psql = cg_psql($node, $opt{dbname} // 'postgres');
	my $gate = { psql => $psql, key => 4200 + ++$cg_gate_seq, open => 1 };
	cg_gate_close($gate);
	return $gate;
}

# cg_gate_wait(gate, clients): wait until each client (cg_start_clients'
# handle) has either exited or is waiting at the gate, bounded by
# timeout_default.  Counts only grow (an admitted client cannot leave while
# the gate is closed), so equal sums mean every client has been decided.
# Returns the number waiting; on timeout, a diag and the last count.
sub cg_gate_wait
{
	my ($gate, $clients) = @_;
	my $sql =
	  "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
	  . "AND classid = 0 AND objid = $gate->{key} AND objsubid = 1";
	my $end = Time::HiRes::time() + $PostgreSQL::Test::Utils::timeout_default;
	my ($waiting, $exited);
	for (;;)
	{
		$exited = 0;
		for my $c (@$clients)
		{
			if ($c->{h}->pumpable)
			{
				$c->{h}->pump_nb;
			}
			else
			{
				$exited++;
			}
		}
		$waiting = $gate->{psql}->query_safe($sql);
		return $waiting if $waiting + $exited >= @$clients;
		last if Time::HiRes::time() > $end;
		usleep(20_000);
	}
	diag("cg_gate_wait: after $PostgreSQL::Test::Utils::timeout_default s, "
		  . "$waiting clients wait at the gate and $exited exited, of "
		  . scalar(@$clients));
	return $waiting;
}

# cg_gate_release(gate): open the gate: the clients waiting there go on.
sub cg_gate_release
{
	my ($gate) = @_;
	return if $gate->{open};
	$gate->{psql}->query_safe("SELECT pg_advisory_unlock($gate->{key})");
	$gate->{open} = 1;
	return;
}

# cg_gate_close(gate): close the gate again (waits for clients that still
# hold it to leave).
sub cg_gate_close
{
	my ($gate) = @_;
	return unless $gate->{open};
	$gate->{psql}->query_safe("SELECT pg_advisory_lock($gate->{key})");
	$gate->{open} = 0;
	return;
}

# cg_gate_quit(gate): close the gate's session (which opens it).
sub cg_gate_quit
{
	my ($gate) = @_;
	$gate->{psql}->quit;
	$gate->{open} = 1;
	return;
}

# cg_connstr(node, user => role, app => application_name, dbname =>
#   'postgres', connstr => "..."): the connection string of one login with
# this identity, from connstr when given, else the node's for dbname.
# Without user, the test's bootstrap superuser; without app, the harness's
# default application_name.
sub cg_connstr
{
	my ($node, %opt) = @_;
	return ($opt{connstr} // $node->connstr($opt{dbname} // 'postgres'))
	  . (defined $opt{user} ? " user=$opt{user}" : '')
	  . (defined $opt{app} ? " application_name=$opt{app}" : '');
}

# cg_hold(node, user => role, app => unique application_name,
#   monitor => background_psql, connstr => "...", dbname => 'postgres'):
# open one session that runs $cg_held_sql and keep it (until cg_release).  Waits until either the
# backend is active in pg_stat_activity (the login is complete) or psql has
# exited.  Polls through monitor (a superuser background_psql session) when
# given, so that polling takes no extra slot.  Returns { ok => 1, pid, h }
# or { ok => 0, err => psql's stderr }.
sub cg_hold
{
	my ($node, %opt) = @_;
	my $app = $opt{app};
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
			'-d', cg_connstr($node, %opt), '-c', $cg_held_sql
		],
		'<', \undef, '>', \$out, '2>', \$err);
	my $sql =
	  "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
	  . "AND application_name = '$app' AND state = 'active'";
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		my $pid = _cg_sql($node, $opt{monitor}, $sql);
		return { ok => 1, pid => $pid, h => $h, app => $app }
		  if $pid ne '';
		if ($h->pumpable)
		{
			$h->pump_nb;
		}
		else
		{
			$h->finish;
			return { ok => 0, err => $err };
		}
		usleep(20_000);
	}
	die "cg_hold: session $app neither logged in nor failed";
}

# cg_release(node, monitor, holds...): end sessions opened by cg_hold and
# wait for their psql to exit.
sub cg_release
{
	my ($node, $monitor, @holds) = @_;
	@holds = grep { $_->{ok} } @holds;
	return unless @holds;
	my $sql = 'SELECT count(pg_terminate_backend(pid)) FROM unnest(ARRAY['
	  . join(',', map { $_->{pid} } @holds) . ']) pid';
	_cg_sql($node, $monitor, $sql);
	$_->{h}->finish for @holds;
	return;
}

# cg_login(node, user => role, app => name, dbname => 'postgres',
#   connstr => "...", sql => 'SELECT 1'): one short session with the
# identity of cg_connstr, running sql, then exit.  Returns (exit code,
# stdout without its last newline, stderr as psql wrote it).  The sql goes
# in -c, not on stdin, so a refused login cannot break a pipe.
sub cg_login
{
	my ($node, %opt) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
			'-d', cg_connstr($node, %opt), '-c', $opt{sql} // 'SELECT 1'
		],
		'<', \undef, '>', \$out, '2>', \$err);
	$h->finish;
	chomp $out;
	return ($h->result(0), $out, $err);
}

# cg_poll_for(node, sql, expected, timeout => timeout_default,
#   monitor => background_psql):
# run sql every 50 ms until it returns expected: through monitor (a
# superuser background_psql session) when given, so that polling takes no
# extra session, and then dies if sql fails; else as the superuser in a new
# session each time (cg_login; a failure is polled again).  Returns the
# seconds it took, or undef (and a diag) after timeout seconds.
sub cg_poll_for
{
	my ($node, $sql, $expected, %opt) = @_;
	my $timeout = $opt{timeout} // $PostgreSQL::Test::Utils::timeout_default;
	my $t0 = [ Time::HiRes::gettimeofday() ];
	my ($ret, $out, $err) = (0, '', '');
	for (;;)
	{
		if ($opt{monitor})
		{
			$out = $opt{monitor}->query_safe($sql);
		}
		else
		{
			($ret, $out, $err) = cg_login($node, sql => $sql);
		}
		return Time::HiRes::tv_interval($t0) if $ret == 0 && $out eq $expected;
		last if Time::HiRes::tv_interval($t0) > $timeout;
		usleep(50_000);
	}
	diag("cg_poll_for timed out after $timeout s: $sql\nexpected: $expected\n"
		  . "last answer: $out"
		  . ($opt{monitor} ? '' : "\nstderr: $err"));
	return undef;
}

# cg_poll_is(node, sql, expected, test name, timeout => timeout_default,
#   monitor => background_psql): cg_poll_for, then is() on one more run of
# sql (the same way), so that a timeout shows the real figure.
sub cg_poll_is
{
	my ($node, $sql, $expected, $name, %opt) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	cg_poll_for($node, $sql, $expected, %opt);
	is(_cg_sql($node, $opt{monitor}, $sql), $expected, $name);
	return;
}

# cg_waiter_pids(node, role): the backends of the node still authenticating
# as role (a login waiting for a place or for its token): their process
# title says so.  From /proc: such a backend is not in pg_stat_activity.
push @EXPORT, qw(cg_waiter_pids);

sub cg_waiter_pids
{
	my ($node, $role) = @_;
	my $pm = $node->{_pid};
	my @pids;
	for my $dir (glob '/proc/[0-9]*')
	{
		my ($pid) = $dir =~ m{(\d+)$};
		open my $st, '<', "$dir/stat" or next;
		my $stat = <$st>;
		close $st;
		next unless defined $stat && $stat =~ /\)\s+\S+\s+(\d+)/ && $1 == $pm;
		open my $cl, '<', "$dir/cmdline" or next;
		my $cmd = <$cl> // '';
		close $cl;
		push @pids, $pid if $cmd =~ /\Q$role\E .*authentication/;
	}
	return @pids;
}

# Helpers of the idle and worker tests (004, 005); cg_set_budgets,
# cg_session and cg_quit also serve 003.
push @EXPORT, qw(cg_set_budgets cg_session cg_closed cg_quit cg_alive
  cg_wait_gone cg_wait_log cg_log_endings cg_epoch cg_worker_pid cg_cpu_ticks
  cg_worker_pass cg_worker_paused cg_last_pause cg_not_before);

# cg_set_budgets(node, columns, rows..., { monitor => background_psql }):
# replace the budgets with rows given as tuples for the column list, e.g.
# "name, application_pattern, max_connections, idle_timeout",
# "('a', 'a%', 10, '2s')", and wait until they are loaded.  With the
# optional last argument, through monitor (a superuser background_psql
# session), so that no extra session is counted.  Returns reload()'s count
# of the budgets loaded.
sub cg_set_budgets
{
	my ($node, $cols, @rows) = @_;
	my %opt = (@rows && ref $rows[-1] eq 'HASH') ? %{ pop @rows } : ();
	my $sql = 'DELETE FROM conngov.budgets;';
	$sql .= "INSERT INTO conngov.budgets ($cols) VALUES " . join(', ', @rows) . ';'
	  if @rows;
	_cg_sql($node, $opt{monitor}, $sql);
	return _cg_sql($node, $opt{monitor}, 'SELECT conngov.reload()');
}

# cg_session(node, app, user, sql => first statements, on_error_stop => 0/1):
# a background psql session logged in as user (default: the bootstrap
# superuser) with application_name app.  Returns { psql, pid, idle_at }: idle_at is the
# Time::HiRes time right after its first query (pg_backend_pid(), or sql
# followed by it) returned, when the session went idle.
sub cg_session
{
	my ($node, $app, $user, %opt) = @_;
	local $ENV{PGAPPNAME} = $app;
	local $ENV{PGUSER} = $user if defined $user;
	my $psql = cg_psql($node, 'postgres',
		on_error_stop => $opt{on_error_stop} // 1);
	my $sql = ($opt{sql} // '') . 'SELECT pg_backend_pid();';
	my $out = $psql->query_safe($sql);
	my $idle_at = Time::HiRes::time();
	my ($pid) = $out =~ /(\d+)\s*\z/;
	die "no pid from session $app: $out" unless defined $pid;
	return { psql => $psql, pid => $pid, idle_at => $idle_at, app => $app };
}

# cg_closed(session): send a query on the session and wait for its psql to
# exit; returns psql's stderr if the query failed (the server had closed
# the connection), undef if it ran.  The session is finished either way.
sub cg_closed
{
	my ($s) = @_;
	my $psql = $s->{psql};
	$psql->{stdin} .= "SELECT 1;\n";
	# the session's timer counts from its last query: restart it for this one
	$psql->{timeout}->start;
	eval { $psql->{run}->finish; };
	$s->{done} = 1;
	return undef if !$@ && $psql->{run}->result == 0;
	return $psql->{stderr} . ($@ ? "\n(finish: $@)" : '');
}

# cg_quit(sessions...): close the sessions not finished yet; undef (a
# session whose login failed) is skipped.
sub cg_quit
{
	for my $s (grep { defined } @_)
	{
		next if $s->{done};
		$s->{done} = 1;
		$s->{psql}{timeout}->start;
		eval { $s->{psql}->quit; };
	}
	return;
}

# cg_alive(node, pids...): the pids, of those given, in pg_stat_activity.
sub cg_alive
{
	my ($node, @pids) = @_;
	return () unless @pids;
	my $out = $node->safe_psql('postgres',
		'SELECT pid FROM pg_stat_activity WHERE pid IN ('
		  . join(',', @pids)
		  . ') ORDER BY pid');
	return grep { $_ ne '' } split /\n/, $out;
}

# cg_wait_gone(poller, timeout, pids...): poll pg_stat_activity every 20 ms
# through poller (a background psql) until none of the pids is there, or
# timeout seconds (undef: timeout_default) passed.  Returns a hash pid => server epoch (seconds,
# fractional) of the first poll that did not see it; pids still there are
# missing from the hash.
sub cg_wait_gone
{
	my ($poller, $timeout, @pids) = @_;
	$timeout //= $PostgreSQL::Test::Utils::timeout_default;
	my %gone;
	my $end = Time::HiRes::time() + $timeout;
	while (1)
	{
		my $out = $poller->query_safe(
			"SELECT extract(epoch FROM clock_timestamp())::numeric(20,6) || ' ' || coalesce((SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE pid IN ("
			  . join(',', @pids) . ')), \'\')');
		my ($now, @alive) = split /\s+/, $out;
		my %alive = map { $_ => 1 } @alive;
		for my $pid (@pids)
		{
			$gone{$pid} //= $now unless $alive{$pid};
		}
		last if keys(%gone) == @pids || Time::HiRes::time() > $end;
		usleep(20_000);
	}
	return %gone;
}

# cg_wait_log(node, regexp, offset, timeout): wait up to timeout seconds
# (undef: timeout_default) for the server log to match regexp after offset;
# returns whether it did.
sub cg_wait_log
{
	my ($node, $re, $offset, $timeout) = @_;
	$timeout //= $PostgreSQL::Test::Utils::timeout_default;
	my $end = Time::HiRes::time() + $timeout;
	while (1)
	{
		return 1
		  if PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset) =~ $re;
		return 0 if Time::HiRes::time() > $end;
		usleep(50_000);
	}
}

# cg_log_endings(node, offset): the idle endings logged since offset, as
# hashes { ts, verb ('ended' or 'would end'), pid, budget, state, idle,
# limit, app, role }, in log order.
sub cg_log_endings
{
	my ($node, $offset) = @_;
	my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset);
	my @r;
	while ($log =~
		/^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+) .*?LOG:  conngov (ended|would end) session (\d+) of budget "([^"]*)": (idle|idle in transaction) for ([\d.]+) s \(limit ([\d.]+) s\), application "([^"]*)", role "([^"]*)"$/mg
	  )
	{
		push @r,
		  {
			ts => $1,
			verb => $2,
			pid => $3,
			budget => $4,
			state => $5,
			idle => $6,
			limit => $7,
			app => $8,
			role => $9
		  };
	}
	return @r;
}

# cg_epoch(node, timestamp text): its Unix epoch (fractional), computed by
# the server (log timestamps carry the server's log_timezone).
sub cg_epoch
{
	my ($node, $ts) = @_;
	return $node->safe_psql('postgres',
		"SELECT extract(epoch FROM '$ts'::timestamptz)::numeric(20,6)");
}

# cg_worker_pid(node): the conngov worker's pid ('' when none runs).
sub cg_worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'conngov worker'"
	);
}

# cg_worker_pass(node, monitor): return only once the worker has run a
# whole pass of its loop (load, then idle sweep) that started after the
# call: two conngov.reload() in a row, each returning when the worker has
# loaded the budgets in a new pass, the second one after the first pass's
# sweep.  A SIGHUP sent before the call has been handled too (the worker
# handles it at the top of its loop, before loading).  Through monitor (a
# superuser background_psql session) when given.
sub cg_worker_pass
{
	my ($node, $monitor) = @_;
	_cg_sql($node, $monitor, 'SELECT conngov.reload()') for 1 .. 2;
	return;
}

# cg_worker_paused(node, code): run code with the worker stopped
# (SIGSTOP), so that it ends no session meanwhile, and continue it
# (SIGCONT) however code ends; returns code's result.  Logins, sessions()
# and usage() do not need the worker; reload() and budget changes do (do
# them before).  The worker's timed sleep is at most its smallest idle
# timeout, so it sweeps within that after it continues.
my $cg_last_pause = 0;

sub cg_worker_paused
{
	my ($node, $code) = @_;
	my $wpid = cg_worker_pid($node);
	die "cg_worker_paused: no single worker ('$wpid')" unless $wpid =~ /^\d+$/;
	my $t0 = Time::HiRes::time();
	kill 'STOP', $wpid;
	my @r;
	my $ok = eval { @r = $code->(); 1; };
	kill 'CONT', $wpid;
	$cg_last_pause = Time::HiRes::time() - $t0;
	die $@ unless $ok;
	return wantarray ? @r : $r[0];
}

# cg_last_pause(): how long the last cg_worker_paused kept the worker
# stopped, seconds.  A session that reached its deadline meanwhile can be
# ended only after it: that much more lateness is the test's, not the
# worker's.
sub cg_last_pause
{
	return $cg_last_pause;
}

# cg_not_before(seconds, limit, name, slack): ok() when an idle time (or
# time from going idle to being ended) is at least limit (never before the
# deadline, at any speed) and less than limit + cg_late() + slack (a bound
# that scales with timeout_default; slack, default 0, for time the test
# itself kept the worker stopped, cg_last_pause()); the measured lateness
# goes to a diag line.
sub cg_not_before
{
	my ($x, $limit, $name, $slack) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $hi = $limit + cg_late() + ($slack // 0);
	diag(sprintf('%s: %.3f s after the deadline', $name, $x - $limit))
	  if defined $x;
	return ok(defined $x && $x >= $limit && $x < $hi, $name)
	  || diag('got ' . ($x // 'undef') . ", want [$limit, $hi)");
}

# cg_cpu_ticks(pid): utime + stime of a process from /proc/PID/stat, in
# clock ticks (1/sysconf(_SC_CLK_TCK) s, normally 10 ms).
sub cg_cpu_ticks
{
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/stat" or die "/proc/$pid/stat: $!";
	my $stat = <$fh>;
	close $fh;
	# the command name (field 2) is in parentheses and may hold spaces
	$stat =~ s/^.*\)\s+//s;
	my @f = split /\s+/, $stat;
	# fields 14 and 15 of the whole line are 12 and 13 after pid and comm
	return $f[11] + $f[12];
}

# Helpers of the commit-wait tests (030-032).
push @EXPORT, qw(cg_conngov_pids cg_loads_paused cg_commit_start cg_commit_finish
  cg_insert_sql cg_published_sql);

# cg_insert_sql(name): an INSERT of budget name (pattern 'name-%', limit 0).
sub cg_insert_sql
{
	my ($name) = @_;
	return "INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('$name', '$name-%', 0)";
}

# cg_published_sql(name): a query returning 1 once budget name is
# published (in usage()), else 0.
sub cg_published_sql
{
	my ($name) = @_;
	return "SELECT count(*) FROM conngov.usage() WHERE budget = '$name'";
}

# cg_conngov_pids(node): the pids of conngov's own processes (backend_type
# "conngov ...": the worker, and a loader while one runs).
sub cg_conngov_pids
{
	my ($node) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type LIKE 'conngov%'"
	);
	return grep { /^\d+$/ } split / /, $out;
}

# cg_loads_paused(node, code): run code with every conngov process stopped
# (SIGSTOP), so that no load is published meanwhile, and continue them
# (SIGCONT) however code ends; returns code's result.  A loader started
# while the list was taken is stopped too.  Logins and monitoring calls do
# not need these processes; reload() and the publish of a change do.
sub cg_loads_paused
{
	my ($node, $code) = @_;
	my %stopped;
	for (;;)
	{
		my @new = grep { !$stopped{$_} } cg_conngov_pids($node);
		last unless @new;
		kill 'STOP', @new;
		$stopped{$_} = 1 for @new;
	}
	die 'cg_loads_paused: no conngov process' unless %stopped;
	my @r;
	my $ok = eval { @r = $code->(); 1; };
	kill 'CONT', keys %stopped;
	die $@ unless $ok;
	return wantarray ? @r : $r[0];
}

# cg_commit_start(node, app => unique application_name, sql => statement,
#   before => [statements], monitor => background_psql, wait => 1): a
# psql that runs "before", BEGIN, sql and COMMIT, each its own query, as
# the bootstrap superuser.  With wait, returns once its COMMIT waits for
# the publish (wait_event_type Extension, seen through monitor) or psql
# has exited.  Returns { h, out, err, pid (undef: exited first) }.
sub cg_commit_start
{
	my ($node, %opt) = @_;
	my ($out, $err) = ('', '');
	my @c = map { ('-c', $_) } (@{ $opt{before} // [] }, 'BEGIN', $opt{sql},
		'COMMIT');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
			'-d', cg_connstr($node, app => $opt{app}), @c
		],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	my $c = { h => $h, out => \$out, err => \$err, app => $opt{app} };
	return $c unless $opt{wait};
	my $sql =
	  "SELECT pid FROM pg_stat_activity WHERE application_name = '$opt{app}' "
	  . "AND query = 'COMMIT' AND wait_event_type = 'Extension'";
	my $end = Time::HiRes::time() + $PostgreSQL::Test::Utils::timeout_default;
	while (Time::HiRes::time() < $end)
	{
		my $pid = _cg_sql($node, $opt{monitor}, $sql);
		if ($pid ne '')
		{
			$c->{pid} = $pid;
			return $c;
		}
		last unless $h->pumpable;
		$h->pump_nb;
		usleep(10_000);
	}
	diag("cg_commit_start: $opt{app} never waited in its COMMIT: $err");
	return $c;
}

# cg_commit_finish(c): wait (at most timeout_default) for the psql of
# cg_commit_start to exit; sets and returns c->{ret}, its exit code (-1:
# timed out).
sub cg_commit_finish
{
	my ($c) = @_;
	my $ok = eval { $c->{h}->finish; 1; };
	unless ($ok)
	{
		diag("cg_commit_finish: $c->{app}: $@");
		$c->{h}->kill_kill;
		return $c->{ret} = -1;
	}
	return $c->{ret} = $c->{h}->result(0);
}

# Helpers of the load tests (023-026).
push @EXPORT, qw(cg_loader_pid cg_first_outcome cg_hold_worker_slots
  cg_free_worker_slots);

# cg_loader_pid(node, dbname => 'postgres'): the conngov loader's pid when
# it is connected to a database ('' when none is), and that database, as
# "pid|datname".
sub cg_loader_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(pid || '|' || coalesce(datname, ''), ','), '') FROM pg_stat_activity WHERE backend_type = 'conngov loader'"
	);
}

# cg_first_outcome(node, t0, want => 'refused' or 'admitted', app => name,
#   user => role): try a login of this identity again and again (a new
# psql each time) until it is refused by a budget (or admitted), bounded
# by timeout_default.  Returns the seconds from t0 (a Time::HiRes time) to
# the end of the first login that had the outcome, or undef (and a diag).
sub cg_first_outcome
{
	my ($node, $t0, %opt) = @_;
	my $end = Time::HiRes::time() + $PostgreSQL::Test::Utils::timeout_default;
	my ($rc, $out, $err);
	for (;;)
	{
		($rc, $out, $err) =
		  cg_login($node, app => $opt{app}, user => $opt{user});
		my $t = Time::HiRes::time();
		my $refused = $rc != 0
		  && $err =~ /FATAL:  connection budget "[^"]+" exhausted/;
		return $t - $t0
		  if ($opt{want} eq 'refused' ? $refused : $rc == 0);
		last if $t > $end;
		usleep(10_000);
	}
	diag("cg_first_outcome: no login $opt{want} within "
		  . "$PostgreSQL::Test::Utils::timeout_default s; last: rc $rc, $err");
	return undef;
}

# cg_free_worker_slots(node): max_worker_processes minus the background
# workers running, from pg_stat_activity (parallel workers, conngov's, any
# other background worker), minus the logical replication launcher's slot,
# taken at start whether it runs (a primary) or not yet (a standby).
sub cg_free_worker_slots
{
	my ($node) = @_;
	return $node->safe_psql(
		'postgres', q{
SELECT current_setting('max_worker_processes')::int - count(*)
  - (current_setting('max_logical_replication_workers')::int > 0)::int
FROM pg_stat_activity
WHERE backend_type IN ('parallel worker', 'background worker')
   OR backend_type LIKE 'conngov %'});
}

# cg_hold_worker_slots(node, user => role, dbname => 'postgres'): parallel
# queries of user (a role with LOGIN only is enough) that hold every free
# background worker slot until the test cancels them: parallel scans of
# pg_attribute, forced by the session's own settings, sleeping 1 s a row.
# Starts one query at a time (16 at most) until cg_free_worker_slots() is
# 0 (polled, bounded by timeout_default); the caller checks that too.
# Returns { clients => handle for cg_finish_clients, apps => [names] }.
sub cg_hold_worker_slots
{
	my ($node, %opt) = @_;
	my $set =
	  'SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; '
	  . 'SET min_parallel_table_scan_size = 0; '
	  . 'SET max_parallel_workers_per_gather = 2; ';
	my (@clients, @apps);
	my $end = Time::HiRes::time() + $PostgreSQL::Test::Utils::timeout_default;
	my $free = cg_free_worker_slots($node);
	while ($free > 0 && @apps < 16 && Time::HiRes::time() < $end)
	{
		my $app = 'cg-slots-' . (@apps + 1);
		push @apps, $app;
		my $c = cg_start_clients(
			$node,
			clients => 1,
			app => $app,
			user => $opt{user},
			dbname => $opt{dbname} // 'postgres',
			sql => $set
			  . 'SELECT count(*) FROM pg_catalog.pg_attribute WHERE pg_catalog.pg_sleep(1) IS NOT NULL');
		push @clients, @$c;
		# its workers are started when its Gather runs: wait for the
		# leader to be active, then for the count to settle
		$node->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = '$app' AND state = 'active' AND backend_type = 'client backend'"
		);
		my $before = -1;
		while ($free != $before && Time::HiRes::time() < $end)
		{
			$before = $free;
			usleep(200_000);
			$free = cg_free_worker_slots($node);
		}
	}
	return { clients => \@clients, apps => \@apps, set => $set };
}

1;
