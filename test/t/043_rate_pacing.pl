
# Copyright (c) 2026, conngov developers

# Pacing: with login_wait, a login over the rate whose token comes within
# the wait waits for it instead of being refused, and is admitted when it is
# due: admissions are one interval apart ("connection authorized" in the
# server log, written after the check); a login whose token comes after
# login_wait is refused at once, saying so; a login never waits in the
# reserved room: with the free slots down to the reserved ones it is
# refused at once, saying there was no room to wait.  The rates are low
# enough (a token every 2 s or 20 s) that how fast the machine is decides
# nothing.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

my $node = cg_node('rate_pacing', max_connections => 12,
	conf => "log_connections = on\nsuperuser_reserved_connections = 3\n");
my $m = cg_psql($node, 'postgres');

sub sql { return $m->query_safe($_[0]); }

# oversubscribed on purpose (the filler takes the free slots): not through
# the monitor, whose query_safe takes the WARNING for an error
$node->psql('postgres',
	"INSERT INTO conngov.budgets (name, application_pattern, role_name, max_connections, login_rate, login_burst, login_wait, max_waiting) VALUES "
	  . "('paced', 'paced-%', 'regress_app', 5, 0.5, 1, '20 s', 0), "
	  . "('slow', 'slow-%', 'regress_app', 2, 0.001, 1, '5 s', 0), "
	  . "('roomy', 'roomy-%', 'regress_app', 2, 0.05, 1, '25 s', 0), "
	  . "('filler', 'filler-%', 'regress_app', 9, NULL, NULL, NULL, NULL)");
sql('SELECT conngov.reload()');

###########################################################################
# four logins at once, one token every 2 s: all admitted, 2 s apart
my $offset = -s $node->logfile;
my $c = cg_start_clients($node, clients => 4, app => 'paced-c',
	user => 'regress_app', sql => 'SELECT 1');
my $r = cg_finish_clients($c);
is($r->{admitted}, 4, 'four logins over the rate are all admitted (paced)')
  or diag(join("\n", @{ $r->{errors} }));
my @at = sort { $a <=> $b } map { cg_epoch($node, $_) } (
	slurp_file($node->logfile, $offset) =~
	  /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+) \[\d+\] .*connection authorized: user=regress_app .*application_name=paced-c/mg
);
is(scalar(@at), 4, 'four admissions in the log');
my @gaps = map { $at[$_] - $at[ $_ - 1 ] } 1 .. $#at;
diag('gaps between admissions: ' . join(' ', map { sprintf('%.3f', $_) } @gaps));
# A token is due exactly 2 s after the one before; the log line of each
# admission comes some milliseconds later, as its backend gets the CPU
# (up to tens of ms on a busy machine), and the stamps are rounded to the
# millisecond: gaps may read short of 2 s by that much, never by a token.
is((grep { $_ >= 2 - 0.050 } @gaps), 3,
	'each admission came one interval (2 s, less 50 ms of scheduling) after the one before');
cmp_ok($at[-1] - $at[0], '>=', 6 - 0.050,
	'the four admissions span three intervals (6 s, less 50 ms)');
my $paced = sql("SELECT paced FROM conngov.stats() WHERE budget = 'paced'");
ok($paced >= 1, "logins waited for their token (stats() paced = $paced)");
is(sql("SELECT count(*) FROM conngov.events() WHERE kind = 'paced' AND budget = 'paced'"),
	$paced, 'one paced event per paced login');
is(sql("SELECT refused_rate FROM conngov.stats() WHERE budget = 'paced'"),
	'0', 'none was refused');

###########################################################################
# a token after login_wait: refused at once, saying so
my ($rc) = cg_login($node, user => 'regress_app', app => 'slow-1');
is($rc, 0, 'the first login takes the only token');
my $t0 = Time::HiRes::time();
my ($out, $err);
($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'slow-2');
my $took = Time::HiRes::time() - $t0;
like(
	$err,
	qr/FATAL:  connection budget "slow": login rate exceeded\nDETAIL:  Budget "slow" admits 0\.001 logins per second \(burst 1\)\. The next token comes after the budget's login_wait\.\nHINT:  Retry in \d+ s, or raise conngov\.budgets\.login_rate for "slow"\./,
	'a login whose token comes after login_wait is refused, saying so');
ok($took < 5, sprintf('... at once (%.2f s; login_wait is 5 s)', $took));

###########################################################################
# never in reserved room
($rc) = cg_login($node, user => 'regress_app', app => 'roomy-1');
is($rc, 0, 'the first login takes the only token');
my $free = sql('SELECT normal_free FROM conngov.headroom()');
my @fill = map {
	cg_hold($node, user => 'regress_app', app => "filler-$_", monitor => $m)
} 1 .. $free;
is(sql('SELECT normal_free FROM conngov.headroom()'), '0',
	'the normal slots are all taken');
$t0 = Time::HiRes::time();
($rc, $out, $err) = cg_login($node, user => 'regress_app', app => 'roomy-2');
$took = Time::HiRes::time() - $t0;
like(
	$err,
	qr/FATAL:  connection budget "roomy": login rate exceeded\nDETAIL:  Budget "roomy" admits 0\.05 logins per second \(burst 1\)\. There was no room to wait for the token: a waiting login holds a server connection slot, and \d+ (?:is|are) free, fewer than the 3 kept/,
	'a login that would wait in the reserved room is refused, saying so');
ok($took < 20, sprintf('... at once (%.2f s; its token was due within 20 s)', $took));
($rc) = cg_login($node, app => 'roomy-dba');
is($rc, 0, 'a superuser still logs in');
cg_release($node, $m, @fill);

$m->quit;
$node->stop;
done_testing();
