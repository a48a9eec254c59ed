-- upgrade: install the oldest version (1.0) and walk every update, with
-- the budgets kept
\set VERBOSITY terse
DROP EXTENSION conngov;
CREATE EXTENSION conngov VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'conngov';
INSERT INTO conngov.budgets (name, application_pattern, max_connections, idle_keep, comment)
VALUES ('kept', 'kept%', 7, 2, 'from 1.0');
SELECT conngov.reload();
-- the 1.1 library answers the 1.0 declarations
SELECT budget, max_connections, total FROM conngov.usage() ORDER BY budget COLLATE "C";
SELECT normal_slots FROM conngov.headroom();
SELECT budget, admitted >= 0 AS ok FROM conngov.stats();

ALTER EXTENSION conngov UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'conngov';
SELECT name, application_pattern, max_connections, idle_keep, comment,
       min_connections, login_wait, max_waiting
  FROM conngov.budgets;
SELECT conngov.reload();
SELECT budget, max_connections, min_connections, guaranteed_unused, waiting
  FROM conngov.usage() ORDER BY budget COLLATE "C";
SELECT guaranteed_unused FROM conngov.headroom();
SELECT budget, refused_for_floors, waited FROM conngov.stats();
-- the new columns are validated after the update too
UPDATE conngov.budgets SET min_connections = 8 WHERE name = 'kept';
-- grants of the recreated functions
SELECT p.proname, has_function_privilege('pg_monitor', p.oid, 'EXECUTE') AS pg_monitor
  FROM pg_proc p WHERE p.pronamespace = 'conngov'::regnamespace
   AND p.proname IN ('usage', 'headroom', 'stats') ORDER BY 1;
-- an updated table is the same as a new one
SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
  FROM pg_attribute WHERE attrelid = 'conngov.budgets'::regclass AND attnum > 0 AND NOT attisdropped;
-- ... with the same triggers, firing in the same replication roles
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'conngov.budgets'::regclass AND NOT tgisinternal ORDER BY 1;
DELETE FROM conngov.budgets;
