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

DELETE FROM conngov.budgets;
SELECT conngov.reload();
DROP ROLE regress_app;
DROP ROLE regress_batch;
