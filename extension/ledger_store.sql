-- ---------------------------------------------------------------------------
-- extension/ledger_store.sql: the ledger's bookkeeping (mirrored events,
-- checkpoints, snapshots, auditors) and the views each role reads it through
-- ---------------------------------------------------------------------------

-- DALP has no balance-at-block endpoint, so a record-date snapshot is rebuilt
-- from the token's events. The events are mirrored first into event_log, an
-- append-only ledger: the snapshot's inputs then stay in the database for an
-- auditor, and the next snapshot of the same token reads only what is new
-- from the API.
--
-- Every table keys its rows by server name (not OID), so the bookkeeping
-- survives pg_dump and a restore where the server has a new OID; a server
-- pointed at another DALP deployment needs another name. A name alone
-- would hand the rows on to whoever takes it next, so the server they are
-- kept for is recorded too (servers), and so is whom and what an auditor's
-- grant was made for (auditors).
--
-- Who may do what. Whoever owns an object the ledger functions read can
-- make their next caller run code of its choosing, and whoever may write the
-- bookkeeping rows can forge a snapshot's inputs. So both belong to the
-- extension's owner alone:
--  - the rows live in schema dalp_fdw_ledger, on which nothing is granted,
--    and are written only by SECURITY DEFINER functions "<name>_impl",
--    which set every stamp (computed_by, computed_at, ingested_at,
--    retracted_at) themselves;
--  - each role reads them through views of the same names in dalp_fdw,
--    which show the rows of the servers it may use (USAGE on the server,
--    which its owner has) and of those it audits (grant_audit);
--  - the foreign tables the functions read are imported by them, owned by
--    the extension's owner, and checked before every use
--    (import_server_tables, in ledger_access.sql);
--  - the SQL entry points are C (src/ledger.c): they pass the calling role
--    to the implementation, which checks its USAGE on the server and reads
--    the API with its user mapping.
-- Row-level security would be simpler than views, but pg_dump dumps the
-- policies of an extension's tables and their restore then fails.

CREATE SCHEMA dalp_fdw_ledger;
COMMENT ON SCHEMA dalp_fdw_ledger IS
    'dalp_fdw: the rows behind the views event_log, sync_state, snapshots, snapshot_balances and auditors of schema dalp_fdw; written by dalp_fdw''s functions only';

-- The mirror. Rows are never deleted: an event that vanished from the API
-- (chain reorganization) gets retracted_at, and its replacement is a new row.
CREATE TABLE dalp_fdw_ledger.event_log (
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
    ingested_at      timestamptz NOT NULL,
    retracted_at     timestamptz
);
-- The dedupe key: id, transaction hash, block number and tx index. Block
-- number first, as events arrive in block order: inserts then land at the
-- right edge of the index instead of at random pages (a third faster on a
-- million-event backfill). Partial, so that an event that comes back after
-- being retracted is mirrored again as a new row.
CREATE UNIQUE INDEX event_log_dedupe ON dalp_fdw_ledger.event_log
    (server, token_address, block_number, tx_index, id, transaction_hash)
    WHERE retracted_at IS NULL;
-- Reread windows, replays up to a record time, the latest event.
CREATE INDEX event_log_time ON dalp_fdw_ledger.event_log (server, token_address, block_timestamp);

-- One checkpoint per mirrored token: the last event the mirror holds.
CREATE TABLE dalp_fdw_ledger.sync_state (
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

CREATE TABLE dalp_fdw_ledger.snapshots (
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
    computed_by      text NOT NULL      -- the role that called take_snapshot
);
CREATE INDEX snapshots_token ON dalp_fdw_ledger.snapshots (server, token_address, record_time);

CREATE TABLE dalp_fdw_ledger.snapshot_balances (
    snapshot_id      bigint NOT NULL REFERENCES dalp_fdw_ledger.snapshots ON DELETE CASCADE,
    account          text NOT NULL,
    balance_exact    numeric NOT NULL,  -- base units
    balance          numeric NOT NULL,  -- shifted by the token's decimals
    frozen_exact     numeric NOT NULL,
    PRIMARY KEY (snapshot_id, account)
);

-- The server each name's rows are kept for: the first write through a
-- dalp_fdw server (ledger_writer) records its OID and owner. A server made
-- under the name of a dropped or renamed one by another role would
-- otherwise read the old server's rows and write into them (retract its
-- events, move its checkpoints); it does neither while it does not match
-- the record (recorded_server). A superuser who finds the rows are its
-- own sets the record to it (README, "Rows of a dropped server").
CREATE TABLE dalp_fdw_ledger.servers (
    server            text PRIMARY KEY,
    server_oid        oid NOT NULL,
    server_owner      oid NOT NULL
);

-- Roles that may read one server's rows without using the server
-- (grant_audit). A name alone would hand the grant on to whoever takes it
-- next: a role made with the name of a dropped auditor, a server made by
-- another role with the name of a dropped one. So a grant also records the
-- role, the server and its owner by OID, and holds only while they match
-- (readable_servers); grant_audit records them anew.
CREATE TABLE dalp_fdw_ledger.auditors (
    server            text NOT NULL,
    auditor           name NOT NULL,
    granted_by        name NOT NULL,
    granted_at        timestamptz NOT NULL,
    auditor_oid       oid NOT NULL,
    server_oid        oid NOT NULL,
    server_owner      oid NOT NULL,     -- the server's owner at the grant
    PRIMARY KEY (server, auditor)
);

-- User data: pg_dump keeps the rows (and the sequences' positions).
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.event_log', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.event_log_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.sync_state', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.snapshots', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.snapshots_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.snapshot_balances', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.servers', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.auditors', '');

