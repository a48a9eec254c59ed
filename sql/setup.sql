-- setup: the extension is installed by pg_regress (--load-extension) in
-- contrib_regression, which test/regress.conf names as conngov.database.
\set VERBOSITY terse
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'conngov';
SHOW conngov.database;
SHOW conngov.mode;
SHOW conngov.max_budgets;
-- the worker has read the (empty) table
SELECT conngov.reload();
SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'conngov worker';

-- the table is an extension configuration table, kept by pg_dump
SELECT c.relname, e.extconfig IS NOT NULL AS dumped
  FROM pg_extension e JOIN pg_class c ON c.oid = ANY (e.extconfig)
 WHERE e.extname = 'conngov';
-- the change triggers fire in every replication role (A: always, R: replica)
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'conngov.budgets'::regclass AND NOT tgisinternal ORDER BY 1;

-- CREATE EXTENSION elsewhere names the right database
CREATE DATABASE regress_conngov_other;
\c regress_conngov_other
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION conngov;
\c contrib_regression
DROP DATABASE regress_conngov_other;

-- settings: bad values are refused with what is allowed
\set VERBOSITY default
SET conngov.mode = 'enforce';
ALTER SYSTEM SET conngov.mode = 'sometimes';
ALTER SYSTEM SET conngov.warn_ratio = 0;
ALTER SYSTEM SET conngov.critical_ratio = 1.5;
ALTER SYSTEM SET conngov.max_budgets = 0;
ALTER SYSTEM SET conngov.event_capacity = 1;
ALTER SYSTEM SET conngov.exempt_roles = 'a,,b';
ALTER SYSTEM SET conngov.log_refusals = 'maybe';
ALTER SYSTEM SET conngov.ending_sqlstate = 'sometimes';
ALTER SYSTEM SET conngov.refusal_window = 0;
ALTER SYSTEM SET conngov.commit_wait_timeout = -1;
ALTER SYSTEM SET conngov.nonexistent = 'x';
