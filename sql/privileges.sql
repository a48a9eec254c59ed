-- privileges: PUBLIC gets nothing; pg_monitor members get the monitoring
-- functions and nothing more; admin functions are superuser-only
\set VERBOSITY terse
CREATE ROLE regress_nobody LOGIN;
CREATE ROLE regress_watcher LOGIN IN ROLE pg_monitor;

SELECT p.proname,
       has_function_privilege('regress_nobody', p.oid, 'EXECUTE') AS public,
       has_function_privilege('regress_watcher', p.oid, 'EXECUTE') AS pg_monitor,
       p.prosecdef AS security_definer
  FROM pg_proc p WHERE p.pronamespace = 'conngov'::regnamespace
 ORDER BY p.proname;
SELECT has_table_privilege('regress_nobody', 'conngov.budgets', 'SELECT') AS nobody_select,
       has_table_privilege('regress_watcher', 'conngov.budgets', 'SELECT') AS watcher_select,
       has_table_privilege('regress_watcher', 'conngov.budgets', 'INSERT') AS watcher_insert;

SET ROLE regress_nobody;
SELECT * FROM conngov.budgets;
INSERT INTO conngov.budgets (name, max_connections) VALUES ('x', 1);
SELECT * FROM conngov.usage();
SELECT * FROM conngov.sessions();
SELECT * FROM conngov.headroom();
SELECT conngov.health();
SELECT * FROM conngov.stats();
SELECT * FROM conngov.events();
SELECT conngov.reload();
SELECT conngov.reset_stats();
SELECT * FROM conngov.sweep(false);
RESET ROLE;

SET ROLE regress_watcher;
SELECT count(*) >= 1 AS ok FROM conngov.usage();
SELECT count(*) >= 0 AS ok FROM conngov.sessions();
SELECT normal_slots FROM conngov.headroom();
SELECT conngov.health() ? 'status' AS ok;
SELECT count(*) >= 0 AS ok FROM conngov.stats();
SELECT count(*) >= 0 AS ok FROM conngov.events();
SELECT conngov.match('x');
SELECT * FROM conngov.budgets;
UPDATE conngov.budgets SET max_connections = 0;
SELECT conngov.reload();
SELECT conngov.reset_stats();
SELECT * FROM conngov.sweep(false);
RESET ROLE;

-- NULL arguments
SELECT conngov.match(NULL);
SELECT * FROM conngov.sweep(NULL);
SELECT count(*) >= 0 AS ok FROM conngov.events(NULL);

DROP ROLE regress_nobody;
DROP ROLE regress_watcher;
