
# Copyright (c) 2026, conngov developers

# pgjdbc + HikariCP (Debian's libpostgresql-jdbc-java, libhikaricp-java):
# pgjdbc sends application_name with a SET after login, so conngov charges
# the pool by late naming; a refusal surfaces as SQLSTATE 53300; a fixed
# pool (Hikari's default) on an exactly sized budget is "full", healthy,
# and with idle_keep = pool size it has no churn; an idle ending reaches
# pgjdbc as SQLSTATE 57P01 with conngov's message.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use lib 'test/clients';
use ConngovTest;
use ClientsTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my @jars = map { "/usr/share/java/$_" }
  qw(postgresql.jar HikariCP.jar slf4j-api.jar slf4j-simple.jar);
plan skip_all => 'pgjdbc, HikariCP or slf4j not installed (run-tests.sh clients installs them)'
  if grep { !-f } @jars;

my $classes = PostgreSQL::Test::Utils::tempdir();
my $cp = join(':', $classes, @jars);
system_or_bail('javac', '-cp', $cp, '-d', $classes, 'test/clients/JdbcProbe.java');

my $node = cg_node('jdbc', max_connections => 40,
	conf => "listen_addresses = '127.0.0.1'\nlog_statement = 'all'\n");
my $mon = cg_psql($node, 'postgres');
my $cols = 'name, application_pattern, role_name, max_connections, idle_timeout, idle_keep';
cg_set_budgets($node, $cols, "('java', 'java-api%', 'regress_app', 10, '2s', 10)",
	{ monitor => $mon });

my $url = 'jdbc:postgresql://127.0.0.1:' . $node->port . '/postgres?ApplicationName=';
my @java = ('java', '-cp', $cp, '-Dorg.slf4j.simpleLogger.defaultLogLevel=info', 'JdbcProbe');
sub sql { return $mon->query_safe($_[0]); }

# 1. a HikariCP pool with its defaults (fixed, 10) on a budget of exactly 10
my $offset = -s $node->logfile;
my $pool = cl_start(@java, 'pool', $url . 'java-api-1', 'regress_app', 10);
is(cl_wait($pool, qr/filled (\d+)/), 10, 'hikari: the pool of 10 filled');
my $filled_at = time();
like(slurp_file($node->logfile, $offset),
	qr/\[(\d+)\][^\n]*SET extra_float_digits = 3\n(?:.*\n)*?[^\n]*\[\1\][^\n]*SET application_name = 'java-api-1'/,
	'pgjdbc sends SET extra_float_digits = 3, then application_name with a SET, after login');
is(sql("SELECT total || '|' || status FROM conngov.usage() WHERE budget = 'java'"),
	'10|full', 'hikari: charged to its budget by late naming: 10, status full');
is(sql("SELECT count(*) FROM conngov.sessions() WHERE role_name = 'regress_app' AND budget <> 'java'"),
	0, 'hikari: no session of the pool is unbudgeted');
is(sql(q{SELECT conngov.health()->>'status'}), 'healthy',
	'hikari: a full, correctly sized fixed pool is healthy');

# 2. one more connection: refused at its SET, SQLSTATE 53300
my $one = cl_start(@java, 'connect', $url . 'java-api-2', 'regress_app');
cl_finish($one);
like($one->{out},
	qr/^sqlstate=53300 message=FATAL: connection budget "java" exhausted/m,
	'pgjdbc: the refusal is an SQLException with SQLSTATE 53300');
is(sql("SELECT refused FROM conngov.stats() WHERE budget = 'java'"), 1,
	'pgjdbc: one refusal counted');

# 3. idle_keep = pool size: past the idle timeout, nobody is ended
cg_sleep_until($filled_at + 2.1);
cg_worker_pass($node, $mon);
is(sql("SELECT admitted || '|' || ended_idle FROM conngov.stats() WHERE budget = 'java'"),
	'10|0', 'hikari: idle_keep = pool size: 10 logins, no ending (no churn)');
# with idle_keep below the pool size the others would be ended and the pool
# would open them again (the churn): a monitor budget shows how many
cg_set_budgets($node, "$cols, mode",
	"('java', 'java-api%', 'regress_app', 10, '2s', 4, 'monitor')",
	{ monitor => $mon });
cg_worker_pass($node, $mon);
is(sql("SELECT would_end_idle || '|' || ended_idle FROM conngov.stats() WHERE budget = 'java'"),
	'6|0', 'hikari: with idle_keep 4, 6 of the 10 would be ended');
cg_set_budgets($node, $cols, "('java', 'java-api%', 'regress_app', 10, '2s', 10)",
	{ monitor => $mon });

is(cl_finish($pool), 0, 'hikari: the pool closed cleanly');
my @warn = $pool->{err} =~ /\bWARN\b/g;
is(scalar @warn, 0, 'hikari: no WARN line from the pool') or diag($pool->{err});
cg_poll_is($node, "SELECT total FROM conngov.usage() WHERE budget = 'java'",
	'0', 'hikari: every charge given back', monitor => $mon);

# 4. an idle ending: the next statement fails with 57P01 and the message
cg_set_budgets($node, $cols, "('java', 'java-api%', 'regress_app', 10, '2s', 0)",
	{ monitor => $mon });
my $idle = cl_start(@java, 'ending', $url . 'java-api-3', 'regress_app');
my $pid = cl_wait($idle, qr/^pid (\d+)$/m);
my %gone = cg_wait_gone($mon, undef, $pid // 0);
is(scalar(keys %gone), 1, 'pgjdbc: the idle connection is ended');
cl_send($idle, "go\n");
cl_finish($idle);
like($idle->{out},
	qr/^sqlstate=57P01 message=FATAL: terminating connection due to idle timeout of connection budget "java"/m,
	'pgjdbc: its next statement fails with 57P01 and conngov\'s message')
  or diag($idle->{out} . $idle->{err});

$mon->quit;
$node->stop;
done_testing();
