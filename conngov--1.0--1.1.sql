/* conngov--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION conngov UPDATE TO '1.1'" to load this file. \quit

-- issue 12: begin
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
-- issue 12: end
