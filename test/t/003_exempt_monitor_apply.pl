
# Copyright (c) 2026, conngov developers

# Who is spared and when changes apply: superusers and members of
# conngov.exempt_roles are counted but never refused; monitor budgets and
# conngov.mode = monitor admit over the limit; a committed budget change
# applies within a second, a rolled-back or uncommitted one never; lowering a
# budget ends nobody; held sessions are re-matched to a new budget; without
# shared_preload_libraries the functions say so.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval usleep);

my $t_start = [gettimeofday];

my $node = cg_node('exempt', max_connections => 100);
my $su = $node->safe_psql('postgres', 'SELECT current_user');

# All monitoring goes through one held superuser session, so that counting
# never races with the harness's own short-lived connections.
my $mon = cg_session($node, 'watcher')->{psql};

$mon->query_safe(
	'CREATE ROLE regress_dba NOLOGIN; CREATE ROLE regress_ops LOGIN; GRANT regress_dba TO regress_ops;'
);

# the budgets' columns in this test: rows are "(name, pattern,
# max_connections, priority, mode)", set with cg_set_budgets through $mon
my $cols = 'name, application_pattern, max_connections, priority, mode';

# a held session (cg_session), or undef (and a diag) if its login failed
sub held
{
	my (%opt) = @_;
	my $s = eval { cg_session($node, $opt{app}, $opt{user}) };
	diag("login of $opt{app} failed: $@") unless defined $s;
	return $s;
}

# n held sessions; asserts they all logged in
sub held_n
{
	my ($n, %opt) = @_;
	my @s = grep { defined } map { held(%opt) } 1 .. $n;
	is(scalar(@s), $n, "$n sessions of $opt{app} admitted");
	return @s;
}

# the refusal's message, with its figures
sub refusal
{
	my ($budget, $max, $filter, $in_use) = @_;
	my $conn = $max == 1 ? 'connection' : 'connections';
	return
	  qr/FATAL:  connection budget "$budget" exhausted\nDETAIL:  Budget "$budget" allows $max $conn \(application_name LIKE '\Q$filter\E'\); $in_use are in use\.\nHINT:  Close idle connections of this application, or raise conngov.budgets.max_connections for "$budget"\./;
}

# set a sighup setting with ALTER SYSTEM and wait until new sessions see it
sub set_guc
{
	my ($name, $value) = @_;
	$mon->query_safe("ALTER SYSTEM SET $name = '$value'");
	$mon->query_safe('SELECT pg_reload_conf()');
	ok(defined cg_poll_for($node, "SHOW $name", $value),
		"$name = '$value' applied");
	return;
}

sub usage_row
{
	my ($budget) = @_;
	return
	  "SELECT mode || '|' || max_connections || '|' || total || '|' || available || '|' || status FROM conngov.usage() WHERE budget = '$budget'";
}

#
# (a) exempt: a budget of 0 for every application
#
is( cg_set_budgets(
		$node, $cols,
		"('all', '%', 0, 100, 'enforce')",
		"('plain', 'plain%', 5, 10, 'enforce')",
		{ monitor => $mon }),
	2,
	'(a) budgets "all" (0 places) and "plain" loaded');

my @su = held_n(3, app => 'su-held');
cg_poll_is($node, cg_total_real_sql('all', '%'),
	'4|4', '(a) 3 superuser sessions and the watcher admitted and counted: 4',
	monitor => $mon);
is($mon->query_safe(usage_row('all')),
	'enforce|0|4|0|exhausted', '(a) "all" is exhausted');

my ($ret, $out, $err) = cg_login($node, app => 'app-x', user => 'regress_app');
isnt($ret, 0, '(a) a plain role is refused');
like($err, refusal('all', 0, '%', 4), '(a) the refusal names "all", 0 places, 4 in use');

($ret, $out, $err) = cg_login($node, app => 'ops-x', user => 'regress_ops');
like($err, refusal('all', 0, '%', 4),
	'(a) a member of regress_dba is refused while exempt_roles is empty');

set_guc('conngov.exempt_roles', 'regress_dba');
($ret, $out, $err) = cg_login($node, app => 'ops-x', user => 'regress_ops');
is($ret, 0, '(a) with exempt_roles = regress_dba, its member regress_ops logs in')
  or diag($err);
