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

-- a schema created after that check, while CREATE EXTENSION runs (here by
-- an event trigger at ddl_command_start, the window a CREATE SCHEMA /
-- DROP SCHEMA loop races for), is caught after the creation: CREATE
-- EXTENSION fails, naming the owner, and nothing remains
DROP SCHEMA conngov CASCADE;
CREATE FUNCTION regress_squat() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF tg_tag = 'CREATE EXTENSION' THEN
    CREATE SCHEMA conngov AUTHORIZATION regress_squatter;
  ELSIF tg_tag = 'ALTER EXTENSION' THEN
    ALTER SCHEMA conngov OWNER TO regress_squatter;
  END IF;
END $$;
CREATE EVENT TRIGGER regress_squat ON ddl_command_start
  WHEN TAG IN ('CREATE EXTENSION') EXECUTE FUNCTION regress_squat();
CREATE EXTENSION conngov;
SELECT count(*) AS extensions FROM pg_extension WHERE extname = 'conngov';
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'conngov';
SELECT count(*) AS tables FROM pg_class WHERE relname = 'budgets';
DROP EVENT TRIGGER regress_squat;

-- once the schema is gone, the extension can be created; its table loads
CREATE EXTENSION conngov;

-- the same race on ALTER EXTENSION conngov UPDATE: the schema handed to
-- the role after the check is caught after the update, which rolls back
CREATE EVENT TRIGGER regress_squat ON ddl_command_start
  WHEN TAG IN ('ALTER EXTENSION') EXECUTE FUNCTION regress_squat();
SET client_min_messages = warning;	-- no "version ... is already installed"
ALTER EXTENSION conngov UPDATE;
RESET client_min_messages;
DROP EVENT TRIGGER regress_squat;
DROP FUNCTION regress_squat();
SELECT pg_get_userbyid(nspowner) = current_user AS owned_by_me
  FROM pg_namespace WHERE nspname = 'conngov';
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
