/* conngov--1.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION conngov" to load this file. \quit

-- The budgets live in one database, named by conngov.database.
DO $$
DECLARE
	want text := COALESCE(
		pg_catalog.current_setting('conngov.database', true), 'postgres');
BEGIN
	IF pg_catalog.current_database() OPERATOR(pg_catalog.<>) want THEN
		RAISE EXCEPTION 'conngov can only be created in database "%"', want
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = pg_catalog.format('conngov.database is "%s"; this is database "%s".',
										   want, pg_catalog.current_database()),
				HINT = pg_catalog.format('Connect to database "%s" to create the extension, or set conngov.database and restart the server.',
										 want);
	END IF;
END
$$;

CREATE TABLE conngov.budgets (
	name text PRIMARY KEY,
	application_pattern text NOT NULL DEFAULT '%',
	role_name name,
	database_name name,
	max_connections integer NOT NULL,
	mode text NOT NULL DEFAULT 'enforce',
	idle_timeout interval,
	idle_in_transaction_timeout interval,
	idle_keep integer NOT NULL DEFAULT 0,
	priority integer NOT NULL DEFAULT 100,
	comment text,
	-- 1.1 (issue 13): floors and waits
	min_connections integer NOT NULL DEFAULT 0,
	login_wait interval,
	max_waiting integer,
	CONSTRAINT budgets_name_check
		CHECK (octet_length(name) BETWEEN 1 AND 63),
	CONSTRAINT budgets_application_pattern_check
		CHECK (octet_length(application_pattern) <= 63
			   AND application_pattern !~ '(^|[^\\])(\\\\)*\\$'),
	CONSTRAINT budgets_max_connections_check CHECK (max_connections >= 0),
	CONSTRAINT budgets_mode_check CHECK (mode IN ('enforce', 'monitor')),
	CONSTRAINT budgets_idle_timeout_check
		CHECK (idle_timeout > interval '0'),
	CONSTRAINT budgets_idle_in_transaction_timeout_check
		CHECK (idle_in_transaction_timeout > interval '0'),
	CONSTRAINT budgets_idle_keep_check CHECK (idle_keep >= 0),
	-- 1.1 (issue 13): floors and waits
	CONSTRAINT budgets_min_connections_check
		CHECK (min_connections >= 0 AND min_connections <= max_connections),
	CONSTRAINT budgets_login_wait_check CHECK (login_wait > interval '0'),
	CONSTRAINT budgets_max_waiting_check CHECK (max_waiting >= 0)
);

COMMENT ON TABLE conngov.budgets IS
	'conngov: one connection budget per application; changes apply within a second of commit';

SELECT pg_catalog.pg_extension_config_dump('conngov.budgets', '');

REVOKE ALL ON conngov.budgets FROM PUBLIC;

/*
 * validate_budget: the CHECK constraints' rules, with messages that say
 * which budget and what is allowed.  The constraints stay as a backstop.
 * 1.1 adds min_connections, login_wait and max_waiting; that the floors
 * of all enforce budgets fit the server is checked per statement, by
 * conngov.budgets_changed().
 */
CREATE FUNCTION conngov.validate_budget()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NEW.name IS NOT NULL AND octet_length(NEW.name) NOT BETWEEN 1 AND 63 THEN
		RAISE EXCEPTION 'invalid budget name "%"', NEW.name
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'A budget name is 1 to 63 bytes long.';
	END IF;
	IF octet_length(NEW.application_pattern) > 63 THEN
		RAISE EXCEPTION 'application_pattern of budget "%" is longer than 63 bytes', NEW.name
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'An application_name is at most 63 bytes, so this pattern could never match.';
	END IF;
	IF NEW.application_pattern ~ '(^|[^\\])(\\\\)*\\$' THEN
		RAISE EXCEPTION 'application_pattern of budget "%" ends with an escape character', NEW.name
			USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Write \\ for a literal backslash.';
	END IF;
	IF NEW.max_connections < 0 THEN
		RAISE EXCEPTION 'max_connections of budget "%" must be 0 or more, not %',
			NEW.name, NEW.max_connections
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NEW.mode NOT IN ('enforce', 'monitor') THEN
		RAISE EXCEPTION 'invalid mode "%" for budget "%"', NEW.mode, NEW.name
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'A budget''s mode is "enforce" or "monitor".';
	END IF;
	IF NEW.idle_timeout <= interval '0' THEN
		RAISE EXCEPTION 'idle_timeout of budget "%" must be greater than zero, not "%"',
			NEW.name, NEW.idle_timeout
			USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Set it to NULL to never end idle sessions.';
	END IF;
	IF NEW.idle_in_transaction_timeout <= interval '0' THEN
		RAISE EXCEPTION 'idle_in_transaction_timeout of budget "%" must be greater than zero, not "%"',
			NEW.name, NEW.idle_in_transaction_timeout
			USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Set it to NULL to never end sessions idle in a transaction.';
	END IF;
	IF NEW.idle_keep < 0 THEN
		RAISE EXCEPTION 'idle_keep of budget "%" must be 0 or more, not %',
			NEW.name, NEW.idle_keep
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- 1.1 (issue 13): floors and waits
	IF NEW.min_connections < 0 THEN
		RAISE EXCEPTION 'min_connections of budget "%" must be 0 or more, not %',
			NEW.name, NEW.min_connections
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NEW.min_connections > NEW.max_connections THEN
		RAISE EXCEPTION 'min_connections of budget "%" must not be more than its max_connections (%), not %',
			NEW.name, NEW.max_connections, NEW.min_connections
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'A budget cannot be guaranteed more connections than it may open.';
	END IF;
	IF NEW.login_wait <= interval '0' THEN
		RAISE EXCEPTION 'login_wait of budget "%" must be greater than zero, not "%"',
			NEW.name, NEW.login_wait
			USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Set it to NULL to refuse over-budget logins at once.';
	END IF;
	IF NEW.login_wait >= current_setting('authentication_timeout')::interval THEN
		RAISE EXCEPTION 'login_wait of budget "%" must be below authentication_timeout (%), not "%"',
			NEW.name, current_setting('authentication_timeout'), NEW.login_wait
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'A login still waiting when authentication_timeout passes is ended without the refusal''s explanation.',
				HINT = 'Lower login_wait, or raise authentication_timeout.';
	END IF;
	IF NEW.max_waiting < 0 THEN
		RAISE EXCEPTION 'max_waiting of budget "%" must be 0 or more, not %',
			NEW.name, NEW.max_waiting
			USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Set it to NULL to let as many logins wait as the budget allows connections.';
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER budgets_validate
	BEFORE INSERT OR UPDATE ON conngov.budgets
	FOR EACH ROW EXECUTE FUNCTION conngov.validate_budget();

