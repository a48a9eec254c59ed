
# Copyright (c) 2026, conngov developers

# Usage history: a burst of 30 sessions inside one minute is that minute's
# exact peak, a storm's admissions and refusals are counted exactly, at()
# ranks the minute's budgets, the ring stays within conngov.history_size
# (overwrites counted in health()), a clean restart keeps the history, an
# immediate stop loses it, and a corrupt or foreign history file is ignored
# with one LOG line while the server starts.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# wait_for_start(node): until the server's clock is in the first 25
# seconds of a minute, so that what the test does next (a few seconds at
# most on an idle machine) falls in one minute.  The test checks that it
# did, from the server's own timestamps, and tries again when it did not.
sub wait_for_start
{
	my ($node) = @_;
	$node->poll_query_until('postgres',
		"SELECT extract(second FROM clock_timestamp()) < 25")
	  or die "the clock never reached a minute's start";
	return;
}

sub minute_of
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT date_trunc('minute', clock_timestamp())");
}

# refuse_all(node, apps): one login per application name, each refused
sub refuse_all
{
	my ($node, @apps) = @_;
	my $n = 0;
	for my $app (@apps)
	{
		my ($rc, $out, $err) = cg_login($node, user => 'regress_app', app => $app);
		$n++ if $rc != 0 && $err =~ /connection budget ".*" exhausted/;
	}
	return $n;
}

my $main = cg_node('main', max_connections => 60);
cg_budgets(
	$main,
	"('burst', 'burst%', NULL, 40)",
	"('full', 'full%', NULL, 2)");
my $gate = cg_gate($main);

# a small ring: 150 budgets with activity in one minute, room for 100
my $small = cg_node('small', conf => "conngov.history_size = 100\n");
cg_budgets($small,
	map { sprintf("('b%03d', 'b%03d', NULL, 0)", $_, $_) } 1 .. 150);

my ($minute, $done);
for my $try (1 .. 3)
{
	wait_for_start($main);
	$minute = minute_of($main);

	# 30 sessions at once, held at the gate until all are in, then gone
	my $r = cg_storm($main, clients => 30, app => 'burst-1',
		user => 'regress_app', gate => $gate);
	is($r->{admitted}, 30, "try $try: the burst of 30 admitted");
	# a storm of 10 on a budget of 2: 2 in, 8 refused
	$r = cg_storm($main, clients => 10, app => 'full-1',
		user => 'regress_app', gate => $gate);
	is($r->{admitted}, 2, "try $try: 2 of the storm admitted");
	is($r->{refused}, 8, "try $try: 8 of the storm refused");
	is(refuse_all($small, map { sprintf('b%03d', $_) } 1 .. 150),
		150, "try $try: 150 budgets of the small ring refused once each");

	$done = minute_of($main) eq $minute && minute_of($small) eq $minute;
	last if $done;
	diag("try $try straddled a minute; again");
}
ok($done, 'the burst, the storm and the refusals fell in one minute');

# the minute closes within a second of its end: wait for its records
my $rows_sql =
  "SELECT count(*) > 0 FROM conngov.history('$minute', '$minute') WHERE budget = 'full'";
ok( $main->poll_query_until('postgres', $rows_sql),
	'the minute was closed and recorded');
is( $main->safe_psql(
		'postgres',
		"SELECT peak, admitted, refused_limit, refused_floors FROM conngov.history('$minute', '$minute', 'burst')"
	),
	'30|30|0|0',
	'burst: the minute\'s peak is exactly 30, 30 admitted, none refused');
is( $main->safe_psql(
		'postgres',
		"SELECT peak, admitted, refused_limit, would_refuse, waited FROM conngov.history('$minute', '$minute', 'full')"
	),
	'2|2|8|0|0',
	'full: peak 2, 2 admitted, 8 refused for the limit');
