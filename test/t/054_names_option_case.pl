
# Copyright (c) 2026, conngov developers

# Review of 1.2: a name given at login in the startup options counts at
# login whatever the case of the parameter's name.  PostgreSQL's setting
# names are case-insensitive (-c Application_Name=x sets application_name),
# so a login that sends its name so did send one: it is charged by that
# name at login, not judged by the empty name (and refused as unnamed).
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = cg_node('optcase', max_connections => 20);
$node->safe_psql('postgres', 'CREATE ROLE regress_anon LOGIN');
cg_set_budgets($node,
	'name, application_pattern, role_name, max_connections',
	"('anon', '', 'regress_anon', 0)",
	"('other', 'other%', NULL, 5)");
my $m = cg_psql($node, 'postgres');

foreach my $opt ('-c Application_Name=other-1', '--APPLICATION-NAME=other-1')
{
	local $ENV{PGOPTIONS} = $opt;
	my ($rc, $out, $err) = cg_login(
		$node,
		connstr => $node->connstr('postgres') . " user=regress_anon application_name=''",
		sql => 'SHOW application_name');
	is($rc, 0, "$opt: the login is admitted");
	is($out, 'other-1', "$opt: PostgreSQL names the session other-1");
	unlike($err, qr/judged by the empty name/,
		"$opt: not refused as a login without a name");
}

# and charged to the budget its name matches, at login
my $s;
{
	local $ENV{PGOPTIONS} = '-c Application_Name=other-2';
	$s = cg_session($node, '', 'regress_anon');
}
is( $m->query_safe(
		"SELECT budget || '|' || application_name FROM conngov.sessions() WHERE pid = $s->{pid}"),
	'other|other-2',
	'charged to "other" at login, by the name its options gave');
is($m->query_safe("SELECT total FROM conngov.usage() WHERE budget = 'other'"),
	'1', '"other" counts it');
cg_quit($s);
cg_poll_is($node, "SELECT total FROM conngov.usage() WHERE budget = 'other'",
	'0', 'its charge is given back at exit', monitor => $m);

$m->quit;
$node->stop;
done_testing();
