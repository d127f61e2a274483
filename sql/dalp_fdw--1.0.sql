/* dalp_fdw--1.0.sql: SettleMint DALP REST API as foreign tables */

\echo Use "CREATE EXTENSION dalp_fdw" to load this file. \quit

-- CREATE EXTENSION installs into a schema dalp_fdw that already exists.
-- One that another role owns, may create objects in, or has put objects in
-- could hold (now or later) a function that a call meant for ours resolves
-- to, an overload say: refuse it.
DO $$
DECLARE
    nsp oid;
    nsp_owner oid;
    installer oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user);
    others text;
BEGIN
    SELECT n.oid, n.nspowner INTO nsp, nsp_owner FROM pg_catalog.pg_namespace n WHERE n.nspname = '@extschema@';
    IF nsp_owner <> installer THEN
        RAISE EXCEPTION 'schema @extschema@ already exists and is owned by role %', pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(nsp_owner))
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'Its owner could add functions that calls meant for dalp_fdw''s would run instead.',
                    HINT = 'Check what it holds and drop or rename it, then run CREATE EXTENSION dalp_fdw again.';
    END IF;
    SELECT pg_catalog.string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                               ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, ', ')
      INTO others
      FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
     WHERE n.oid = nsp AND a.privilege_type = 'CREATE' AND a.grantee <> installer;
    IF others IS NOT NULL THEN
        RAISE EXCEPTION 'schema @extschema@ already exists and lets % create objects in it', others
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'They could add functions that calls meant for dalp_fdw''s would run instead.',
                    HINT = pg_catalog.format('Revoke it (REVOKE CREATE ON SCHEMA @extschema@ FROM %s), check what the schema holds, then run CREATE EXTENSION dalp_fdw again.', others);
    END IF;
    SELECT pg_catalog.string_agg(DISTINCT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(o.owner)), ', ')
      INTO others
      FROM (SELECT p.proowner FROM pg_catalog.pg_proc p WHERE p.pronamespace = nsp
            UNION ALL SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.relnamespace = nsp
            UNION ALL SELECT t.typowner FROM pg_catalog.pg_type t WHERE t.typnamespace = nsp
            UNION ALL SELECT o.oprowner FROM pg_catalog.pg_operator o WHERE o.oprnamespace = nsp) AS o(owner)
     WHERE o.owner <> installer;
    IF others IS NOT NULL THEN
        RAISE EXCEPTION 'schema @extschema@ already exists and holds objects of %', others
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'They could be functions that calls meant for dalp_fdw''s would run instead.',
                    HINT = 'Check what the schema holds and drop or rename it, then run CREATE EXTENSION dalp_fdw again.';
    END IF;
END
$$;

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

-- ---------------------------------------------------------------------------
-- Statistics and activity (issue 12)
-- ---------------------------------------------------------------------------

-- Request counters per server: this session's (cluster => false), or with
-- dalp_fdw in shared_preload_libraries those of every backend of the cluster
-- since server start or stats_reset(true). "budget" says whether request
-- budgets are shared by the cluster or kept per backend.
CREATE FUNCTION stats(
    cluster boolean DEFAULT false,
    OUT server name,
    OUT requests bigint,
    OUT pages bigint,
    OUT rows bigint,
    OUT bytes bigint,
    OUT retries bigint,
    OUT rate_limit_waits bigint,    -- requests that waited for the budget
    OUT errors bigint,
    OUT connections_opened bigint,
    OUT network_wait_ms double precision,
    OUT responses_429 bigint,
    OUT retry_after_waits bigint,   -- requests held by another request's 429
    OUT budget_wait_ms double precision,   -- waiting for the budget or a 429
    OUT database name,
    OUT budget text,                -- 'cluster' or 'backend'
    OUT since timestamptz)          -- counting since
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_stats'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION stats_reset(cluster boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_stats_reset'
LANGUAGE C STRICT VOLATILE;

REVOKE ALL ON FUNCTION stats_reset(boolean) FROM PUBLIC;