-- The one rule by which a record of a server (servers, auditors: its name,
-- OID and owner) holds: the present dalp_fdw server of that name, if it
-- has that OID (the very server, or given to another owner since) or that
-- owner (made anew by it, as a restore does: pg_dump and pg_upgrade
-- recreate a server with a new OID). Role OIDs are kept by a restore into
-- the same cluster and by pg_upgrade (pg_dumpall --binary-upgrade sets
-- them), so a record holds there; no cluster identifier is recorded, as it
-- would make every record hold for no one after a pg_upgrade. In another
-- cluster OIDs are new, and a record holds only where they happen to
-- match (README, "After a restore or an upgrade"). NULL when it holds for
-- none. PUBLIC may run it (readable_servers does, as the reader): it
-- reads the catalog only.
CREATE FUNCTION dalp_fdw_ledger.recorded_server(server text, server_oid oid, server_owner oid)
RETURNS oid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.oid
      FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
     WHERE w.fdwname = 'dalp_fdw' AND s.srvname = server
       AND (s.oid = server_oid OR s.srvowner = server_owner)
$$;

-- The names whose rows the current role may read: those of the servers it
-- may use, and of those it audits, where the server is the one the rows
-- are kept for (recorded_server). A view rather than a function, so that
-- it reads servers and auditors with its owner's rights while its
-- privilege functions test the role running the query. dalp_fdw's servers
-- only: the rows of a server renamed or dropped stay under its old name,
-- which a server of another wrapper (postgres_fdw, say, which more roles
-- may use) could take. A grant holds for the role it was made for (OID and
-- name) and for the server it was made on, by the same rule.
CREATE VIEW dalp_fdw_ledger.readable_servers AS
WITH kept AS (
    SELECT p.server, dalp_fdw_ledger.recorded_server(p.server, p.server_oid, p.server_owner) AS srv
      FROM dalp_fdw_ledger.servers p)
SELECT k.server
  FROM kept k
  JOIN pg_catalog.pg_foreign_server s ON s.oid = k.srv
 WHERE pg_catalog.has_server_privilege(s.oid, 'USAGE')
    OR pg_catalog.pg_has_role(s.srvowner, 'USAGE')
UNION
SELECT a.server
  FROM dalp_fdw_ledger.auditors a
  JOIN kept k ON k.server = a.server
  JOIN pg_catalog.pg_roles r ON r.oid = a.auditor_oid AND r.rolname = a.auditor
 WHERE k.srv = dalp_fdw_ledger.recorded_server(a.server, a.server_oid, a.server_owner)
   AND pg_catalog.pg_has_role(r.oid, 'USAGE');

-- The views would pass an INSERT on to the tables (simple views are
-- updatable), as their owner, if someone granted one: refuse it whatever
-- the grants.
CREATE FUNCTION dalp_fdw_ledger.refuse_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'dalp_fdw.% is written by dalp_fdw''s functions only', TG_TABLE_NAME
          USING ERRCODE = 'insufficient_privilege',
                DETAIL = 'Its rows record what the API returned, when, and for whom; a direct write could forge them.',
                HINT = 'Use dalp_fdw.sync_events, dalp_fdw.take_snapshot, dalp_fdw.grant_audit or dalp_fdw.revoke_audit.';
END
$$;
REVOKE ALL ON FUNCTION dalp_fdw_ledger.refuse_write() FROM PUBLIC;

-- What every role reads: a view of the same name per table, of the rows of
-- the servers the role may read (snapshot_balances: of their snapshots).
-- security_barrier: a condition of the reader's is evaluated below the
-- server filter only if it is leakproof, so it cannot see a hidden row.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['event_log', 'sync_state', 'snapshots', 'snapshot_balances', 'auditors'] LOOP
        EXECUTE format('CREATE VIEW dalp_fdw.%1$I WITH (security_barrier) AS SELECT r.* FROM dalp_fdw_ledger.%1$I r WHERE %2$s',
                       t, CASE WHEN t = 'snapshot_balances'
                               THEN 'r.snapshot_id IN (SELECT s.id FROM dalp_fdw_ledger.snapshots s
                                                        WHERE s.server IN (SELECT v.server FROM dalp_fdw_ledger.readable_servers v))'
                               ELSE 'r.server IN (SELECT v.server FROM dalp_fdw_ledger.readable_servers v)' END);
        EXECUTE format('CREATE TRIGGER refuse_write INSTEAD OF INSERT OR UPDATE OR DELETE ON dalp_fdw.%I
                        FOR EACH ROW EXECUTE FUNCTION dalp_fdw_ledger.refuse_write()', t);
    END LOOP;
END
$$;
COMMENT ON VIEW event_log IS
    'dalp_fdw: append-only mirror of token events (sync_events); retracted_at marks events that vanished after a reorg; rows of the servers you may use or audit';
COMMENT ON VIEW sync_state IS
    'dalp_fdw: event mirror checkpoint per (server, token); rows of the servers you may use or audit';
COMMENT ON VIEW snapshots IS
    'dalp_fdw: record-date snapshots (take_snapshot) with their replay checkpoint and reconciliation; rows of the servers you may use or audit';
COMMENT ON VIEW snapshot_balances IS
    'dalp_fdw: balances of each snapshot at its record time; rows of the servers you may use or audit';
COMMENT ON VIEW auditors IS
    'dalp_fdw: roles that may read a server''s rows without using it (grant_audit, revoke_audit); a grant holds for the role and server it was made for';

GRANT SELECT ON event_log, sync_state, snapshots, snapshot_balances, auditors TO PUBLIC;
