
# Copyright (c) 2026, conngov developers

# headroom() is exact: normal_free = H means exactly H more plain logins,
# then PostgreSQL's reserved-slot refusal; the reserved slots and the
# oversubscription of budgets are reported as they are.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = cg_node(
	'headroom',
	max_connections => 20,
	conf => "superuser_reserved_connections = 3\n");

my $cols =
  'max_connections, superuser_reserved_connections, reserved_connections, '
  . 'normal_slots, normal_in_use, normal_free, reserved_in_use, reserved_free, '
  . 'budgeted_total, oversubscribed, status';

# A superuser session that watches; it takes one normal slot itself.
my $mon = cg_psql($node, 'postgres');
my $headroom = sub { $mon->query_safe("SELECT $cols FROM conngov.headroom()") };
my $poll = sub {
	my ($cond) = @_;
	for (1 .. 50 * $PostgreSQL::Test::Utils::timeout_default)
	{
		return 1
		  if $mon->query_safe("SELECT $cond FROM conngov.headroom()") eq 't';
		usleep(20_000);
	}
	return 0;
};

# the sessions of cg_node's setup are gone: only the watcher is in
ok($poll->('normal_free = 16'), 'only the watching session is in');
is($headroom->(), '20|3|0|17|1|16|0|3|0|f|ok',
	'headroom with one superuser session: 17 normal slots, 16 free');

my $H = $mon->query_safe('SELECT normal_free FROM conngov.headroom()');
is($H, 16, 'H = normal_free = 16');

# Plain logins one at a time, each held, until PostgreSQL refuses.
my (@holds, $refusal, @trail);
for my $i (1 .. $H + 5)
{
	my $s = cg_hold($node, user => 'regress_app', app => "hold-$i",
		monitor => $mon);
	if (!$s->{ok})
	{
		$refusal = $s->{err};
		last;
	}
	push @holds, $s;
	push @trail,
	  $mon->query_safe(
		"SELECT normal_in_use || '/' || normal_free || ' ' || status || ' ' || (conngov.health()->>'status') FROM conngov.headroom()"
	  );
}
is(scalar(@holds), $H, "exactly H = $H plain logins succeed");
like(
	$refusal // '',
	$cg_reserved_refusal,
	"login H+1 gets PostgreSQL's reserved-slot refusal");
unlike($refusal // '', qr/connection budget/, 'and not a conngov refusal');

# normal_in_use/normal_free, status and health after each login: warning
# at 14/17 (>= 0.8), critical at 16/17 (>= 0.9), exhausted at 17/17.
my @want;
for my $i (1 .. 16)
{
	my $used = $i + 1;
	my $st =
		$used >= 17 ? 'exhausted'
	  : $used >= 16 ? 'critical'
	  : $used >= 14 ? 'warning'
	  :               'ok';
	my $health =
		$st eq 'ok' ? 'healthy'
	  : $st eq 'exhausted' ? 'unhealthy'
	  :                      'degraded';
	push @want, "$used/" . (17 - $used) . " $st $health";
}
is(join("\n", @trail), join("\n", @want),
	'normal_in_use, normal_free, status and health() after each login');

# the refused backend may still be leaving
ok($poll->('reserved_free = 3'), 'the refused login has left');
is($headroom->(), '20|3|0|17|17|0|0|3|0|f|exhausted',
	'normal slots exhausted: normal_free = 0, status exhausted');
is($mon->query_safe("SELECT conngov.health()->>'status'"),
	'unhealthy', 'health() is unhealthy');
is( $mon->query_safe(
		"SELECT c->>'status' || ' ' || (c->>'normal_free') FROM jsonb_array_elements(conngov.health()->'checks') c WHERE c->>'name' = 'server'"
	),
	'exhausted 0',
	"health()'s server check says exhausted, normal_free 0");

# A superuser still gets in, on the reserved slots.
my $su1 = $node->background_psql('postgres');
is($su1->query_safe('SELECT rolsuper FROM pg_roles WHERE rolname = current_user'),
	't', 'a superuser can still log in');
is( $su1->query_safe(
		'SELECT normal_in_use, normal_free, reserved_in_use, reserved_free, status FROM conngov.headroom()'
	),
	'17|0|1|2|exhausted',
	'one superuser on the reserved slots: reserved_in_use 1, reserved_free 2');
my $su2 = $node->background_psql('postgres');
is( $su2->query_safe(
		'SELECT reserved_in_use, reserved_free FROM conngov.headroom()'),
	'2|1',
	'two superusers on the reserved slots: reserved_in_use 2, reserved_free 1');

# a plain login is still refused by PostgreSQL
my ($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'late');
isnt($rc, 0, 'a plain login is still refused');
like(
	$err,
	$cg_reserved_refusal,
	'with the reserved-slot error');
$su2->quit;
$su1->quit;
ok($poll->('reserved_free = 3'), 'the superusers have left');
is($headroom->(), '20|3|0|17|17|0|0|3|0|f|exhausted',
	'reserved slots free again');

# Give the slots back.
cg_release($node, $mon, @holds);
ok($poll->('normal_free = 16'), 'the plain sessions have left');
is($headroom->(), '20|3|0|17|1|16|0|3|0|f|ok', 'headroom back to 16 free');

# Budgets against the 17 normal slots: a sum of 17 fits, 18 does not;
# monitor budgets are not counted.
cg_budgets($node, "('api', 'api%', NULL, 10)", "('batch', 'batch%', NULL, 7)");
is( $mon->query_safe(
		'SELECT budgeted_total, oversubscribed FROM conngov.headroom()'),
	'17|f',
	'budgets adding up to normal_slots: budgeted_total 17, not oversubscribed'
);

my $stderr = '';
$node->psql(
	'postgres',
	"INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('one_more', 'one%', 1)",
	stderr => \$stderr,
	on_error_die => 1);
like(
	$stderr,
	qr/WARNING:  connection budgets are oversubscribed: enforce budgets add up to 18 connections, 1 more than the server's 17 normal slots/,
	'the INSERT that oversubscribes warns, saying by how much');
$node->safe_psql(
	'postgres',
	"INSERT INTO conngov.budgets (name, application_pattern, max_connections, mode) VALUES ('watch', 'watch%', 100, 'monitor')"
);
$node->safe_psql('postgres', 'SELECT conngov.reload()');
is($headroom->(), '20|3|0|17|1|16|0|3|18|t|ok',
	'budgeted_total 18 (the monitor budget of 100 not counted), oversubscribed'
);
is( $mon->query_safe(
		"SELECT (c->>'budgeted_total') || ' ' || (c->>'oversubscribed') FROM jsonb_array_elements(conngov.health()->'checks') c WHERE c->>'name' = 'server'"
	),
	'18 true',
	"health()'s server check reports the oversubscription");

$node->safe_psql('postgres',
	"UPDATE conngov.budgets SET max_connections = 30 WHERE name = 'api'");
$node->safe_psql('postgres', 'SELECT conngov.reload()');
is( $mon->query_safe(
		'SELECT budgeted_total, oversubscribed FROM conngov.headroom()'),
	'38|t',
	'raising a budget: budgeted_total 38');

$mon->quit;
$node->stop;
done_testing();