my $ops = held(app => 'ops-held', user => 'regress_ops');
ok(defined $ops, '(a) a held session of regress_ops admitted');
my $plain = held(app => 'plain-1', user => 'regress_app');
ok(defined $plain, '(a) regress_app admitted by its own budget "plain"');

is( $mon->query_safe(
		"SELECT login_application_name, role_name, budget, exempt, count(*) FROM conngov.sessions() WHERE login_application_name IN ('watcher', 'su-held', 'ops-held', 'plain-1') GROUP BY 1, 2, 3, 4 ORDER BY 1"
	),
	"ops-held|regress_ops|all|t|1
plain-1|regress_app|plain|f|1
su-held|$su|all|t|3
watcher|$su|all|t|1",
	'(a) sessions(): superusers and the exempt member flagged exempt, the plain role not'
);
cg_poll_is(
	$node,
	cg_total_real_sql('all', 'plain%', not_like => 1),
	'5|5',
	'(a) "all" counts its 5 exempt sessions, as pg_stat_activity does',
	monitor => $mon);
is($mon->query_safe(usage_row('all')),
	'enforce|0|5|0|exhausted', '(a) "all" total 5');
is($mon->query_safe(usage_row('plain')),
	'enforce|5|1|4|ok', '(a) "plain" total 1');

($ret, $out, $err) = cg_login($node, app => 'app-y', user => 'regress_app');
like($err, refusal('all', 0, '%', 5), '(a) a plain role is still refused');

cg_quit(@su, $ops, $plain);
$mon->query_safe('ALTER SYSTEM RESET conngov.exempt_roles');
$mon->query_safe('SELECT pg_reload_conf()');

#
# (b) a monitor budget admits over its limit
#
my $offset = -s $node->logfile;
is( cg_set_budgets(
		$node, $cols, "('mon', 'mon%', 2, 100, 'monitor')",
		{ monitor => $mon }),
	1,
	'(b) monitor budget "mon" of 2 loaded');
my @mon_app = held_n(4, app => 'mon-app', user => 'regress_app');
is($mon->query_safe(usage_row('mon')),
	'monitor|2|4|0|exhausted', '(b) "mon" counts 4 sessions over its 2');
unlike(slurp_file($node->logfile, $offset),
	qr/connection budget/, '(b) no refusal in the server log');
cg_quit(@mon_app);

#
# (c) conngov.mode = monitor admits over an enforce budget
#
set_guc('conngov.mode', 'monitor');
$offset = -s $node->logfile;
is( cg_set_budgets(
		$node, $cols, "('one', 'one%', 1, 100, 'enforce')",
		{ monitor => $mon }),
	1,
	'(c) enforce budget "one" of 1 loaded');
my @one = held_n(3, app => 'one-app', user => 'regress_app');
is($mon->query_safe(usage_row('one')),
	'enforce|1|3|0|exhausted', '(c) "one" counts 3 sessions over its 1');
unlike(slurp_file($node->logfile, $offset),
	qr/connection budget/, '(c) no refusal in the server log');

set_guc('conngov.mode', 'enforce');
($ret, $out, $err) = cg_login($node, app => 'one-app', user => 'regress_app');
isnt($ret, 0, '(c) back to enforce: the next login is refused');
like($err, refusal('one', 1, 'one%', 3), '(c) the refusal names "one", 1 place, 3 in use');
cg_quit(@one);
$mon->query_safe('ALTER SYSTEM RESET conngov.mode');
$mon->query_safe('SELECT pg_reload_conf()');

#
# (d) when changes apply
#

