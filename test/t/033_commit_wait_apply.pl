
# Copyright (c) 2026, conngov developers

# Logical replication's apply worker never waits in its COMMIT for the
# publish of the budget changes it applies (nobody waits for its COMMIT,
# and every later change would wait behind it); the changes apply once
# published.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval);

my $TO = $PostgreSQL::Test::Utils::timeout_default;

# A wait would last timeout_default here (1.1 waited its fixed 2 s per
# applied transaction); the bound asserted for a replicated change to be
# seen, 1 s, is half of 1.1's 2 s.
my $no_wait = 1.0;

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->start;
$pub->safe_psql(
	'postgres', q{
	CREATE SCHEMA conngov;
	CREATE TABLE conngov.budgets (name text PRIMARY KEY,
		application_pattern text NOT NULL, max_connections integer NOT NULL);
	CREATE PUBLICATION regress_budgets FOR TABLE conngov.budgets;
});

my $sub = cg_node('subscriber',
	conf => "conngov.commit_wait_timeout = '${TO}s'\n");
my $mon = cg_psql($sub, 'postgres');
my $writer = cg_psql($pub, 'postgres');
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION regress_budgets CONNECTION '"
	  . $pub->connstr . " dbname=postgres' PUBLICATION regress_budgets");
$sub->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')"
) or die 'the subscription did not synchronize';

# replicated(name): seconds from the publisher's INSERT of budget name
# until the subscriber has the row (undef: not within timeout_default).
# A row is visible once its commit record is written, before the commit
# callbacks: the first change is seen even if the apply worker then waits
# in its COMMIT; the second one only after that wait.
sub replicated
{
	my ($name) = @_;
	my $t0 = [gettimeofday];
	$writer->query_safe(cg_insert_sql($name));
	my $ok = defined cg_poll_for($sub,
		"SELECT count(*) FROM conngov.budgets WHERE name = '$name'",
		1, monitor => $mon);
	return $ok ? tv_interval($t0) : undef;
}

my @took = cg_loads_paused($sub,
	sub { return (replicated('apply1'), replicated('apply2')); });
diag(sprintf('apply: replicated in %.3f s and %.3f s, loads held back',
		map { $_ // -1 } @took));
ok(defined $took[1] && $took[1] < $no_wait,
	"apply: the second change is seen within $no_wait s: the first one's COMMIT did not wait"
);
cg_poll_is($sub,
	"SELECT count(*) FROM conngov.usage() WHERE budget IN ('apply1', 'apply2')",
	2, 'apply: both apply once the loads go on', monitor => $mon);
is($mon->query_safe(
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'logical replication worker' AND wait_event_type = 'Extension'"
	),
	0,
	'apply: the apply worker is not waiting for a publish');

$mon->quit;
$writer->quit;
$sub->safe_psql('postgres', 'DROP SUBSCRIPTION regress_budgets');
$sub->stop;
$pub->stop;
done_testing();
