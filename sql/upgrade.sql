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

ALTER EXTENSION conngov UPDATE TO '1.1';
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
-- 1.1 -> 1.2: the rows kept; the new columns keep 1.1's behaviour (no
-- rate limit, a lowered limit ends nobody, every node, no share)
UPDATE conngov.budgets SET login_wait = '2 s', min_connections = 1 WHERE name = 'kept';
SELECT budget, refused_for_floors, waited FROM conngov.stats();
ALTER EXTENSION conngov UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'conngov';
SELECT name, max_connections, min_connections, login_wait, comment,
       login_rate, login_burst, on_lower, node_role, max_share
  FROM conngov.budgets;
SELECT conngov.reload();
SELECT budget, admitted >= 0 AS ok, refused_rate, paced, ended_lowered
  FROM conngov.stats();
-- the new columns are validated, with messages that say what is allowed
UPDATE conngov.budgets SET login_rate = 0 WHERE name = 'kept';
UPDATE conngov.budgets SET login_rate = 'NaN' WHERE name = 'kept';
UPDATE conngov.budgets SET login_burst = 10 WHERE name = 'kept';
UPDATE conngov.budgets SET login_rate = 20, login_burst = 0 WHERE name = 'kept';
UPDATE conngov.budgets SET on_lower = 'end' WHERE name = 'kept';
UPDATE conngov.budgets SET login_rate = 20, login_burst = 40, on_lower = 'end_idle'
 WHERE name = 'kept';
SELECT name, login_rate, login_burst, on_lower FROM conngov.budgets;
SELECT conngov.reload();
SELECT p.proname, has_function_privilege('pg_monitor', p.oid, 'EXECUTE') AS pg_monitor
  FROM pg_proc p WHERE p.pronamespace = 'conngov'::regnamespace
   AND p.proname = 'stats';
-- an updated table is the same as a new one
SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
  FROM pg_attribute WHERE attrelid = 'conngov.budgets'::regclass AND attnum > 0 AND NOT attisdropped;
-- ... with the same triggers, firing in the same replication roles
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'conngov.budgets'::regclass AND NOT tgisinternal ORDER BY 1;
DELETE FROM conngov.budgets;
