
# Copyright (c) 2026, conngov developers

# A COMMIT that waits for its budget change to be published behaves like
# PostgreSQL's synchronous-commit wait: a cancel or a terminate ends the
# wait at once with a WARNING (the change is committed, and applies once
# published), never a PANIC, and a fast shutdown does not wait for it; a
# wait that runs out says so.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval);

my $TO = $PostgreSQL::Test::Utils::timeout_default;

# The wait's bound is timeout_default: without the cancel or terminate,
# these COMMITs would wait that long for the publish the test holds back.
my $node = cg_node('commit_wait',
	conf => "conngov.commit_wait_timeout = '${TO}s'\n");
my $mon = cg_psql($node, 'postgres');
my $log_start = -s $node->logfile;

sub committed_sql
{
	my ($name) = @_;
	return "SELECT count(*) FROM conngov.budgets WHERE name = '$name'";
}

# interrupted(name, function): a COMMIT that waits while the loads are
# held back, ended by function (pg_cancel_backend or pg_terminate_backend)
# from another session.  Returns the commit's record with took (seconds
# from the interrupt to psql's exit), committed and published (the row,
# and its budget in usage(), seen right after, loads still held back).
sub interrupted
{
	my ($name, $function) = @_;
	my $c;
	cg_loads_paused(
		$node,
		sub {
			$c = cg_commit_start(
				$node,
				app => $name,
				sql => cg_insert_sql($name),
				monitor => $mon,
				wait => 1);
			die "$name: COMMIT did not wait: ${ $c->{err} }"
			  unless defined $c->{pid};
			my $t0 = [gettimeofday];
			$mon->query_safe("SELECT $function($c->{pid})");
			cg_commit_finish($c);
			$c->{took} = tv_interval($t0);
			$c->{committed} = $mon->query_safe(committed_sql($name));
			$c->{published} = $mon->query_safe(cg_published_sql($name));
		});
	diag(sprintf('%s: COMMIT returned %.3f s after %s', $name, $c->{took},
			$function));
	return $c;
}

#
# cancel: COMMIT returns at once, with a WARNING, and the change is
# committed; it applies once the loads go on
#
my $c = interrupted('cancel', 'pg_cancel_backend');
is($c->{ret}, 0, 'cancel: COMMIT succeeds');
like(
	${ $c->{err} },
	qr/WARNING:  canceling the wait for the new connection budgets due to user request\nDETAIL:  The change to conngov.budgets is committed and applies shortly/,
	'cancel: the WARNING says the wait was canceled and the change is committed'
);
ok($c->{took} < $TO / 2,
	'cancel: COMMIT returns on the cancel, not at the end of its wait');
is($c->{committed}, 1, 'cancel: the row is committed');
is($c->{published}, 0, '... and not published while the loads are held');
cg_poll_is($node, cg_published_sql('cancel'), 1,
	'cancel: the change applies once the loads go on', monitor => $mon);

#
# terminate: COMMIT returns at once with a WARNING, then the session ends;
# the change is committed; nothing PANICs
#
$c = interrupted('terminate', 'pg_terminate_backend');
like(
	${ $c->{err} },
	qr/WARNING:  canceling the wait for the new connection budgets and terminating connection due to administrator command\nDETAIL:  The change to conngov.budgets is committed and applies shortly/,
	'terminate: the WARNING says the wait ended and the session ends');
ok($c->{took} < $TO / 2,
	'terminate: COMMIT returns on the terminate, not at the end of its wait');
is($c->{committed}, 1, 'terminate: the row is committed');
cg_poll_is($node,
	"SELECT count(*) FROM pg_stat_activity WHERE pid = $c->{pid}",
	0, 'terminate: the session is gone', monitor => $mon);
cg_poll_is($node, cg_published_sql('terminate'), 1,
	'terminate: the change applies once the loads go on', monitor => $mon);

#
# a wait that runs out says so; the bound is never cut short
#
cg_loads_paused(
	$node,
	sub {
		$c = cg_commit_start(
			$node,
			app => 'timeout',
			before => ["SET conngov.commit_wait_timeout = '300ms'"],
			sql => cg_insert_sql('timeout'));
		my $t0 = [gettimeofday];
		cg_commit_finish($c);
		$c->{took} = tv_interval($t0);
		$c->{committed} = $mon->query_safe(committed_sql('timeout'));
	});
diag(sprintf('timeout: psql ran %.3f s', $c->{took}));
is($c->{ret}, 0, 'timeout: COMMIT succeeds');
like(
	${ $c->{err} },
	qr/WARNING:  the new connection budgets were not published within conngov.commit_wait_timeout \(300 ms\)\nDETAIL:  The change to conngov.budgets is committed/,
	'timeout: the WARNING says the wait ran out');
ok($c->{took} >= 0.3, 'timeout: COMMIT waited its 300 ms');
is($c->{committed}, 1, 'timeout: the row is committed');
cg_poll_is($node, cg_published_sql('timeout'), 1,
	'timeout: the change applies once the loads go on', monitor => $mon);

#
# conngov.commit_wait_timeout = 0: no wait at all, nothing to say
#
cg_loads_paused(
	$node,
	sub {
		$c = cg_commit_start(
			$node,
			app => 'nowait',
			before => ['SET conngov.commit_wait_timeout = 0'],
			sql => cg_insert_sql('nowait'));
		cg_commit_finish($c);
		$c->{published} = $mon->query_safe(cg_published_sql('nowait'));
	});
is($c->{ret}, 0, 'no wait: COMMIT returns while the loads are held');
is(${ $c->{err} }, '', 'no wait: no WARNING');
is($c->{published}, 0, 'no wait: the budget was not published yet');
cg_poll_is($node, cg_published_sql('nowait'), 1,
	'no wait: the change applies once the loads go on', monitor => $mon);

#
# with the loads running, COMMIT waits for the publish and says nothing
#
$c = cg_commit_start($node, app => 'normal', sql => cg_insert_sql('normal'));
cg_commit_finish($c);
is($c->{ret}, 0, 'normal: COMMIT succeeds');
is(${ $c->{err} }, '', 'normal: no WARNING');
is($mon->query_safe(cg_published_sql('normal')),
	1, 'normal: the budget is published when COMMIT returns');

#
# fast shutdown: a waiting COMMIT ends at once with the terminate WARNING,
# so the shutdown does not wait for it
#
cg_loads_paused(
	$node,
	sub {
		$c = cg_commit_start(
			$node,
			app => 'shutdown',
			sql => cg_insert_sql('shutdown'),
			monitor => $mon,
			wait => 1);
		die "shutdown: COMMIT did not wait: ${ $c->{err} }"
		  unless defined $c->{pid};
		$mon->quit;
		my $t0 = [gettimeofday];
		# -W: signal only; the stopped conngov processes leave when continued
		system_log('pg_ctl', '-D', $node->data_dir, '-m', 'fast', '-W',
			'stop');
		cg_commit_finish($c);
		$c->{took} = tv_interval($t0);
	});
$node->stop('fast');
diag(sprintf('shutdown: COMMIT returned %.3f s after the fast shutdown began',
		$c->{took}));
like(
	${ $c->{err} },
	qr/WARNING:  canceling the wait for the new connection budgets and terminating connection due to administrator command/,
	'fast shutdown: the waiting COMMIT ends with the WARNING');
ok($c->{took} < $TO / 2,
	'fast shutdown: COMMIT returns at once, not at the end of its wait');

my $log = slurp_file($node->logfile, $log_start);
unlike($log, qr/PANIC/, 'no PANIC in the server log');

done_testing();
