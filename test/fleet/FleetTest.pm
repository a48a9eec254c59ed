
# Copyright (c) 2026, conngov developers

# FleetTest: a real Patroni cluster on loopback for the fleet suite
# (test/fleet/t/*.pl, "bash test/run-tests.sh fleet") and for
# bench/switchover.sh.  One etcd and three Patroni nodes (Debian's
# "etcd-server" and "patroni"), each running the PostgreSQL whose bin
# directory is `pg_config --bindir` (CG_PG_CONFIG, else the pg_config in
# PATH), with conngov preloaded through Patroni's configuration.
#
#   use lib 'test/fleet';
#   use FleetTest;
#   my $fleet = FleetTest->new(reserved => [3, 8, 13]);
#   $fleet->start;                        # node1 leads, node2 and node3 stream
#   my $node = $fleet->node('node2');     # a PostgreSQL::Test::Cluster
#   $fleet->switchover('node1', 'node2');
#   $fleet->stop;                         # also at exit, even after a failure
#
# Every process runs as the calling user, in tmp_check/log/fleet_<test>; every
# port is a free one on 127.0.0.1 (PostgreSQL::Test::Cluster::get_free_port);
# every wait polls a record (Patroni's REST API, pg_stat_replication,
# pg_is_in_recovery()) and is bounded by timeout_default.  Patroni's
# superuser is "postgres" (PGUSER is set to it), its replication role
# "replicator", its pg_rewind role "rewinder".
package FleetTest;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use File::Basename ();
use File::Path qw(rmtree);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use ConngovTest;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(fl_poll fl_pg_bindir fl_storm_is fl_usage fl_no_leaks
  fl_replayed_then_loaded fl_loaded_since);

# Patroni's roles (created by Patroni at bootstrap).
our $superuser = 'postgres';
our $replication_role = 'replicator';
our $rewind_role = 'rewinder';

$ENV{PGUSER} = $superuser;

# every fleet started and not stopped yet, stopped at exit
my @live;

