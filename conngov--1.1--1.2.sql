/* conngov--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION conngov UPDATE TO '1.2'" to load this file. \quit

-- Until this script runs, the 1.2 library enforces the 1.1 (or 1.0) table
-- as 1.1 did, with 1.2's safety rules (waits, loads, names).

---- 1.2 (issue 18): every committed change applies ----

-- A change made with session_replication_role = replica (a restore, a
-- script that sets it) fires only ALWAYS and REPLICA triggers: the
-- statement trigger that asks for a load fires in every mode.  Logical
-- replication's apply fires row triggers only, so a row trigger does the
-- same there (it only marks the transaction; the checks stay per
-- statement).
ALTER TABLE conngov.budgets ENABLE ALWAYS TRIGGER budgets_changed;

CREATE TRIGGER budgets_changed_replica
	AFTER INSERT OR UPDATE OR DELETE ON conngov.budgets
	FOR EACH ROW EXECUTE FUNCTION conngov.budgets_changed();
ALTER TABLE conngov.budgets ENABLE REPLICA TRIGGER budgets_changed_replica;

---- 1.2 (issue 18): waiting logins never take reserved room ----

-- max_waiting NULL now means least(max_connections, 5): each waiting login
-- holds a server process slot.  validate_budget() says so in its hint; it
-- is redefined once, with issue 20's columns, below.  That the waits and
-- floors of all enforce budgets fit the server is checked per statement,
-- by conngov.budgets_changed().

---- 1.2 (issue 20): login-rate limits, lowering a limit at runtime ----

-- New columns go last, with defaults that keep 1.1's behaviour: no rate
-- limit, and a lowered limit ends nobody.
ALTER TABLE conngov.budgets
	ADD COLUMN login_rate real,
	ADD COLUMN login_burst integer,
	ADD COLUMN on_lower text NOT NULL DEFAULT 'refuse_new',
	ADD CONSTRAINT budgets_login_rate_check
		CHECK (login_rate >= 0.001 AND login_rate <= 1000000),
	ADD CONSTRAINT budgets_login_burst_check
		CHECK (login_burst IS NULL OR
			   (login_burst BETWEEN 1 AND 1000000 AND login_rate IS NOT NULL)),
	ADD CONSTRAINT budgets_on_lower_check
		CHECK (on_lower IN ('refuse_new', 'end_idle'));

---- 1.2 (issue 21): fleets, one table for a primary and its standbys ----

-- node_role: the budget applies only on nodes of that role (a standby
-- reads the primary's table through replication; a promoted standby
-- applies the primary's budgets at once).  max_share: the budget's limit
-- on a node is least(max_connections, floor(max_share * the node's normal
-- slots)), so one row fits nodes of different sizes.
ALTER TABLE conngov.budgets
	ADD COLUMN node_role text NOT NULL DEFAULT 'any',
	ADD COLUMN max_share real,
	ADD CONSTRAINT budgets_node_role_check
		CHECK (node_role IN ('any', 'primary', 'standby')),
	ADD CONSTRAINT budgets_max_share_check
		CHECK (max_share > 0 AND max_share <= 1);

/*
 * validate_budget: the CHECK constraints' rules, with messages that say
 * which budget and what is allowed.  The constraints stay as a backstop.
 * 1.1 adds min_connections, login_wait and max_waiting; 1.2 says that
 * at most 5 logins wait by default (issue 18) and adds login_rate,
 * login_burst and on_lower; that the floors
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
				HINT = 'Set it to NULL to let as many logins wait as the budget allows connections, at most 5.';
	END IF;
	-- 1.2 (issue 20): login-rate limits, lowering a limit at runtime
	IF NEW.login_rate IS NOT NULL AND NOT (NEW.login_rate >= 0.001 AND NEW.login_rate <= 1000000) THEN
		RAISE EXCEPTION 'login_rate of budget "%" must be between 0.001 and 1000000 logins per second, not %',
			NEW.name, NEW.login_rate
			USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Set it to NULL for no login-rate limit.';
	END IF;
	IF NEW.login_burst IS NOT NULL AND NEW.login_burst NOT BETWEEN 1 AND 1000000 THEN
		RAISE EXCEPTION 'login_burst of budget "%" must be between 1 and 1000000, not %',
			NEW.name, NEW.login_burst
			USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Set it to NULL for the login_rate rounded up.';
	END IF;
	IF NEW.login_burst IS NOT NULL AND NEW.login_rate IS NULL THEN
		RAISE EXCEPTION 'login_burst of budget "%" needs a login_rate', NEW.name
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'login_burst is how many logins may come at once above login_rate; without a rate there is no limit to burst above.';
	END IF;
	IF NEW.on_lower NOT IN ('refuse_new', 'end_idle') THEN
		RAISE EXCEPTION 'invalid on_lower "%" for budget "%"', NEW.on_lower, NEW.name
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'A budget''s on_lower is "refuse_new" (lowering its limit ends nobody) or "end_idle" (the worker ends idle sessions above the new limit).';
	END IF;
	-- 1.2 (issue 21): fleets
	IF NEW.node_role NOT IN ('any', 'primary', 'standby') THEN
		RAISE EXCEPTION 'invalid node_role "%" for budget "%"', NEW.node_role, NEW.name
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'A budget''s node_role is "any" (every node), "primary" (only a node that is not in recovery) or "standby" (only nodes in recovery).';
	END IF;
	IF NEW.max_share IS NOT NULL AND NOT (NEW.max_share > 0 AND NEW.max_share <= 1) THEN
		RAISE EXCEPTION 'max_share of budget "%" must be above 0 and at most 1, not %',
			NEW.name, NEW.max_share
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'max_share is the part of a node''s normal connection slots the budget may use.',
				HINT = 'Set it to NULL to use max_connections alone.';
	END IF;
	RETURN NEW;
END
$$;

-- stats() gains refused_rate, paced and ended_lowered: a changed row type
-- means drop, recreate and grant again (the 1.0 and 1.1 symbols keep
-- answering their declarations).
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
	OUT wait_timeouts bigint,
	OUT refused_rate bigint,
	OUT paced bigint,
	OUT ended_lowered bigint)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'conngov_stats_1_2';

REVOKE ALL ON FUNCTION conngov.stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION conngov.stats() TO pg_monitor;

---- end of 1.2 (issue 20) ----

---- 1.2 (issue 19): usage history ----

-- Per budget and closed minute: the exact peak of its total and what
-- happened to its logins; only budgets with activity have a record.
CREATE FUNCTION conngov.history(
	since timestamptz DEFAULT pg_catalog.now() - interval '1 hour',
	until timestamptz DEFAULT pg_catalog.now(),
	budget text DEFAULT NULL,
	OUT minute timestamptz,
	OUT budget text,
	OUT peak integer,
	OUT admitted bigint,
	OUT refused_limit bigint,
	OUT refused_floors bigint,
	OUT refused_rate bigint,
	OUT would_refuse bigint,
	OUT waited bigint,
	OUT wait_timeouts bigint,
	OUT ended_idle bigint)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'conngov_history';

-- The minute that holds a moment, the budget that held most first.
CREATE FUNCTION conngov.at(
	moment timestamptz,
	OUT minute timestamptz,
	OUT budget text,
	OUT peak integer,
	OUT admitted bigint,
	OUT refused_limit bigint,
	OUT refused_floors bigint,
	OUT refused_rate bigint,
	OUT would_refuse bigint,
	OUT waited bigint,
	OUT wait_timeouts bigint,
	OUT ended_idle bigint)
RETURNS SETOF record
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT h.* FROM conngov.history($1, $1) AS h
 ORDER BY h.peak DESC, h.budget COLLATE "C"
$$;

-- The server per closed minute: the peak of the sessions conngov counts
-- (with the logins waiting for a place), the normal slots left at it, and
-- the peak of the waiting logins.
CREATE FUNCTION conngov.server_history(
	since timestamptz DEFAULT pg_catalog.now() - interval '1 hour',
	until timestamptz DEFAULT pg_catalog.now(),
	OUT minute timestamptz,
	OUT normal_in_use_peak integer,
	OUT normal_free_min integer,
	OUT waiting_peak integer)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'conngov_server_history';

-- A picture for psql: per budget, the last hours' figures and a line of
-- 30 characters, each the highest per-minute peak of its part of the
-- span, scaled to the budget's own highest (blank: no record).
CREATE FUNCTION conngov.history_summary(
	hours integer DEFAULT 3,
	OUT budget text,
	OUT peak integer,
	OUT admitted bigint,
	OUT refused bigint,
	OUT waited bigint,
	OUT ended_idle bigint,
	OUT peaks text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF hours NOT BETWEEN 1 AND 168 THEN
		RAISE EXCEPTION 'hours must be between 1 and 168, not %', hours
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	WITH h AS (
		SELECT r.budget AS b, r.peak AS p, r.admitted AS a,
			   r.refused_limit + r.refused_floors + r.refused_rate AS r,
			   r.waited AS w, r.ended_idle AS e,
			   29 - least(29, floor(extract(epoch FROM now() - r.minute)
									/ (hours * 120.0))::integer) AS part
		  FROM conngov.history(now() - make_interval(hours => hours), now()) AS r
	), t AS (
		SELECT h.b, max(h.p) AS p, sum(h.a)::bigint AS a, sum(h.r)::bigint AS r,
			   sum(h.w)::bigint AS w, sum(h.e)::bigint AS e
		  FROM h GROUP BY h.b
	)
	SELECT t.b, t.p, t.a, t.r, t.w, t.e,
		   (SELECT string_agg(CASE WHEN x.p IS NULL THEN ' '
								  ELSE substr('▁▂▃▄▅▆▇█',
											  1 + (7 * x.p / greatest(t.p, 1)), 1)
							 END, '' ORDER BY s.part)
			  FROM generate_series(0, 29) AS s(part)
			  LEFT JOIN (SELECT h.part, max(h.p) AS p FROM h
						  WHERE h.b = t.b GROUP BY h.part) AS x
				ON x.part = s.part)
	  FROM t
	 ORDER BY t.p DESC, t.b COLLATE "C";
END
$$;

REVOKE ALL ON FUNCTION conngov.history(timestamptz, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.at(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.server_history(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION conngov.history_summary(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION conngov.history(timestamptz, timestamptz, text) TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.at(timestamptz) TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.server_history(timestamptz, timestamptz) TO pg_monitor;
GRANT EXECUTE ON FUNCTION conngov.history_summary(integer) TO pg_monitor;

---- 1.2: a reference inside the database (\dx+ conngov, \df+ conngov.*, \d+ conngov.budgets) ----

COMMENT ON TABLE conngov.budgets IS
	'conngov: one connection budget per application (a login is charged to the first row, in (priority, name) order, whose pattern, role and database match it); a committed change applies when COMMIT returns; superusers only';
COMMENT ON COLUMN conngov.budgets.name IS
	'the budget''s name in errors, views and logs; 1 to 63 bytes';
COMMENT ON COLUMN conngov.budgets.application_pattern IS
	'SQL LIKE pattern (case-sensitive, \ escapes) for the application_name a login gives; at most 63 bytes; default % (any)';
COMMENT ON COLUMN conngov.budgets.role_name IS
	'only logins of this role; NULL = any role';
COMMENT ON COLUMN conngov.budgets.database_name IS
	'only logins to this database; NULL = any database';
COMMENT ON COLUMN conngov.budgets.max_connections IS
	'the budget: sessions at most (>= 0); a login over it is refused with SQLSTATE 53300';
COMMENT ON COLUMN conngov.budgets.mode IS
	'enforce (refuse over-budget logins, the default) or monitor (admit them and record would_refuse)';
COMMENT ON COLUMN conngov.budgets.idle_timeout IS
	'a session idle longer than this is ended by the worker; NULL = never; > 0';
COMMENT ON COLUMN conngov.budgets.idle_in_transaction_timeout IS
	'a session idle in a transaction (or aborted) longer than this is ended; NULL = never; > 0';
COMMENT ON COLUMN conngov.budgets.idle_keep IS
	'the N most recently active idle sessions are never ended for idleness (a warm pool); default 0';
COMMENT ON COLUMN conngov.budgets.priority IS
	'matching order: lower first, then by name; default 100';
COMMENT ON COLUMN conngov.budgets.comment IS
	'free text';
COMMENT ON COLUMN conngov.budgets.min_connections IS
	'(1.1) the budget''s floor: normal connection slots no other budget may take; 0 to max_connections; default 0';
COMMENT ON COLUMN conngov.budgets.login_wait IS
	'(1.1) how long a login over the budget waits for a place, first come first served, never in reserved room; NULL = refuse at once; below authentication_timeout';
COMMENT ON COLUMN conngov.budgets.max_waiting IS
	'(1.1) logins that may wait at once; NULL = least(max_connections, 5); >= 0';
COMMENT ON COLUMN conngov.budgets.login_rate IS
	'(1.2) logins admitted per second at most; NULL = no limit';
COMMENT ON COLUMN conngov.budgets.login_burst IS
	'(1.2) logins admitted at once above login_rate; NULL = the rate rounded up, at least 1';
COMMENT ON COLUMN conngov.budgets.on_lower IS
	'(1.2) refuse_new (default: lowering the limit ends nobody) or end_idle (the worker ends idle sessions above the new limit, longest idle first)';
COMMENT ON COLUMN conngov.budgets.node_role IS
	'(1.2) the nodes the budget applies on: any (default), primary (not in recovery) or standby (in recovery); a promoted standby applies the primary''s budgets within a second';
COMMENT ON COLUMN conngov.budgets.max_share IS
	'(1.2) the part of a node''s normal connection slots the budget may use: its limit there is least(max_connections, floor(max_share * normal slots)); NULL = max_connections alone; above 0, at most 1';

COMMENT ON FUNCTION conngov.validate_budget() IS
	'trigger: refuses a bad budget row with a message that names the budget and what is allowed';
COMMENT ON FUNCTION conngov.budgets_changed() IS
	'trigger: checks that floors and waits fit the server and has the committed change loaded';
COMMENT ON FUNCTION conngov.usage() IS
	'per budget plus (unbudgeted): limit, sessions now, peak, available, ratio, status, floor, waiting; from shared counters only; pg_monitor';
COMMENT ON FUNCTION conngov.sessions() IS
	'per counted session: the budget it is charged to, its names at login and now, role, database, state; client_addr with pg_read_all_stats; pg_monitor';
COMMENT ON FUNCTION conngov.match(text, name, name) IS
	'the budget a login with this application_name, role and database would be charged to; pg_monitor';
COMMENT ON FUNCTION conngov.headroom() IS
	'the server''s connection slots: normal, reserved, in use, free, the part guaranteed to floors, oversubscription; pg_monitor';
COMMENT ON FUNCTION conngov.health() IS
	'jsonb {"status": healthy/degraded/unhealthy, "checks": [...]}: the server, the budgets'' load, loads, each budget, the history; pg_monitor';
COMMENT ON FUNCTION conngov.stats() IS
	'per budget: logins admitted, refused (limit, floors, rate), would-refuse, waited, paced, idle endings, peak, since stats_reset; pg_monitor';
COMMENT ON FUNCTION conngov.events(timestamptz) IS
	'the newest events first (refusals, waits, idle endings, loads), optionally only those after since; pg_monitor';
COMMENT ON FUNCTION conngov.reset_stats() IS
	'zeroes the counters of stats(); superusers';
COMMENT ON FUNCTION conngov.reload() IS
	'loads the budgets now and returns how many were loaded (changes apply by themselves); superusers';
COMMENT ON FUNCTION conngov.sweep(boolean) IS
	'the sessions an idle sweep ends now, or with dry_run (the default) would end; superusers, or a role granted it (then only sessions it may signal)';
COMMENT ON FUNCTION conngov.history(timestamptz, timestamptz, text) IS
	'(1.2) per budget and closed minute with activity, oldest first: exact peak of sessions, admitted, refused by reason, waits, idle endings; pg_monitor';
COMMENT ON FUNCTION conngov.at(timestamptz) IS
	'(1.2) the history of the minute that holds a moment, the budget with the highest peak first; pg_monitor';
COMMENT ON FUNCTION conngov.server_history(timestamptz, timestamptz) IS
	'(1.2) per closed minute: peak of sessions and waiting logins, the normal slots left at it, peak of waiting logins; pg_monitor';
COMMENT ON FUNCTION conngov.history_summary(integer) IS
	'(1.2) per budget over the last hours (1 to 168): figures and a line of 30 characters drawing the per-minute peaks; pg_monitor';
