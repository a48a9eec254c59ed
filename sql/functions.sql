-- functions: shapes of usage() and sessions(), status thresholds,
-- charging by login identity
\set VERBOSITY terse
SELECT proname, pg_get_function_result(oid) AS result
  FROM pg_proc WHERE pronamespace = 'conngov'::regnamespace
 ORDER BY proname;

INSERT INTO conngov.budgets (name, application_pattern, max_connections) VALUES
  ('regress', 'pg_regress%', 10),
  ('zero', 'nobody%', 0);
SELECT conngov.reload();
-- this session logged in as pg_regress/functions: charged to "regress"
SELECT budget, mode, max_connections, total, available, usage_ratio, status
  FROM conngov.usage() ORDER BY budget COLLATE "C";
SELECT budget, login_application_name, application_name, role_name = current_user AS me,
       database_name, client_addr, state, state_since IS NOT NULL AS has_since,
       backend_start IS NOT NULL AS has_start, exempt
  FROM conngov.sessions() WHERE pid = pg_backend_pid();

-- a SET application_name after the session's first statement changes what
-- is shown, not the charge; current_budget is what the new name matches
SET application_name = 'core-api-renamed';
SELECT budget, login_application_name, application_name, current_budget
  FROM conngov.sessions() WHERE pid = pg_backend_pid();
RESET application_name;

-- a new login is charged by its own startup application_name
\c "dbname=contrib_regression application_name=nobody-else"
SELECT budget, login_application_name FROM conngov.sessions() WHERE pid = pg_backend_pid();
\c "dbname=contrib_regression application_name=pg_regress/functions"

-- status thresholds at the boundaries: this session alone, budget of 2,
-- so usage_ratio = 0.5
UPDATE conngov.budgets SET max_connections = 2 WHERE name = 'regress';
SELECT conngov.reload();
ALTER SYSTEM SET conngov.warn_ratio = 0.5;
SELECT pg_reload_conf(), pg_sleep(0.2);
SELECT current_setting('conngov.warn_ratio') AS warn, usage_ratio, status FROM conngov.usage() WHERE budget = 'regress';
ALTER SYSTEM SET conngov.warn_ratio = 0.51;
SELECT pg_reload_conf(), pg_sleep(0.2);
SELECT current_setting('conngov.warn_ratio') AS warn, usage_ratio, status FROM conngov.usage() WHERE budget = 'regress';
ALTER SYSTEM SET conngov.warn_ratio = 0.4;
ALTER SYSTEM SET conngov.critical_ratio = 0.5;
SELECT pg_reload_conf(), pg_sleep(0.2);
SELECT current_setting('conngov.critical_ratio') AS crit, usage_ratio, status FROM conngov.usage() WHERE budget = 'regress';
ALTER SYSTEM SET conngov.critical_ratio = 0.51;
SELECT pg_reload_conf(), pg_sleep(0.2);
SELECT current_setting('conngov.critical_ratio') AS crit, usage_ratio, status FROM conngov.usage() WHERE budget = 'regress';
UPDATE conngov.budgets SET max_connections = 1 WHERE name = 'regress';
SELECT conngov.reload();
SELECT usage_ratio, available, status FROM conngov.usage() WHERE budget = 'regress';
ALTER SYSTEM RESET conngov.warn_ratio;
ALTER SYSTEM RESET conngov.critical_ratio;
SELECT pg_reload_conf();

DELETE FROM conngov.budgets;
SELECT conngov.reload();
