-- ---------------------------------------------------------------------------
-- extension/ledger.sql: the event mirror (sync_events) and record-date
-- snapshots (take_snapshot), step by step
-- ---------------------------------------------------------------------------

-- The newest mirrored event of a token at or before up_to that is not
-- retracted: the checkpoint of a sync (up_to infinity) and of a snapshot.
--
-- A function's text parameters take the collation of the call, and a caller
-- with a name argument (collation "C") among its own makes that "C": compared
-- in "C", server and token_address cannot use the indexes on event_log,
-- which are in the default collation, and a lookup of one row becomes a scan
-- of the whole mirror. So here and in the steps below, every comparison of a
-- parameter with those columns names the default collation.
CREATE FUNCTION last_event(srv text, tok text, up_to timestamptz,
                           OUT block_timestamp timestamptz, OUT id text, OUT transaction_hash text,
                           OUT block_number bigint, OUT tx_index int)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.block_timestamp, l.id, l.transaction_hash, l.block_number, l.tx_index
      FROM dalp_fdw_ledger.event_log l
     WHERE l.server = srv COLLATE "default" AND l.token_address = tok COLLATE "default"
       AND l.retracted_at IS NULL AND l.block_timestamp <= up_to
     ORDER BY l.block_timestamp DESC, l.block_number DESC, l.tx_index DESC, l.id DESC
     LIMIT 1
$$;

