-- reference: every function and relation of the extension, and every
-- column of the budgets table, carries a COMMENT, so that \dx+, \df+ and
-- \d+ read as a reference (none is listed).  The table's row types, which
-- PostgreSQL 17 and later also record as members, are the table's.
\set VERBOSITY terse
SELECT pg_describe_object(d.classid, d.objid, 0) AS without_comment
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'conngov')
   AND d.deptype = 'e'
   AND d.classid IN ('pg_proc'::regclass, 'pg_class'::regclass)
   AND obj_description(d.objid, d.classid::regclass::name) IS NULL
UNION ALL
SELECT 'column ' || attname
  FROM pg_attribute
 WHERE attrelid = 'conngov.budgets'::regclass AND attnum > 0 AND NOT attisdropped
   AND col_description(attrelid, attnum) IS NULL
ORDER BY 1;
-- and what is commented
SELECT count(*) AS commented_objects
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'conngov')
   AND d.deptype = 'e'
   AND d.classid IN ('pg_proc'::regclass, 'pg_class'::regclass)
   AND obj_description(d.objid, d.classid::regclass::name) IS NOT NULL;
