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
