-- IMPORT FOREIGN SCHEMA v2 creates the catalog's tables; LIMIT TO and EXCEPT work.
\i test/regress_setup.sql

-- every table with its columns and types, in order
SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'dalp'::regnamespace AND a.attnum > 0
 ORDER BY c.relname, a.attnum;
SELECT c.relname, ft.ftoptions
  FROM pg_foreign_table ft JOIN pg_class c ON c.oid = ft.ftrelid
 WHERE c.relnamespace = 'dalp'::regnamespace ORDER BY 1;

CREATE SCHEMA only_some;
IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens, events, no_such_table) FROM SERVER sim INTO only_some;
SELECT relname FROM pg_class WHERE relnamespace = 'only_some'::regnamespace ORDER BY 1;

CREATE SCHEMA all_but;
IMPORT FOREIGN SCHEMA v2 EXCEPT (events, holders) FROM SERVER sim INTO all_but;
SELECT relname FROM pg_class WHERE relnamespace = 'all_but'::regnamespace ORDER BY 1;

-- an unknown remote schema is an error
CREATE SCHEMA v3_tables;
IMPORT FOREIGN SCHEMA v3 FROM SERVER sim INTO v3_tables;

-- importing twice collides like any CREATE
IMPORT FOREIGN SCHEMA v2 LIMIT TO (tokens) FROM SERVER sim INTO only_some;

-- the imported tables work
SELECT count(*) > 0 AS has_tokens FROM only_some.tokens;

DROP SCHEMA only_some, all_but, v3_tables CASCADE;
