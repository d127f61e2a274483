-- What goes to the API: filters, sort, limit, counts, join keys.  Each plan
-- shows its requests; every query returns what it returns with nothing
-- pushed down (dalp_fdw.pushdown = off).
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
SELECT address AS hif FROM dalp.tokens WHERE symbol = 'HIF' \gset
SELECT factory_address AS acb_factory FROM dalp.tokens WHERE symbol = 'ACB30' \gset
SELECT transaction_hash AS tx, sender AS acb_sender FROM dalp.events
 WHERE token_address = :'acb' AND event_name = 'TransferCompleted'
 ORDER BY block_number, tx_index LIMIT 1 \gset

-- tokens --------------------------------------------------------------------
EXPLAIN (VERBOSE, COSTS OFF) SELECT symbol FROM dalp.tokens WHERE address = :'acb';
SELECT pg_temp.same_rows(format('SELECT symbol FROM dalp.tokens WHERE address = %L', :'acb'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT symbol, q FROM dalp.tokens WHERE q = 'bond';
SELECT symbol, q FROM dalp.tokens WHERE q = 'bond' ORDER BY symbol;
EXPLAIN (VERBOSE, COSTS OFF) SELECT symbol FROM dalp.tokens WHERE symbol IN ('ACB30', 'HIF') AND type = 'bond';
SELECT pg_temp.same_rows($$SELECT symbol FROM dalp.tokens WHERE symbol IN ('ACB30', 'HIF') AND type = 'bond'$$);
EXPLAIN (VERBOSE, COSTS OFF) SELECT symbol FROM dalp.tokens WHERE name ILIKE '%bond%';
SELECT pg_temp.same_rows($$SELECT symbol FROM dalp.tokens WHERE name ILIKE '%bond%'$$);
-- LIKE is case-sensitive: sent as iLike to narrow the rows, rechecked locally
EXPLAIN (VERBOSE, COSTS OFF) SELECT symbol FROM dalp.tokens WHERE name LIKE '%Bond%';
SELECT pg_temp.same_rows($$SELECT symbol FROM dalp.tokens WHERE name LIKE '%bond%'$$);
EXPLAIN (VERBOSE, COSTS OFF) SELECT symbol FROM dalp.tokens WHERE type <> 'bond' AND factory_address = :'acb_factory';
SELECT pg_temp.same_rows(format('SELECT symbol FROM dalp.tokens WHERE type <> %L AND factory_address = %L', 'bond', :'acb_factory'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT symbol FROM dalp.tokens WHERE created_at >= '2026-02-01' AND created_at < '2026-03-01 00:00:00.0005+00';
SELECT pg_temp.same_rows($$SELECT symbol FROM dalp.tokens WHERE created_at >= '2026-02-01' AND created_at < '2026-03-01 00:00:00.0005+00'$$);
-- a stable expression is evaluated at execution and sent
EXPLAIN (VERBOSE, COSTS OFF) SELECT symbol FROM dalp.tokens WHERE created_at > now() - interval '10 years';
SELECT pg_temp.same_rows($$SELECT symbol FROM dalp.tokens WHERE created_at > now() - interval '10 years'$$);
EXPLAIN (VERBOSE, COSTS OFF) SELECT symbol FROM dalp.tokens ORDER BY symbol COLLATE "C" LIMIT 3;
SELECT symbol FROM dalp.tokens ORDER BY symbol COLLATE "C" LIMIT 3;
EXPLAIN (VERBOSE, COSTS OFF) SELECT symbol FROM dalp.tokens ORDER BY created_at DESC LIMIT 2 OFFSET 1;
SELECT pg_temp.same_rows($$SELECT symbol FROM dalp.tokens ORDER BY created_at DESC LIMIT 2 OFFSET 1$$);
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM dalp.tokens WHERE type = 'bond';
SELECT pg_temp.same_rows($$SELECT count(*) FROM dalp.tokens WHERE type = 'bond'$$);

-- holders -------------------------------------------------------------------
EXPLAIN (VERBOSE, COSTS OFF) SELECT account FROM dalp.holders WHERE token_address = :'acb' AND is_frozen;
SELECT pg_temp.same_rows(format('SELECT account FROM dalp.holders WHERE token_address = %L AND NOT is_frozen', :'acb'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT account FROM dalp.holders WHERE token_address = :'acb' AND balance >= 1000 AND balance < 100000.5;
SELECT pg_temp.same_rows(format('SELECT account FROM dalp.holders WHERE token_address = %L AND balance >= 1000 AND balance < 100000.5', :'acb'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT account, balance FROM dalp.holders WHERE token_address = :'acb' ORDER BY balance DESC LIMIT 10;
SELECT pg_temp.same_rows(format('SELECT account, balance FROM dalp.holders WHERE token_address = %L ORDER BY balance DESC LIMIT 10', :'acb'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM dalp.holders WHERE token_address = :'hif' AND balance > 10;
SELECT pg_temp.same_rows(format('SELECT count(*) FROM dalp.holders WHERE token_address = %L AND balance > 10', :'hif'));
-- IN on token_address reads just those tokens
EXPLAIN (VERBOSE, COSTS OFF) SELECT account FROM dalp.holders WHERE token_address IN (:'acb', :'hif');
SELECT pg_temp.same_rows(format('SELECT token_address, account FROM dalp.holders WHERE token_address IN (%L, %L)', :'acb', :'hif'));
-- count(*) over a fan-out adds meta.total of every token
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM dalp.holders WHERE token_address IN (:'acb', :'hif');
SELECT pg_temp.same_rows(format('SELECT count(*) FROM dalp.holders WHERE token_address IN (%L, %L)', :'acb', :'hif'));

-- a small local table joined on token_address: a parameterized scan per row
CREATE TEMP TABLE issuer_tokens (issuer text, token text);
INSERT INTO issuer_tokens SELECT 'Acme', :'acb' UNION ALL SELECT 'Harbor', :'hif';
ANALYZE issuer_tokens;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT i.issuer, count(*) FROM issuer_tokens i JOIN dalp.holders h ON h.token_address = i.token GROUP BY i.issuer;
SELECT pg_temp.same_rows($$SELECT i.issuer, count(*) FROM issuer_tokens i JOIN dalp.holders h ON h.token_address = i.token GROUP BY i.issuer$$);
EXPLAIN (VERBOSE, COSTS OFF)
SELECT i.issuer, e.id FROM issuer_tokens i JOIN dalp.events e ON e.token_address = i.token
 WHERE e.event_name = 'MintCompleted';
SELECT pg_temp.same_rows($$SELECT i.issuer, e.id FROM issuer_tokens i JOIN dalp.events e ON e.token_address = i.token WHERE e.event_name = 'MintCompleted'$$);
-- a LATERAL reference works the same way
SELECT pg_temp.same_rows($$SELECT i.issuer, x.n FROM issuer_tokens i, LATERAL (SELECT count(*) AS n FROM dalp.holders h WHERE h.token_address = i.token) x$$);

-- a join on a filter column sends each outer row's value
CREATE TEMP TABLE my_txs (token text, hash text);
INSERT INTO my_txs VALUES (:'acb', :'tx');
ANALYZE my_txs;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT m.hash, e.event_name FROM my_txs m
  JOIN dalp.events e ON e.token_address = m.token AND e.transaction_hash = m.hash;
SELECT pg_temp.same_rows($$SELECT m.hash, e.event_name FROM my_txs m JOIN dalp.events e ON e.token_address = m.token AND e.transaction_hash = m.hash$$);
-- a join on tokens.address: one listing of /tokens costs less than a lookup per row
EXPLAIN (VERBOSE, COSTS OFF)
SELECT i.issuer, t.symbol FROM issuer_tokens i JOIN dalp.tokens t ON t.address = i.token;
SELECT pg_temp.same_rows($$SELECT i.issuer, t.symbol FROM issuer_tokens i JOIN dalp.tokens t ON t.address = i.token$$);

-- use_remote_estimate: the planner reads meta.total with one request
CREATE FUNCTION pg_temp.plan_rows(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE plan json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO plan;
  RETURN (plan->0->'Plan'->>'Plan Rows')::bigint;
END $$;
SELECT pg_temp.plan_rows(format('SELECT * FROM dalp.events WHERE token_address = %L AND event_name = %L', :'hif', 'TransferCompleted')) AS default_estimate;
ALTER FOREIGN TABLE dalp.events OPTIONS (ADD use_remote_estimate 'true');
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT pg_temp.plan_rows(format('SELECT * FROM dalp.events WHERE token_address = %L AND event_name = %L', :'hif', 'TransferCompleted')) =
       (SELECT count(*) FROM dalp.events WHERE token_address = :'hif' AND event_name = 'TransferCompleted') AS remote_estimate_exact;
SELECT pg_temp.sim_requests() AS requests;  -- two plannings and one count
ALTER FOREIGN TABLE dalp.events OPTIONS (DROP use_remote_estimate);

-- events --------------------------------------------------------------------
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' AND event_name = 'Redeemed';
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L AND event_name = %L', :'acb', 'Redeemed'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' AND event_name <> 'CheckpointUpdated';
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L AND event_name <> %L', :'acb', 'CheckpointUpdated'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' AND event_name IN ('MintCompleted', 'BurnCompleted');
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L AND event_name = ANY (%L::text[])', :'acb', '{MintCompleted,BurnCompleted}'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' AND event_name NOT IN ('CheckpointUpdated', 'Approval');
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L AND event_name NOT IN (%L, %L)', :'acb', 'CheckpointUpdated', 'Approval'));
-- a constant IN list longer than one request is split into requests, so
-- it is exact: no local filter; a NOT IN list that long, which cannot be
-- split, is checked locally
CREATE FUNCTION pg_temp.has_local_filter(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE plan json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO plan;
  RETURN (plan->0->'Plan'->>'Filter') IS NOT NULL;
END $$;
SELECT string_agg(quote_literal('NoSuchEvent' || g), ', ') AS long_list FROM generate_series(1, 150) g \gset
SELECT pg_temp.has_local_filter(format('SELECT id FROM dalp.events WHERE token_address = %L AND event_name IN (%L, %s)', :'acb', 'MintCompleted', :'long_list')) AS in_filtered,
       pg_temp.has_local_filter(format('SELECT id FROM dalp.events WHERE token_address = %L AND event_name NOT IN (%L, %s)', :'acb', 'MintCompleted', :'long_list')) AS not_in_filtered;
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L AND event_name IN (%L, %s)', :'acb', 'MintCompleted', :'long_list'));
-- a list checked locally (a value with a comma, a NOT IN too long for one
-- request) sends no filter, and EXPLAIN shows none
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' AND event_name IN ('MintCompleted', 'Burn,Completed');
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L AND event_name IN (%L, %L)', :'acb', 'MintCompleted', 'Burn,Completed'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' AND sender = :'acb_sender';
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L AND sender IN (%L, %L)', :'acb', :'acb_sender', '0x0000000000000000000000000000000000000000'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT id, involves_address FROM dalp.events WHERE token_address = :'acb' AND involves_address = :'acb_sender';
SELECT count(*) > 0 AS found, bool_and(involves_address = :'acb_sender') AS echoed,
       bool_and(:'acb_sender' IN (from_address, to_address, account, "values"->>'owner', "values"->>'user')) AS involved
  FROM dalp.events WHERE token_address = :'acb' AND involves_address = :'acb_sender';
-- several searched addresses: one request each, every row echoing its own
SELECT address AS second_holder FROM (SELECT account AS address FROM dalp.holders
  WHERE token_address = :'acb' ORDER BY balance_exact DESC, account LIMIT 1) h \gset
EXPLAIN (VERBOSE, COSTS OFF) SELECT id, involves_address FROM dalp.events
 WHERE token_address = :'acb' AND involves_address IN (:'acb_sender', :'second_holder');
SELECT involves_address = :'acb_sender' AS is_first_sender, count(*) > 0 AS found,
       bool_and(involves_address IN (from_address, to_address, account, "values"->>'owner', "values"->>'user')) AS involved
  FROM dalp.events WHERE token_address = :'acb' AND involves_address IN (:'acb_sender', :'second_holder')
 GROUP BY 1 ORDER BY 1;
-- a malformed address matches nothing, without a request
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) FROM dalp.events WHERE token_address = :'acb' AND sender IN ('nobody', '0xZZ');
SELECT pg_temp.sim_requests() AS requests;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' AND transaction_hash = :'tx';
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L AND transaction_hash = %L', :'acb', :'tx'));
-- a hash in capitals matches nothing, as against the lowercase data
SELECT count(*) FROM dalp.events WHERE token_address = :'acb' AND transaction_hash = upper(:'tx');
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb'
   AND block_timestamp >= '2026-03-01' AND block_timestamp <= '2026-03-31 23:59:59.9995+00';
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L AND block_timestamp > %L AND block_timestamp <= %L', :'acb', '2026-03-01 00:00:00.0004+00', '2026-03-31 23:59:59.9995+00'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' ORDER BY block_timestamp DESC LIMIT 5;
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L ORDER BY block_timestamp DESC, block_number DESC, tx_index DESC LIMIT 5', :'acb'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb'
 ORDER BY block_timestamp DESC, block_number DESC, tx_index DESC LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' ORDER BY block_number LIMIT 5 OFFSET 10;
-- ties beyond the API's tie-breakers: the sort stays local
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' ORDER BY block_timestamp, id LIMIT 5;
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L ORDER BY block_timestamp, id LIMIT 5', :'acb'));
-- mixed directions are not the API's order
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' ORDER BY block_timestamp DESC, block_number LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM dalp.events WHERE token_address = :'acb'
   AND block_timestamp >= '2026-03-01' AND block_timestamp < '2026-04-01';
SELECT pg_temp.same_rows(format('SELECT count(*) FROM dalp.events WHERE token_address = %L AND block_timestamp >= %L AND block_timestamp < %L', :'acb', '2026-03-01', '2026-04-01'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT event_name, count(*) FROM dalp.events WHERE token_address = :'acb' GROUP BY event_name;
SELECT pg_temp.same_rows(format('SELECT event_name, count(*) FROM dalp.events WHERE token_address = %L GROUP BY event_name', :'acb'));
-- a condition the API cannot evaluate stays local, and LIMIT stays above it
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' AND amount > 1000 ORDER BY block_number LIMIT 3;
SELECT pg_temp.same_rows(format('SELECT id FROM dalp.events WHERE token_address = %L AND amount > 1000 ORDER BY block_number, tx_index, id LIMIT 3', :'acb'));
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' AND block_number = 1;
-- count(*) with a local condition is counted locally
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM dalp.events WHERE token_address = :'acb' AND amount IS NOT NULL;
-- a mixed-case token address matches nothing and says why, without a request
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) FROM dalp.events WHERE token_address = upper(:'acb');
SELECT pg_temp.sim_requests() AS requests;

-- prepared statements: $n parameters are sent
PREPARE newest(text, text, int) AS
  SELECT id, block_timestamp FROM dalp.events
   WHERE token_address = $1 AND event_name = $2 ORDER BY block_timestamp DESC LIMIT $3;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE newest(:'acb', 'MintCompleted', 2);
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE newest(:'acb', 'MintCompleted', 2);
EXECUTE newest(:'acb', 'NoSuchEvent', 2);
RESET plan_cache_mode;
DEALLOCATE newest;

-- factories -----------------------------------------------------------------
EXPLAIN (VERBOSE, COSTS OFF) SELECT name FROM dalp.factories WHERE type_id IN ('ATKBondFactory', 'ATKFundFactory') AND has_tokens;
SELECT pg_temp.same_rows($$SELECT name FROM dalp.factories WHERE type_id IN ('ATKBondFactory', 'ATKFundFactory') AND has_tokens$$);
EXPLAIN (VERBOSE, COSTS OFF) SELECT name FROM dalp.factories WHERE name = 'Bond Factory';

-- with dalp_fdw.pushdown off only the token path is sent
SET dalp_fdw.pushdown = off;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' AND event_name = 'Redeemed'
 ORDER BY block_timestamp DESC LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM dalp.tokens WHERE address = :'acb';
RESET dalp_fdw.pushdown;
