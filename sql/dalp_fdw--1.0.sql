/* dalp_fdw--1.0.sql: SettleMint DALP REST API as foreign tables */

\echo Use "CREATE EXTENSION dalp_fdw" to load this file. \quit

CREATE FUNCTION dalp_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'dalp_fdw_handler'
LANGUAGE C STRICT;

CREATE FUNCTION dalp_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_validator'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER dalp_fdw
  HANDLER dalp_fdw_handler
  VALIDATOR dalp_fdw_validator;

COMMENT ON FOREIGN DATA WRAPPER dalp_fdw IS 'SettleMint DALP REST API';

-- Per-backend counters, one row per server this session used.
CREATE FUNCTION stats(
    OUT server name,
    OUT requests bigint,
    OUT pages bigint,
    OUT rows bigint,
    OUT bytes bigint,
    OUT retries bigint,
    OUT rate_limit_waits bigint,
    OUT errors bigint,
    OUT connections_opened bigint,
    OUT network_wait_ms double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_stats'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_stats_reset'
LANGUAGE C STRICT VOLATILE;

REVOKE ALL ON FUNCTION stats_reset() FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Catalog introspection (issue 7)
-- ---------------------------------------------------------------------------

-- The resource catalog the wrapper plans, decodes and imports by: what each
-- foreign table reads, and what of it the API can filter, sort and count.
-- README.md's table list is generated from these (test/readme_tables.py).
CREATE FUNCTION catalog_resources(
    OUT resource text,          -- the "resource" option and the imported table's name
    OUT api_path text,          -- collection (or single resource) path; {token} per token
    OUT per_token bool,         -- read per token: token_address pins it, else every token
    OUT collection bool,        -- paged collection (false: one single resource)
    OUT rows_field text,        -- single resource: the array field holding the rows
    OUT item_path text,         -- single-item path an "=" on item_key reads instead
    OUT item_key text,          -- the column whose "=" selects item_path ({key})
    OUT scan_sort text,         -- sort sent on an unordered full scan
    OUT sort_ties text[])       -- columns the API breaks sort ties by, in order
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_catalog_resources'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

CREATE FUNCTION catalog_columns(
    OUT resource text,
    OUT ordinal int,            -- position in the imported table
    OUT column_name text,
    OUT type regtype,
    OUT source text,            -- path, token, raw, named_values or search
    OUT json_path text,         -- dotted path in the item; '|' separates alternatives
    OUT filter_field text,      -- API filter field, or NULL
    OUT filter_ops text[],      -- API operators sent for it (eq, ne, gt, ..., inArray)
    OUT sort_field text,        -- API sort field, or NULL
    OUT facet bool)             -- meta.facets counts it (count(*) GROUP BY)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_catalog_columns'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

-- ---------------------------------------------------------------------------
-- Indexer health, record-date snapshots and the event mirror (issue 4)
-- ---------------------------------------------------------------------------

-- DALP has no balance-at-block endpoint, so a record-date snapshot is rebuilt
-- from the token's events. The events are mirrored first into event_log, the
-- append-only ledger the integration guide recommends: the snapshot's inputs
-- then stay in the database for an auditor, and the next snapshot of the same
-- token reads only what is new from the API.
--
-- Every table keys its rows by server name (not OID), so the bookkeeping
-- survives pg_dump and a restore into a cluster where the server has a new
-- OID; a server pointed at another DALP deployment needs another name.
-- Nothing is granted to PUBLIC: the README lists what a syncing or a
-- snapshotting role needs.

-- The mirror. Rows are never deleted: an event that vanished from the API
-- (chain reorganization) gets retracted_at, and its replacement is a new row.
CREATE TABLE event_log (
    log_id           bigserial PRIMARY KEY,
    server           text NOT NULL,
    token_address    text NOT NULL,
    id               text NOT NULL,
    event_name       text NOT NULL,
    block_number     bigint NOT NULL,
    block_timestamp  timestamptz NOT NULL,
    transaction_hash text NOT NULL,
    tx_index         int NOT NULL,
    emitter          text,
    sender           text,
    from_address     text,
    to_address       text,
    account          text,
    amount           numeric,
    "values"         jsonb,
    ingested_at      timestamptz NOT NULL DEFAULT now(),
    retracted_at     timestamptz
);
-- The integration guide's dedupe key: id, transaction hash, block number and
-- tx index. Block number first, as events arrive in block order: inserts
-- then land at the right edge of the index instead of at random pages (a
-- third faster on a million-event backfill). Partial, so that an event that
-- comes back after being retracted is mirrored again as a new row.
CREATE UNIQUE INDEX event_log_dedupe ON event_log
    (server, token_address, block_number, tx_index, id, transaction_hash)
    WHERE retracted_at IS NULL;
-- Reread windows, replays up to a record time, the latest event.
CREATE INDEX event_log_time ON event_log (server, token_address, block_timestamp);
COMMENT ON TABLE event_log IS
    'dalp_fdw: append-only mirror of token events (sync_events); retracted_at marks events that vanished after a reorg';

-- One checkpoint per mirrored token: the last event the mirror holds.
CREATE TABLE sync_state (
    server           text NOT NULL,
    token_address    text NOT NULL,
    checkpoint_time  timestamptz,       -- NULL until the token has an event
    last_event_id    text,
    last_tx_hash     text,
    last_block       bigint,
    last_tx_index    int,
    window_start     timestamptz,       -- lower bound of the last reread; NULL: the whole history
    synced_at        timestamptz,
    PRIMARY KEY (server, token_address)
);
COMMENT ON TABLE sync_state IS 'dalp_fdw: event mirror checkpoint per (server, token)';

CREATE TABLE snapshots (
    id               bigserial PRIMARY KEY,
    server           text NOT NULL,
    token_address    text NOT NULL,
    record_time      timestamptz NOT NULL,
    record_block     bigint,            -- last block at or before record_time with an event of the token
    last_event_id    text,              -- the replay checkpoint: last event applied
    last_event_time  timestamptz,
    last_tx_hash     text,
    last_block       bigint,
    last_tx_index    int,
    events_replayed  bigint NOT NULL,   -- events at or before record_time, of every kind
    holders          bigint NOT NULL,
    supply_exact     numeric NOT NULL,  -- at record_time, base units
    supply           numeric NOT NULL,
    decimals         int NOT NULL,
    reconciled       boolean NOT NULL,
    mismatches       int NOT NULL,      -- accounts whose replay to now differs from /holders
    indexer_status   text,              -- as the health summary reported it
    computed_at      timestamptz NOT NULL,
    computed_by      text NOT NULL
);
CREATE INDEX snapshots_token ON snapshots (server, token_address, record_time);
COMMENT ON TABLE snapshots IS 'dalp_fdw: record-date snapshots (take_snapshot) with their replay checkpoint and reconciliation';

CREATE TABLE snapshot_balances (
    snapshot_id      bigint NOT NULL REFERENCES snapshots ON DELETE CASCADE,
    account          text NOT NULL,
    balance_exact    numeric NOT NULL,  -- base units
    balance          numeric NOT NULL,  -- shifted by the token's decimals
    frozen_exact     numeric NOT NULL,
    PRIMARY KEY (snapshot_id, account)
);
COMMENT ON TABLE snapshot_balances IS 'dalp_fdw: balances of each snapshot at its record time';

-- User data: pg_dump keeps the rows (and the sequences' positions).
SELECT pg_catalog.pg_extension_config_dump('event_log', '');
SELECT pg_catalog.pg_extension_config_dump('event_log_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sync_state', '');
SELECT pg_catalog.pg_extension_config_dump('snapshots', '');
SELECT pg_catalog.pg_extension_config_dump('snapshots_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('snapshot_balances', '');

-- The functions below take a server name, so they need foreign tables of that
-- server. They import their own, once, into a schema per server
-- (dalp_fdw_srv_<server OID>), apart from the user's schemas: what a user
-- does to theirs (ALTER, DROP, a json_path option) cannot change what a
-- snapshot reads. Creating it needs CREATE on the database; it belongs to
-- the role that first used it, which grants it to others (see README).
CREATE FUNCTION server_schema(server name)
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    srv oid;
    wrapper name;
    nsp name;
    missing text[];
    stale name;
BEGIN
    SELECT s.oid, w.fdwname INTO srv, wrapper
      FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
     WHERE s.srvname = server_schema.server;
    IF srv IS NULL THEN
        RAISE EXCEPTION 'server "%" does not exist', server
              USING ERRCODE = 'undefined_object',
                    HINT = 'Create it with CREATE SERVER ... FOREIGN DATA WRAPPER dalp_fdw, or check the name with \des.';
    END IF;
    IF wrapper <> 'dalp_fdw' THEN
        RAISE EXCEPTION 'server "%" does not belong to dalp_fdw', server
              USING ERRCODE = 'wrong_object_type',
                    DETAIL = format('Its foreign-data wrapper is %I.', wrapper);
    END IF;
    nsp := 'dalp_fdw_srv_' || srv;

    FOR i IN 1..2 LOOP
        SELECT array_agg(t.name ORDER BY t.name) INTO missing
          FROM unnest(ARRAY['events', 'health_services', 'holders', 'tokens']) AS t(name)
         WHERE NOT EXISTS (SELECT 1
                             FROM pg_class c
                             JOIN pg_namespace n ON n.oid = c.relnamespace
                             JOIN pg_foreign_table f ON f.ftrelid = c.oid
                            WHERE n.nspname = nsp AND c.relname = t.name AND f.ftserver = srv);
        IF missing IS NULL THEN
            RETURN nsp;
        END IF;
        -- Sessions that use a server for the first time at once: the second
        -- waits here, then finds the first one's tables.
        IF i = 1 THEN
            PERFORM pg_advisory_xact_lock(hashtext('dalp_fdw.server_schema'), srv::int);
        END IF;
    END LOOP;

    IF NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = nsp) THEN
        BEGIN
            EXECUTE format('CREATE SCHEMA %I', nsp);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'cannot create schema % for the foreign tables of server "%"', nsp, server
                  USING ERRCODE = 'insufficient_privilege',
                        DETAIL = SQLERRM || '.',
                        HINT = format('A role with CREATE on this database can run SELECT dalp_fdw.server_schema(%L) once, then GRANT USAGE ON SCHEMA %I and SELECT ON ALL TABLES IN SCHEMA %I to the roles that use the server.',
                                      server, nsp, nsp);
        END;
        EXECUTE format('COMMENT ON SCHEMA %I IS %L', nsp,
                       format('dalp_fdw: foreign tables of server %s for take_snapshot, sync_events and indexer_ready', server));
    END IF;
    -- A table of that name bound to another server was left by a dropped
    -- server whose OID has been reused (a restore, for one).
    FOR stale IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = nsp AND c.relname = ANY (missing)
    LOOP
        EXECUTE format('DROP FOREIGN TABLE %I.%I', nsp, stale);
    END LOOP;
    EXECUTE format('IMPORT FOREIGN SCHEMA v2 LIMIT TO (%s) FROM SERVER %I INTO %I',
                   array_to_string(missing, ', '), server, nsp);
    RETURN nsp;
END
$$;
COMMENT ON FUNCTION server_schema(name) IS
    'dalp_fdw: the schema holding this server''s foreign tables used by take_snapshot, sync_events and indexer_ready (created on first use)';

-- The indexer as the blockchain-monitoring summary reports it, and whether a
-- snapshot can trust the events now: every indexer listed is healthy or
-- degraded, not reindexing, and at most max_sync_lag blocks behind the chain
-- head. Any other status (reindexing, critical, unknown, or one this version
-- does not know) is not ready, and so is a summary without an indexer.
CREATE FUNCTION indexer_health(server name, max_sync_lag bigint DEFAULT 100,
                               OUT ready boolean, OUT status text, OUT sync_lag bigint, OUT reason text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp name;
    r record;
BEGIN
    IF max_sync_lag IS NULL OR max_sync_lag < 0 THEN
        RAISE EXCEPTION 'max_sync_lag must be zero or more, not %', coalesce(max_sync_lag::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    nsp := dalp_fdw.server_schema(server);
    FOR r IN EXECUTE format('SELECT h.status, h.reindexing, h.sync_lag FROM %I.health_services h
                              WHERE h.service_type = ''indexer'' ORDER BY h.chain_id', nsp)
    LOOP
        IF ready IS NULL THEN
            ready := true;
            status := r.status;
            sync_lag := r.sync_lag;
        END IF;
        CONTINUE WHEN NOT ready;
        IF r.status IS DISTINCT FROM 'healthy' AND r.status IS DISTINCT FROM 'degraded' OR r.reindexing THEN
            reason := format('the indexer reports status %s%s', coalesce(r.status, 'NULL'),
                             CASE WHEN r.reindexing AND r.status <> 'reindexing' THEN ' while reindexing' END);
        ELSIF r.sync_lag IS NULL OR r.sync_lag > max_sync_lag THEN
            reason := format('the indexer is %s blocks behind the chain head (at most %s allowed)',
                             coalesce(r.sync_lag::text, 'an unknown number of'), max_sync_lag);
        ELSE
            CONTINUE;
        END IF;
        ready := false;
        status := r.status;
        sync_lag := r.sync_lag;
    END LOOP;
    IF ready IS NULL THEN
        ready := false;
        reason := 'the health summary lists no indexer';
    END IF;
END
$$;
COMMENT ON FUNCTION indexer_health(name, bigint) IS
    'dalp_fdw: indexer status, sync lag and whether snapshots may trust it (see indexer_ready)';

CREATE FUNCTION indexer_ready(server name, max_sync_lag bigint DEFAULT 100)
RETURNS boolean
LANGUAGE sql
AS $$ SELECT h.ready FROM dalp_fdw.indexer_health(server, max_sync_lag) h $$;
COMMENT ON FUNCTION indexer_ready(name, bigint) IS
    'dalp_fdw: indexer healthy or degraded, not reindexing, at most max_sync_lag blocks behind';

-- A token address argument, lowercased (DALP's addresses are lowercase),
-- or an error naming the argument.
CREATE FUNCTION token_address_arg(token_address text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF token_address IS NULL OR lower(token_address) !~ '^0x[0-9a-f]{40}$' THEN
        RAISE EXCEPTION 'invalid token address "%"', token_address
              USING ERRCODE = 'invalid_parameter_value',
                    DETAIL = 'A token address is 0x followed by 40 hexadecimal digits.';
    END IF;
    RETURN lower(token_address);
END $$;

-- Brings the mirror of one token up to date. The reread starts at the
-- checkpoint minus reread_window, inclusively (NULL window: the whole
-- history): events the API returns that the mirror lacks are inserted, and
-- mirrored events inside the window that the API no longer returns are
-- retracted. A row lock on sync_state serializes the runs for a token, so
-- that two sessions never both insert an event, and neither loses the
-- other's checkpoint; the unique dedupe index turns any write that bypasses
-- the lock into an error rather than a second row.
CREATE FUNCTION sync_events(server name, token_address text, reread_window interval DEFAULT '1 hour')
RETURNS TABLE (inserted bigint, retracted bigint, checkpoint_time timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- A name argument makes "C" the collation of every text variable; the
    -- indexes on the text columns are in the default one.
    srv text COLLATE "default" := server;
    tok text COLLATE "default" := dalp_fdw.token_address_arg(token_address);
    nsp name;
    from_ts timestamptz;
    stamp timestamptz;
    ck record;
BEGIN
    IF reread_window < interval '0' THEN
        RAISE EXCEPTION 'reread_window must not be negative, got %', reread_window
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Pass NULL to reread the whole history.';
    END IF;
    nsp := dalp_fdw.server_schema(server);

    INSERT INTO dalp_fdw.sync_state (server, token_address) VALUES (srv, tok)
        ON CONFLICT DO NOTHING;
    SELECT s.checkpoint_time - reread_window INTO from_ts
      FROM dalp_fdw.sync_state s
     WHERE s.server = srv AND s.token_address = tok
       FOR UPDATE;
    -- Taken under the lock, so every row this run writes is stamped later
    -- than the computed_at of any snapshot that did not see it, and earlier
    -- than that of any snapshot that did (see snapshot_events).
    stamp := clock_timestamp();

    -- One read of the API, used twice: the CTE is materialized. The main
    -- query reads "gone" first, so that the search for vanished events does
    -- not wade through the rows "added" has just inserted.
    EXECUTE format($sql$
        WITH api AS MATERIALIZED (
            SELECT e.id, e.event_name, e.block_number, e.block_timestamp, e.transaction_hash,
                   e.tx_index, e.emitter, e.sender, e.from_address, e.to_address, e.account,
                   e.amount, e."values"
              FROM %1$I.events e
             WHERE e.token_address = $1 %2$s),
        gone AS (
            UPDATE dalp_fdw.event_log l SET retracted_at = $4
             WHERE l.server = $3 AND l.token_address = $1 AND l.retracted_at IS NULL %3$s
               AND NOT EXISTS (SELECT 1 FROM api a
                                WHERE a.id = l.id AND a.transaction_hash = l.transaction_hash
                                  AND a.block_number = l.block_number AND a.tx_index = l.tx_index)
            RETURNING 1),
        added AS (
            INSERT INTO dalp_fdw.event_log
                   (server, token_address, id, event_name, block_number, block_timestamp,
                    transaction_hash, tx_index, emitter, sender, from_address, to_address,
                    account, amount, "values", ingested_at)
            SELECT $3, $1, a.id, a.event_name, a.block_number, a.block_timestamp,
                   a.transaction_hash, a.tx_index, a.emitter, a.sender, a.from_address,
                   a.to_address, a.account, a.amount, a."values", $4
              FROM api a
             WHERE NOT EXISTS (SELECT 1 FROM dalp_fdw.event_log l
                                WHERE l.server = $3 AND l.token_address = $1
                                  AND l.retracted_at IS NULL AND l.id = a.id
                                  AND l.transaction_hash = a.transaction_hash
                                  AND l.block_number = a.block_number AND l.tx_index = a.tx_index)
            RETURNING 1)
        SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM added)$sql$,
        nsp,
        CASE WHEN from_ts IS NOT NULL THEN 'AND e.block_timestamp >= $2' END,
        CASE WHEN from_ts IS NOT NULL THEN 'AND l.block_timestamp >= $2' END)
    INTO retracted, inserted
    USING tok, from_ts, srv, stamp;

    -- After a backfill the planner's statistics still describe a mirror
    -- without this token, and the replay that follows in take_snapshot would
    -- be planned for a handful of rows: nested loops and an on-disk sort,
    -- three to seven times slower at a million events. Only the owner may
    -- ANALYZE; other roles keep the old statistics.
    IF inserted >= 10000 AND pg_has_role((SELECT c.relowner FROM pg_class c
                                           WHERE c.oid = 'dalp_fdw.event_log'::regclass), 'USAGE') THEN
        ANALYZE dalp_fdw.event_log;
    END IF;

    -- The checkpoint is the newest event the mirror holds now: after a reorg
    -- that left fewer events it moves back, so the next reread starts early
    -- enough.
    SELECT l.block_timestamp, l.id, l.transaction_hash, l.block_number, l.tx_index INTO ck
      FROM dalp_fdw.event_log l
     WHERE l.server = srv AND l.token_address = tok AND l.retracted_at IS NULL
     ORDER BY l.block_timestamp DESC, l.block_number DESC, l.tx_index DESC, l.id DESC
     LIMIT 1;
    UPDATE dalp_fdw.sync_state s
       SET checkpoint_time = ck.block_timestamp, last_event_id = ck.id,
           last_tx_hash = ck.transaction_hash, last_block = ck.block_number,
           last_tx_index = ck.tx_index, window_start = from_ts, synced_at = stamp
     WHERE s.server = srv AND s.token_address = tok;
    checkpoint_time := ck.block_timestamp;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION sync_events(name, text, interval) IS
    'dalp_fdw: incremental, idempotent update of the event mirror of one token; retracts events that vanished in the reread window';

-- Balances at a record date. The replay runs over the mirror, brought up to
-- date first: a snapshot then reads from the API only what is new since the
-- last sync, and its inputs stay in event_log. The same replay carried to now
-- must equal /holders; that check is what makes the mirror trustworthy (see
-- README, "Snapshots and the event mirror").
CREATE FUNCTION take_snapshot(server name, token_address text, record_time timestamptz,
                              into_table regclass DEFAULT NULL, allow_unhealthy boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- A name argument makes "C" the collation of every text variable; the
    -- indexes on the text columns are in the default one.
    srv text COLLATE "default" := server;
    tok text COLLATE "default" := dalp_fdw.token_address_arg(token_address);
    nsp name;
    health record;
    token_decimals int;
    missing text[];
    rounds int := 0;
    reread_all boolean := false;
    stable boolean;
    synced record;
    n_mismatches bigint;
    sample text[];
    totals record;
    n_events bigint;
    ck record;
    sid bigint;
BEGIN
    IF record_time IS NULL THEN
        RAISE EXCEPTION 'record_time must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF record_time > clock_timestamp() THEN
        RAISE EXCEPTION 'record time % is in the future', record_time
              USING ERRCODE = 'invalid_parameter_value',
                    DETAIL = 'Balances at a time still to come cannot be known.',
                    HINT = 'Take the snapshot once the record time has passed.';
    END IF;
    IF into_table IS NOT NULL THEN
        SELECT array_agg(c.name) INTO missing
          FROM unnest(ARRAY['account', 'balance', 'balance_exact']) AS c(name)
         WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                            WHERE a.attrelid = into_table AND a.attname = c.name
                              AND a.attnum > 0 AND NOT a.attisdropped);
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'table % has no column %', into_table, array_to_string(missing, ', ')
                  USING ERRCODE = 'undefined_column',
                        DETAIL = 'into_table receives the columns account, balance and balance_exact.';
        END IF;
    END IF;
    nsp := dalp_fdw.server_schema(server);

    -- Before any event is read or any bookkeeping row written.
    health := dalp_fdw.indexer_health(server);
    IF NOT health.ready AND allow_unhealthy IS NOT TRUE THEN
        RAISE EXCEPTION 'indexer of server "%" is not ready: %', server, health.reason
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    DETAIL = 'Events read now could be missing or about to be rolled back, so no snapshot was taken and nothing was written.',
                    HINT = format('Wait until dalp_fdw.indexer_ready(%L) is true, or pass allow_unhealthy => true (the snapshot then records the indexer status).', server);
    END IF;

    EXECUTE format('SELECT t.decimals FROM %I.tokens t WHERE t.address = $1', nsp)
       INTO token_decimals USING tok;
    IF token_decimals IS NULL THEN
        RAISE EXCEPTION 'token % not found on server "%"', tok, server
              USING ERRCODE = 'no_data_found',
                    HINT = 'Check the address; a token deployed moments ago may not be indexed yet.';
    END IF;

    -- Per account: balance and frozen amount at the record time, and now
    -- (for the reconciliation).
    IF to_regclass('pg_temp.dalp_fdw_replay') IS NULL THEN
        CREATE TEMP TABLE dalp_fdw_replay (
            account      text PRIMARY KEY,
            balance_at   numeric NOT NULL,
            frozen_at    numeric NOT NULL,
            balance_now  numeric NOT NULL,
            frozen_now   numeric NOT NULL
        ) ON COMMIT DROP;
    END IF;

    PERFORM dalp_fdw.sync_events(server, tok);
    -- Replay, compare with /holders, sync again: if that sync found nothing,
    -- /holders was read while the mirror held every event, and the verdict
    -- stands. Events arriving meanwhile send us round again; after three
    -- rounds we replay what was mirrored and give up on the verdict. A
    -- mismatch is first answered by rereading the whole history, which
    -- retracts events that vanished before the reread window.
    LOOP
        rounds := rounds + 1;
        TRUNCATE pg_temp.dalp_fdw_replay;
        -- The contract's balance-effect table: the event, the value naming
        -- the account, and the signs on its balance and frozen amount.
        -- ForcedTransfer is absent on purpose: its TransferCompleted moves
        -- the tokens.
        INSERT INTO pg_temp.dalp_fdw_replay
        SELECT l."values" ->> fx.holder,
               coalesce(sum(l.amount * fx.balance_sign) FILTER (WHERE l.block_timestamp <= record_time), 0),
               coalesce(sum(l.amount * fx.frozen_sign) FILTER (WHERE l.block_timestamp <= record_time), 0),
               sum(l.amount * fx.balance_sign),
               sum(l.amount * fx.frozen_sign)
          FROM dalp_fdw.event_log l
          JOIN (VALUES ('MintCompleted', 'to', 1, 0),
                       ('BurnCompleted', 'from', -1, 0),
                       ('TransferCompleted', 'from', -1, 0),
                       ('TransferCompleted', 'to', 1, 0),
                       ('Redeemed', 'owner', -1, 0),
                       ('TokensFrozen', 'user', 0, 1),
                       ('TokensUnfrozen', 'user', 0, -1)) AS fx(event_name, holder, balance_sign, frozen_sign)
            ON fx.event_name = l.event_name
         WHERE l.server = srv AND l.token_address = tok AND l.retracted_at IS NULL
         GROUP BY 1;
        EXIT WHEN rounds > 3;

        EXECUTE format($sql$
            WITH api AS (
                SELECT h.account, h.balance_exact, trim_scale(h.frozen * $2) AS frozen_exact
                  FROM %I.holders h WHERE h.token_address = $1),
            replay AS (
                SELECT * FROM pg_temp.dalp_fdw_replay r WHERE r.balance_now <> 0 OR r.frozen_now <> 0),
            diff AS (
                SELECT coalesce(r.account, a.account) AS account,
                       coalesce(r.balance_now, 0) AS replay_balance, coalesce(a.balance_exact, 0) AS api_balance,
                       coalesce(r.frozen_now, 0) AS replay_frozen, coalesce(a.frozen_exact, 0) AS api_frozen
                  FROM replay r FULL JOIN api a ON a.account = r.account)
            SELECT count(*),
                   (array_agg(format('%%s: replay %%s (frozen %%s), holders %%s (frozen %%s)', d.account,
                                     d.replay_balance, d.replay_frozen, d.api_balance, d.api_frozen)
                              ORDER BY d.account))[1:5]
              FROM diff d
             WHERE d.replay_balance <> d.api_balance OR d.replay_frozen <> d.api_frozen$sql$, nsp)
        INTO n_mismatches, sample
        USING tok, ('1e' || token_decimals)::numeric;

        SELECT * INTO synced FROM dalp_fdw.sync_events(server, tok);
        stable := synced.inserted = 0 AND synced.retracted = 0;
        IF stable AND n_mismatches > 0 AND NOT reread_all THEN
            reread_all := true;
            SELECT * INTO synced FROM dalp_fdw.sync_events(server, tok, NULL);
            stable := synced.inserted = 0 AND synced.retracted = 0;
        END IF;
        EXIT WHEN stable;
    END LOOP;

    SELECT count(*) FILTER (WHERE r.balance_at <> 0) AS holders, coalesce(sum(r.balance_at), 0) AS supply
      INTO totals FROM pg_temp.dalp_fdw_replay r;
    SELECT count(*) INTO n_events
      FROM dalp_fdw.event_log l
     WHERE l.server = srv AND l.token_address = tok AND l.retracted_at IS NULL
       AND l.block_timestamp <= record_time;
    SELECT l.block_timestamp, l.id, l.transaction_hash, l.block_number, l.tx_index INTO ck
      FROM dalp_fdw.event_log l
     WHERE l.server = srv AND l.token_address = tok AND l.retracted_at IS NULL
       AND l.block_timestamp <= record_time
     ORDER BY l.block_timestamp DESC, l.block_number DESC, l.tx_index DESC, l.id DESC
     LIMIT 1;

    INSERT INTO dalp_fdw.snapshots
           (server, token_address, record_time, record_block, last_event_id, last_event_time,
            last_tx_hash, last_block, last_tx_index, events_replayed, holders, supply_exact,
            supply, decimals, reconciled, mismatches, indexer_status, computed_at, computed_by)
    VALUES (srv, tok, record_time, ck.block_number, ck.id, ck.block_timestamp,
            ck.transaction_hash, ck.block_number, ck.tx_index, n_events, totals.holders, totals.supply,
            trim_scale(totals.supply * ('1e-' || token_decimals)::numeric), token_decimals,
            stable AND n_mismatches = 0, n_mismatches, health.status, clock_timestamp(), current_user)
    RETURNING id INTO sid;
    INSERT INTO dalp_fdw.snapshot_balances (snapshot_id, account, balance_exact, balance, frozen_exact)
    SELECT sid, r.account, r.balance_at, trim_scale(r.balance_at * ('1e-' || token_decimals)::numeric), r.frozen_at
      FROM pg_temp.dalp_fdw_replay r
     WHERE r.balance_at <> 0 OR r.frozen_at <> 0;
    IF into_table IS NOT NULL THEN
        EXECUTE format('INSERT INTO %s (account, balance, balance_exact)
                        SELECT b.account, b.balance, b.balance_exact FROM dalp_fdw.snapshot_balances b
                         WHERE b.snapshot_id = $1 AND b.balance_exact <> 0', into_table)
        USING sid;
    END IF;

    IF n_mismatches > 0 OR NOT stable THEN
        RAISE WARNING 'snapshot % of token % does not reconcile with the current holders', sid, tok
              USING DETAIL = CASE WHEN n_mismatches > 0
                                  THEN format('%s accounts differ between the replay carried to now and /holders (base units): %s.',
                                              n_mismatches, array_to_string(sample, '; '))
                                  ELSE 'Events kept arriving while the replay was compared with /holders.' END,
                    HINT = 'The snapshot is recorded with reconciled = false. Check the indexer''s health and take it again.';
    END IF;
    RETURN sid;
END
$$;
COMMENT ON FUNCTION take_snapshot(name, text, timestamptz, regclass, boolean) IS
    'dalp_fdw: balances of every holder at a record time, replayed from the event mirror and reconciled with current holders';

-- The events a snapshot replayed, as the mirror held them when it was
-- computed: the rows ingested by then and not yet retracted. Replaying these
-- reproduces the snapshot even after later reorgs changed the mirror.
CREATE FUNCTION snapshot_events(snapshot_id bigint)
RETURNS SETOF event_log
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.*
      FROM dalp_fdw.snapshots s
      JOIN dalp_fdw.event_log l ON l.server = s.server AND l.token_address = s.token_address
     WHERE s.id = snapshot_id
       AND l.block_timestamp <= s.record_time
       AND l.ingested_at <= s.computed_at
       AND (l.retracted_at IS NULL OR l.retracted_at > s.computed_at)
     ORDER BY l.block_timestamp, l.block_number, l.tx_index, l.id
$$;
COMMENT ON FUNCTION snapshot_events(bigint) IS
    'dalp_fdw: the mirrored events a snapshot replayed (for audit: replaying them reproduces its balances)';