-- After commit (never before, never on rollback) the worker reloads.
CREATE FUNCTION conngov.budgets_changed()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'conngov_budgets_changed';

CREATE TRIGGER budgets_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON conngov.budgets
	FOR EACH STATEMENT EXECUTE FUNCTION conngov.budgets_changed();

REVOKE ALL ON FUNCTION conngov.validate_budget() FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.budgets_changed() FROM PUBLIC;

-- Monitoring functions

CREATE FUNCTION conngov.usage(
	OUT budget text,
	OUT mode text,
	OUT max_connections integer,
	OUT total integer,
	OUT peak integer,
	OUT available integer,
	OUT usage_ratio double precision,
	OUT status text,
	OUT min_connections integer,
	OUT guaranteed_unused integer,
	OUT waiting integer)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'conngov_usage_1_1';

CREATE FUNCTION conngov.sessions(
	OUT pid integer,
	OUT budget text,
	OUT login_application_name text,
	OUT application_name text,
	OUT role_name name,
	OUT database_name name,
	OUT client_addr inet,
	OUT state text,
	OUT state_since timestamptz,
	OUT backend_start timestamptz,
	OUT exempt boolean,
	OUT current_budget text)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'conngov_sessions';

CREATE FUNCTION conngov.match(
	application_name text,
	role_name name DEFAULT current_user,
	database_name name DEFAULT current_database())
RETURNS text
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'conngov_match';

COMMENT ON FUNCTION conngov.match(text, name, name) IS
	'the budget a login with this identity would be charged to';

CREATE FUNCTION conngov.headroom(
	OUT max_connections integer,
	OUT superuser_reserved_connections integer,
	OUT reserved_connections integer,
	OUT normal_slots integer,
	OUT normal_in_use integer,
	OUT normal_free integer,
	OUT reserved_in_use integer,
	OUT reserved_free integer,
	OUT budgeted_total bigint,
	OUT oversubscribed boolean,
	OUT status text,
	OUT guaranteed_unused integer,
	OUT shared_free integer)
RETURNS record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'conngov_headroom_1_1';

CREATE FUNCTION conngov.health()
RETURNS jsonb
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'conngov_health';

CREATE FUNCTION conngov.stats(
	OUT budget text,
	OUT admitted bigint,
	OUT refused bigint,
	OUT would_refuse bigint,
	OUT ended_idle bigint,
	OUT would_end_idle bigint,
	OUT peak integer,
	OUT last_refused_at timestamptz,
	OUT stats_reset timestamptz,
	OUT refused_for_floors bigint,
	OUT waited bigint,
	OUT wait_seconds_total double precision,
	OUT wait_timeouts bigint)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'conngov_stats_1_1';

CREATE FUNCTION conngov.events(
	since timestamptz DEFAULT NULL,
	OUT at timestamptz,
	OUT kind text,
	OUT budget text,
	OUT pid integer,
	OUT role_name text,
	OUT database_name text,
	OUT application_name text,
	OUT client_addr inet,
	OUT detail text)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'conngov_events';

-- Admin functions

CREATE FUNCTION conngov.reset_stats()
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'conngov_reset_stats';

CREATE FUNCTION conngov.reload()
RETURNS integer
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'conngov_reload';

CREATE FUNCTION conngov.sweep(
	dry_run boolean DEFAULT true,
	OUT pid integer,
	OUT budget text,
	OUT application_name text,
	OUT role_name name,
	OUT state text,
	OUT idle_for interval,
	OUT timeout interval,
	OUT action text)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'conngov_sweep';

-- Privileges: monitoring for pg_monitor, admin for superusers.
GRANT USAGE ON SCHEMA conngov TO PUBLIC;
REVOKE ALL ON FUNCTION conngov.usage() FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.sessions() FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.match(text, name, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.headroom() FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.health() FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.events(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.reset_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.reload() FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.sweep(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION conngov.usage() TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.sessions() TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.match(text, name, name) TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.headroom() TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.health() TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.stats() TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.events(timestamptz) TO pg_monitor;
