-- Foreign tables created by hand: any subset of a resource's catalog columns,
-- in any order, plus json_path columns, give the same rows and the same
-- pushdown as the imported tables; a column that is neither a catalog column
-- nor has a json_path is an error at the first query, naming the column and
-- the valid names.
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
\set VERBOSITY default

-- ---------------------------------------------------------------------------
-- Reordered and partial columns
-- ---------------------------------------------------------------------------
CREATE FOREIGN TABLE my_events (
  amount numeric,
  "values" jsonb,
  event_name text,
  block_number bigint,
  sender_id text OPTIONS (json_path 'sender.id'),
  token_address text,
  id text,
  block_timestamp timestamptz
) SERVER sim OPTIONS (resource 'events');

-- the same rows, column for column, as the imported table
SELECT count(*) AS events,
       count(*) = (SELECT count(*) FROM dalp.events WHERE token_address = :'acb') AS same_count
  FROM my_events WHERE token_address = :'acb';
SELECT count(*) AS differences
  FROM ((SELECT amount, "values", event_name, block_number, sender_id, token_address, id, block_timestamp
           FROM my_events WHERE token_address = :'acb'
         EXCEPT
         SELECT amount, "values", event_name, block_number, sender, token_address, id, block_timestamp
           FROM dalp.events WHERE token_address = :'acb')
        UNION ALL
        (SELECT amount, "values", event_name, block_number, sender, token_address, id, block_timestamp
           FROM dalp.events WHERE token_address = :'acb'
         EXCEPT
         SELECT amount, "values", event_name, block_number, sender_id, token_address, id, block_timestamp
           FROM my_events WHERE token_address = :'acb')) d;

-- conditions, sort, limit and counts go to the API as for the imported table
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id, amount FROM my_events
 WHERE token_address = :'acb' AND event_name = 'MintCompleted'
   AND block_timestamp >= '2026-03-01 00:00:00+00'
 ORDER BY block_timestamp DESC, block_number DESC;
SELECT array_agg(id ORDER BY block_timestamp DESC, block_number DESC, id) =
       (SELECT array_agg(id ORDER BY block_timestamp DESC, block_number DESC, id)
          FROM dalp.events
         WHERE token_address = :'acb' AND event_name = 'MintCompleted'
           AND block_timestamp >= '2026-03-01 00:00:00+00') AS same_mints
  FROM my_events
 WHERE token_address = :'acb' AND event_name = 'MintCompleted'
   AND block_timestamp >= '2026-03-01 00:00:00+00';
EXPLAIN (VERBOSE, COSTS OFF)
SELECT event_name, count(*) FROM my_events WHERE token_address = :'acb' GROUP BY event_name;
SELECT event_name, count(*) FROM my_events WHERE token_address = :'acb'
 GROUP BY event_name ORDER BY event_name;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT count(*) FROM my_events WHERE token_address = :'acb' AND event_name = 'Paused';
SELECT count(*) AS paused FROM my_events WHERE token_address = :'acb' AND event_name = 'Paused';

-- one column only, and no column at all
CREATE FOREIGN TABLE only_raw (raw jsonb) SERVER sim OPTIONS (resource 'tokens');
SELECT count(*) AS tokens,
       array_agg(raw->>'symbol' ORDER BY raw->>'symbol') =
       (SELECT array_agg(symbol ORDER BY symbol) FROM dalp.tokens) AS same_tokens,
       bool_and(raw IN (SELECT raw FROM dalp.tokens)) AS same_raw
  FROM only_raw;
CREATE FOREIGN TABLE only_token (token_address text) SERVER sim OPTIONS (resource 'token_metadata');
SELECT s.symbol, count(*) AS metadata_keys
  FROM only_token o JOIN dalp.tokens s ON s.address = o.token_address
 GROUP BY s.symbol ORDER BY s.symbol;
CREATE FOREIGN TABLE no_columns () SERVER sim OPTIONS (resource 'factories');
SELECT count(*) AS factories FROM no_columns;

-- a column of another type than the catalog's takes the item's value in its
-- own type; conditions on it stay local
CREATE FOREIGN TABLE typed_tokens (
  created_at text,
  decimals numeric,
  symbol varchar(10),
  paused text
) SERVER sim OPTIONS (resource 'tokens');
SELECT symbol, created_at, decimals, paused FROM typed_tokens ORDER BY symbol;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT symbol FROM typed_tokens WHERE created_at >= '2026-03' AND symbol = 'VGOLD';
SELECT symbol FROM typed_tokens WHERE created_at >= '2026-03' AND symbol = 'VGOLD';