-- Brings the mirror of one token up to date. The reread starts at the
-- checkpoint minus reread_window, inclusively (NULL window: the whole
-- history): events the API returns that the mirror lacks are inserted, and
-- mirrored events inside the window that the API no longer returns are
-- retracted. A row lock on sync_state serializes the runs for a token, so
-- that two sessions never both insert an event, and neither loses the
-- other's checkpoint; the unique dedupe index turns any write that bypasses
-- the lock into an error rather than a second row.
CREATE FUNCTION sync_events_impl(server name, token_address text, reread_window interval, caller regrole)
RETURNS TABLE (inserted bigint, retracted bigint, checkpoint_time timestamptz)
LANGUAGE plpgsql SECURITY DEFINER
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
    PERFORM dalp_fdw.ledger_writer(server, caller);
    nsp := dalp_fdw.import_server_tables_impl(server, caller);
    PERFORM dalp_fdw.set_phase('sync_events', 'backfill');

    INSERT INTO dalp_fdw_ledger.sync_state (server, token_address) VALUES (srv, tok)
        ON CONFLICT DO NOTHING;
    SELECT s.checkpoint_time - reread_window INTO from_ts
      FROM dalp_fdw_ledger.sync_state s
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
            UPDATE dalp_fdw_ledger.event_log l SET retracted_at = $4
             WHERE l.server = $3 AND l.token_address = $1 AND l.retracted_at IS NULL %3$s
               AND NOT EXISTS (SELECT 1 FROM api a
                                WHERE a.id = l.id AND a.transaction_hash = l.transaction_hash
                                  AND a.block_number = l.block_number AND a.tx_index = l.tx_index)
            RETURNING 1),
        added AS (
            INSERT INTO dalp_fdw_ledger.event_log
                   (server, token_address, id, event_name, block_number, block_timestamp,
                    transaction_hash, tx_index, emitter, sender, from_address, to_address,
                    account, amount, "values", ingested_at)
            SELECT $3, $1, a.id, a.event_name, a.block_number, a.block_timestamp,
                   a.transaction_hash, a.tx_index, a.emitter, a.sender, a.from_address,
                   a.to_address, a.account, a.amount, a."values", $4
              FROM api a
             WHERE NOT EXISTS (SELECT 1 FROM dalp_fdw_ledger.event_log l
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
    -- three to seven times slower at a million events. SKIP_LOCKED: a
    -- transaction still open after such a sync keeps ANALYZE's lock, and
    -- the syncs of every other server would wait for it.
    IF inserted >= 10000 THEN
        ANALYZE (SKIP_LOCKED) dalp_fdw_ledger.event_log;
    END IF;

    -- The checkpoint is the newest event the mirror holds now: after a reorg
    -- that left fewer events it moves back, so the next reread starts early
    -- enough.
    SELECT * INTO ck FROM dalp_fdw.last_event(srv, tok, 'infinity'::timestamptz);
    UPDATE dalp_fdw_ledger.sync_state s
       SET checkpoint_time = ck.block_timestamp, last_event_id = ck.id,
           last_tx_hash = ck.transaction_hash, last_block = ck.block_number,
           last_tx_index = ck.tx_index, window_start = from_ts, synced_at = stamp
     WHERE s.server = srv AND s.token_address = tok;
    checkpoint_time := ck.block_timestamp;
    PERFORM dalp_fdw.set_phase('sync_events', NULL);
    RETURN NEXT;
END
$$;

CREATE FUNCTION sync_events(server name, token_address text, reread_window interval DEFAULT '1 hour')
RETURNS TABLE (inserted bigint, retracted bigint, checkpoint_time timestamptz)
AS 'MODULE_PATHNAME', 'dalp_fdw_ledger_call'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sync_events(name, text, interval) IS
    'dalp_fdw: incremental, idempotent update of the event mirror of one token; retracts events that vanished in the reread window';

-- ---------------------------------------------------------------------------
-- Snapshots: compute_snapshot_impl runs the steps below in turn (health gate,
-- sync, replay, reconcile, record). They run as the extension's owner, in
-- its SECURITY DEFINER call, and are for no one else.
-- ---------------------------------------------------------------------------

-- How an event changes a balance: the event, the value naming the account,
-- and the effect on that account's balance (credit, debit) or frozen amount
-- (freeze, unfreeze). Nothing else changes one. ForcedTransfer is absent on
-- purpose: its TransferCompleted moves the tokens. The replay joins this
-- table; catalog_balance_effects() shows it.
CREATE TABLE dalp_fdw_ledger.balance_effects (
    event_name   text NOT NULL,
    value_name   text NOT NULL,
    effect       text NOT NULL CHECK (effect IN ('credit', 'debit', 'freeze', 'unfreeze')),
    balance_sign int GENERATED ALWAYS AS (CASE effect WHEN 'credit' THEN 1 WHEN 'debit' THEN -1 ELSE 0 END) STORED,
    frozen_sign  int GENERATED ALWAYS AS (CASE effect WHEN 'freeze' THEN 1 WHEN 'unfreeze' THEN -1 ELSE 0 END) STORED,
    PRIMARY KEY (event_name, value_name)
);
INSERT INTO dalp_fdw_ledger.balance_effects (event_name, value_name, effect) VALUES
    ('MintCompleted', 'to', 'credit'),
    ('BurnCompleted', 'from', 'debit'),
    ('TransferCompleted', 'from', 'debit'),
    ('TransferCompleted', 'to', 'credit'),
    ('Redeemed', 'owner', 'debit'),
    ('TokensFrozen', 'user', 'freeze'),
    ('TokensUnfrozen', 'user', 'unfreeze');
-- The replay is planned knowing the table holds a handful of rows.
ANALYZE dalp_fdw_ledger.balance_effects;

-- Definer's rights: the table is in dalp_fdw_ledger, which only the
-- extension's owner may read.
CREATE FUNCTION catalog_balance_effects(OUT event_name text, OUT value_name text, OUT effect text)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.event_name, e.value_name, e.effect
      FROM dalp_fdw_ledger.balance_effects e
     ORDER BY e.event_name, e.value_name
$$;
COMMENT ON FUNCTION catalog_balance_effects() IS
    'dalp_fdw: which event, through which of its values, credits, debits, freezes or unfreezes which account in a snapshot''s replay';

-- Health gate: the indexer's status, or an error before any event is read
-- or any bookkeeping row written, unless allow_unhealthy.
CREATE FUNCTION snapshot_health_gate(server name, allow_unhealthy boolean, caller regrole)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    health record;
BEGIN
    health := dalp_fdw.indexer_health_impl(server, 100::bigint, caller);
    IF NOT health.ready AND allow_unhealthy IS NOT TRUE THEN
        RAISE EXCEPTION 'indexer of server "%" is not ready: %', server, health.reason
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    DETAIL = 'Events read now could be missing or about to be rolled back, so no snapshot was taken and nothing was written.',
                    HINT = format('Wait until dalp_fdw.indexer_ready(%L) is true, or pass allow_unhealthy => true (the snapshot then records the indexer status).', server);
    END IF;
    RETURN health.status;
END
$$;

-- The token's decimals, or an error if the server does not know the token.
CREATE FUNCTION snapshot_token_decimals(server name, nsp name, tok text, OUT token_decimals int)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('SELECT t.decimals FROM %I.tokens t WHERE t.address = $1', nsp)
       INTO token_decimals USING tok;
    IF token_decimals IS NULL THEN
        RAISE EXCEPTION 'token % not found on server "%"', tok, server
              USING ERRCODE = 'no_data_found',
                    HINT = 'Check the address; a token deployed moments ago may not be indexed yet.';
    END IF;
END
$$;

-- The replay's working table: per account, balance and frozen amount at the
-- record time, and now (for the reconciliation). The temporary schema is
-- the caller's: a table of that name that we did not make (earlier in this
-- transaction) could carry the caller's triggers, so it is refused.
CREATE FUNCTION snapshot_replay_table()
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('pg_temp.dalp_fdw_replay') IS NULL THEN
        CREATE TEMP TABLE dalp_fdw_replay (
            account      text PRIMARY KEY,
            balance_at   numeric NOT NULL,
            frozen_at    numeric NOT NULL,
            balance_now  numeric NOT NULL,
            frozen_now   numeric NOT NULL
        ) ON COMMIT DROP;
    ELSIF (SELECT c.relowner FROM pg_class c WHERE c.oid = 'pg_temp.dalp_fdw_replay'::regclass)
          <> (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'temporary table dalp_fdw_replay exists and was not made by dalp_fdw'
              USING ERRCODE = 'duplicate_table',
                    HINT = 'Drop it (DROP TABLE pg_temp.dalp_fdw_replay) and take the snapshot again.';
    END IF;
END
$$;

-- Sync: brings the mirror up to date; true when it already was (nothing
-- inserted, nothing retracted).
CREATE FUNCTION snapshot_sync(server name, tok text, reread_window interval, caller regrole)
RETURNS boolean LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.inserted = 0 AND s.retracted = 0
      FROM dalp_fdw.sync_events_impl(server, tok, reread_window, caller) s
$$;

-- Replay: the balance effects of the mirrored events that are not
-- retracted, summed per account, up to the record time and up to now.
CREATE FUNCTION snapshot_replay(srv text, tok text, record_time timestamptz)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    TRUNCATE pg_temp.dalp_fdw_replay;
    INSERT INTO pg_temp.dalp_fdw_replay
    SELECT l."values" ->> fx.value_name,
           coalesce(sum(l.amount * fx.balance_sign) FILTER (WHERE l.block_timestamp <= record_time), 0),
           coalesce(sum(l.amount * fx.frozen_sign) FILTER (WHERE l.block_timestamp <= record_time), 0),
           sum(l.amount * fx.balance_sign),
           sum(l.amount * fx.frozen_sign)
      FROM dalp_fdw_ledger.event_log l
      JOIN dalp_fdw_ledger.balance_effects fx ON fx.event_name = l.event_name
     WHERE l.server = srv COLLATE "default" AND l.token_address = tok COLLATE "default"
       AND l.retracted_at IS NULL
     GROUP BY 1;
END
$$;

-- Reconcile: the accounts whose replay carried to now differs from the
-- current /holders, balance or frozen amount (base units), and the first
-- five of them, described.
CREATE FUNCTION snapshot_reconcile(nsp name, tok text, token_decimals int,
                                   OUT mismatches bigint, OUT sample text[])
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
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
               (array_agg(dalp_fdw.display_text(format('%%s: replay %%s (frozen %%s), holders %%s (frozen %%s)', d.account,
                                 d.replay_balance, d.replay_frozen, d.api_balance, d.api_frozen))
                          ORDER BY d.account))[1:5]
          FROM diff d
         WHERE d.replay_balance <> d.api_balance OR d.replay_frozen <> d.api_frozen$sql$, nsp)
    INTO mismatches, sample
    USING tok, ('1e' || token_decimals)::numeric;
END
$$;

-- Record: the snapshot's row, with its replay checkpoint and verdict, and
-- its balances at the record time; a WARNING when it does not reconcile.
-- Returns its id.
CREATE FUNCTION snapshot_record(srv text, tok text, record_time timestamptz, token_decimals int,
                                stable boolean, mismatches bigint, sample text[],
                                indexer_status text, caller regrole)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    totals record;
    n_events bigint;
    ck record;
    sid bigint;
BEGIN
    SELECT count(*) FILTER (WHERE r.balance_at <> 0) AS holders, coalesce(sum(r.balance_at), 0) AS supply
      INTO totals FROM pg_temp.dalp_fdw_replay r;
    SELECT count(*) INTO n_events
      FROM dalp_fdw_ledger.event_log l
     WHERE l.server = srv COLLATE "default" AND l.token_address = tok COLLATE "default"
       AND l.retracted_at IS NULL AND l.block_timestamp <= record_time;
    SELECT * INTO ck FROM dalp_fdw.last_event(srv, tok, record_time);

    INSERT INTO dalp_fdw_ledger.snapshots
           (server, token_address, record_time, record_block, last_event_id, last_event_time,
            last_tx_hash, last_block, last_tx_index, events_replayed, holders, supply_exact,
            supply, decimals, reconciled, mismatches, indexer_status, computed_at, computed_by)
    VALUES (srv, tok, record_time, ck.block_number, ck.id, ck.block_timestamp,
            ck.transaction_hash, ck.block_number, ck.tx_index, n_events, totals.holders, totals.supply,
            trim_scale(totals.supply * ('1e-' || token_decimals)::numeric), token_decimals,
            stable AND mismatches = 0, mismatches, indexer_status, clock_timestamp(), pg_get_userbyid(caller))
    RETURNING id INTO sid;
    INSERT INTO dalp_fdw_ledger.snapshot_balances (snapshot_id, account, balance_exact, balance, frozen_exact)
    SELECT sid, r.account, r.balance_at, trim_scale(r.balance_at * ('1e-' || token_decimals)::numeric), r.frozen_at
      FROM pg_temp.dalp_fdw_replay r
     WHERE r.balance_at <> 0 OR r.frozen_at <> 0;

    IF mismatches > 0 OR NOT stable THEN
        RAISE WARNING 'snapshot % of token % does not reconcile with the current holders', sid, tok
              USING DETAIL = CASE WHEN mismatches > 0
                                  THEN format('%s accounts differ between the replay carried to now and /holders (base units): %s.',
                                              mismatches, array_to_string(sample, '; '))
                                  ELSE 'Events kept arriving while the replay was compared with /holders.' END,
                    HINT = 'The snapshot is recorded with reconciled = false. Check the indexer''s health and take it again.';
    END IF;
    RETURN sid;
END
$$;


-- Balances at a record date. The replay runs over the mirror, brought up to
-- date first: a snapshot then reads from the API only what is new since the
-- last sync, and its inputs stay in event_log. The same replay carried to now
-- must equal /holders; that check is what makes the mirror trustworthy (see
-- README, "Snapshots and the event mirror"). take_snapshot without
-- into_table.
CREATE FUNCTION compute_snapshot_impl(server name, token_address text, record_time timestamptz,
                                      allow_unhealthy boolean, caller regrole)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- Of the default collation, as in sync_events_impl.
    tok text COLLATE "default" := dalp_fdw.token_address_arg(token_address);
    srv text COLLATE "default" := server;
    indexer_status text;
    nsp name;
    token_decimals int;
    rounds int := 0;
    reread_all boolean := false;
    stable boolean;
    diff record;
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
    -- Before anything is read (its syncs check again).
    PERFORM dalp_fdw.ledger_writer(server, caller);
    nsp := dalp_fdw.import_server_tables_impl(server, caller);
    PERFORM dalp_fdw.set_phase('take_snapshot', 'health check');
    indexer_status := dalp_fdw.snapshot_health_gate(server, allow_unhealthy, caller);
    token_decimals := dalp_fdw.snapshot_token_decimals(server, nsp, tok);
    PERFORM dalp_fdw.snapshot_replay_table();

    PERFORM dalp_fdw.set_phase('take_snapshot', 'backfill');
    PERFORM dalp_fdw.snapshot_sync(server, tok, '1 hour'::interval, caller);
    -- Replay, compare with /holders, sync again: if that sync found nothing,
    -- /holders was read while the mirror held every event, and the verdict
    -- stands. Events arriving meanwhile send us round again; after three
    -- rounds we replay what was mirrored and give up on the verdict. A
    -- mismatch is first answered by rereading the whole history, which
    -- retracts events that vanished before the reread window.
    LOOP
        rounds := rounds + 1;
        PERFORM dalp_fdw.set_phase('take_snapshot', 'replay');
        PERFORM dalp_fdw.snapshot_replay(srv, tok, record_time);
        EXIT WHEN rounds > 3;
        PERFORM dalp_fdw.set_phase('take_snapshot', 'reconcile');
        diff := dalp_fdw.snapshot_reconcile(nsp, tok, token_decimals);
        stable := dalp_fdw.snapshot_sync(server, tok, '1 hour'::interval, caller);
        IF stable AND diff.mismatches > 0 AND NOT reread_all THEN
            reread_all := true;
            stable := dalp_fdw.snapshot_sync(server, tok, NULL::interval, caller);
        END IF;
        EXIT WHEN stable;
    END LOOP;

    sid := dalp_fdw.snapshot_record(srv, tok, record_time, token_decimals, stable, diff.mismatches,
                                    diff.sample, indexer_status, caller);
    PERFORM dalp_fdw.set_phase('take_snapshot', NULL);
    RETURN sid;
END
$$;

CREATE FUNCTION compute_snapshot(server name, token_address text, record_time timestamptz,
                                 allow_unhealthy boolean DEFAULT false)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dalp_fdw_ledger_call'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION compute_snapshot(name, text, timestamptz, boolean) IS
    'dalp_fdw: take_snapshot without into_table';

-- into_table is filled here, with the caller's rights: its triggers, say,
-- must never run as the extension's owner.
CREATE FUNCTION take_snapshot(server name, token_address text, record_time timestamptz,
                              into_table regclass DEFAULT NULL, allow_unhealthy boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing text[];
    sid bigint;
BEGIN
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
    sid := dalp_fdw.compute_snapshot(server, token_address, record_time, allow_unhealthy);
    IF into_table IS NOT NULL THEN
        EXECUTE format('INSERT INTO %s (account, balance, balance_exact)
                        SELECT b.account, b.balance, b.balance_exact FROM dalp_fdw.snapshot_balances b
                         WHERE b.snapshot_id = $1 AND b.balance_exact <> 0', into_table)
        USING sid;
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
RETURNS SETOF dalp_fdw.event_log
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

-- Only the entry points are for everyone: the rest run as the extension's
-- owner, or serve those that do.
REVOKE ALL ON FUNCTION last_event(text, text, timestamptz), sync_events_impl(name, text, interval, regrole),
                       snapshot_health_gate(name, boolean, regrole), snapshot_token_decimals(name, name, text),
                       snapshot_replay_table(), snapshot_sync(name, text, interval, regrole),
                       snapshot_replay(text, text, timestamptz), snapshot_reconcile(name, text, int),
                       snapshot_record(text, text, timestamptz, int, boolean, bigint, text[], text, regrole),
                       compute_snapshot_impl(name, text, timestamptz, boolean, regrole)
    FROM PUBLIC;
