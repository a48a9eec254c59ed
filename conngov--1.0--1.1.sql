/* conngov--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION conngov UPDATE TO '1.1'" to load this file. \quit

-- Until this script runs, the 1.1 library enforces the 1.0 table as 1.0
-- did (the new columns read as their defaults).

---- 1.1 (issue 13): capacity guarantees, floors and a bounded wait ----

-- New columns go last, where the 1.1 install script has them too, so that
-- an updated and a new installation have the same table.
ALTER TABLE conngov.budgets
	ADD COLUMN min_connections integer NOT NULL DEFAULT 0,
	ADD COLUMN login_wait interval,
	ADD COLUMN max_waiting integer,
	ADD CONSTRAINT budgets_min_connections_check
		CHECK (min_connections >= 0 AND min_connections <= max_connections),
	ADD CONSTRAINT budgets_login_wait_check CHECK (login_wait > interval '0'),
	ADD CONSTRAINT budgets_max_waiting_check CHECK (max_waiting >= 0);

/*
 * validate_budget: the CHECK constraints' rules, with messages that say
 * which budget and what is allowed.  The constraints stay as a backstop.
 * 1.1 adds min_connections, login_wait and max_waiting; that the floors
 * of all enforce budgets fit the server is checked per statement, by
 * conngov.budgets_changed().
 */
CREATE OR REPLACE FUNCTION conngov.validate_budget()
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

-- usage(), headroom() and stats() gain columns: a changed row type means
-- drop, recreate and grant again (the 1.0 symbols keep answering the 1.0
-- declarations).
DROP FUNCTION conngov.usage();
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

DROP FUNCTION conngov.headroom();
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

DROP FUNCTION conngov.stats();
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

REVOKE ALL ON FUNCTION conngov.usage() FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.headroom() FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION conngov.usage() TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.headroom() TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.stats() TO pg_monitor;

---- end of 1.1 (issue 13) ----

-- 1.1: sessions() gains current_budget
-- sessions() gains current_budget: the budget the session's current
-- application_name would match (a session charged under one name and
-- running under another shows both).  A function's result columns cannot
-- change in place: drop it and create it again with its privileges.
DROP FUNCTION conngov.sessions();

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

REVOKE ALL ON FUNCTION conngov.sessions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION conngov.sessions() TO pg_monitor;
