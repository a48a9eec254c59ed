
# Copyright (c) 2026, conngov developers

# ClientsTest: helpers of the clients suite (test/clients/t/*.pl), run by
# "bash test/run-tests.sh clients".  A client program (java, node, python3,
# pgbouncer) runs under IPC::Run; its stdin is the test's barrier (the
# program waits for a line, or for end of input), and every wait for its
# output is bounded by timeout_default.
package ClientsTest;

use strict;
use warnings FATAL => 'all';

use ConngovTest;
use PostgreSQL::Test::Cluster;
use Exporter 'import';
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(cl_start cl_wait cl_send cl_finish cl_json cl_node_modules cl_node_has
  cl_pgbouncer_path cl_pgbouncer cl_pgbouncer_stop);

# cl_start(cmd...): start a client program; returns a handle.
sub cl_start
{
	my @cmd = @_;
	my %c = (in => '', out => '', err => '');
	$c{h} = IPC::Run::start(\@cmd, '<', \$c{in}, '>', \$c{out}, '2>', \$c{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return \%c;
}

# cl_wait(c, regexp): pump until stdout matches regexp (or the program
# exits, or timeout_default); returns the first capture group (or the
# match), undef if it never matched.
sub cl_wait
{
	my ($c, $re) = @_;
	my $t = IPC::Run::timer($PostgreSQL::Test::Utils::timeout_default);
	$t->start;
	while ($c->{out} !~ $re)
	{
		last if !$c->{h}->pumpable || $t->is_expired;
		eval { $c->{h}->pump_nb; 1 } or last;
		select(undef, undef, undef, 0.02);
	}
	return $c->{out} =~ $re ? ($1 // $&) : undef;
}

# cl_send(c, text): write text to the program's stdin.
sub cl_send
{
	my ($c, $text) = @_;
	$c->{in} .= $text;
	# a program that already exited leaves a closed pipe: cl_finish and the
	# checks of its output say what happened, not a write error here
	eval {
		$c->{h}->pump_nb while length $c->{in} && $c->{h}->pumpable;
		1;
	} or diag("client: writing to stdin: $@");
	return;
}

# cl_finish(c): close its stdin and wait for it to exit; returns its exit
# code.
sub cl_finish
{
	my ($c) = @_;
	eval { $c->{h}->finish; 1 } or diag("client: $@");
	return $c->{h}->result(0) // -1;
}

# cl_json(c, step): the JSON object the program printed for step.
sub cl_json
{
	my ($c, $step) = @_;
	my $line = cl_wait($c, qr/^(\{"step": ?"$step".*\})$/m);
	return $line ? decode_json($line) : {};
}

# cl_node_modules(): where run-tests.sh installed npm packages.
sub cl_node_modules
{
	return $ENV{CG_NODE_MODULES} // '';
}

# cl_node_has(package): whether node is on PATH and run-tests.sh installed
# the npm package.
sub cl_node_has
{
	my ($package) = @_;
	my $modules = cl_node_modules();
	return $modules ne '' && -d "$modules/$package"
	  && (grep { -x "$_/node" } split /:/, $ENV{PATH}) ? 1 : 0;
}

# cl_pgbouncer_path(): Debian's pgbouncer, or undef.
sub cl_pgbouncer_path
{
	my ($path) = grep { -x } map { "$_/pgbouncer" } (split(/:/, $ENV{PATH}), '/usr/sbin');
	return $path;
}

# cl_pgbouncer(node, databases => { alias => 'pool_mode=... ...' },
#   users => [roles], settings => { name => value }, up => { dbname, user }):
# PgBouncer on 127.0.0.1 in front of node (trust, pools of 5, a refused
# server login retried every second, clients waiting at most cg_late()
# unless settings say otherwise); returns { h, port, dir, connstr, up },
# up being whether a login as up's user to up's alias succeeded within
# timeout_default.
sub cl_pgbouncer
{
	my ($node, %opt) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $pgport = $node->port;
	my %set = (
		default_pool_size => 5,
		server_login_retry => 1,
		query_wait_timeout => int(cg_late()),
		%{ $opt{settings} // {} });
	PostgreSQL::Test::Utils::append_to_file("$dir/userlist.txt",
		join('', map { qq("$_" ""\n) } @{ $opt{users} }));
	my $dbs = $opt{databases};
	PostgreSQL::Test::Utils::append_to_file("$dir/pgbouncer.ini",
		"[databases]\n"
		  . join('', map { "$_ = host=127.0.0.1 port=$pgport dbname=postgres $dbs->{$_}\n" } sort keys %$dbs)
		  . "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = $port\nunix_socket_dir =\n"
		  . "auth_type = trust\nauth_file = $dir/userlist.txt\n"
		  . join('', map { "$_ = $set{$_}\n" } sort keys %set)
		  . "logfile = $dir/pgbouncer.log\npidfile = $dir/pgbouncer.pid\n");
	my %b = (dir => $dir, port => $port, connstr => "host=127.0.0.1 port=$port", up => 0);
	$b{h} = IPC::Run::start([ cl_pgbouncer_path(), "$dir/pgbouncer.ini" ], '<', \undef,
		'>', \$b{out}, '2>', \$b{err});
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		my ($rc) = cg_login($node, connstr => "$b{connstr} dbname=$opt{up}{dbname}",
			user => $opt{up}{user});
		if ($rc == 0) { $b{up} = 1; last; }
		select(undef, undef, undef, 0.1);
	}
	return \%b;
}

# cl_pgbouncer_stop(b): stop a PgBouncer cl_pgbouncer started.
sub cl_pgbouncer_stop
{
	my ($b) = @_;
	$b->{h}->signal('TERM');
	$b->{h}->finish;
	return;
}

1;
