-- trust: only the table CREATE EXTENSION made is loaded, and a schema owned
-- by a role that is not a superuser is never used
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT conngov.reload();
SELECT conngov.health() -> 'checks' -> 1 AS budgets_check;

-- without the extension (and its schema) there is nothing to enforce
DROP EXTENSION conngov;
DROP SCHEMA conngov;
CREATE ROLE regress_squatter;
GRANT CREATE ON DATABASE contrib_regression TO regress_squatter;

-- a look-alike table of the wrong shape, made before CREATE EXTENSION,
-- is not loaded (the worker says why in the log; health() is gone with
-- the extension, the next check below shows the state)
SET ROLE regress_squatter;
CREATE SCHEMA conngov;
CREATE TABLE conngov.budgets (name integer, max_connections text);
INSERT INTO conngov.budgets VALUES (1, 'zero');
RESET ROLE;

-- the squatted schema makes CREATE EXTENSION fail, naming its owner
CREATE EXTENSION conngov;
SELECT count(*) FROM pg_extension WHERE extname = 'conngov';

-- once the schema is gone, the extension can be created; its table loads
DROP SCHEMA conngov CASCADE;
CREATE EXTENSION conngov;
SELECT conngov.reload();
SELECT conngov.health() -> 'checks' -> 1 ->> 'state' AS state;

-- the table's owner and schema owner must be superusers: a table handed
-- to another role is not trusted, and reload() says why
ALTER TABLE conngov.budgets OWNER TO regress_squatter;
SELECT conngov.reload();
SELECT conngov.health() -> 'checks' -> 1 ->> 'state' AS state,
       conngov.health() -> 'checks' -> 1 ->> 'reason' AS reason,
       conngov.health() ->> 'status' AS status;
ALTER TABLE conngov.budgets OWNER TO CURRENT_USER;
SELECT conngov.reload();

-- a retyped column is not loaded either
ALTER TABLE conngov.budgets ALTER COLUMN idle_keep TYPE bigint;
SELECT conngov.reload();
SELECT conngov.health() -> 'checks' -> 1 ->> 'reason' AS reason;
ALTER TABLE conngov.budgets ALTER COLUMN idle_keep TYPE integer;
SELECT conngov.reload();
SELECT conngov.health() -> 'checks' -> 1 ->> 'state' AS state;

-- conngov.sweep() granted to a role that is not a superuser ends only
-- what that role could end with pg_terminate_backend (nothing here)
GRANT EXECUTE ON FUNCTION conngov.sweep(boolean) TO regress_squatter;
SET ROLE regress_squatter;
SELECT count(*) FROM conngov.sweep(false);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION conngov.sweep(boolean) FROM regress_squatter;

REVOKE CREATE ON DATABASE contrib_regression FROM regress_squatter;
DROP ROLE regress_squatter;
