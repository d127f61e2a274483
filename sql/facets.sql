-- count(*) GROUP BY a facet field over many tokens: one request of
-- page[limit]=1 per token, its meta.facets, the counts summed; the same
-- rows as with nothing pushed down (dalp_fdw.pushdown = off).
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
SELECT address AS hif FROM dalp.tokens WHERE symbol = 'HIF' \gset
SELECT sender AS agent FROM dalp.events WHERE token_address = :'acb' AND event_name = 'MintCompleted' LIMIT 1 \gset
SELECT to_address AS investor FROM dalp.events
 WHERE token_address = :'hif' AND event_name = 'TransferCompleted' ORDER BY block_number, tx_index LIMIT 1 \gset

-- the requests logged since the last clear, by path (tokens shortened to
-- {token}) and page[limit]
CREATE FUNCTION pg_temp.requests() RETURNS TABLE (path text, page_limit text, requests bigint)
LANGUAGE sql AS $$
  SELECT regexp_replace(l->>'path', '0x[0-9a-f]{40}', '{token}'), l->'query'->>'page[limit]', count(*)
    FROM pg_temp.sim('log') s(line), jsonb_array_elements(s.line::jsonb) l
   GROUP BY 1, 2 ORDER BY 1, 2 $$;

-- every token: the /tokens listing, then one request per token
EXPLAIN (VERBOSE, COSTS OFF) SELECT event_name, count(*) FROM dalp.events GROUP BY event_name;
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) AS event_names FROM (SELECT event_name, count(*) FROM dalp.events GROUP BY event_name) f;
SELECT * FROM pg_temp.requests();
SELECT pg_temp.same_rows('SELECT event_name, count(*) FROM dalp.events GROUP BY event_name');
SELECT sum(n) = (SELECT count(*) FROM dalp.events) AS counts_add_up
  FROM (SELECT event_name, count(*) AS n FROM dalp.events GROUP BY event_name) f;

-- an IN list of tokens: one request each
EXPLAIN (VERBOSE, COSTS OFF)
SELECT event_name, count(*) FROM dalp.events WHERE token_address IN (:'acb', :'hif') GROUP BY event_name;
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) AS event_names
  FROM (SELECT event_name, count(*) FROM dalp.events WHERE token_address IN (:'acb', :'hif') GROUP BY 1) f;
SELECT * FROM pg_temp.requests();
SELECT pg_temp.same_rows(format('SELECT event_name, count(*) FROM dalp.events WHERE token_address IN (%L, %L) GROUP BY 1', :'acb', :'hif'));

-- tokens listed in a local table
CREATE TEMP TABLE my_tokens AS SELECT address FROM dalp.tokens WHERE type IN ('bond', 'fund', 'deposit');
EXPLAIN (VERBOSE, COSTS OFF)
SELECT event_name, count(*) FROM dalp.events
 WHERE token_address = ANY (ARRAY(SELECT address FROM my_tokens)) GROUP BY event_name;
SELECT pg_temp.same_rows('SELECT event_name, count(*) FROM dalp.events
 WHERE token_address = ANY (ARRAY(SELECT address FROM my_tokens)) GROUP BY event_name');

-- with filters: a time window; a sender list longer than the API's 100
-- values (two requests per token); a search key with two values (an
-- event counted once per value it involves, as the rows are)
SELECT pg_temp.same_rows($$SELECT event_name, count(*) FROM dalp.events
 WHERE block_timestamp >= '2026-03-01' AND block_timestamp < '2026-06-01' GROUP BY event_name$$);
EXPLAIN (VERBOSE, COSTS OFF)
SELECT event_name, count(*) FROM dalp.events
 WHERE sender = ANY (ARRAY[:'agent'] || ARRAY(SELECT '0x' || lpad(to_hex(g), 40, '0') FROM generate_series(1, 150) g))
 GROUP BY event_name;
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) AS event_names FROM (SELECT event_name, count(*) FROM dalp.events
 WHERE sender = ANY (ARRAY[:'agent'] || ARRAY(SELECT '0x' || lpad(to_hex(g), 40, '0') FROM generate_series(1, 150) g))
 GROUP BY event_name) f;
SELECT * FROM pg_temp.requests();
SELECT pg_temp.same_rows(format($$SELECT event_name, count(*) FROM dalp.events
 WHERE sender = ANY (ARRAY[%L] || ARRAY(SELECT '0x' || lpad(to_hex(g), 40, '0') FROM generate_series(1, 150) g))
 GROUP BY event_name$$, :'agent'));
SELECT pg_temp.same_rows(format('SELECT event_name, count(*) FROM dalp.events
 WHERE involves_address IN (%L, %L) GROUP BY event_name', :'agent', :'investor'));

-- tokens by type: with a filter, and with a factory list of two requests
SELECT pg_temp.same_rows($$SELECT type, count(*) FROM dalp.tokens WHERE type <> 'bond' GROUP BY type$$);
EXPLAIN (VERBOSE, COSTS OFF)
SELECT type, count(*) FROM dalp.tokens
 WHERE factory_address = ANY (ARRAY(SELECT factory_address FROM dalp.tokens) ||
                              ARRAY(SELECT '0x' || lpad(to_hex(g), 40, '0') FROM generate_series(1, 120) g))
 GROUP BY type;
SELECT pg_temp.same_rows($$SELECT type, count(*) FROM dalp.tokens
 WHERE factory_address = ANY (ARRAY(SELECT factory_address FROM dalp.tokens) ||
                              ARRAY(SELECT '0x' || lpad(to_hex(g), 40, '0') FROM generate_series(1, 120) g))
 GROUP BY type$$);

-- a server without meta.facets: each token's values counted page by page
SELECT pg_temp.sim_faults('{"every": {"bare_meta": 1}}');
SELECT pg_temp.same_rows(format('SELECT event_name, count(*) FROM dalp.events WHERE token_address IN (%L, %L) GROUP BY 1', :'acb', :'hif'));
SELECT pg_temp.sim_faults('{}');
