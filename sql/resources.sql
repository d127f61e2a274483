-- The read surface beyond tokens and events (issue 7): token_features,
-- token_metadata, compliance_modules, transfer_approvals,
-- asset_class_definitions, health_services, health_snapshots; holders read
-- by account through holder-balances; the catalog functions.
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
SELECT address AS hif FROM dalp.tokens WHERE symbol = 'HIF' \gset
CREATE TEMP TABLE token_syms AS SELECT address, symbol, decimals FROM dalp.tokens;

-- The simulator's request log since the last clear, a token address in a
-- path shown as <SYMBOL>.
CREATE FUNCTION pg_temp.sim_log() RETURNS TABLE (path text, query jsonb, rows int)
LANGUAGE sql AS $$
  SELECT coalesce((SELECT replace(l->>'path', s.address, '<' || s.symbol || '>')
                     FROM token_syms s WHERE strpos(l->>'path', s.address) > 0),
                  l->>'path'),
         l->'query', (l->>'rows')::int
    FROM pg_temp.sim('log') g(line), jsonb_array_elements(g.line::jsonb) l
   ORDER BY (l->>'seq')::int $$;

-- ---------------------------------------------------------------------------
-- The catalog, as SQL sees it
-- ---------------------------------------------------------------------------
SELECT * FROM dalp_fdw.catalog_resources();
-- the columns of this issue's tables and the item fields they read
SELECT resource, column_name, type, source, json_path
  FROM dalp_fdw.catalog_columns()
 WHERE resource IN ('token_features', 'token_metadata', 'compliance_modules',
                    'transfer_approvals', 'asset_class_definitions',
                    'health_services', 'health_snapshots')
 ORDER BY resource, ordinal;
-- the functions describe exactly the tables IMPORT FOREIGN SCHEMA created
SELECT count(*) AS mismatches
  FROM ((SELECT resource, ordinal, column_name, type::oid FROM dalp_fdw.catalog_columns()
         EXCEPT
         SELECT c.relname, a.attnum, a.attname, a.atttypid
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          WHERE c.relnamespace = 'dalp'::regnamespace AND a.attnum > 0)
        UNION ALL
        (SELECT c.relname, a.attnum, a.attname, a.atttypid
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          WHERE c.relnamespace = 'dalp'::regnamespace AND a.attnum > 0
         EXCEPT
         SELECT resource, ordinal, column_name, type::oid FROM dalp_fdw.catalog_columns())) d;
SELECT (SELECT array_agg(resource ORDER BY resource) FROM dalp_fdw.catalog_resources()) =
       (SELECT array_agg(relname::text ORDER BY relname) FROM pg_class
         WHERE relnamespace = 'dalp'::regnamespace) AS one_table_per_resource;
-- every operator bit a column takes has a row in the operator table
-- (catalog.c): catalog_columns() fails on one that has none
SELECT DISTINCT unnest(filter_ops) COLLATE "C" AS api_operator
  FROM dalp_fdw.catalog_columns() ORDER BY 1;

-- ---------------------------------------------------------------------------
-- token_features
-- ---------------------------------------------------------------------------
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM dalp.token_features WHERE token_address = :'acb';
SELECT feature_type_id, address, attached_at
  FROM dalp.token_features WHERE token_address = :'acb' ORDER BY feature_type_id;
-- every token's features: attached a minute after the token was created
SELECT s.symbol, count(f.*) AS features,
       array_agg(f.feature_type_id ORDER BY f.feature_type_id) FILTER (WHERE f.token_address IS NOT NULL) AS feature_types,
       bool_and(f.attached_at = t.created_at + interval '1 minute') AS attached_after_creation
  FROM token_syms s
  JOIN dalp.tokens t ON t.address = s.address
  LEFT JOIN dalp.token_features f ON f.token_address = s.address
 GROUP BY s.symbol ORDER BY s.symbol;
