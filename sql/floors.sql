-- floors and waits (1.1): bad values of min_connections, login_wait and
-- max_waiting; floors (and, 1.2, waits) that do not fit the server's 17
-- normal slots
-- (test/regress.conf); the new columns of usage(), headroom(), stats()
-- and the "floors" check of health()
\set VERBOSITY default
\set SHOW_CONTEXT never
DELETE FROM conngov.budgets;
SELECT conngov.reload();
SHOW authentication_timeout;

INSERT INTO conngov.budgets (name, max_connections, min_connections)
VALUES ('negfloor', 5, -1);
INSERT INTO conngov.budgets (name, max_connections, min_connections)
VALUES ('bigfloor', 5, 6);
INSERT INTO conngov.budgets (name, max_connections, min_connections)
VALUES ('nullfloor', 5, NULL);
INSERT INTO conngov.budgets (name, max_connections, login_wait)
VALUES ('zerowait', 5, '0');
INSERT INTO conngov.budgets (name, max_connections, login_wait)
VALUES ('longwait', 5, '1 minute');
INSERT INTO conngov.budgets (name, max_connections, max_waiting)
VALUES ('negwaiting', 5, -1);

-- the floors of the enforce budgets must fit the 17 normal slots
INSERT INTO conngov.budgets (name, application_pattern, max_connections, min_connections)
VALUES ('core_api', 'core%', 20, 18);
INSERT INTO conngov.budgets (name, application_pattern, max_connections, min_connections) VALUES
  ('core_api', 'core%', 20, 10),
  ('admin_api', 'admin%', 10, 8);
INSERT INTO conngov.budgets (name, application_pattern, max_connections, min_connections) VALUES
  ('core_api', 'core%', 20, 10),
  ('admin_api', 'admin%', 10, 7);
UPDATE conngov.budgets SET min_connections = min_connections + 1;
-- a monitor budget's floor guarantees nothing and is not summed
INSERT INTO conngov.budgets (name, application_pattern, max_connections, min_connections, mode)
VALUES ('watched', 'watched%', 10, 10, 'monitor');
-- waits within authentication_timeout (monitor budgets: the floors above
-- fill the normal slots, and an enforce budget's waits would not fit)
INSERT INTO conngov.budgets (name, application_pattern, max_connections, login_wait, max_waiting, mode)
VALUES ('queued', 'queued%', 3, '2 s', 4, 'monitor'),
       ('queued_default', 'queued_default%', 3, '59.9 s', NULL, 'monitor');
-- 1.2: the logins that may wait (max_waiting NULL: least(max_connections,
-- 5)) and the floors must fit the normal slots together
INSERT INTO conngov.budgets (name, application_pattern, max_connections, login_wait)
VALUES ('waiter', 'waiter%', 3, '2 s');
SELECT conngov.reload();

SELECT budget, mode, max_connections, total, min_connections, guaranteed_unused, waiting
  FROM conngov.usage() ORDER BY budget COLLATE "C";
SELECT guaranteed_unused, shared_free = greatest(normal_free - 17, 0) AS shared_free_ok
  FROM conngov.headroom();
SELECT budget, refused_for_floors, waited, wait_seconds_total, wait_timeouts
  FROM conngov.stats() ORDER BY budget COLLATE "C";
-- 17 guaranteed but this session takes one of the 17 slots: degraded
SELECT c->>'status' AS status, (c->>'floors_sum')::int AS floors_sum,
       (c->>'normal_slots')::int AS normal_slots, c->>'fit' AS fit,
       c->>'reachable' AS reachable, c->>'reason' AS reason
  FROM jsonb_array_elements(conngov.health()->'checks') c
 WHERE c->>'name' = 'floors';
SELECT c->>'budget' AS budget, (c->>'min_connections')::int AS min_connections,
       (c->>'guaranteed_unused')::int AS guaranteed_unused, (c->>'waiting')::int AS waiting
  FROM jsonb_array_elements(conngov.health()->'checks') c
 WHERE c ? 'budget' ORDER BY c->>'budget' COLLATE "C";

DELETE FROM conngov.budgets;
SELECT conngov.reload();
SELECT count(*) AS floors_checks
  FROM jsonb_array_elements(conngov.health()->'checks') c
 WHERE c->>'name' = 'floors';
