-- budgets: the table's rules and their error texts; a bad row changes nothing
\set VERBOSITY default
INSERT INTO conngov.budgets (name, application_pattern, max_connections)
VALUES ('core_api', 'core-api%', 150);
SELECT name, application_pattern, role_name, database_name, max_connections,
       mode, idle_timeout, idle_in_transaction_timeout, idle_keep, priority,
       comment
  FROM conngov.budgets;

-- every column's bad values
INSERT INTO conngov.budgets (name, max_connections) VALUES ('', 1);
INSERT INTO conngov.budgets (name, max_connections) VALUES (repeat('n', 64), 1);
INSERT INTO conngov.budgets (name, max_connections) VALUES (NULL, 1);
INSERT INTO conngov.budgets (name, max_connections) VALUES ('core_api', 1);
INSERT INTO conngov.budgets (name, application_pattern, max_connections)
VALUES ('long', repeat('a', 64), 1);
INSERT INTO conngov.budgets (name, application_pattern, max_connections)
VALUES ('escape', 'app\', 1);
INSERT INTO conngov.budgets (name, application_pattern, max_connections)
VALUES ('escape3', 'app\\\', 1);
INSERT INTO conngov.budgets (name, application_pattern, max_connections)
VALUES ('nullpattern', NULL, 1);
INSERT INTO conngov.budgets (name, max_connections) VALUES ('negative', -1);
INSERT INTO conngov.budgets (name, max_connections) VALUES ('nomax', NULL);
INSERT INTO conngov.budgets (name, max_connections, mode) VALUES ('badmode', 1, 'Enforce');
INSERT INTO conngov.budgets (name, max_connections, mode) VALUES ('nullmode', 1, NULL);
INSERT INTO conngov.budgets (name, max_connections, idle_timeout) VALUES ('zero', 1, '0');
INSERT INTO conngov.budgets (name, max_connections, idle_timeout) VALUES ('neg', 1, '-5 seconds');
INSERT INTO conngov.budgets (name, max_connections, idle_timeout) VALUES ('mixed', 1, '1 day -25 hours');
INSERT INTO conngov.budgets (name, max_connections, idle_in_transaction_timeout) VALUES ('zero2', 1, '0 s');
INSERT INTO conngov.budgets (name, max_connections, idle_keep) VALUES ('keep', 1, -3);
INSERT INTO conngov.budgets (name, max_connections, idle_keep) VALUES ('keepnull', 1, NULL);
INSERT INTO conngov.budgets (name, max_connections, priority) VALUES ('prionull', 1, NULL);
UPDATE conngov.budgets SET max_connections = -2 WHERE name = 'core_api';
-- the constraints stand behind the trigger
ALTER TABLE conngov.budgets DISABLE TRIGGER budgets_validate;
\set VERBOSITY terse
INSERT INTO conngov.budgets (name, max_connections) VALUES ('negative', -1);
INSERT INTO conngov.budgets (name, max_connections, mode) VALUES ('badmode', 1, 'x');
INSERT INTO conngov.budgets (name, application_pattern, max_connections)
VALUES ('escape', 'app\', 1);
ALTER TABLE conngov.budgets ENABLE TRIGGER budgets_validate;
\set VERBOSITY default

-- good edge values: 63-byte pattern and name, escaped trailing backslash,
-- quotes and non-ASCII text
INSERT INTO conngov.budgets (name, application_pattern, max_connections)
VALUES (repeat('n', 63), repeat('a', 63), 0),
       ('backslash', 'app\\', 1),
       ('quote''s', 'it''s%', 1),
       ('café', 'café%', 1);
SELECT name, octet_length(name) AS name_bytes, application_pattern
  FROM conngov.budgets ORDER BY name COLLATE "C";
SELECT conngov.reload();
SELECT budget, max_connections FROM conngov.usage() ORDER BY budget COLLATE "C";

-- a rolled-back change is never published
BEGIN;
INSERT INTO conngov.budgets (name, max_connections) VALUES ('rolled_back', 1);
ROLLBACK;
SELECT pg_sleep(0.5);
SELECT count(*) FROM conngov.usage() WHERE budget = 'rolled_back';

-- reload() only loads committed rows, so it refuses to run in the
-- transaction that changed them
BEGIN;
INSERT INTO conngov.budgets (name, max_connections) VALUES ('in_tx', 1);
SELECT conngov.reload();
ROLLBACK;

-- a committed change applies by itself within a second
INSERT INTO conngov.budgets (name, max_connections) VALUES ('committed', 7);
SELECT pg_sleep(1);
SELECT budget, max_connections FROM conngov.usage() WHERE budget = 'committed';

DELETE FROM conngov.budgets;
SELECT conngov.reload();