SELECT count(*) AS features,
       bool_and(to_jsonb(f) = jsonb_strip_nulls(to_jsonb(f))) AS no_nulls,
       bool_and(f.feature_type_id = raw->>'featureTypeId' AND f.address = raw->>'address'
                AND f.attached_at = (raw->>'attachedAt')::timestamptz) AS columns_are_fields
  FROM dalp.token_features f;

-- ---------------------------------------------------------------------------
-- token_metadata: ISIN and the rest, one row per key
-- ---------------------------------------------------------------------------
SELECT key, value, updated_at FROM dalp.token_metadata WHERE token_address = :'acb' ORDER BY key;
SELECT s.symbol,
       max(m.value) FILTER (WHERE m.key = 'isin') AS isin,
       max(m.value) FILTER (WHERE m.key = 'currency') AS currency,
       max(m.value) FILTER (WHERE m.key = 'maturityDate') AS maturity_date
  FROM token_syms s JOIN dalp.token_metadata m ON m.token_address = s.address
 GROUP BY s.symbol ORDER BY s.symbol;
SELECT count(*) AS entries,
       bool_and(to_jsonb(m) = jsonb_strip_nulls(to_jsonb(m))) AS no_nulls,
       bool_and(m.key = raw->>'key' AND m.value = raw->>'value'
                AND m.updated_at = (raw->>'updatedAt')::timestamptz) AS columns_are_fields
  FROM dalp.token_metadata m;

-- ---------------------------------------------------------------------------
-- compliance_modules: parameters are jsonb
-- ---------------------------------------------------------------------------
SELECT module_address, type_id, parameters
  FROM dalp.compliance_modules WHERE token_address = :'acb' ORDER BY type_id;
SELECT s.symbol, m.type_id
  FROM token_syms s JOIN dalp.compliance_modules m ON m.token_address = s.address
 WHERE m.parameters->'requiredClaimTopics' ? 'KYC'
 ORDER BY s.symbol;
-- the modules are those the token's ComplianceModuleAdded events added
SELECT (SELECT array_agg(module_address ORDER BY module_address)
          FROM dalp.compliance_modules WHERE token_address = :'acb') =
       (SELECT array_agg("values"->>'module' ORDER BY "values"->>'module')
          FROM dalp.events WHERE token_address = :'acb' AND event_name = 'ComplianceModuleAdded')
       AS modules_match_events;
SELECT count(*) AS modules,
       bool_and(to_jsonb(m) = jsonb_strip_nulls(to_jsonb(m))) AS no_nulls,
       bool_and(m.module_address = raw->'module'->>'id' AND m.type_id = raw->>'typeId'
                AND m.parameters = raw->'parameters') AS columns_are_fields
  FROM dalp.compliance_modules m;

-- ---------------------------------------------------------------------------
-- transfer_approvals: only token_address goes to the API
-- ---------------------------------------------------------------------------
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM dalp.transfer_approvals WHERE token_address = :'acb' AND status = 'pending';
SELECT status, count(*), sum(amount) AS amount
  FROM dalp.transfer_approvals WHERE token_address = :'acb' GROUP BY status ORDER BY status;
SELECT count(*) AS approvals,
       bool_and(to_jsonb(a) = jsonb_strip_nulls(to_jsonb(a))) AS no_nulls,
       bool_and(a.id = raw->>'id' AND a.from_wallet = raw->>'fromWallet'
                AND a.to_wallet = raw->>'toWallet' AND a.status = raw->>'status'
                AND a.amount_exact::text = raw->>'amountExact'
                AND a.created_at = (raw->>'createdAt')::timestamptz) AS columns_are_fields,
       bool_and(a.amount * 10::numeric ^ s.decimals = a.amount_exact) AS amount_shifted_by_decimals,
       bool_and(a.status IN ('pending', 'approved', 'revoked', 'executed')) AS known_statuses
  FROM dalp.transfer_approvals a JOIN token_syms s ON s.address = a.token_address;