# A committed change applies at once (the SPEC says "within a second"): the
# tests below show how long it took, and assert a bound that scales with
# timeout_default (cg_late()), so that a loaded machine cannot fail them.
sub applied_ok
{
	my ($took, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	diag(sprintf('%s: %.3f s after the commit', $name, $took // -1));
	return ok(defined $took && $took < cg_late(), "$name (bound: cg_late())");
}

# log in as apply-x every 50 ms until the login is refused (or admitted,
# with want_refused = 0); returns (seconds since t0, last stderr), seconds
# undef if it never happened within timeout_default
sub login_until
{
	my ($t0, $want_refused) = @_;
	my ($r, $o, $e);
	for (;;)
	{
		($r, $o, $e) = cg_login($node, app => 'apply-x', user => 'regress_app');
		my $refused = ($e =~ /connection budget "apply" exhausted/) ? 1 : 0;
		return (tv_interval($t0), $e) if $refused == $want_refused;
		last if tv_interval($t0) > $PostgreSQL::Test::Utils::timeout_default;
		usleep(50_000);
	}
	diag("login_until: never " . ($want_refused ? 'refused' : 'admitted') . ": $e");
	return (undef, $e);
}

is( cg_set_budgets(
		$node, $cols, "('apply', 'apply%', 5, 100, 'enforce')",
		{ monitor => $mon }),
	1,
	'(d) budget "apply" of 5 loaded');
($ret, $out, $err) = cg_login($node, app => 'apply-x', user => 'regress_app');
is($ret, 0, '(d) apply-x admitted under 5');

my $t0 = [gettimeofday];
$mon->query_safe(
	"UPDATE conngov.budgets SET max_connections = 0 WHERE name = 'apply'");
my ($took, $last) = login_until($t0, 1);
applied_ok($took, '(d) committed change to 0: refused');
like($last, refusal('apply', 0, 'apply%', 0), '(d) the refusal names the new limit');

$t0 = [gettimeofday];
$mon->query_safe(
	"UPDATE conngov.budgets SET max_connections = 5 WHERE name = 'apply'");
($took) = login_until($t0, 0);
applied_ok($took, '(d) committed change back to 5: admitted');

$mon->query_safe(
	"BEGIN; UPDATE conngov.budgets SET max_connections = 0 WHERE name = 'apply'; ROLLBACK;"
);
usleep(1_500_000);
($ret, $out, $err) = cg_login($node, app => 'apply-x', user => 'regress_app');
is($ret, 0, '(d) 1.5 s after a rolled-back change to 0: still admitted')
  or diag($err);
# (the login above releases its charge when its backend exits, just after)
cg_poll_is($node, usage_row('apply'),
	'enforce|5|0|5|ok', '(d) usage() still shows 5', monitor => $mon);
is($mon->query_safe('SELECT conngov.reload()'), 1, '(d) a forced reload');
is($mon->query_safe(usage_row('apply')),
	'enforce|5|0|5|ok', '(d) still 5 after it: the rollback never applies');

my $tx = cg_session($node, 'tx')->{psql};
$tx->query_safe('BEGIN');
$tx->query_safe(
	"UPDATE conngov.budgets SET max_connections = 0 WHERE name = 'apply'");
usleep(1_500_000);
($ret, $out, $err) = cg_login($node, app => 'apply-x', user => 'regress_app');
is($ret, 0, '(d) 1.5 s into an open transaction that set 0: still admitted')
  or diag($err);
cg_poll_is($node, usage_row('apply'),
	'enforce|5|0|5|ok', '(d) usage() shows 5 before the commit', monitor => $mon);
$t0 = [gettimeofday];
$tx->query_safe('COMMIT');
($took, $last) = login_until($t0, 1);
applied_ok($took, '(d) after COMMIT: refused');
like($last, refusal('apply', 0, 'apply%', 0), '(d) the refusal names the committed limit');
$tx->quit;

#
# (e) lowering a budget below its usage ends nobody
#
is( cg_set_budgets(
		$node, $cols, "('low', 'low%', 5, 100, 'enforce')",
		{ monitor => $mon }),
	1,
	'(e) budget "low" of 5 loaded');
my @low = held_n(3, app => 'low-app', user => 'regress_app');
my $pids_sql =
  "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE application_name = 'low-app'";
my $pids = $mon->query_safe($pids_sql);
my @pids = split /,/, $pids;
is(scalar(@pids), 3, '(e) 3 sessions in pg_stat_activity');

$t0 = [gettimeofday];
$mon->query_safe(
	"UPDATE conngov.budgets SET max_connections = 1 WHERE name = 'low'");
$took = cg_poll_for(
	$node, "SELECT max_connections FROM conngov.usage() WHERE budget = 'low'",
	'1', monitor => $mon);
applied_ok(defined $took ? tv_interval($t0) : undef,
	'(e) the limit of 1 is loaded');
is($mon->query_safe($pids_sql), $pids, '(e) the same 3 sessions are still there');
is($low[0]{psql}->query_safe('SELECT 42'), 42, '(e) and still answer');
is($mon->query_safe(usage_row('low')),
	'enforce|1|3|0|exhausted', '(e) "low" counts 3 over its 1');
($ret, $out, $err) = cg_login($node, app => 'low-app', user => 'regress_app');
like($err, refusal('low', 1, 'low%', 3), '(e) a new login is refused');

cg_quit(@low[ 0, 1 ]);
cg_poll_is($node, usage_row('low'), 'enforce|1|1|0|exhausted',
	'(e) 2 sessions closed: total 1', monitor => $mon);
($ret, $out, $err) = cg_login($node, app => 'low-app', user => 'regress_app');
like(
	$err,
	qr/FATAL:  connection budget "low" exhausted\nDETAIL:  Budget "low" allows 1 connection \(application_name LIKE 'low%'\); 1 (is|are) in use\./,
	'(e) at 1 of 1 still refused');
cg_quit($low[2]);
cg_poll_is($node, usage_row('low'), 'enforce|1|0|1|ok',
	'(e) all closed: total 0', monitor => $mon);
($ret, $out, $err) = cg_login($node, app => 'low-app', user => 'regress_app');
is($ret, 0, '(e) usage dropped below the limit: admitted again') or diag($err);

#
# (f) held sessions are re-matched to a new budget
#
is(cg_set_budgets($node, $cols, { monitor => $mon }), 0, '(f) no budget');
my @rematch = held_n(3, app => 'rematch-x', user => 'regress_app');
is( $mon->query_safe(
		"SELECT budget || '|' || count(*) FROM conngov.sessions() WHERE login_application_name = 'rematch-x' GROUP BY budget"
	),
	'(unbudgeted)|3',
	'(f) the 3 sessions are unbudgeted');
$t0 = [gettimeofday];
$mon->query_safe(
	"INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES ('rematch', 'rematch%', 10)"
);
$took = cg_poll_for(
	$node, "SELECT total FROM conngov.usage() WHERE budget = 'rematch'",
	'3', monitor => $mon);
applied_ok(defined $took ? tv_interval($t0) : undef,
	'(f) a new budget counts the 3 held sessions');
is( $mon->query_safe(
		"SELECT budget || '|' || count(*) FROM conngov.sessions() WHERE login_application_name = 'rematch-x' GROUP BY budget"
	),
	'rematch|3',
	'(f) sessions() shows them in "rematch"');
cg_poll_is(
	$node,
	cg_total_real_sql('(unbudgeted)', 'watcher'),
	'1|1',
	'(f) the unbudgeted total is back to the watcher session alone',
	monitor => $mon);
cg_quit(@rematch);
cg_poll_is($node, usage_row('rematch'), 'enforce|10|0|10|ok',
	'(f) closed: total 0', monitor => $mon);

$mon->quit;

my @bad = grep { / (WARNING|ERROR|PANIC):  / } split /\n/,
  slurp_file($node->logfile);
is(scalar(@bad), 0, 'no WARNING or ERROR in the server log')
  or diag(join("\n", @bad));
$node->stop;

#
# (g) without shared_preload_libraries
#
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init;
$bare->start;
($ret, $out, $err) = $bare->psql('postgres', 'CREATE EXTENSION conngov');
is($ret, 0, '(g) CREATE EXTENSION works without preloading') or diag($err);
for my $f ('SELECT * FROM conngov.usage()',
	'SELECT * FROM conngov.sessions()', 'SELECT conngov.reload()')
{
	$err = '';
	$ret = $bare->psql('postgres', $f, stderr => \$err);
	is($ret, 3, "(g) $f fails");
	is( $err,
		'psql:<stdin>:1: ERROR:  conngov must be loaded via "shared_preload_libraries"
HINT:  Add conngov to "shared_preload_libraries" and restart the server.',
		"(g) $f: says conngov must be preloaded");
}
$bare->stop;

note(sprintf('003_exempt_monitor_apply took %.1f s', tv_interval($t_start)));

done_testing();
