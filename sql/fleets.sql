-- fleets (1.2): node_role and max_share.  The regression server is a
-- primary with 17 normal slots (test/regress.conf): a budget applies here
-- when its node_role is any or primary, and its limit here is
-- least(max_connections, floor(max_share * 17)).  Promotion and standbys
-- are covered by test/t/050_fleet_roles.pl and the fleet suite.
\set VERBOSITY default
\set SHOW_CONTEXT never
DELETE FROM conngov.budgets;

-- bad values: a clear error, nothing stored
INSERT INTO conngov.budgets (name, max_connections, node_role)
VALUES ('badrole', 5, 'replica');
INSERT INTO conngov.budgets (name, max_connections, node_role)
VALUES ('nullrole', 5, NULL);
INSERT INTO conngov.budgets (name, max_connections, max_share)
VALUES ('zeroshare', 5, 0);
INSERT INTO conngov.budgets (name, max_connections, max_share)
VALUES ('bigshare', 5, 1.5);
INSERT INTO conngov.budgets (name, max_connections, max_share)
VALUES ('negshare', 5, -0.25);
INSERT INTO conngov.budgets (name, max_connections, max_share)
VALUES ('nanshare', 5, 'NaN');
SELECT count(*) FROM conngov.budgets;

-- by role: a standby budget is not in force on a primary, and matches
-- nothing here (the next budget in matching order does)
INSERT INTO conngov.budgets (name, application_pattern, max_connections, node_role, priority) VALUES
  ('reports_on_standbys', 'reports%', 10, 'standby', 10),
  ('reports_on_primary', 'reports%', 0, 'primary', 20),
  ('web', 'web%', 4, 'any', 30);
SELECT budget, max_connections FROM conngov.usage() ORDER BY budget;
SELECT conngov.match('reports-nightly', current_user, current_database()) AS budget;
SELECT c->>'status' AS status, c->>'budgets' AS budgets, c->>'node_role' AS node_role,
       c->>'for_other_role' AS for_other_role
  FROM jsonb_array_elements(conngov.health()->'checks') AS c
 WHERE c->>'name' = 'budgets';
SELECT kind, detail FROM conngov.events() WHERE kind = 'budgets_reloaded' LIMIT 1;

-- max_share: the limit here is the smaller of max_connections and the share
UPDATE conngov.budgets SET max_share = 0.5 WHERE name = 'web';
UPDATE conngov.budgets SET max_connections = 100, max_share = 0.5 WHERE name = 'reports_on_primary';
SELECT budget, max_connections, available FROM conngov.usage() ORDER BY budget;
UPDATE conngov.budgets SET max_share = 1 WHERE name = 'reports_on_primary';
SELECT budget, max_connections FROM conngov.usage() WHERE budget = 'reports_on_primary';
UPDATE conngov.budgets SET max_share = 0.05 WHERE name = 'reports_on_primary';
SELECT budget, max_connections, status FROM conngov.usage() WHERE budget = 'reports_on_primary';

-- floors are checked against the limit here: 2 x 10 guaranteed does not
-- fit 17 slots, but with max_share 0.42 each floor is at most 7 here
DELETE FROM conngov.budgets;
INSERT INTO conngov.budgets (name, application_pattern, max_connections, min_connections) VALUES
  ('a', 'a%', 10, 10), ('b', 'b%', 10, 10);
INSERT INTO conngov.budgets (name, application_pattern, max_connections, min_connections, max_share) VALUES
  ('a', 'a%', 10, 10, 0.42), ('b', 'b%', 10, 10, 0.42);
SELECT budget, max_connections, min_connections FROM conngov.usage() ORDER BY budget;
-- a standby's floor is not the primary's: it is not summed here
INSERT INTO conngov.budgets (name, application_pattern, max_connections, min_connections, node_role)
VALUES ('s', 's%', 15, 15, 'standby');
-- ... but the same floor for the primary is
INSERT INTO conngov.budgets (name, application_pattern, max_connections, min_connections, node_role)
VALUES ('p', 'p%', 15, 15, 'primary');
-- waits are counted with the limit here too (max_waiting NULL: the limit,
-- at most 5): 14 guaranteed and 2 waiting fit, 14 and 5 do not
INSERT INTO conngov.budgets (name, application_pattern, max_connections, max_share, login_wait)
VALUES ('w', 'w%', 100, 0.12, '1s');
SELECT budget, max_connections FROM conngov.usage() WHERE budget = 'w';
UPDATE conngov.budgets SET max_share = NULL WHERE name = 'w';
-- oversubscription is the sum of the limits here
DELETE FROM conngov.budgets;
INSERT INTO conngov.budgets (name, application_pattern, max_connections, max_share) VALUES
  ('big1', 'x%', 1000, 0.5), ('big2', 'y%', 1000, 0.5);
INSERT INTO conngov.budgets (name, application_pattern, max_connections, max_share)
VALUES ('big3', 'z%', 1000, 0.2);
DELETE FROM conngov.budgets;