-- approvals are between holders of the token
SELECT count(*) AS approvals_from_non_holders
  FROM dalp.transfer_approvals a
 WHERE a.token_address = :'hif'
   AND a.from_wallet NOT IN (SELECT account FROM dalp.holders WHERE token_address = :'hif');

-- ---------------------------------------------------------------------------
-- asset_class_definitions: one collection, one request
-- ---------------------------------------------------------------------------
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT slug, name, is_system, id ~ '^acd_' AS has_id FROM dalp.asset_class_definitions ORDER BY slug;
SELECT * FROM pg_temp.sim_log();

-- ---------------------------------------------------------------------------
-- health_services: the monitoring summary, one row per service
-- ---------------------------------------------------------------------------
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM dalp.health_services;
SELECT service_type, chain_id, network_name, status, sync_lag, finality_lag_blocks,
       block_age_seconds, stall_seconds, reindexing, updated_at
  FROM dalp.health_services ORDER BY service_type;
SELECT bool_and(chain_head_block - block_height = sync_lag) AS lag_is_head_minus_height,
       bool_and(to_jsonb(h) = jsonb_strip_nulls(to_jsonb(h))) AS no_nulls,
       bool_and(h.block_height::text = raw->>'blockHeight'
                AND h.chain_head_block::text = raw->>'chainHeadBlock'
                AND h.service_type = raw->>'serviceType'
                AND h.updated_at = (raw->>'updatedAt')::timestamptz) AS columns_are_fields
  FROM dalp.health_services h;
-- the status follows the indexer, and each change is also a snapshot
SELECT count(*) AS lines FROM pg_temp.sim('health reindexing');
SELECT service_type, status, reindexing, sync_lag, stall_seconds
  FROM dalp.health_services ORDER BY service_type;
SELECT event_type, service_type, status, reindexing
  FROM dalp.health_snapshots WHERE event_type <> 'snapshot';
SELECT count(*) AS lines FROM pg_temp.sim('reset');

-- ---------------------------------------------------------------------------
-- health_snapshots: a paged collection
-- ---------------------------------------------------------------------------
SELECT event_type, service_type, status, count(*), min(created_at), max(created_at)
  FROM dalp.health_snapshots GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT bool_and(to_jsonb(h) = jsonb_strip_nulls(to_jsonb(h))) AS no_nulls,
       bool_and(h.event_type = raw->>'eventType'
                AND h.created_at = (raw->>'createdAt')::timestamptz
                AND h.block_height::text = raw->>'blockHeight') AS columns_are_fields
  FROM dalp.health_snapshots h;
-- five at a time: ten pages, every snapshot once
ALTER SERVER sim OPTIONS (ADD page_size '5');
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) AS snapshots, count(DISTINCT raw) AS distinct_snapshots FROM dalp.health_snapshots;
SELECT pg_temp.sim_requests() AS requests;
ALTER SERVER sim OPTIONS (DROP page_size);

-- ---------------------------------------------------------------------------
-- holders by account: holder-balances, zero or one row per token
-- ---------------------------------------------------------------------------
-- an account holding four tokens, ACB30 among them, and one holding HIF only
SELECT account AS multi FROM dalp.holders GROUP BY account
HAVING count(*) = 4 AND bool_or(token_address = :'acb') ORDER BY account LIMIT 1 \gset
SELECT account AS hif_only FROM dalp.holders GROUP BY account
HAVING array_agg(token_address) = ARRAY[:'hif'] ORDER BY account LIMIT 1 \gset

-- pinned to a token: one request, one row
EXPLAIN (VERBOSE, COSTS OFF)
SELECT balance FROM dalp.holders WHERE token_address = :'acb' AND account = :'multi';
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT account = :'multi' AS is_multi, balance > 0 AS has_balance
  FROM dalp.holders WHERE token_address = :'acb' AND account = :'multi';
