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