-- any declared type: the value's text read by the type's input function
-- (test/t_types.sh checks every column source x type x read path)
CREATE FOREIGN TABLE typed_raw (symbol text, raw json, decimals varchar(2))
  SERVER sim OPTIONS (resource 'tokens');
SELECT json_typeof(raw), raw->>'symbol' = symbol AS same, decimals
  FROM typed_raw WHERE symbol = 'ACB30';
CREATE FOREIGN TABLE typed_events (token_address varchar(42), "values" text,
  event_name varchar(30), block_number numeric(12,1))
  SERVER sim OPTIONS (resource 'events', token_address :'acb');
SELECT token_address, "values"::jsonb ? 'amount' AS has_amount, block_number
  FROM typed_events WHERE event_name = 'MintCompleted' LIMIT 1;
-- a grouped varchar still comes from meta.facets
EXPLAIN (VERBOSE, COSTS OFF)
SELECT event_name, count(*) FROM typed_events GROUP BY event_name;
SELECT event_name, count(*) FROM typed_events GROUP BY event_name ORDER BY 2 DESC LIMIT 2;
-- what the type refuses is an error naming the column, its type and the value
CREATE FOREIGN TABLE typed_wrong (raw tsvector) SERVER sim OPTIONS (resource 'tokens');
SELECT raw FROM typed_wrong LIMIT 1;
ALTER FOREIGN TABLE typed_wrong ALTER COLUMN raw TYPE int8;
SELECT raw FROM typed_wrong LIMIT 1;
CREATE FOREIGN TABLE typed_holders (token_address int8, account varchar(3))
  SERVER sim OPTIONS (resource 'holders', token_address :'acb');
SELECT token_address FROM typed_holders LIMIT 1;
SELECT account FROM typed_holders LIMIT 1;
-- a "char" keeps one byte of each value, so its groups are not the API's
ALTER FOREIGN TABLE typed_events ALTER COLUMN event_name TYPE "char";
EXPLAIN (COSTS OFF) SELECT event_name, count(*) FROM typed_events GROUP BY event_name;
SELECT event_name, count(*) FROM typed_events GROUP BY event_name ORDER BY 1;

-- dropped and added columns
CREATE FOREIGN TABLE altered (symbol text, scratch text OPTIONS (json_path 'name'), decimals int)
  SERVER sim OPTIONS (resource 'tokens');
ALTER FOREIGN TABLE altered DROP COLUMN scratch;
ALTER FOREIGN TABLE altered ADD COLUMN factory text OPTIONS (json_path 'tokenFactory.id');
ALTER FOREIGN TABLE altered ADD COLUMN name text;
SELECT a.symbol, a.decimals, a.name, a.factory = t.factory_address AS factory_matches
  FROM altered a JOIN dalp.tokens t ON t.symbol = a.symbol
 ORDER BY a.symbol;

-- ---------------------------------------------------------------------------
-- A column the catalog does not know and no json_path maps
-- ---------------------------------------------------------------------------
CREATE FOREIGN TABLE typo (id text, evnt_name text, token_address text)
  SERVER sim OPTIONS (resource 'events', token_address :'acb');
-- whatever the first query reads, it fails, naming the column and the valid names
SELECT evnt_name FROM typo;
SELECT id FROM typo LIMIT 1;
SELECT count(*) FROM typo;
EXPLAIN (COSTS OFF) SELECT id FROM typo;
SELECT pg_temp.sqlstate_of('SELECT id FROM typo') LIKE 'HV005:%' AS column_name_not_found;
-- nothing was requested
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT pg_temp.sqlstate_of('SELECT * FROM typo') LIKE 'HV005:%' AS column_name_not_found;
SELECT pg_temp.sim_requests() AS requests;
-- a json_path makes it a column
ALTER FOREIGN TABLE typo ALTER COLUMN evnt_name OPTIONS (ADD json_path 'eventName');
SELECT evnt_name, count(*) FROM typo WHERE evnt_name IN ('Paused', 'RoleGranted')
 GROUP BY evnt_name ORDER BY evnt_name;
-- so does the catalog's name, and then the condition goes to the API
ALTER FOREIGN TABLE typo ALTER COLUMN evnt_name OPTIONS (DROP json_path);
ALTER FOREIGN TABLE typo RENAME COLUMN evnt_name TO event_name;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM typo WHERE event_name = 'Paused';
SELECT count(*) AS paused FROM typo WHERE event_name = 'Paused';

-- every resource names its own columns in the hint
CREATE FOREIGN TABLE wrong_health (service text) SERVER sim OPTIONS (resource 'health_services');
SELECT * FROM wrong_health;
