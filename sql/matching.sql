-- matching: (priority, name) order, role and database filters, LIKE with
-- %, _ and \ escapes, empty application_name, unbudgeted connections
\set VERBOSITY terse
CREATE ROLE regress_app LOGIN;
CREATE ROLE regress_batch LOGIN;
INSERT INTO conngov.budgets (name, application_pattern, role_name, database_name, max_connections, priority) VALUES
  ('core_api',      'core-api%',    NULL,           NULL,                 150, 100),
  ('admin_api',     'admin-api%',   NULL,           NULL,                  75, 100),
  ('aggregation',   'aggregation_worker', 'regress_batch', NULL,           5, 100),
  ('api_any',       '%api%',        NULL,           NULL,                  10, 200),
  ('b_same_prio',   'same%',        NULL,           NULL,                   1, 50),
  ('a_same_prio',   'same%',        NULL,           NULL,                   1, 50),
  ('db_only',       '%',            NULL,           'regress_nowhere',      1, 10),
  ('literal_pct',   '100\%',        NULL,           NULL,                   1, 100),
  ('literal_us',    'a\_b',         NULL,           NULL,                   1, 100),
  ('one_char',      'x_z',          NULL,           NULL,                   1, 100),
  ('backslash',     'c:\\tmp',      NULL,           NULL,                   1, 100),
  ('empty',         '',             NULL,           NULL,                   1, 100),
  ('case',          'CaseApp',      NULL,           NULL,                   1, 100),
  ('quotes',        'it''s "q"',    NULL,           NULL,                   1, 100);
SELECT conngov.reload();

SELECT app, role, conngov.match(app, role::name, 'contrib_regression') AS budget
  FROM (VALUES
    ('core-api-7', 'regress_app'),
    ('core-api', 'regress_app'),
    ('Core-api-7', 'regress_app'),
    ('admin-api', 'regress_app'),
    ('my-api', 'regress_app'),
    ('aggregation_worker', 'regress_batch'),
    ('aggregation_worker', 'regress_app'),
    ('aggregationXworker', 'regress_batch'),
    ('same-thing', 'regress_app'),
    ('100%', 'regress_app'),
    ('1000', 'regress_app'),
    ('a_b', 'regress_app'),
    ('axb', 'regress_app'),
    ('xyz', 'regress_app'),
    ('xz', 'regress_app'),
    ('xyyz', 'regress_app'),
    ('c:\tmp', 'regress_app'),
    ('c:tmp', 'regress_app'),
    ('', 'regress_app'),
    ('CaseApp', 'regress_app'),
    ('caseapp', 'regress_app'),
    ('it''s "q"', 'regress_app'),
    ('psql', 'regress_app')
  ) AS t(app, role);

-- database filter
SELECT conngov.match('anything', 'regress_app', 'regress_nowhere') AS budget;
-- names past 63 bytes are cut as at login
SELECT conngov.match(repeat('x', 10) || 'core-api', 'regress_app', 'contrib_regression') AS budget,
       conngov.match('core-api' || repeat('x', 100), 'regress_app', 'contrib_regression') AS long_budget;

-- priority change re-orders without touching names
UPDATE conngov.budgets SET priority = 1 WHERE name = 'api_any';
SELECT conngov.reload();
SELECT conngov.match('core-api-7', 'regress_app', 'contrib_regression') AS budget;

-- the index (role, database, literal prefix) finds what the linear scan
-- finds: equal prefixes at several priorities, ties broken by name, role-
-- and database-specific keys next to "any", prefixes longer than the name,
-- escapes inside prefixes, empty patterns.  Compared with LIKE over a grid.
DELETE FROM conngov.budgets;
INSERT INTO conngov.budgets (name, application_pattern, role_name, database_name, max_connections, priority) VALUES
  ('p_any',        'pre%',      NULL,            NULL,                 1, 30),
  ('p_role',       'pre%',      'regress_app',   NULL,                 1, 30),
  ('p_db',         'pre%',      NULL,            'contrib_regression', 1, 20),
  ('p_longer',     'prefix%',   NULL,            NULL,                 1, 40),
  ('p_longer_hi',  'prefix-x%', NULL,            NULL,                 1, 10),
  ('p_exact',      'pre',       'regress_batch', NULL,                 1, 5),
  ('p_tie_b',      'pr_%',      NULL,            NULL,                 1, 25),
  ('p_tie_a',      'pr%x',      NULL,            NULL,                 1, 25),
  ('p_escaped',    'pre\%%',    NULL,            NULL,                 1, 1),
  ('p_us',         'pre\_x',    NULL,            NULL,                 1, 1),
  ('p_empty',      '',          NULL,            NULL,                 1, 1),
  ('p_all_batch',  '%',         'regress_batch', NULL,                 1, 50),
  ('p_other_db',   '%',         NULL,            'regress_nowhere',    1, 0);
SELECT conngov.reload();

WITH apps(app) AS (VALUES (''), ('p'), ('pr'), ('pre'), ('prex'), ('pre%'),
                          ('pre%x'), ('pre_x'), ('prefix'), ('prefix-x'),
                          ('prefix-xy'), ('pry'), ('prax'), ('other')),
     roles(role) AS (VALUES ('regress_app'), ('regress_batch')),
     dbs(db) AS (VALUES ('contrib_regression'), ('regress_nowhere')),
     expected AS (
       SELECT a.app, r.role, d.db,
              coalesce((SELECT b.name FROM conngov.budgets b
                         WHERE a.app LIKE b.application_pattern
                           AND (b.role_name IS NULL OR b.role_name = r.role)
                           AND (b.database_name IS NULL OR b.database_name = d.db)
                         ORDER BY b.priority, b.name COLLATE "C" LIMIT 1),
                       '(unbudgeted)') AS want
         FROM apps a, roles r, dbs d)
SELECT count(*) AS logins,
       count(*) FILTER (WHERE conngov.match(app, role::name, db::name) <> want) AS wrong
  FROM expected;

SELECT app, conngov.match(app, 'regress_app', 'contrib_regression') AS app_budget,
       conngov.match(app, 'regress_batch', 'contrib_regression') AS batch_budget,
       conngov.match(app, 'regress_app', 'regress_nowhere') AS nowhere_budget
  FROM (VALUES (''), ('pre'), ('pre%x'), ('pre_x'), ('prefix-xy'), ('prax'), ('pry')) AS t(app);

DELETE FROM conngov.budgets;
SELECT conngov.reload();
DROP ROLE regress_app;
DROP ROLE regress_batch;