# fl_poll(code, timeout => timeout_default, every => seconds): run code
# every 50 ms (or every) until it returns true, at most timeout seconds;
# returns its last result.
sub fl_poll
{
	my ($code, %opt) = @_;
	my $end =
	  Time::HiRes::time() + ($opt{timeout} // $PostgreSQL::Test::Utils::timeout_default);
	my $every = $opt{every} // 0.05;
	for (;;)
	{
		my $r = $code->();
		return $r if $r || Time::HiRes::time() > $end;
		usleep(int($every * 1e6));
	}
}

# fl_pg_bindir(): `pg_config --bindir` of the PostgreSQL under test.
sub fl_pg_bindir
{
	my $pgc = $ENV{CG_PG_CONFIG} || 'pg_config';
	my $dir = `$pgc --bindir`;
	die "fleet: $pgc --bindir failed" if $? != 0;
	chomp $dir;
	return $dir;
}

# FleetTest->new(%opt): a fleet, not started.
#   conngov => 1           preload conngov (0: shared_preload_libraries empty)
#   max_connections => 30  Patroni sets it on every node's command line
#   reserved => [3, 3, 3]  each node's superuser_reserved_connections
#   exempt_roles => 'rewinder'   conngov.exempt_roles ('' for none)
#   parameters => {}       more PostgreSQL settings for every node
#   prefix => ''           prefix of the PostgreSQL::Test::Cluster names
sub new
{
	my ($class, %opt) = @_;
	my $self = {
		conngov => $opt{conngov} // 1,
		max_connections => $opt{max_connections} // 30,
		reserved => $opt{reserved} // [ 3, 3, 3 ],
		exempt_roles => $opt{exempt_roles} // $rewind_role,
		parameters => $opt{parameters} // {},
		prefix => $opt{prefix} // '',
		names => [qw(node1 node2 node3)],
		dir => _fleet_dir($opt{prefix} // ''),
		scope => "cgfleet$$" . ($opt{prefix} // ''),
		bindir => fl_pg_bindir(),
		pids => {},
		nodes => {},
		rest => {},
		http => HTTP::Tiny->new(timeout => 5),
	};
	bless $self, $class;
	return $self;
}

# _fleet_dir(prefix): tmp_check/log/fleet_<test>_<prefix>, for etcd, the
# configurations and every log: kept after a failure (run-tests.sh shows
# the logs' tails), removed with tmp_check after a success.
sub _fleet_dir
{
	my ($prefix) = @_;
	my $test = File::Basename::basename($0);
	$test =~ s/\.[^.]+$//;
	my $dir = "$PostgreSQL::Test::Utils::log_path/fleet_${test}_$prefix";
	$dir =~ s/_$//;
	rmtree($dir);
	mkdir($dir) or die "fleet: mkdir $dir: $!";
	return $dir;
}

# dir(): the fleet's directory (etcd, configurations, logs).
sub dir { return $_[0]{dir} }

# names(): the members' names.
sub names { return @{ $_[0]{names} } }

# node(name): the member's PostgreSQL::Test::Cluster (host, port, psql).
sub node { return $_[0]{nodes}{ $_[1] } }

# patroni_log(name): the file with the member's Patroni output.
sub patroni_log { return "$_[0]{dir}/$_[1].patroni.log" }

# config_file(name): the member's Patroni configuration.
sub config_file { return "$_[0]{dir}/$_[1].yml" }

# _spawn(name, log, command...): start command in its own session, output
# appended to log; remembers its pid under name.
sub _spawn
{
	my ($self, $name, $log, @cmd) = @_;
	my $pid = fork();
	die "fleet: fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null') or POSIX::_exit(126);
		open(STDOUT, '>>', $log) or POSIX::_exit(126);
		open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
		POSIX::setsid();
		# the test's PGAPPNAME, PGHOST, PGUSER... are not Patroni's: it
		# names its own sessions ("Patroni")
		delete $ENV{$_} for grep { /^PG/ } keys %ENV;
		exec(@cmd) or POSIX::_exit(127);
	}
	$self->{pids}{$name} = $pid;
	# for run-tests.sh, should this process die without stopping them
	PostgreSQL::Test::Utils::append_to_file("$self->{dir}/pids", "$pid\n");
	return $pid;
}

# _alive(name): whether the process started under name still runs (reaps
# it when it exited).
sub _alive
{
	my ($self, $name) = @_;
	my $pid = $self->{pids}{$name} or return 0;
	return 1 if waitpid($pid, WNOHANG) == 0;
	delete $self->{pids}{$name};
	return 0;
}

# _free_port(): a free TCP port on 127.0.0.1.
sub _free_port
{
	return PostgreSQL::Test::Cluster::get_free_port();
}

# start(setup_sql => SQL): etcd, then node1 (which bootstraps and leads;
# conngov's extension, the test role regress_app and setup_sql are created
# there), then node2 and node3, which clone it with pg_basebackup; returns
# once both stream from node1 with nothing to replay.
sub start
{
	my ($self, %opt) = @_;
	push @live, $self;
	$self->_start_etcd;
	my $i = 0;
	for my $name ($self->names)
	{
		my $node = PostgreSQL::Test::Cluster->new($self->{prefix} . $name,
			port => _free_port());
		$node->{_logfile} = "$self->{dir}/$name.log";
		$self->{nodes}{$name} = $node;
		$self->{rest}{$name} = _free_port();
		$self->_write_config($name, $self->{reserved}[ $i++ ]);
	}
	$self->start_member('node1');
	$self->wait_member('node1', role => 'leader');
	my $n1 = $self->node('node1');
	$n1->safe_psql('postgres', 'CREATE ROLE regress_app LOGIN');
	$n1->safe_psql('postgres', 'CREATE EXTENSION conngov') if $self->{conngov};
	$n1->safe_psql('postgres', $opt{setup_sql}) if $opt{setup_sql};
	$self->start_member($_) for qw(node2 node3);
	$self->wait_healthy('node1');
	return;
}

sub _start_etcd
{
	my ($self) = @_;
	my ($client, $peer) = (_free_port(), _free_port());
	$self->{etcd} = "127.0.0.1:$client";
	$self->_spawn(
		'etcd', "$self->{dir}/etcd.log",
		'etcd', '--name', 'fleet', '--data-dir', "$self->{dir}/etcd",
		'--listen-client-urls', "http://127.0.0.1:$client",
		'--advertise-client-urls', "http://127.0.0.1:$client",
		'--listen-peer-urls', "http://127.0.0.1:$peer",
		'--initial-advertise-peer-urls', "http://127.0.0.1:$peer",
		'--initial-cluster', "fleet=http://127.0.0.1:$peer",
		'--initial-cluster-state', 'new', '--logger', 'zap',
		'--log-level', 'warn');
	my $ok = fl_poll(
		sub {
			die "fleet: etcd exited, see $self->{dir}/etcd.log"
			  unless $self->_alive('etcd');
			my $r = $self->{http}->get("http://$self->{etcd}/health");
			return $r->{success} && $r->{content} =~ /"health":\s*"true"/;
		});
	die "fleet: etcd not healthy, see $self->{dir}/etcd.log" unless $ok;
	return;
}

# _write_config(name, superuser_reserved_connections): the member's Patroni
# configuration (JSON, which is YAML).  What conngov needs is in
# bootstrap.dcs.postgresql.parameters: shared_preload_libraries,
# conngov.database, conngov.exempt_roles (the pg_rewind role).
sub _write_config
{
	my ($self, $name, $reserved) = @_;
	my $node = $self->node($name);
	my $port = $node->port;
	my %global = (
		max_connections => $self->{max_connections},
		wal_log_hints => 'on',
		hot_standby => 'on',
		logging_collector => 'on',
		log_filename => 'postgresql.log',
		log_file_mode => '0644',
		log_line_prefix => '%m [%p] %e %q%a %u ',
		log_connections => 'on',
		log_disconnections => 'on',
		shared_preload_libraries => $self->{conngov} ? 'conngov' : '',
		%{ $self->{parameters} });
	if ($self->{conngov})
	{
		$global{'conngov.database'} = 'postgres';
		$global{'conngov.exempt_roles'} = $self->{exempt_roles};
	}
	my $password = 'fleet';
	my $cfg = {
		scope => $self->{scope},
		namespace => '/conngov-fleet/',
		name => $name,
		log => { level => 'INFO' },
		restapi => {
			listen => "127.0.0.1:$self->{rest}{$name}",
			connect_address => "127.0.0.1:$self->{rest}{$name}",
		},
		etcd3 => { host => $self->{etcd} },
		bootstrap => {
			dcs => {
				ttl => 10,
				loop_wait => 1,
				retry_timeout => 3,
				primary_start_timeout => 0,
				postgresql => {
					use_pg_rewind => JSON::PP::true,
					use_slots => JSON::PP::true,
					parameters => \%global,
				},
			},
			initdb => [ { encoding => 'UTF8' }, { locale => 'C' } ],
		},
		postgresql => {
			listen => "127.0.0.1:$port",
			connect_address => "127.0.0.1:$port",
			data_dir => $node->data_dir,
			bin_dir => $self->{bindir},
			pgpass => "$self->{dir}/$name.pgpass",
			basebackup => [ { checkpoint => 'fast' } ],
			authentication => {
				superuser => { username => $superuser, password => $password },
				replication =>
				  { username => $replication_role, password => $password },
				rewind => { username => $rewind_role, password => $password },
			},
			# per node: its own reserved slots, sockets and log (outside the
			# data directory, which pg_basebackup and pg_rewind copy)
			parameters => {
				superuser_reserved_connections => $reserved,
				unix_socket_directories => $node->host,
				log_directory => "$self->{dir}/$name-log",
			},
			pg_hba => [
				'local all all trust',
				'local replication all trust',
				'host all all 127.0.0.1/32 trust',
				'host replication all 127.0.0.1/32 trust',
			],
		},
		tags => {
			nofailover => JSON::PP::false,
			noloadbalance => JSON::PP::false,
			clonefrom => JSON::PP::false,
			nosync => JSON::PP::false,
		},
	};
	mkdir "$self->{dir}/$name-log";
	PostgreSQL::Test::Utils::append_to_file($self->config_file($name),
		JSON::PP->new->canonical->pretty->encode($cfg));
	# the server log, where $node->wait_for_log and ->log_content look
	$node->{_logfile} = "$self->{dir}/$name-log/postgresql.log";
	return;
}

# start_member(name): start the member's Patroni.
sub start_member
{
	my ($self, $name) = @_;
	$self->_spawn($name, $self->patroni_log($name), 'patroni',
		$self->config_file($name));
	return;
}

# rest(name, path): the member's REST API answer to GET path, decoded
# (undef when it does not answer).
sub rest
{
	my ($self, $name, $path) = @_;
	my $r = $self->{http}->get("http://127.0.0.1:$self->{rest}{$name}$path");
	return undef unless $r->{success} || $r->{status} == 503;
	return eval { decode_json($r->{content}) };
}

# members(): { name => { role, state, timeline, lag, ... } } from the first
# member whose REST API answers GET /cluster; {} when none does.
sub members
{
	my ($self) = @_;
	for my $name ($self->names)
	{
		next unless $self->_alive($name);
		my $c = $self->rest($name, '/cluster') or next;
		return { map { $_->{name} => $_ } @{ $c->{members} } };
	}
	return {};
}

# leader(): the leader's name in the DCS ('' when none).
sub leader
{
	my ($self) = @_;
	my $m = $self->members;
	my ($l) = grep { $m->{$_}{role} eq 'leader' } keys %$m;
	return $l // '';
}

# wait_member(name, role => leader|replica): wait until the DCS shows the
# member running in that role and its server agrees (pg_is_in_recovery()).
sub wait_member
{
	my ($self, $name, %opt) = @_;
	my $want = $opt{role} eq 'leader' ? 'f' : 't';
	my $ok = fl_poll(
		sub {
			die "fleet: Patroni of $name exited, see " . $self->patroni_log($name)
			  unless $self->_alive($name);
			my $m = $self->members->{$name} or return 0;
			return 0 unless $m->{state} eq 'running' && $m->{role} eq $opt{role};
			my ($rc, $out) =
			  $self->node($name)->psql('postgres', 'SELECT pg_is_in_recovery()');
			return $rc == 0 && $out eq $want;
		});
	die "fleet: $name is not a running $opt{role}: "
	  . encode_json($self->members)
	  unless $ok;
	return;
}

# wait_healthy(leader): wait until leader leads, every other member is a
# running replica streaming from it, and each has replayed what the leader
# had written when they were all streaming.
sub wait_healthy
{
	my ($self, $leader) = @_;
	my @replicas = grep { $_ ne $leader } $self->names;
	$self->wait_member($leader, role => 'leader');
	$self->wait_member($_, role => 'replica') for @replicas;
	my $in = join(', ', map { "'$_'" } @replicas);
	my $ok = fl_poll(
		sub {
			my ($rc, $out) = $self->node($leader)->psql('postgres',
				"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name IN ($in)"
			);
			return $rc == 0 && $out == @replicas;
		});
	die "fleet: replicas of $leader are not streaming" unless $ok;
	$self->node($leader)->wait_for_catchup($_, 'replay') for @replicas;
	return;
}

# patronictl(args...): run patronictl with node1's configuration (any
# member's would do: they share the DCS); returns (exit code, output).
sub patronictl
{
	my ($self, @args) = @_;
	my ($out, $err) = ('', '');
	my $alive = (grep { $self->_alive($_) } $self->names)[0] // 'node1';
	IPC::Run::run([ 'patronictl', '-c', $self->config_file($alive), @args ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return ($? >> 8, $out . $err);
}

# set_parameter(name, value): change a PostgreSQL setting of every member
# through Patroni's dynamic configuration (`patronictl edit-config`; undef
# removes it), and wait until every member's server shows it.
sub set_parameter
{
	my ($self, $name, $value) = @_;
	my ($rc, $out) = $self->patronictl('edit-config', '--force', '--pg',
		"$name=" . ($value // 'null'), $self->{scope});
	die "fleet: patronictl edit-config failed ($rc): $out" if $rc != 0;
	for my $n ($self->names)
	{
		my $node = $self->node($n);
		fl_poll(
			sub {
				my ($r, $v) =
				  $node->psql('postgres', "SELECT current_setting('$name', true)");
				$r == 0 && $v eq ($value // '');
			}) or die "fleet: $n does not show $name = " . ($value // '(default)');
	}
	return;
}

# switchover(leader, candidate): `patronictl switchover --force`; dies
# when it fails.  Returns the seconds the command took.
sub switchover
{
	my ($self, $leader, $candidate) = @_;
	my $t0 = Time::HiRes::time();
	my ($rc, $out) = $self->patronictl('switchover', '--leader', $leader,
		'--candidate', $candidate, '--force', $self->{scope});
	my $took = Time::HiRes::time() - $t0;
	die "fleet: patronictl switchover failed ($rc): $out" if $rc != 0;
	return $took;
}

# postmaster_pid(name): the pid in the member's postmaster.pid ('' when
# there is none).
sub postmaster_pid
{
	my ($self, $name) = @_;
	my $f = $self->node($name)->data_dir . '/postmaster.pid';
	return '' unless -f $f;
	open(my $fh, '<', $f) or return '';
	my $pid = <$fh> // '';
	close($fh);
	chomp $pid;
	return $pid;
}

# kill_postmaster(name): SIGKILL to the member's postmaster; returns its pid.
sub kill_postmaster
{
	my ($self, $name) = @_;
	my $pid = $self->postmaster_pid($name);
	die "fleet: no postmaster.pid for $name" unless $pid =~ /^\d+$/;
	kill('KILL', $pid) or die "fleet: kill -KILL $pid: $!";
	return $pid;
}

# freeze_walsenders(name): SIGSTOP to the member's walsenders, so that
# what it writes next reaches no standby (a primary that dies with WAL its
# standbys never got must be rewound before it can follow the new
# primary).  Returns their pids: SIGKILL them once the postmaster is gone.
sub freeze_walsenders
{
	my ($self, $name) = @_;
	my @pids = split /\n/,
	  $self->node($name)->safe_psql('postgres', 'SELECT pid FROM pg_stat_replication');
	kill('STOP', @pids) == @pids or die "fleet: kill -STOP @pids: $!";
	return @pids;
}

# log_content(name): the member's server log.
sub log_content
{
	my ($self, $name) = @_;
	my $f = $self->node($name)->logfile;
	return -f $f ? PostgreSQL::Test::Utils::slurp_file($f) : '';
}

# stop(): stop every Patroni (which stops its PostgreSQL), then anything
# still running (a postmaster with pg_ctl -m immediate), then etcd.  Safe
# to call twice; runs at exit for a fleet not stopped.
sub stop
{
	my ($self) = @_;
	@live = grep { $_ != $self } @live;
	my @patronis = grep { $self->_alive($_) } $self->names;
	kill('TERM', $self->{pids}{$_}) for @patronis;
	my $timeout = $PostgreSQL::Test::Utils::timeout_default;
	fl_poll(sub { !grep { $self->_alive($_) } @patronis }, timeout => $timeout);
	for my $name (@patronis)
	{
		next unless $self->_alive($name);
		print STDERR "fleet: Patroni of $name still runs, SIGKILL\n";
		kill('KILL', $self->{pids}{$name});
		waitpid($self->{pids}{$name}, 0);
		delete $self->{pids}{$name};
	}
	for my $name ($self->names)
	{
		my $node = $self->node($name) or next;
		next unless $self->postmaster_pid($name) =~ /^\d+$/;
		system($self->{bindir} . '/pg_ctl', '-D', $node->data_dir, '-m',
			'immediate', '-s', 'stop');
	}
	if ($self->_alive('etcd'))
	{
		kill('TERM', $self->{pids}{etcd});
		waitpid($self->{pids}{etcd}, 0);
		delete $self->{pids}{etcd};
	}
	return;
}

# Test helpers --------------------------------------------------------

# fl_storm_is(node, label, app => name, clients => N, admitted => A,
#   budget => name): N logins of regress_app with application_name app at
# once; the admitted ones hold their session at a gate until every login
# is decided.  Checks that exactly A were admitted and the other N - A
# refused (SQLSTATE 53300) by budget, and nothing else happened.
sub fl_storm_is
{
	my ($node, $label, %opt) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $gate = ConngovTest::cg_gate($node);
	my $r = ConngovTest::cg_storm(
		$node,
		clients => $opt{clients},
		app => $opt{app},
		user => 'regress_app',
		gate => $gate);
	ConngovTest::cg_gate_quit($gate);
	my $refused = $opt{clients} - $opt{admitted};
	my @wrong = grep { !/FATAL:  connection budget "\Q$opt{budget}\E" exhausted/ }
	  @{ $r->{errors} };
	is( "$r->{admitted} admitted, $r->{refused} refused, $r->{other} other",
		"$opt{admitted} admitted, $refused refused, 0 other",
		"$label: $opt{clients} logins of $opt{app}, budget $opt{budget}")
	  or diag(join("\n", @{ $r->{errors} }));
	is(scalar(@wrong), 0, "$label: every refusal names budget $opt{budget}")
	  or diag(join("\n", @wrong));
	return;
}

# fl_usage(node): { budget => "max_connections|total" } from usage().
sub fl_usage
{
	my ($node) = @_;
	my %u;
	for my $row (
		split /\n/,
		$node->safe_psql('postgres',
			"SELECT budget, coalesce(max_connections::text, ''), total FROM conngov.usage()")
	  )
	{
		my ($b, $max, $total) = split /\|/, $row, -1;
		$u{$b} = "$max|$total";
	}
	return \%u;
}

# The charge of each budget in usage() against the client backends in
# pg_stat_activity that budget matches (conngov.match()), empty when all
# agree: the sessions of every application, of PostgreSQL's and Patroni's
# roles, and the unbudgeted ones.
my $fl_leak_sql = q{
WITH a AS (
  SELECT coalesce(conngov.match(application_name, usename, datname), '(unbudgeted)') AS budget
  FROM pg_stat_activity WHERE backend_type = 'client backend'),
c AS (SELECT budget, count(*) AS n FROM a GROUP BY 1)
SELECT coalesce(string_agg(format('%s: usage() %s, sessions %s',
    coalesce(u.budget, c.budget), coalesce(u.total, 0), coalesce(c.n, 0)), '; '), '')
FROM conngov.usage() u FULL JOIN c ON c.budget = u.budget
WHERE coalesce(u.total, 0) <> coalesce(c.n, 0)};

# fl_no_leaks(fleet, label): on every node, each budget's usage().total
# (and the unbudgeted row's) equals the count of the client backends it
# matches.  Sessions come and go (Patroni's, the check's own): polled until
# equal, bounded by timeout_default; a leak never gets equal.
sub fl_no_leaks
{
	my ($fleet, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	for my $name ($fleet->names)
	{
		my $node = $fleet->node($name);
		my $diff;
		fl_poll(sub { $diff = $node->safe_psql('postgres', $fl_leak_sql); $diff eq '' });
		is($diff, '', "$label: $name: usage() matches pg_stat_activity, no charge leaked");
	}
	return;
}

# fl_loaded_since(node, t, detail_like): the epoch of the node's first
# budgets_reloaded event at or after epoch t (conngov's record of a publish
# that changed the budgets in force), optionally only of those whose
# detail is LIKE detail_like; '' when none.
sub fl_loaded_since
{
	my ($node, $t, $like) = @_;
	my $and = defined $like ? " AND detail LIKE '$like'" : '';
	return $node->safe_psql('postgres',
		"SELECT coalesce(min(extract(epoch FROM at))::numeric(20,6)::text, '') FROM conngov.events()"
		  . " WHERE kind = 'budgets_reloaded' AND at >= to_timestamp($t)$and");
}

# fl_replayed_then_loaded(primary, [standbys], change, visible, loaded):
# run the SQL change on the primary node and measure, on each standby node,
# from replay to enforcement.  visible: a query that is true once the
# change is replayed (the row is visible), loaded: one that is true once
# conngov enforces it (usage()).  Each standby is polled every ~10 ms in
# its own session: the replay happened after the statement_timestamp() of
# the last poll that did not see the row (t_replay, a lower bound: the
# figure is never flattered), and enforcement starts at conngov's
# budgets_reloaded event that published it.  Returns { name => seconds }
# (undef when not seen within timeout_default) and notes the figures.
sub fl_replayed_then_loaded
{
	my ($primary, $standbys, $change, $visible, $loaded) = @_;
	my %poll;
	for my $s (@$standbys)
	{
		$poll{ $s->name } = ConngovTest::cg_psql($s, 'postgres');
	}
	my $sql =
	  "SELECT extract(epoch FROM statement_timestamp())::numeric(20,6), ($visible), ($loaded)";
	my (%t_replay, %t_seen, %done);
	my $poll_once = sub {
		for my $s (@$standbys)
		{
			my $n = $s->name;
			next if $done{$n};
			my ($t, $vis, $load) = split /\|/, $poll{$n}->query_safe($sql);
			if ($vis ne 't')
			{
				$t_replay{$n} = $t;
			}
			elsif ($load eq 't')
			{
				$done{$n} = 1;
			}
		}
		return keys(%done) == @$standbys;
	};
	$poll_once->();
	$primary->safe_psql('postgres', $change);
	fl_poll($poll_once, every => 0.01);
	my %delay;
	for my $s (@$standbys)
	{
		my $n = $s->name;
		$poll{$n}->quit;
		if (!$done{$n} || !defined $t_replay{$n})
		{
			diag("$n: the change was not enforced within the timeout");
			$delay{$n} = undef;
			next;
		}
		my $at = fl_loaded_since($s, $t_replay{$n});
		$delay{$n} = $at eq '' ? undef : $at - $t_replay{$n};
		note(sprintf('%s: replayed after %.6f, published at %s: %s s', $n, $t_replay{$n},
				$at, defined $delay{$n} ? sprintf('%.3f', $delay{$n}) : '?'));
	}
	return \%delay;
}

END
{
	my $rc = $?;
	$_->stop for reverse @live;
	$? = $rc;
}

1;
