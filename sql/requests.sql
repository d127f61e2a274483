-- What a query costs in requests, from the simulator's request log.
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
SELECT address AS hif FROM dalp.tokens WHERE symbol = 'HIF' \gset
SELECT transaction_hash AS tx FROM dalp.events
 WHERE token_address = :'acb' AND event_name = 'TransferCompleted'
 ORDER BY block_number, tx_index LIMIT 1 \gset

-- the requests logged since the last clear, with their decoded query
CREATE FUNCTION pg_temp.requests() RETURNS TABLE (path text, query jsonb, status int, rows int)
LANGUAGE sql AS $$
  SELECT l->>'path', l->'query', (l->>'status')::int, (l->>'rows')::int
    FROM pg_temp.sim('log') s(line), jsonb_array_elements(s.line::jsonb) l
   ORDER BY (l->>'seq')::int $$;
CREATE FUNCTION pg_temp.clear() RETURNS void
LANGUAGE sql AS $$ SELECT count(*) FROM pg_temp.sim('clear') $$;

-- a transaction-hash lookup: one request with filter[transactionHash][eq]
SELECT pg_temp.clear();
SELECT event_name, block_number FROM dalp.events
 WHERE token_address = :'acb' AND transaction_hash = :'tx' ORDER BY event_name;
SELECT replace(path, :'acb', '<acb>') AS path, query, status, rows FROM pg_temp.requests();

-- the newest 5 events: one request of page[limit]=5&sort=-blockTimestamp
SELECT pg_temp.clear();
SELECT count(*) FROM (SELECT id FROM dalp.events WHERE token_address = :'acb'
                       ORDER BY block_timestamp DESC LIMIT 5) newest;
SELECT replace(path, :'acb', '<acb>') AS path, query, rows FROM pg_temp.requests();

-- count(*) over a time window: one request, page[limit]=1
SELECT pg_temp.clear();
SELECT count(*) FROM dalp.events WHERE token_address = :'hif'
   AND block_timestamp >= '2026-03-01 00:00+00' AND block_timestamp < '2026-04-01 00:00+00';
SELECT replace(path, :'hif', '<hif>') AS path, query, rows FROM pg_temp.requests();

-- facets: one request for the counts by event name
SELECT pg_temp.clear();
SELECT count(*) AS event_names FROM (SELECT event_name, count(*) FROM dalp.events
                                      WHERE token_address = :'hif' GROUP BY event_name) f;
SELECT count(*) AS requests FROM pg_temp.requests();

-- a 2-row local table joined to holders: one request per row (each token
-- has fewer than 200 holders)
CREATE TEMP TABLE issuer_tokens (issuer text, token text);
INSERT INTO issuer_tokens SELECT 'Acme', :'acb' UNION ALL SELECT 'Pilot', address FROM dalp.tokens WHERE symbol = 'PN26';
ANALYZE issuer_tokens;
SELECT pg_temp.clear();
SELECT i.issuer, count(*) FROM issuer_tokens i JOIN dalp.holders h ON h.token_address = i.token
 GROUP BY i.issuer ORDER BY i.issuer;
SELECT count(*) AS requests, count(DISTINCT path) AS paths,
       bool_and(path LIKE '/api/v2/tokens/%/holders') AS holders_paths
  FROM pg_temp.requests();

-- a local filter with LIMIT: the right rows, and the scan stops early
SELECT pg_temp.clear();
SELECT id FROM dalp.events WHERE token_address = :'hif' AND amount > 1000000
 ORDER BY block_number, tx_index LIMIT 3;
SELECT count(*) < 3 AS stopped_early FROM pg_temp.requests();
SET dalp_fdw.pushdown = off;
SELECT id FROM dalp.events WHERE token_address = :'hif' AND amount > 1000000
 ORDER BY block_number, tx_index LIMIT 3;
RESET dalp_fdw.pushdown;
-- without ORDER BY: no page is prefetched beyond what the executor reads
SELECT pg_temp.clear();
SELECT count(*) FROM (SELECT id FROM dalp.events WHERE token_address = :'hif'
                        AND amount IS NOT NULL LIMIT 10) x;
SELECT count(*) AS requests FROM pg_temp.requests();

-- an IN list longer than the API's 100 values is split into requests
SELECT pg_temp.clear();
SELECT count(*) FROM dalp.events WHERE token_address = :'acb'
   AND event_name = ANY (ARRAY['MintCompleted', 'BurnCompleted'] ||
                         ARRAY(SELECT 'NoSuchEvent' || g FROM generate_series(1, 150) g));
-- (the requests are in flight together: they reach the simulator in any order)
SELECT count(*) AS requests, array_agg(n ORDER BY n DESC) AS list_lengths
  FROM (SELECT array_length(string_to_array(query->>'filter[eventName][inArray]', ','), 1) AS n
          FROM pg_temp.requests()) r;

-- dalp_fdw.stats(): this backend's counters; connections are kept across queries
SELECT dalp_fdw.stats_reset();
SELECT sum(amount) > 0 AS summed FROM dalp.events WHERE token_address = :'hif';
SELECT connections_opened AS conns_after_first FROM dalp_fdw.stats() WHERE server = 'sim' \gset
SELECT sum(balance) > 0 AS summed FROM dalp.holders WHERE token_address = :'hif';
SELECT server, requests, pages, rows, retries, errors, rate_limit_waits, bytes > 0 AS bytes,
       connections_opened = :conns_after_first AS no_new_connections,
       network_wait_ms > 0 AS waited
  FROM dalp_fdw.stats();

-- a server that sends neither meta.total nor facets (the contract allows
-- it): counts come from paging, and the result does not change
CREATE TEMP TABLE acb_names AS
SELECT event_name, count(*) AS n FROM dalp.events WHERE token_address = :'acb' GROUP BY event_name;
SELECT pg_temp.sim_faults('{"every": {"bare_meta": 1}}');
SELECT pg_temp.clear();
SELECT count(*) AS hif_events FROM dalp.events WHERE token_address = :'hif';
SELECT count(*) AS requests FROM pg_temp.requests();
SELECT count(*) AS differences
  FROM ((SELECT event_name, count(*) FROM dalp.events WHERE token_address = :'acb' GROUP BY event_name)
        EXCEPT TABLE acb_names) d;
SELECT pg_temp.sim_faults('{}');

-- EXPLAIN ANALYZE counts what was sent
EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT count(*) FROM dalp.events WHERE token_address = :'hif' AND event_name = 'CheckpointUpdated';
