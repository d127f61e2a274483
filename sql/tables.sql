-- Each table's columns, types and exact values.
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
SELECT address AS hif FROM dalp.tokens WHERE symbol = 'HIF' \gset

-- tokens
SELECT symbol, name, decimals, type, paused, extensions, total_supply, created_at
  FROM dalp.tokens ORDER BY created_at;
SELECT pg_typeof(address) AS address, pg_typeof(decimals) AS decimals,
       pg_typeof(total_supply) AS total_supply, pg_typeof(created_at) AS created_at,
       pg_typeof(paused) AS paused, pg_typeof(extensions) AS extensions,
       pg_typeof(raw) AS raw
  FROM dalp.tokens LIMIT 1;
-- amounts are exact: all digits of values past 2^64 and 10^30
SELECT symbol, total_supply_exact,
       total_supply_exact > 2::numeric ^ 64 AS past_2_64,
       total_supply_exact > 1e30 AS past_1e30,
       total_supply_exact::text = raw->>'totalSupplyExact' AS exact_digits,
       total_supply * 10::numeric ^ decimals = total_supply_exact AS shifted_by_decimals
  FROM dalp.tokens ORDER BY symbol;
SELECT bool_and(address = raw->>'id') AS address_is_id,
       bool_and(factory_address = raw->'tokenFactory'->>'id') AS factory,
       bool_and(created_by = raw->'createdBy'->>'id') AS created_by,
       bool_and(q IS NULL) AS q_null_without_search
  FROM dalp.tokens;

-- holders: balances add up to the supply, exactly
SELECT count(*) AS holders, sum(balance_exact) AS sum_exact,
       sum(balance_exact) = (SELECT total_supply_exact FROM dalp.tokens WHERE symbol = 'ACB30') AS equals_supply,
       max(balance_exact) > 1e30 AS has_balance_past_1e30,
       bool_and(balance_exact::text = raw->>'valueExact') AS exact_digits,
       bool_and(available + frozen = balance) AS available_plus_frozen,
       bool_and(token_address = :'acb') AS token_column
  FROM dalp.holders WHERE token_address = :'acb';
SELECT pg_typeof(balance) AS balance, pg_typeof(is_frozen) AS is_frozen,
       pg_typeof(last_updated_at) AS last_updated_at
  FROM dalp.holders WHERE token_address = :'acb' LIMIT 1;
SELECT account, balance, balance_exact, available, frozen, is_frozen
  FROM dalp.holders WHERE token_address = :'acb' ORDER BY balance_exact DESC, account LIMIT 3;

-- events: typed columns, values as a jsonb object, raw as returned
SELECT event_name, count(*) FROM dalp.events WHERE token_address = :'acb'
 GROUP BY event_name ORDER BY event_name;
SELECT pg_typeof(block_number) AS block_number, pg_typeof(tx_index) AS tx_index,
       pg_typeof(block_timestamp) AS block_timestamp, pg_typeof(amount) AS amount,
       pg_typeof("values") AS "values"
  FROM dalp.events WHERE token_address = :'acb' LIMIT 1;
SELECT bool_and(jsonb_typeof("values") = 'object') AS values_is_object,
       bool_and(id = raw->>'id') AS id,
       bool_and(block_number = (raw->>'blockNumber')::bigint) AS block_number,
       bool_and(tx_index = (raw->>'txIndex')::int) AS tx_index,
       bool_and(block_timestamp = (raw->>'blockTimestamp')::timestamptz) AS block_timestamp,
       bool_and(transaction_hash = raw->>'transactionHash') AS transaction_hash,
       bool_and(emitter = :'acb') AS emitter,
       bool_and(sender = raw->'sender'->>'id') AS sender,
       bool_and(amount IS NOT DISTINCT FROM ("values"->>'amount')::numeric) AS amount,
       bool_and(from_address IS NOT DISTINCT FROM "values"->>'from') AS from_address,
       bool_and(to_address IS NOT DISTINCT FROM "values"->>'to') AS to_address,
       bool_and(account IS NOT DISTINCT FROM coalesce("values"->>'account', "values"->>'user', "values"->>'owner')) AS account,
       bool_and(involves_address IS NULL) AS involves_null_without_search
  FROM dalp.events WHERE token_address = :'acb';
-- timestamps keep their milliseconds
SELECT count(*) > 0 AS has_milliseconds,
       bool_and(to_char(block_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') = raw->>'blockTimestamp') AS exact
  FROM dalp.events
 WHERE token_address = :'acb' AND extract(milliseconds FROM block_timestamp)::int % 1000 <> 0;
SELECT max(amount) > 2::numeric ^ 64 AS amount_past_2_64 FROM dalp.events WHERE token_address = :'acb';
-- a ForcedTransfer travels with its TransferCompleted in one transaction
SELECT count(*) AS forced_without_transfer
  FROM dalp.events f
 WHERE f.token_address = :'hif' AND f.event_name = 'ForcedTransfer'
   AND NOT EXISTS (SELECT 1 FROM dalp.events t
                    WHERE t.token_address = :'hif' AND t.event_name = 'TransferCompleted'
                      AND t.transaction_hash = f.transaction_hash);

-- factories
SELECT name, type_id, has_tokens, token_extensions FROM dalp.factories ORDER BY name;
SELECT bool_and(address = raw->>'id') AS address FROM dalp.factories;

-- a per-token table pinned by the token_address table option
CREATE FOREIGN TABLE acb_events (id text, event_name text, amount numeric)
  SERVER sim OPTIONS (resource 'events', token_address :'acb');
SELECT count(*) = (SELECT count(*) FROM dalp.events WHERE token_address = :'acb') AS same_rows
  FROM acb_events;
DROP FOREIGN TABLE acb_events;
