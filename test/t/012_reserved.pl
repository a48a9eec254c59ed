
# Copyright (c) 2026, conngov developers

# PostgreSQL 16+: reserved_connections and pg_use_reserved_connections.
# headroom() counts the reserved slots; a role with the privileges of
# pg_use_reserved_connections is counted but never refused by a budget, and
# can use the reserved slots that plain roles cannot.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $probe = PostgreSQL::Test::Cluster->new('probe');
if ($probe->pg_version < 16)
{
	plan skip_all => 'reserved_connections arrived in PostgreSQL 16';
}

my $node = cg_node(
	'reserved',
	max_connections => 12,
	conf => "superuser_reserved_connections = 1\nreserved_connections = 2\n");
$node->safe_psql('postgres',
	'CREATE ROLE regress_pool LOGIN; GRANT pg_use_reserved_connections TO regress_pool;'
);
cg_budgets($node, "('nobody', '%', NULL, 0)");

# one superuser session (this query) in use: 12 - 1 - 2 = 9 normal slots
is( $node->safe_psql(
		'postgres',
		'SELECT max_connections, superuser_reserved_connections, reserved_connections, normal_slots, normal_in_use, normal_free, reserved_in_use, reserved_free FROM conngov.headroom()'
	),
	'12|1|2|9|1|8|0|3',
	'headroom() counts both kinds of reserved slots');

# a budget of 0 matching everything: pg_use_reserved_connections is exempt
my ($rc, $out, $err) = cg_login($node, user => 'regress_pool', app => 'pool-1',
	sql => 'SELECT 1');
is($rc, 0, 'a pg_use_reserved_connections member is admitted over a budget of 0');
($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'app-1');
like($err, qr/connection budget "nobody" exhausted/, 'a plain role is refused');

# fill the normal slots with plain sessions (budget lifted).  One superuser
# session watches, so that no short-lived session (whose exit is
# asynchronous) takes a slot meanwhile: 12 slots - the watcher = 11 free;
# a plain login needs 3 free left after its own, so 8 get in.
cg_budgets($node);
my $mon = cg_psql($node, 'postgres');
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
) or die 'short-lived sessions did not go away';
my @held;
for my $i (1 .. 8)
{
	push @held,
	  cg_hold($node, user => 'regress_app', app => "plain-$i", monitor => $mon);
}
is(scalar(grep { $_->{ok} } @held), 8, '8 plain sessions fill the normal slots');
is( $mon->query_safe(
		'SELECT normal_in_use, normal_free, reserved_in_use, reserved_free FROM conngov.headroom()'),
	'9|0|0|3',
	'normal_free is 0, the 3 reserved slots are free');

my $extra = cg_hold($node, user => 'regress_app', app => 'plain-9', monitor => $mon);
ok(!$extra->{ok}, 'the next plain login is refused by PostgreSQL');
like(
	$extra->{err} // '',
	qr/remaining connection slots are reserved for roles with privileges of the "pg_use_reserved_connections" role/,
	"with PostgreSQL's reserved-connections error");

my $pool = cg_hold($node, user => 'regress_pool', app => 'pool-2', monitor => $mon);
ok($pool->{ok}, 'a pg_use_reserved_connections member uses a reserved slot');
is( $mon->query_safe(
		"SELECT budget, exempt FROM conngov.sessions() WHERE login_application_name = 'pool-2'"),
	'(unbudgeted)|t',
	'counted, and exempt');
is( $mon->query_safe('SELECT normal_free, reserved_in_use, reserved_free FROM conngov.headroom()'),
	'0|1|2',
	'it took a reserved slot');

cg_release($node, $mon, @held, $pool);
$mon->quit;
$node->stop;
done_testing();
