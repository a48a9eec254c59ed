
# Copyright (c) 2026, conngov developers

# ClientsTest: helpers of the clients suite (test/clients/t/*.pl), run by
# "bash test/run-tests.sh clients".  A client program (java, node, python3,
# pgbouncer) runs under IPC::Run; its stdin is the test's barrier (the
# program waits for a line, or for end of input), and every wait for its
# output is bounded by timeout_default.
package ClientsTest;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(cl_start cl_wait cl_send cl_finish cl_json cl_node_modules);

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
	$c->{h}->pump_nb while length $c->{in} && $c->{h}->pumpable;
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

1;
