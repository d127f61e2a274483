-- A per-token table queried without a token lists /tokens and reads every token.
\i test/regress_setup.sql

EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events;
SELECT (SELECT count(*) FROM dalp.events) =
       (SELECT sum((s.line::jsonb->>'events')::bigint)
          FROM dalp.tokens t, LATERAL pg_temp.sim('truth ' || t.address) s(line)) AS all_events;
SELECT count(DISTINCT token_address) = (SELECT count(*) FROM dalp.tokens) AS every_token
  FROM dalp.holders;

-- every token's path was requested once per page, after one listing of /tokens
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) > 0 AS some FROM dalp.token_metadata;
SELECT path LIKE '/api/v2/tokens/%/metadata' AS per_token_path, count(*)
  FROM (SELECT l->>'path' AS path
          FROM pg_temp.sim('log') s(line), jsonb_array_elements(s.line::jsonb) l) q
 GROUP BY 1 ORDER BY 1;

-- the token listing pages too
ALTER SERVER sim OPTIONS (ADD page_size '3');
SELECT count(DISTINCT token_address) = (SELECT count(*) FROM dalp.tokens) AS every_token
  FROM dalp.token_metadata;
ALTER SERVER sim OPTIONS (DROP page_size);

-- IN on token_address reads just the tokens listed
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
SELECT address AS hif FROM dalp.tokens WHERE symbol = 'HIF' \gset
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT token_address = :'acb' AS is_acb, count(*) > 0 AS has_rows
  FROM dalp.holders WHERE token_address IN (:'acb', :'hif') GROUP BY 1 ORDER BY 1;
-- (HIF's 235 holders take two pages: read between two markers, its newest event)
SELECT count(*) FILTER (WHERE l->>'path' = '/api/v2/tokens') AS listings,
       count(DISTINCT l->>'path') FILTER (WHERE l->>'path' LIKE '%/holders') AS holder_paths,
       count(*) FILTER (WHERE l->>'path' = '/api/v2/tokens/' || :'hif' || '/events'
                          AND l->'query'->>'page[limit]' = '1') AS markers
  FROM pg_temp.sim('log') s(line), jsonb_array_elements(s.line::jsonb) l;

-- the token_address column is the token each row was read for
SELECT bool_and(e.emitter = e.token_address) AS emitter_is_token
  FROM dalp.events e;

-- tokens times searched values beyond what one scan may send: a clean error
-- before anything is built or sent (the count once wrapped an int)
SELECT count(*) FROM dalp.events
 WHERE token_address = ANY (ARRAY(SELECT format('0x%s', lpad(to_hex(i), 40, '0')) FROM generate_series(1, 1001) i))
   AND involves_address = ANY (ARRAY(SELECT format('0x%s', lpad(to_hex(i), 40, '0')) FROM generate_series(1, 1000) i));
