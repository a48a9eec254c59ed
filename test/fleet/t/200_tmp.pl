use strict;
use warnings FATAL => 'all';
use lib 'test';
use lib 'test/fleet';
use FleetTest;
use Test::More;
use JSON::PP;
my $f = FleetTest->new(reserved => [3, 8, 13]);
$f->start;
note(encode_json($f->members));
for my $n ($f->names) { note("$n: " . $f->node($n)->safe_psql('postgres', "SELECT pg_is_in_recovery(), current_setting('max_connections'), current_setting('superuser_reserved_connections'), (SELECT count(*) FROM conngov.usage())")); }
note($f->node('node1')->safe_psql('postgres', "SELECT pid, usename, application_name, backend_type, state FROM pg_stat_activity"));
my $t = $f->switchover('node1', 'node2');
note("switchover took $t");
$f->wait_healthy('node2');
note(encode_json($f->members));
ok(1);
$f->stop;
done_testing();
