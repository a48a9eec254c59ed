-- monitoring: headroom(), health(), stats(), events(), reset_stats() and the
-- oversubscription WARNING (test/regress.conf: max_connections 20, 3 slots
-- reserved for superusers, so 17 normal slots)
\set VERBOSITY default
SELECT max_connections, superuser_reserved_connections, reserved_connections,
       normal_slots, normal_in_use + normal_free AS in_use_plus_free,
       normal_in_use >= 1 AS counts_me, reserved_in_use, reserved_free,
       budgeted_total, oversubscribed, status
  FROM conngov.headroom();

-- the enforce budgets' sum against the 17 normal slots
INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES
  ('regress', 'pg_regress%', 10),
  ('batch', 'batch%', 7);
INSERT INTO conngov.budgets (name, application_pattern, max_connections)
VALUES ('one_more', 'one%', 1);
UPDATE conngov.budgets SET max_connections = 20 WHERE name = 'batch';
-- monitor budgets do not count
UPDATE conngov.budgets SET mode = 'monitor' WHERE name = 'batch';
SELECT conngov.reload();
SELECT budgeted_total, oversubscribed FROM conngov.headroom();

-- health(): overall status and one check per budget plus the server
SELECT jsonb_typeof(h) AS type, h->>'status' AS status,
       jsonb_array_length(h->'checks') AS checks,
       (SELECT array_agg(c->>'name' ORDER BY c->>'name') FROM jsonb_array_elements(h->'checks') c) AS names
  FROM conngov.health() h;
SELECT c->>'budget' AS budget, c->>'status' AS status, c->>'mode' AS mode,
       (c->>'max_connections')::int AS max_connections, (c->>'total')::int AS total,
       (c->>'available')::int AS available
  FROM conngov.health() h, jsonb_array_elements(h->'checks') c
 WHERE c ? 'budget' ORDER BY 1;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(c) k) AS server_keys
  FROM conngov.health() h, jsonb_array_elements(h->'checks') c
 WHERE c->>'name' = 'server';
-- a budget at its limit with no refusal is full, which is healthy (a budget
-- of 0 is never counted); refusals make it exhausted (TAP 015)
UPDATE conngov.budgets SET max_connections = 0 WHERE name = 'one_more';
UPDATE conngov.budgets SET max_connections = 1 WHERE name = 'regress';
SELECT conngov.reload();
SELECT conngov.health()->>'status' AS status;
UPDATE conngov.budgets SET max_connections = 2 WHERE name = 'regress';
SELECT conngov.reload();
SELECT conngov.health()->>'status' AS status;
UPDATE conngov.budgets SET max_connections = 10 WHERE name = 'regress';
SELECT conngov.reload();
SELECT conngov.health()->>'status' AS status;

-- stats(): counters per budget; reset_stats() zeroes them
SELECT budget, admitted, refused, would_refuse, ended_idle, would_end_idle,
       peak, last_refused_at, stats_reset IS NOT NULL AS has_reset
  FROM conngov.stats() ORDER BY budget;
\c "dbname=contrib_regression application_name=pg_regress/monitoring"
SELECT budget, admitted >= 1 AS admitted FROM conngov.stats() WHERE budget = 'regress';
SELECT conngov.reset_stats();
SELECT budget, admitted, refused, peak FROM conngov.stats() ORDER BY budget;

-- events(): newest first; reloads are recorded
SELECT kind, budget, detail FROM conngov.events() LIMIT 1;
SELECT count(*) FROM conngov.events(now() + interval '1 hour');
SELECT count(*) > 0 AS some FROM conngov.events(NULL);

DELETE FROM conngov.budgets;
SELECT conngov.reload();
-- 1.2 usage history: the SQL surface (the figures are checked in TAP 040)
SELECT count(*) FROM conngov.history('infinity', '-infinity');
SELECT count(*) FROM conngov.at(NULL);
SELECT count(*) FROM conngov.server_history('infinity', 'infinity');
SELECT count(*) >= 0 AS ok FROM conngov.history_summary(1);
SELECT * FROM conngov.history_summary(0);
SELECT * FROM conngov.history_summary(169);
SELECT (c->>'history_size')::int AS history_size, c->'overwritten_early' AS early
  FROM jsonb_array_elements(conngov.health()->'checks') c WHERE c->>'name' = 'history';