SELECT path, query->>'holderAddress' = :'multi' AS holder_address, rows FROM pg_temp.sim_log();
-- the same row, every column, as in the holders collection
SELECT (SELECT h FROM dalp.holders h WHERE token_address = :'acb' AND account = :'multi') =
       (SELECT h FROM dalp.holders h WHERE token_address = :'acb' AND account || '' = :'multi')
       AS same_row_as_collection;

-- pinned, an account that does not hold the token: one request, no row
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) AS holders FROM dalp.holders WHERE token_address = :'acb' AND account = :'hif_only';
SELECT path, rows FROM pg_temp.sim_log();

-- pinned by the table option
CREATE FOREIGN TABLE acb_holders (account text, balance numeric)
  SERVER sim OPTIONS (resource 'holders', token_address :'acb');
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT account = :'multi' AS is_multi FROM acb_holders WHERE account = :'multi';
SELECT count(*) AS holders FROM acb_holders WHERE account = :'hif_only';
SELECT path, rows FROM pg_temp.sim_log();
DROP FOREIGN TABLE acb_holders;

-- no token: the token list, then one holder-balances request per token
EXPLAIN (VERBOSE, COSTS OFF) SELECT token_address FROM dalp.holders WHERE account = :'multi';
SELECT count(*) AS lines FROM pg_temp.sim('clear');
WITH h AS MATERIALIZED (SELECT token_address, balance FROM dalp.holders WHERE account = :'multi')
SELECT s.symbol, h.balance > 0 AS has_balance FROM h JOIN token_syms s ON s.address = h.token_address
 ORDER BY s.symbol;
SELECT regexp_replace(path, '<[A-Z0-9]+>', '{token}') AS path, count(*) AS requests,
       count(DISTINCT path) AS tokens, sum(rows) AS rows,
       bool_and(coalesce(query->>'holderAddress' = :'multi', true)) AS holder_address
  FROM pg_temp.sim_log() GROUP BY 1 ORDER BY 1;
-- an account that holds nothing: still one request per token, no row
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) AS holders FROM dalp.holders WHERE account = '0x000000000000000000000000000000000000dead';
SELECT pg_temp.sim_requests() AS requests;

-- the other conditions still hold: the single-item path takes no filter
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) AS frozen FROM dalp.holders WHERE token_address = :'acb' AND account = :'multi' AND is_frozen;
SELECT count(*) AS not_frozen FROM dalp.holders WHERE token_address = :'acb' AND account = :'multi' AND NOT is_frozen;
SELECT count(*) AS below_one FROM dalp.holders WHERE token_address = :'acb' AND account = :'multi' AND balance < 1;
SELECT count(*) AS above_one FROM dalp.holders WHERE token_address = :'acb' AND account = :'multi' AND balance > 1;
SELECT path, count(*) AS requests FROM pg_temp.sim_log() GROUP BY path;
-- likewise for a token read by address; a search key reads the search instead
SELECT count(*) AS named_other FROM dalp.tokens WHERE address = :'acb' AND name = 'Other';
SELECT symbol, q FROM dalp.tokens WHERE address = :'acb' AND q = 'acme';
SELECT count(*) AS acb_matching_harbor FROM dalp.tokens WHERE address = :'acb' AND q = 'harbor';

-- an address with uppercase letters matches no DALP account: no request
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) AS holders FROM dalp.holders WHERE token_address = :'acb' AND account = upper(:'multi');
SELECT pg_temp.sim_requests() AS requests;

-- with pushdown off the collection is read and filtered here: same row
SET dalp_fdw.pushdown = off;
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT account = :'multi' AS is_multi FROM dalp.holders WHERE token_address = :'acb' AND account = :'multi';
-- the token's holders, read between change markers (its newest event)
SELECT DISTINCT path FROM pg_temp.sim_log() ORDER BY 1;
RESET dalp_fdw.pushdown;