is( $main->safe_psql(
		'postgres',
		"SELECT string_agg(budget, ',' ORDER BY ordinality) FROM conngov.at('$minute'::timestamptz + interval '30 s') WITH ORDINALITY WHERE budget <> '(unbudgeted)'"
	),
	'burst,full',
	'at() ranks the minute\'s budgets by peak');
my ($in_use, $free, $waiting) = split /\|/,
  $main->safe_psql('postgres',
	"SELECT normal_in_use_peak, normal_free_min, waiting_peak FROM conngov.server_history('$minute', '$minute')"
  );
cmp_ok($in_use, '>=', 31, 'server: the peak counts the burst and the gate');
is($in_use + $free, 57, 'server: in use + free = the normal slots');
is($waiting, 0, 'server: nobody waited');
like(
	$main->safe_psql('postgres',
		"SELECT peaks FROM conngov.history_summary(1) WHERE budget = 'burst'"),
	qr/█/, 'history_summary() draws the burst at full height');

# the small ring: 150 records of one minute, room for 100
ok( $small->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM conngov.history('$minute', '$minute')"),
	'small: the minute was recorded');
my ($held, $size, $early) = split /\|/,
  $small->safe_psql('postgres',
	"SELECT h->>'records', h->>'history_size', h->>'overwritten_early' FROM jsonb_path_query(conngov.health(), '\$.checks[*] ? (@.name == \"history\")') AS h"
  );
is($held, 100, 'small: the ring holds 100 records (health())');
is($size, 100, 'small: conngov.history_size is 100');
cmp_ok($early, '>=', 50, 'small: 50 or more overwritten early (health())');
is( $small->safe_psql(
		'postgres',
		"SELECT max(budget) = 'b150' AND min(budget) = 'b' || lpad((151 - count(*))::text, 3, '0') AND count(*) >= 90 FROM conngov.history('$minute', '$minute') WHERE budget LIKE 'b%'"
	),
	't',
	'small: the newest records are the ones kept, oldest overwritten first');
$small->stop;

# a clean restart keeps the history
my $before = $main->safe_psql('postgres',
	"SELECT count(*) FROM conngov.history('-infinity', 'infinity')");
cmp_ok($before, '>=', 3, 'records before the restart');
cg_gate_quit($gate);
$main->restart;
is( $main->safe_psql(
		'postgres',
		"SELECT peak, admitted FROM conngov.history('$minute', '$minute', 'burst')"),
	'30|30',
	'a clean restart keeps the history');
ok(!-e $main->data_dir . '/pg_stat/conngov_history.stat',
	'the file is removed once read');

# an immediate stop loses it
$main->stop('immediate');
$main->start;
is( $main->safe_psql('postgres',
		"SELECT count(*) FROM conngov.history('-infinity', 'infinity')"),
	0, 'an immediate stop loses the history');

# a corrupt file and a foreign one are ignored, the server starts
my $file = $main->data_dir . '/pg_stat/conngov_history.stat';
$main->stop;
ok(-s $file, 'a clean stop writes the history file');
my $good = slurp_file($file);
for my $case (
	[ 'corrupt', 'x' x 100, qr/usage history file ".*" ignored: it is not a conngov usage history of this format/ ],
	[ 'truncated', substr($good, 0, 20), qr/usage history file ".*" ignored: it is too short/ ],
	[ 'foreign', substr($good, 0, 8) . pack('Q', 12345) . substr($good, 16),
		qr/usage history file ".*" ignored: it was written by another server/ ])
{
	my ($what, $content, $re) = @$case;
	open(my $fh, '>', $file) or die "open $file: $!";
	binmode $fh;
	print $fh $content;
	close $fh;
	my $offset = -s $main->logfile;
	$main->start;
	like(slurp_file($main->logfile, $offset), $re,
		"a $what file is ignored with one LOG line");
	is( $main->safe_psql(
			'postgres', 'SELECT count(*) FROM conngov.history(NULL, NULL)'),
		0, "$what: the server started with an empty history");
	$main->stop('immediate');
}

done_testing();