-- One row per backend using the API (a foreign scan open, sync_events or
-- take_snapshot running), read from shared memory: needs dalp_fdw in
-- shared_preload_libraries. Like pg_stat_activity, rows of other roles'
-- sessions show pid, datname and usename only, unless the reader has the
-- privileges of pg_read_all_stats.
CREATE FUNCTION activity_rows(
    OUT pid int,
    OUT datname name,
    OUT usename name,
    OUT server name,
    OUT command text,           -- scan, count, estimate, sync_events, take_snapshot
    OUT phase text,             -- health check, backfill, replay, reconcile
    OUT path text,              -- the current request, decoded (never the key)
    OUT pages_done bigint,
    OUT pages_expected bigint,  -- from meta.total
    OUT rows bigint,
    OUT retries bigint,
    OUT wait text,              -- network, backoff, rate_limit, retry_after
    OUT wait_since timestamptz,
    OUT started timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_activity_rows'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW activity AS SELECT * FROM activity_rows();
GRANT SELECT ON activity TO PUBLIC;
COMMENT ON VIEW activity IS
    'dalp_fdw: one row per backend using the DALP API: what it does, its current request, pages, rows and wait';

-- What sync_events and take_snapshot are doing, for the activity view; only
-- they call it (as the extension's owner).
CREATE FUNCTION set_phase(command text, phase text)
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_set_phase'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION set_phase(text, text) FROM PUBLIC;

-- Text a DALP server sent, as a message may show it: control characters
-- escaped, cut after about 300 bytes (what the wrapper's own messages do).
CREATE FUNCTION display_text(text)
RETURNS text
AS 'MODULE_PATHNAME', 'dalp_fdw_display_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

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

-- The options, one row each as src/options.c defines them; README.md's
-- option list is checked against it (test/readme_tables.py).
CREATE FUNCTION catalog_options(
    OUT option text,
    OUT type text,              -- url, integer, bytes, boolean, cost, text, secret, ...
    OUT accepted_in text[],     -- server, table (overrides the server's), user mapping, column
    OUT default_value text,     -- what a server without the option gets; NULL: none
    OUT min_value int,          -- integer options: the accepted range
    OUT max_value int,
    OUT choices text,           -- the accepted values, when a list
    OUT superuser_only text)    -- when only a superuser may set it; NULL: anyone
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dalp_fdw_catalog_options'
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
--
-- Who may do what (issue 10). Whoever owns an object the ledger functions
-- read can make their next caller run code of its choosing, and whoever may
-- write the bookkeeping rows can forge a snapshot's inputs. So both belong
-- to the extension's owner alone:
--  - the rows live in schema dalp_fdw_ledger, on which nothing is granted,
--    and are written only by SECURITY DEFINER functions "<name>_impl",
--    which set every stamp (computed_by, computed_at, ingested_at,
--    retracted_at) themselves;
--  - each role reads them through views of the same names in dalp_fdw,
--    which show the rows of the servers it may use (USAGE on the server,
--    which its owner has) and of those it audits (grant_audit);
--  - the foreign tables the functions read are imported by them, owned by
--    the extension's owner, and checked before every use (server_schema);
--  - the SQL entry points are C (ledger.c): they pass the calling role to
--    the implementation, which checks its USAGE on the server and reads
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
-- The integration guide's dedupe key: id, transaction hash, block number and
-- tx index. Block number first, as events arrive in block order: inserts
-- then land at the right edge of the index instead of at random pages (a
-- third faster on a million-event backfill). Partial, so that an event that
-- comes back after being retracted is mirrored again as a new row.
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

-- Roles that may read one server's rows without using the server
-- (grant_audit). By name, as the rows are keyed by server name: pg_dump
-- and a restore keep them.
CREATE TABLE dalp_fdw_ledger.auditors (
    server           text NOT NULL,
    auditor          name NOT NULL,
    granted_by       name NOT NULL,
    granted_at       timestamptz NOT NULL,
    PRIMARY KEY (server, auditor)
);

-- User data: pg_dump keeps the rows (and the sequences' positions).
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.event_log', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.event_log_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.sync_state', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.snapshots', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.snapshots_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.snapshot_balances', '');
SELECT pg_catalog.pg_extension_config_dump('dalp_fdw_ledger.auditors', '');

-- The servers whose rows the current role may read: those it may use, and
-- those it audits. A view rather than a function, so that it reads
-- auditors with its owner's rights while its privilege functions test the
-- role running the query. dalp_fdw's servers only: the rows of a server
-- renamed or dropped stay under its old name, which a server of another
-- wrapper (postgres_fdw, say, which more roles may use) could take.
CREATE VIEW dalp_fdw_ledger.readable_servers AS
SELECT s.srvname::text AS server
  FROM pg_catalog.pg_foreign_server s
  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE w.fdwname = 'dalp_fdw'
   AND (pg_catalog.has_server_privilege(s.oid, 'USAGE')
        OR pg_catalog.pg_has_role(s.srvowner, 'USAGE'))
UNION
SELECT a.server
  FROM dalp_fdw_ledger.auditors a
  JOIN pg_catalog.pg_roles r ON r.rolname = a.auditor
 WHERE pg_catalog.pg_has_role(r.oid, 'USAGE');

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
    'dalp_fdw: roles that may read a server''s rows without using it (grant_audit, revoke_audit)';

GRANT SELECT ON event_log, sync_state, snapshots, snapshot_balances, auditors TO PUBLIC;

-- The extension's owner or a superuser: the roles that may own what the
-- ledger functions read.
CREATE FUNCTION trusted_role(owner oid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT owner = (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'dalp_fdw')
        OR coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = owner), false)
$$;

-- The OID of a dalp_fdw server the caller may use (USAGE, which its owner
-- has), or an error saying what is wrong.
CREATE FUNCTION ledger_server(server name, caller regrole)
RETURNS oid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    srv oid;
    wrapper name;
BEGIN
    SELECT s.oid, w.fdwname INTO srv, wrapper
      FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
     WHERE s.srvname = ledger_server.server;
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
    IF NOT has_server_privilege(caller::oid, srv, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied for foreign server %', server
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = format('Role %s has no USAGE on it, so it may not read the server''s API, snapshots or mirror.', caller),
                    HINT = format('The server''s owner can run GRANT USAGE ON FOREIGN SERVER %I TO %s.', server, caller);
    END IF;
    RETURN srv;
END
$$;

-- The functions below take a server name, so they need foreign tables of that
-- server. They import their own, once, into a schema per server
-- (dalp_fdw_srv_<server OID>), apart from the user's schemas. The schema and
-- its tables belong to the extension's owner, and are checked before every
-- use: an owner other than the extension's or a superuser, anyone else
-- allowed to create objects in the schema, a table bound to other options,
-- a column of another type (a domain, say) or with options, is refused
-- with what to repair. Other objects in the schema are never referred to.
-- Returns the tables to import: those missing, and those bound to a server
-- dropped since (its OID now reused by this one, after a restore say).
CREATE FUNCTION server_schema_check(server name, srv oid)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp name := 'dalp_fdw_srv_' || srv;
    n record;
    t record;
    others text;
    problems text;
    todo text[] := '{}';
BEGIN
    SELECT x.oid, x.nspowner, x.nspacl INTO n FROM pg_namespace x WHERE x.nspname = nsp;
    IF NOT FOUND THEN
        RETURN ARRAY['events', 'health_services', 'holders', 'tokens'];
    END IF;
    IF NOT dalp_fdw.trusted_role(n.nspowner) THEN
        RAISE EXCEPTION 'schema % of server "%" is owned by role %, not by the extension''s owner or a superuser',
                        nsp, server, quote_ident(pg_get_userbyid(n.nspowner))
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'dalp_fdw''s functions read the foreign tables of this schema for every role that calls them; its owner could make them run code as those roles.',
                    HINT = format('Check what it holds, then have a superuser drop it (DROP SCHEMA %I CASCADE): the next call creates it again.', nsp);
    END IF;
    SELECT string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, ', ')
      INTO others
      FROM aclexplode(n.nspacl) a
     WHERE a.privilege_type = 'CREATE' AND NOT dalp_fdw.trusted_role(a.grantee);
    IF others IS NOT NULL THEN
        RAISE EXCEPTION 'schema % of server "%" lets roles other than the extension''s owner create objects in it', nsp, server
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = format('CREATE is granted to %s.', others),
                    HINT = format('Revoke it: REVOKE CREATE ON SCHEMA %I FROM %s.', nsp, others);
    END IF;
    FOR t IN
        SELECT r.name, c.oid, c.relkind, c.relowner, f.ftserver, f.ftoptions
          FROM unnest(ARRAY['events', 'health_services', 'holders', 'tokens']) AS r(name)
          LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.name
          LEFT JOIN pg_foreign_table f ON f.ftrelid = c.oid
    LOOP
        IF t.oid IS NULL THEN
            todo := todo || t.name;
            CONTINUE;
        END IF;
        IF NOT dalp_fdw.trusted_role(t.relowner) THEN
            RAISE EXCEPTION 'relation %.% of server "%" is owned by role %, not by the extension''s owner or a superuser',
                            nsp, t.name, server, quote_ident(pg_get_userbyid(t.relowner))
                  USING ERRCODE = 'insufficient_privilege',
                        DETAIL = 'dalp_fdw''s functions read it for every role that calls them; its owner could make them run code as those roles.',
                        HINT = format('Check it, then have a superuser drop it: the next call imports the foreign table %I.%I again.', nsp, t.name);
        END IF;
        IF t.relkind <> 'f' THEN
            RAISE EXCEPTION 'relation %.% of server "%" is not a foreign table', nsp, t.name, server
                  USING ERRCODE = 'wrong_object_type',
                        HINT = format('Drop it, as its owner or a superuser: the next call imports the foreign table %I.%I.', nsp, t.name);
        END IF;
        IF t.ftserver <> srv THEN
            todo := todo || t.name;
            CONTINUE;
        END IF;
        SELECT string_agg(x.problem, '; ' ORDER BY x.o) INTO problems
          FROM (SELECT 0, format('its options are (%s), not (resource=%s)', array_to_string(t.ftoptions, ', '), t.name)
                 WHERE t.ftoptions IS DISTINCT FROM ARRAY['resource=' || t.name]
                UNION ALL
                SELECT 1, 'it has constraints'
                 WHERE EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = t.oid)
                UNION ALL
                SELECT 2, 'it takes part in table inheritance'
                 WHERE EXISTS (SELECT 1 FROM pg_inherits i WHERE t.oid IN (i.inhrelid, i.inhparent))
                UNION ALL
                SELECT 3 + coalesce(h.attnum, 0),
                       CASE WHEN h.attname IS NULL THEN format('column %I is missing', w.column_name)
                            WHEN w.column_name IS NULL THEN format('column %I is not one dalp_fdw imports', h.attname)
                            WHEN h.atttypid <> w.type OR h.atttypmod <> -1
                                 THEN format('column %I has type %s, not %s', h.attname,
                                             format_type(h.atttypid, h.atttypmod), format_type(w.type, NULL))
                            WHEN h.attfdwoptions IS NOT NULL
                                 THEN format('column %I has options (%s)', h.attname, array_to_string(h.attfdwoptions, ', '))
                            WHEN h.attcollation <> h.typcollation
                                 THEN format('column %I has collation %s', h.attname, h.attcollation::regcollation)
                       END
                  FROM (SELECT c.column_name::name AS column_name, c.type::oid AS type
                          FROM dalp_fdw.catalog_columns() c WHERE c.resource = t.name) w
                  FULL JOIN (SELECT a.attnum, a.attname, a.atttypid, a.atttypmod, a.attcollation,
                                    a.attfdwoptions, y.typcollation
                               FROM pg_attribute a JOIN pg_type y ON y.oid = a.atttypid
                              WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped) h
                    ON h.attname = w.column_name) AS x(o, problem)
         WHERE x.problem IS NOT NULL;
        IF problems IS NOT NULL THEN
            RAISE EXCEPTION 'foreign table %.% of server "%" is not as dalp_fdw imported it', nsp, t.name, server
                  USING ERRCODE = 'invalid_object_definition',
                        DETAIL = upper(left(problems, 1)) || substr(problems, 2) || '.',
                        HINT = format('Drop it (DROP FOREIGN TABLE %I.%I, as its owner or a superuser): the next call imports it again.', nsp, t.name);
        END IF;
    END LOOP;
    RETURN todo;
END
$$;

-- The schema of the server's foreign tables, created or completed first if
-- need be.
CREATE FUNCTION server_schema_impl(server name, caller regrole)
RETURNS name
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    srv oid := dalp_fdw.ledger_server(server, caller);
    nsp name := 'dalp_fdw_srv_' || srv;
    missing text[] := dalp_fdw.server_schema_check(server, srv);
    stale name;
BEGIN
    IF cardinality(missing) = 0 THEN
        RETURN nsp;
    END IF;
    -- Sessions that use a server for the first time at once: the second
    -- waits for the first one's catalog rows, fails to add its own, and
    -- then finds the first one's tables. No lock of ours orders them: an
    -- advisory lock is one that any role, even one that may not use the
    -- server, could take first and keep.
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = nsp) THEN
            EXECUTE format('CREATE SCHEMA %I', nsp);
            EXECUTE format('COMMENT ON SCHEMA %I IS %L', nsp,
                           format('dalp_fdw: foreign tables of server %s for take_snapshot, sync_events and indexer_health (owned by the extension''s owner; do not change)', server));
        END IF;
        FOR stale IN
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = nsp AND c.relname = ANY (missing)
        LOOP
            EXECUTE format('DROP FOREIGN TABLE %I.%I', nsp, stale);
        END LOOP;
        EXECUTE format('IMPORT FOREIGN SCHEMA v2 LIMIT TO (%s) FROM SERVER %I INTO %I',
                       array_to_string(missing, ', '), server, nsp);
    EXCEPTION WHEN OTHERS THEN
        IF cardinality(dalp_fdw.server_schema_check(server, srv)) > 0 THEN
            RAISE;
        END IF;
    END;
    RETURN nsp;
END
$$;

CREATE FUNCTION server_schema(server name)
RETURNS name
AS 'MODULE_PATHNAME', 'dalp_fdw_ledger_call'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION server_schema(name) IS
    'dalp_fdw: the schema holding this server''s foreign tables used by take_snapshot, sync_events and indexer_health (created on first use, owned by the extension''s owner)';

-- The indexer as the blockchain-monitoring summary reports it, and whether a
-- snapshot can trust the events now: every indexer listed is healthy or
-- degraded, not reindexing, and at most max_sync_lag blocks behind the chain
-- head. Any other status (reindexing, critical, unknown, or one this version
-- does not know) is not ready, and so is a summary without an indexer.
CREATE FUNCTION indexer_health_impl(server name, max_sync_lag bigint, caller regrole,
                                    OUT ready boolean, OUT status text, OUT sync_lag bigint, OUT reason text)
LANGUAGE plpgsql SECURITY DEFINER
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
    nsp := dalp_fdw.server_schema_impl(server, caller);
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
            reason := format('the indexer reports status %s%s', dalp_fdw.display_text(coalesce(r.status, 'NULL')),
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

CREATE FUNCTION indexer_health(server name, max_sync_lag bigint DEFAULT 100,
                               OUT ready boolean, OUT status text, OUT sync_lag bigint, OUT reason text)
AS 'MODULE_PATHNAME', 'dalp_fdw_ledger_call'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION indexer_health(name, bigint) IS
    'dalp_fdw: indexer status, sync lag and whether snapshots may trust it (see indexer_ready)';

CREATE FUNCTION indexer_ready(server name, max_sync_lag bigint DEFAULT 100)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT h.ready FROM dalp_fdw.indexer_health(server, max_sync_lag) h $$;
COMMENT ON FUNCTION indexer_ready(name, bigint) IS
    'dalp_fdw: indexer healthy or degraded, not reindexing, at most max_sync_lag blocks behind';

-- A token address argument, lowercased (DALP's addresses are lowercase),
-- or an error naming the argument.  The rule is the C side's
-- (dalp_is_hex_id in src/options.c); sql/option_rows.sql shows both.
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
    nsp := dalp_fdw.server_schema_impl(server, caller);
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
    SELECT l.block_timestamp, l.id, l.transaction_hash, l.block_number, l.tx_index INTO ck
      FROM dalp_fdw_ledger.event_log l
     WHERE l.server = srv AND l.token_address = tok AND l.retracted_at IS NULL
     ORDER BY l.block_timestamp DESC, l.block_number DESC, l.tx_index DESC, l.id DESC
     LIMIT 1;
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
    -- A name argument makes "C" the collation of every text variable; the
    -- indexes on the text columns are in the default one.
    srv text COLLATE "default" := server;
    tok text COLLATE "default" := dalp_fdw.token_address_arg(token_address);
    nsp name;
    health record;
    token_decimals int;
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
    nsp := dalp_fdw.server_schema_impl(server, caller);

    -- Before any event is read or any bookkeeping row written.
    PERFORM dalp_fdw.set_phase('take_snapshot', 'health check');
    health := dalp_fdw.indexer_health_impl(server, 100::bigint, caller);
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
    -- (for the reconciliation). The temporary schema is the caller's: a
    -- table of that name that we did not make (earlier in this transaction)
    -- could carry the caller's triggers, so it is refused.
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

    PERFORM dalp_fdw.set_phase('take_snapshot', 'backfill');
    PERFORM dalp_fdw.sync_events_impl(server, tok, '1 hour'::interval, caller);
    -- Replay, compare with /holders, sync again: if that sync found nothing,
    -- /holders was read while the mirror held every event, and the verdict
    -- stands. Events arriving meanwhile send us round again; after three
    -- rounds we replay what was mirrored and give up on the verdict. A
    -- mismatch is first answered by rereading the whole history, which
    -- retracts events that vanished before the reread window.
    LOOP
        rounds := rounds + 1;
        PERFORM dalp_fdw.set_phase('take_snapshot', 'replay');
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
          FROM dalp_fdw_ledger.event_log l
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

        PERFORM dalp_fdw.set_phase('take_snapshot', 'reconcile');
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
        INTO n_mismatches, sample
        USING tok, ('1e' || token_decimals)::numeric;

        SELECT * INTO synced FROM dalp_fdw.sync_events_impl(server, tok, '1 hour'::interval, caller);
        stable := synced.inserted = 0 AND synced.retracted = 0;
        IF stable AND n_mismatches > 0 AND NOT reread_all THEN
            reread_all := true;
            SELECT * INTO synced FROM dalp_fdw.sync_events_impl(server, tok, NULL::interval, caller);
            stable := synced.inserted = 0 AND synced.retracted = 0;
        END IF;
        EXIT WHEN stable;
    END LOOP;

    SELECT count(*) FILTER (WHERE r.balance_at <> 0) AS holders, coalesce(sum(r.balance_at), 0) AS supply
      INTO totals FROM pg_temp.dalp_fdw_replay r;
    SELECT count(*) INTO n_events
      FROM dalp_fdw_ledger.event_log l
     WHERE l.server = srv AND l.token_address = tok AND l.retracted_at IS NULL
       AND l.block_timestamp <= record_time;
    SELECT l.block_timestamp, l.id, l.transaction_hash, l.block_number, l.tx_index INTO ck
      FROM dalp_fdw_ledger.event_log l
     WHERE l.server = srv AND l.token_address = tok AND l.retracted_at IS NULL
       AND l.block_timestamp <= record_time
     ORDER BY l.block_timestamp DESC, l.block_number DESC, l.tx_index DESC, l.id DESC
     LIMIT 1;

    INSERT INTO dalp_fdw_ledger.snapshots
           (server, token_address, record_time, record_block, last_event_id, last_event_time,
            last_tx_hash, last_block, last_tx_index, events_replayed, holders, supply_exact,
            supply, decimals, reconciled, mismatches, indexer_status, computed_at, computed_by)
    VALUES (srv, tok, record_time, ck.block_number, ck.id, ck.block_timestamp,
            ck.transaction_hash, ck.block_number, ck.tx_index, n_events, totals.holders, totals.supply,
            trim_scale(totals.supply * ('1e-' || token_decimals)::numeric), token_decimals,
            stable AND n_mismatches = 0, n_mismatches, health.status, clock_timestamp(), pg_get_userbyid(caller))
    RETURNING id INTO sid;
    INSERT INTO dalp_fdw_ledger.snapshot_balances (snapshot_id, account, balance_exact, balance, frozen_exact)
    SELECT sid, r.account, r.balance_at, trim_scale(r.balance_at * ('1e-' || token_decimals)::numeric), r.frozen_at
      FROM pg_temp.dalp_fdw_replay r
     WHERE r.balance_at <> 0 OR r.frozen_at <> 0;

    IF n_mismatches > 0 OR NOT stable THEN
        RAISE WARNING 'snapshot % of token % does not reconcile with the current holders', sid, tok
              USING DETAIL = CASE WHEN n_mismatches > 0
                                  THEN format('%s accounts differ between the replay carried to now and /holders (base units): %s.',
                                              n_mismatches, array_to_string(sample, '; '))
                                  ELSE 'Events kept arriving while the replay was compared with /holders.' END,
                    HINT = 'The snapshot is recorded with reconciled = false. Check the indexer''s health and take it again.';
    END IF;
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

-- ---------------------------------------------------------------------------
-- Auditors: read one server's rows without using the server
-- ---------------------------------------------------------------------------

-- The server's owner (or a superuser) decides who audits its rows.
CREATE FUNCTION audit_server(server name, caller regrole)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dalp_fdw.ledger_server(server, caller);
    IF NOT pg_has_role(caller::oid, (SELECT s.srvowner FROM pg_foreign_server s WHERE s.srvname = audit_server.server), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of foreign server %', server
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'Only the server''s owner or a superuser decides who audits its snapshots and mirror.';
    END IF;
END
$$;

CREATE FUNCTION grant_audit_impl(server name, auditor regrole, caller regrole)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dalp_fdw.audit_server(server, caller);
    IF auditor IS NULL THEN
        RAISE EXCEPTION 'auditor must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO dalp_fdw_ledger.auditors (server, auditor, granted_by, granted_at)
    VALUES (server, pg_get_userbyid(auditor), pg_get_userbyid(caller), clock_timestamp())
        ON CONFLICT DO NOTHING;
END
$$;

CREATE FUNCTION grant_audit(server name, auditor regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_ledger_call'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION grant_audit(name, regrole) IS
    'dalp_fdw: lets a role read the server''s rows of event_log, sync_state, snapshots and snapshot_balances (for its owner or a superuser)';

CREATE FUNCTION revoke_audit_impl(server name, auditor regrole, caller regrole)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dalp_fdw.audit_server(server, caller);
    DELETE FROM dalp_fdw_ledger.auditors a
     WHERE a.server = revoke_audit_impl.server AND a.auditor = pg_get_userbyid(revoke_audit_impl.auditor);
END
$$;

CREATE FUNCTION revoke_audit(server name, auditor regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_ledger_call'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION revoke_audit(name, regrole) IS
    'dalp_fdw: undoes grant_audit';

-- Only the entry points above are for everyone: the rest run as the
-- extension's owner, or serve those that do.
REVOKE ALL ON FUNCTION trusted_role(oid), ledger_server(name, regrole), server_schema_check(name, oid),
                       server_schema_impl(name, regrole), indexer_health_impl(name, bigint, regrole),
                       sync_events_impl(name, text, interval, regrole),
                       compute_snapshot_impl(name, text, timestamptz, boolean, regrole),
                       audit_server(name, regrole), grant_audit_impl(name, regrole, regrole),
                       revoke_audit_impl(name, regrole, regrole), dalp_fdw_ledger.refuse_write()
    FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
