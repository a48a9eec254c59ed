
# Copyright (c) 2026, conngov developers

# monitoring/: every query of queries.yaml runs as a pg_monitor role on a
# live server and returns exactly the columns it declares, labels as text
# and metrics as numbers; alerts.yml only uses metrics that exist.  With
# promtool or postgres_exporter installed, they check the files too, and
# with Prometheus, every query of the Grafana dashboard returns data from
# a live Prometheus that scrapes the exporter.
use strict;
use warnings FATAL => 'all';

use lib 'test';
use ConngovTest;
use File::Temp qw(tempfile);
use HTTP::Tiny;
use JSON::PP;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# parse_queries(file): the subset of YAML that queries.yaml uses, strictly:
#   namespace:
#     query: |            (block) or "..." (one line)
#     master: true
#     metrics:
#       - column:
#           usage: "GAUGE"
#           description: "..."
# Returns [ { name, query, master, metrics => [ { column, usage,
# description } ] } ] in file order; dies on anything else.
sub scalar_value
{
	my ($v, $where) = @_;
	if ($v =~ /^"((?:[^"\\]|\\.)*)"$/)
	{
		(my $s = $1) =~ s/\\(.)/$1/g;
		return $s;
	}
	return $1 =~ s/''/'/gr if $v =~ /^'((?:[^']|'')*)'$/;
	die "$where: unsupported scalar <$v>" if $v =~ /^["'|>&*!%@`{\[]/;
	return $v;
}

sub parse_queries
{
	my ($file) = @_;
	my @lines = split /\n/, slurp_file($file);
	my (@ns, $cur, $metric);
	for (my $i = 0; $i < @lines; $i++)
	{
		my $line = $lines[$i];
		my $where = "$file:" . ($i + 1);
		next if $line =~ /^\s*(#.*)?$/;
		die "$where: tab" if $line =~ /\t/;
		if ($line =~ /^([A-Za-z_][A-Za-z0-9_]*):\s*$/)
		{
			die "$where: duplicate namespace $1" if grep { $_->{name} eq $1 } @ns;
			push @ns, $cur = { name => $1, metrics => [] };
			undef $metric;
		}
		elsif ($cur && $line =~ /^  (query|master|cache_seconds|metrics):\s*(.*?)\s*$/)
		{
			my ($k, $v) = ($1, $2);
			die "$where: duplicate key $k"
			  if exists $cur->{ $k eq 'metrics' ? 'metrics_seen' : $k };
			if ($k eq 'metrics')
			{
				die "$where: metrics takes a list" if $v ne '';
				$cur->{metrics_seen} = 1;
			}
			elsif ($v eq '|')
			{
				my @block;
				while ($i + 1 < @lines && $lines[ $i + 1 ] =~ /^(    .*|\s*)$/)
				{
					push @block, $lines[ ++$i ];
				}
				pop @block while @block && $block[-1] =~ /^\s*$/;
				$cur->{$k} = join("\n", map { s/^    //r } @block) . "\n";
			}
			else
			{
				$cur->{$k} = scalar_value($v, $where);
			}
		}
		elsif ($cur && $cur->{metrics_seen} && $line =~ /^    - ([A-Za-z_][A-Za-z0-9_]*):\s*$/)
		{
			push @{ $cur->{metrics} }, $metric = { column => $1 };
		}
		elsif ($metric && $line =~ /^        (usage|description):\s*(.*?)\s*$/)
		{
			die "$where: duplicate $1" if exists $metric->{$1};
			$metric->{$1} = scalar_value($2, $where);
		}
		else
		{
			die "$where: not in the YAML subset this test reads: <$line>";
		}
	}
	delete $_->{metrics_seen} for @ns;
	return \@ns;
}

my $queries_file = 'monitoring/queries.yaml';
my $alerts_file = 'monitoring/alerts.yml';
my $ns = parse_queries($queries_file);

# --- the file itself -------------------------------------------------------
my %rows_expected = (
	conngov_usage => 3,
	conngov_unbudgeted => 1,
	conngov_headroom => 1,
	conngov_health => 1,
	conngov_stats => 3,
	conngov_last_minute => 3,
	conngov_server_last_minute => 1);
is( join(',', map { $_->{name} } @$ns),
	'conngov_usage,conngov_unbudgeted,conngov_headroom,conngov_health,conngov_stats,conngov_last_minute,conngov_server_last_minute',
	'queries.yaml has the namespaces');
my (%metric_type, @errors);
for my $q (@$ns)
{
	my $n = $q->{name};
	push @errors, "$n: no query" unless defined $q->{query} && $q->{query} =~ /\S/;
	push @errors, "$n: query has a semicolon" if ($q->{query} // '') =~ /;/;
	push @errors, "$n: master is not true" unless ($q->{master} // '') eq 'true';
	push @errors, "$n: no metrics" unless @{ $q->{metrics} };
	for my $m (@{ $q->{metrics} })
	{
		my $full = "${n}_$m->{column}";
		push @errors, "$full: usage " . ($m->{usage} // 'missing')
		  unless ($m->{usage} // '') =~ /^(LABEL|GAUGE|COUNTER)$/;
		push @errors, "$full: no description"
		  unless ($m->{description} // '') =~ /\S/;
		push @errors, "$full: not a Prometheus name"
		  unless $full =~ /^[a-z_][a-z0-9_]*$/;
		push @errors, "$full: declared twice" if exists $metric_type{$full};
		$metric_type{$full} = $m->{usage};
	}
	push @errors, "$n: no GAUGE or COUNTER"
	  unless grep { $_->{usage} ne 'LABEL' } @{ $q->{metrics} };
}
is(join("\n", @errors), '', 'every namespace and metric is well formed');

# the counters
is( join(',', sort grep { $metric_type{$_} eq 'COUNTER' } keys %metric_type),
	'conngov_stats_admitted,conngov_stats_ended_idle,conngov_stats_ended_lowered,conngov_stats_paced,conngov_stats_refused,conngov_stats_refused_for_floors,conngov_stats_refused_rate,conngov_stats_wait_seconds_total,conngov_stats_wait_timeouts,conngov_stats_waited,conngov_stats_would_end_idle,conngov_stats_would_refuse',
	'the stats() counters are COUNTERs');

# alerts.yml uses only metrics that queries.yaml makes
my $alerts = slurp_file($alerts_file);
my @exprs = $alerts =~ /^\s+expr:\s*(.+)$/mg;
my %used = map { $_ => 1 } map { /\b(conngov_[a-z0-9_]+)/g } @exprs;
ok(@exprs >= 5, scalar(@exprs) . ' alert expressions');
is( join(',', grep { !exists $metric_type{$_} || $metric_type{$_} eq 'LABEL' } sort keys %used),
	'', 'alerts.yml uses only metrics of queries.yaml');
like($alerts, qr/increase\(conngov_stats_refused\[5m\]\) > 0/,
	'an alert on refusals');
like($alerts, qr/conngov_headroom_floors_unreachable == 1/,
	'an alert on a floor budget that cannot reach its floor');
like($alerts, qr/increase\(conngov_stats_refused_rate\[5m\]\) > 0/,
	'an alert on logins refused for the login rate');
like($alerts, qr/increase\(conngov_stats_ended_lowered\[15m\]\) > 0/,
	'an alert on sessions ended for a lowered limit');

# --- every query on a live server ------------------------------------------
my $node = cg_node('exporter', max_connections => 30);
$node->safe_psql(
	'postgres', q{
INSERT INTO conngov.budgets (name, application_pattern, max_connections, mode, login_rate, login_burst) VALUES
  ('api', 'api%', 10, 'enforce', 0.001, 2),
  ('batch', 'batch%', 1, 'monitor', NULL, NULL),
  ('zero', 'refuse%', 0, 'enforce', NULL, NULL);
CREATE ROLE regress_exporter LOGIN IN ROLE pg_monitor;
});
$node->safe_psql('postgres', 'SELECT conngov.reload()');

my @holds;
for my $app ('api-1', 'api-2', 'batch-1', 'batch-2', 'misc')
{
	my $s = cg_hold($node, user => 'regress_app', app => $app);
	ok($s->{ok}, "session $app in") or diag($s->{err});
	push @holds, $s;
}
for my $i (1 .. 3)
{
	my ($rc, $out, $err) =
	  cg_login($node, user => 'regress_app', app => "refuse-$i");
	like($err, qr/connection budget "zero" exhausted/, "refuse-$i refused");
}
# api's two sessions took its two tokens
my ($arc, $aout, $aerr) = cg_login($node, user => 'regress_app', app => 'api-3');
like($aerr, qr/connection budget "api": login rate exceeded/,
	'api-3 refused for the login rate');

# the rows of each query, as the exporter's role sees them: column => [type,
# value] per row.  One session, like the exporter's; first wait until the
# setup's sessions have left: the unbudgeted ones are then misc and this one.
my $exp = cg_psql($node, 'postgres',
	extra_params => [ '-U', 'regress_exporter' ]);
my $settled = 0;
for (1 .. 50 * $PostgreSQL::Test::Utils::timeout_default)
{
	last
	  if $settled = $exp->query_safe(
		"SELECT total = 2 FROM conngov.usage() WHERE budget = '(unbudgeted)'") eq 't';
	usleep(20_000);
}
ok($settled, 'only misc and the exporter session are unbudgeted');
my %result;
for my $q (@$ns)
{
	my $n = $q->{name};
	my $sql =
		"SELECT r.n, e.key, jsonb_typeof(e.value), e.value #>> '{}' "
	  . "FROM (SELECT row_number() OVER () AS n, to_jsonb(q) AS j FROM (\n"
	  . $q->{query}
	  . ") q) r, jsonb_each(r.j) e ORDER BY r.n, e.key";
	my ($stdout, $failed) = $exp->query($sql);
	is($failed, 0, "$n: the query runs as a pg_monitor role")
	  or diag($exp->{stderr});
	my @rows;
	for my $line (split /\n/, $stdout)
	{
		my ($r, $k, $type, $v) = split /\|/, $line, 4;
		$rows[ $r - 1 ]{$k} = [ $type, $v ];
	}
	$result{$n} = \@rows;
	is(scalar(@rows), $rows_expected{$n}, "$n: $rows_expected{$n} rows");

	my %declared = map { $_->{column} => $_->{usage} } @{ $q->{metrics} };
	my @bad;
	for my $row (@rows)
	{
		my $cols = join(',', sort keys %$row);
		my $want = join(',', sort keys %declared);
		push @bad, "columns $cols, declared $want" if $cols ne $want;
		for my $c (sort keys %declared)
		{
			my ($type, $v) = @{ $row->{$c} // [ 'missing', undef ] };
			if ($declared{$c} eq 'LABEL')
			{
				push @bad, "$c: label is $type" unless $type eq 'string' && $v ne '';
			}
			elsif ($type ne 'number')
			{
				push @bad, "$c: $declared{$c} is $type " . ($v // '');
			}
			elsif ($declared{$c} eq 'COUNTER' && $v < 0)
			{
				push @bad, "$c: negative counter $v";
			}
		}
	}
	is(join("\n", @bad), '',
		"$n: each row has exactly the declared columns, labels text, metrics numbers"
	);
}

# a few figures
my %usage = map { $_->{budget}[1] => $_ } @{ $result{conngov_usage} };
is( join(
		"\n",
		map {
			my $r = $usage{$_};
			join('|', $_, map { $r->{$_}[1] } qw(mode max_connections in_use available usage_ratio status_code))
		} sort keys %usage),
	"api|enforce|10|2|8|0.2|0\nbatch|monitor|1|2|0|2|3\nzero|enforce|0|0|0|1|3",
	'conngov_usage figures');
is($result{conngov_unbudgeted}[0]{in_use}[1],
	2, 'conngov_unbudgeted_in_use counts misc and the exporter session');
my $h = $result{conngov_headroom}[0];
is( join('|', map { $h->{$_}[1] } qw(max_connections normal_slots budgeted_total oversubscribed status_code)),
	'30|27|10|0|0',
	'conngov_headroom figures');
is( join('|', map { $h->{$_}[1] } qw(guaranteed_unused shared_free floors_unreachable)),
	'0|' . $h->{normal_free}[1] . '|0',
	'conngov_headroom floors figures (no floor configured)');
my %stats = map { $_->{budget}[1] => $_ } @{ $result{conngov_stats} };
is( join(
		"\n",
		map {
			my $r = $stats{$_};
			join('|', $_, (map { $r->{$_}[1] } qw(admitted refused would_refuse refused_rate)),
				$r->{last_refused_timestamp_seconds}[1] > 0 ? 'set' : 'unset')
		} sort keys %stats),
	"api|2|0|0|1|unset\nbatch|2|0|1|0|unset\nzero|0|3|0|0|set",
	'conngov_stats figures');
is($result{conngov_health}[0]{status_code}[1],
	2, 'conngov_health_status_code is 2 (unhealthy: budget batch is exhausted)');

# --- promtool, when installed ------------------------------------------------
SKIP:
{
	skip 'promtool is not installed', 1
	  unless grep { -x "$_/promtool" } split /:/, $ENV{PATH};
	my ($out, $err) = run_command([ 'promtool', 'check', 'rules', $alerts_file ]);
	like($out, qr/SUCCESS: \d+ rules found/, 'promtool check rules passes')
	  or diag($out, $err);
}

# --- postgres_exporter, when installed --------------------------------------
SKIP:
{
	my ($exporter) =
	  grep { -x }
	  map { ("$_/postgres_exporter", "$_/prometheus-postgres-exporter") }
	  split /:/, $ENV{PATH};
	skip 'postgres_exporter is not installed', 2 unless $exporter;

	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my ($out, $err) = ('', '');
	local $ENV{DATA_SOURCE_NAME} =
		'host=' . $node->host . ' port=' . $node->port
	  . ' user=regress_exporter dbname=postgres sslmode=disable';
	my $run = IPC::Run::start(
		[
			$exporter, "--extend.query-path=$queries_file",
			'--disable-default-metrics', '--disable-settings-metrics',
			"--web.listen-address=127.0.0.1:$port"
		],
		'<', \undef, '>', \$out, '2>', \$err);
	my $body = '';
	# until it serves the metrics, bounded by timeout_default
	my $end = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $end)
	{
		my $r = HTTP::Tiny->new(timeout => 5, proxy => undef, http_proxy => undef)
		  ->get("http://127.0.0.1:$port/metrics");
		if ($r->{success} && $r->{content} =~ /^conngov_stats_refused/m)
		{
			$body = $r->{content};
			last;
		}
		usleep(100_000);
	}
	# --- the Grafana dashboard's queries on a live Prometheus ------------
	SKIP:
	{
		my ($prom) = grep { -x } map { "$_/prometheus" } split /:/, $ENV{PATH};
		skip 'prometheus is not installed', 2 unless $prom && $body ne '';
		my $dir = PostgreSQL::Test::Utils::tempdir();
		my $pport = PostgreSQL::Test::Cluster::get_free_port();
		open(my $fh, '>', "$dir/prometheus.yml") or die "open: $!";
		print $fh "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
		  . "scrape_configs:\n  - job_name: conngov\n    static_configs:\n"
		  . "      - targets: ['127.0.0.1:$port']\n";
		close $fh;
		my ($pout, $perr) = ('', '');
		my $prun = IPC::Run::start(
			[
				$prom, "--config.file=$dir/prometheus.yml",
				"--storage.tsdb.path=$dir/data",
				"--web.listen-address=127.0.0.1:$pport"
			],
			'<', \undef, '>', \$pout, '2>', \$perr);
		my $http = HTTP::Tiny->new(timeout => 5, proxy => undef, http_proxy => undef);
		my $query = sub {
			my ($expr) = @_;
			my $r = $http->get("http://127.0.0.1:$pport/api/v1/query?"
				  . $http->www_form_urlencode({ query => $expr }));
			return undef unless $r->{success};
			my $j = eval { JSON::PP::decode_json($r->{content}) };
			return $j && $j->{status} eq 'success' ? $j->{data}{result} : undef;
		};
		# until Prometheus holds 3 scrapes of the exporter (rate() needs 2)
		my $scraped = 0;
		my $pend = time() + $PostgreSQL::Test::Utils::timeout_default;
		while (time() < $pend)
		{
			my $res = $query->('count_over_time(conngov_headroom_normal_slots[5m])');
			$scraped = $res && @$res ? $res->[0]{value}[1] : 0;
			last if $scraped >= 3;
			usleep(200_000);
		}
		cmp_ok($scraped, '>=', 3, 'Prometheus scraped the exporter 3 times')
		  or diag("prometheus stderr:\n$perr");

		my $dash = JSON::PP::decode_json(slurp_file('monitoring/grafana-dashboard.json'));
		my @empty;
		my $n = 0;
		for my $panel (@{ $dash->{panels} })
		{
			for my $t (@{ $panel->{targets} })
			{
				$n++;
				my $res = $query->($t->{expr});
				push @empty, "$panel->{title}: $t->{expr}" unless $res && @$res;
			}
		}
		is(join("\n", @empty), '',
			"every query of the Grafana dashboard ($n in "
			  . scalar(@{ $dash->{panels} })
			  . ' panels) returns data from Prometheus');
		$prun->signal('TERM');
		$prun->finish;
	}

	$run->signal('TERM');
	$run->finish;
	note "conngov metrics served by postgres_exporter:\n",
	  join("\n", grep { /^conngov_/ } split /\n/, $body);

	my @missing;
	for my $m (sort keys %metric_type)
	{
		next if $metric_type{$m} eq 'LABEL';
		my $t = lc $metric_type{$m};
		push @missing, $m unless $body =~ /^# TYPE $m $t$/m && $body =~ /^$m(\{| )/m;
	}
	is(join(',', @missing), '', 'postgres_exporter serves every metric with its type')
	  or diag("exporter stderr:\n$err\nmetrics:\n$body");
	like($body, qr/^conngov_stats_refused\{[^}]*budget="zero"[^}]*\} 3$/m,
		'conngov_stats_refused{budget="zero"} is 3');
}

$exp->quit;
cg_release($node, undef, @holds);
$node->stop;
done_testing();
