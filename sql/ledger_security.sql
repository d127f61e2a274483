-- Who may do what with the ledger (issue 10): a role that may use a server
-- works through dalp_fdw's functions with its own user mapping; it can
-- neither own nor change what they read (a role that could would make the
-- next caller, a superuser's job say, run its code), nor write or forge a
-- bookkeeping row; it sees the rows of the servers it may use or audits.
-- An overload in schema dalp_fdw does not capture the functions' own calls.
\i test/regress_setup.sql
\set SHOW_CONTEXT never

-- The error a statement raises, with its detail and hint, the OID in the
-- name of a per-server schema masked; or 'ok'.
CREATE FUNCTION pg_temp.error_of(stmt text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  msg text;
  detail text;
  hint text;
BEGIN
  EXECUTE stmt;
  RETURN NEXT 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  RETURN QUERY
    SELECT regexp_replace(l, 'dalp_fdw_srv_[0-9]+', 'dalp_fdw_srv_N', 'g')
      FROM unnest(ARRAY[SQLSTATE || ': ' || msg, 'DETAIL: ' || nullif(detail, ''), 'HINT: ' || nullif(hint, '')]) l
     WHERE l IS NOT NULL;
END $$;

SELECT address AS tok FROM dalp.tokens WHERE symbol = 'RDEP' \gset
SELECT current_user AS admin \gset

-- alice and bob may use server "led" (bob's key is wrong); carol may not.
-- alice may create schemas, as the first user of a server needed to when
-- that user came to own the server's private schema.
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_alice;
DROP ROLE IF EXISTS regress_bob;
DROP ROLE IF EXISTS regress_carol;
DROP ROLE IF EXISTS regress_dave;
DROP ROLE IF EXISTS regress_erin;
RESET client_min_messages;
CREATE ROLE regress_alice;
CREATE ROLE regress_bob;
CREATE ROLE regress_carol;
CREATE SERVER led FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'dalp_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER led OPTIONS (api_key :'dalp_key');
CREATE USER MAPPING FOR regress_alice SERVER led OPTIONS (api_key :'dalp_key');
CREATE USER MAPPING FOR regress_bob SERVER led OPTIONS (api_key 'sm_dalp_wrong_key');
GRANT USAGE ON FOREIGN SERVER led TO regress_alice, regress_bob;
GRANT CREATE ON DATABASE :"DBNAME" TO regress_alice;
GRANT USAGE ON SCHEMA dalp_fdw TO regress_alice;
CREATE SCHEMA regress_alice_own AUTHORIZATION regress_alice;

-- ---------------------------------------------------------------------------
-- The private foreign tables (issue 10, §2)
-- ---------------------------------------------------------------------------

-- alice uses the server first: the schema and its tables belong to the
-- extension's owner all the same.
SET ROLE regress_alice;
SELECT dalp_fdw.import_server_tables('led') AS nsp \gset
SELECT n.nspowner::regrole = :'admin'::regrole AS schema_owned_by_admin,
       (SELECT bool_and(c.relowner::regrole = :'admin'::regrole) FROM pg_class c WHERE c.relnamespace = n.oid) AS tables_owned_by_admin,
       (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid) AS tables
  FROM pg_namespace n WHERE n.nspname = :'nsp';
-- The escalation: a domain whose CHECK makes alice superuser when it runs
-- as a superuser, put on a column the snapshot reads. alice can alter
-- nothing there.
CREATE FUNCTION regress_alice_own.pwn(text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('is_superuser') = 'on' THEN
    EXECUTE 'ALTER ROLE regress_alice SUPERUSER';
  END IF;
  RETURN true;
END $$;
CREATE DOMAIN regress_alice_own.evil_text AS text CHECK (regress_alice_own.pwn(VALUE));
SELECT * FROM pg_temp.error_of(format('ALTER FOREIGN TABLE %I.tokens ALTER COLUMN address TYPE regress_alice_own.evil_text', :'nsp'));
SELECT * FROM pg_temp.error_of(format('ALTER FOREIGN TABLE %I.holders ALTER COLUMN balance_exact OPTIONS (ADD json_path %L)', :'nsp', 'availableExact'));
SELECT * FROM pg_temp.error_of(format('DROP FOREIGN TABLE %I.holders', :'nsp'));
SELECT * FROM pg_temp.error_of(format('CREATE TABLE %I.x (a int)', :'nsp'));
RESET ROLE;
-- the superuser's snapshot reads through them, and alice stays who she is
SELECT dalp_fdw.take_snapshot('led', :'tok', now()) IS NOT NULL AS taken;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_alice';

-- A schema or table that is not as dalp_fdw made it is refused, saying what
-- to repair, before anything is read or written; repaired, it works again.
-- The same domain, put there by a superuser:
ALTER FOREIGN TABLE :"nsp".tokens ALTER COLUMN address TYPE regress_alice_own.evil_text;
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.take_snapshot(%L, %L, now())', 'led', :'tok'));
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_alice';
DROP FOREIGN TABLE :"nsp".tokens;
-- a json_path that changes what a snapshot reads
ALTER FOREIGN TABLE :"nsp".holders ALTER COLUMN balance_exact OPTIONS (ADD json_path 'availableExact');
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.take_snapshot(%L, %L, now())', 'led', :'tok'));
DROP FOREIGN TABLE :"nsp".holders;
-- a column of another type, an extra column, other table options
ALTER FOREIGN TABLE :"nsp".events ALTER COLUMN amount TYPE float8, ADD COLUMN note text;
SELECT * FROM pg_temp.error_of(format('SELECT * FROM dalp_fdw.sync_events(%L, %L)', 'led', :'tok'));
DROP FOREIGN TABLE :"nsp".events;
ALTER FOREIGN TABLE :"nsp".health_services OPTIONS (ADD token_address '0x0000000000000000000000000000000000000001');
SELECT * FROM pg_temp.error_of($$SELECT dalp_fdw.indexer_ready('led')$$);
DROP FOREIGN TABLE :"nsp".health_services;
-- every dropped table is imported again, as it should be
SELECT dalp_fdw.import_server_tables('led') = :'nsp' AS same_schema;
SELECT count(*) AS tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :'nsp';
-- a table handed to another role, the schema too, CREATE granted on it
ALTER FOREIGN TABLE :"nsp".holders OWNER TO regress_alice;
SELECT * FROM pg_temp.error_of($$SELECT dalp_fdw.import_server_tables('led')$$);
ALTER FOREIGN TABLE :"nsp".holders OWNER TO CURRENT_USER;
ALTER SCHEMA :"nsp" OWNER TO regress_alice;
SELECT * FROM pg_temp.error_of($$SELECT dalp_fdw.import_server_tables('led')$$);
ALTER SCHEMA :"nsp" OWNER TO CURRENT_USER;
GRANT CREATE ON SCHEMA :"nsp" TO regress_alice;
SELECT * FROM pg_temp.error_of($$SELECT dalp_fdw.import_server_tables('led')$$);
REVOKE CREATE ON SCHEMA :"nsp" FROM regress_alice;
SELECT dalp_fdw.take_snapshot('led', :'tok', now()) IS NOT NULL AS taken;

-- A schema of that name made beforehand by another role (alice has CREATE
-- on the database) is refused too.
CREATE SERVER led2 FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'dalp_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER led2 OPTIONS (api_key :'dalp_key');
GRANT USAGE ON FOREIGN SERVER led2 TO regress_alice;
SELECT 'dalp_fdw_srv_' || oid AS nsp2 FROM pg_foreign_server WHERE srvname = 'led2' \gset
SET ROLE regress_alice;
CREATE SCHEMA :"nsp2";
RESET ROLE;
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.sync_events(%L, %L)', 'led2', :'tok'));
DROP SCHEMA :"nsp2" CASCADE;
SELECT inserted > 0 AS mirrored FROM dalp_fdw.sync_events('led2', :'tok');

-- The snapshot's working table lives in the caller's temporary schema: one
-- the caller made beforehand (with triggers of its own, say) is refused.
SET ROLE regress_alice;
CREATE TEMP TABLE dalp_fdw_replay (account text PRIMARY KEY, balance_at numeric, frozen_at numeric,
                                   balance_now numeric, frozen_now numeric);
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.take_snapshot(%L, %L, now())', 'led', :'tok'));
DROP TABLE pg_temp.dalp_fdw_replay;
-- into_table is written as the caller, with the caller's rights
CREATE TABLE regress_alice_own.payout (account text, balance numeric, balance_exact numeric,
                                       written_by name DEFAULT current_user);
SELECT dalp_fdw.take_snapshot('led', :'tok', now(), into_table => 'regress_alice_own.payout') AS s_alice \gset
SELECT array_agg(DISTINCT written_by) AS written_by, count(*) > 0 AS rows FROM regress_alice_own.payout;
RESET ROLE;
CREATE TABLE public.admin_table (account text, balance numeric, balance_exact numeric);
SET ROLE regress_alice;
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.take_snapshot(%L, %L, now(), into_table => %L)', 'led', :'tok', 'public.admin_table'));
RESET ROLE;
SELECT count(*) AS admin_table_rows FROM public.admin_table;
DROP TABLE public.admin_table;

-- ---------------------------------------------------------------------------
-- The bookkeeping rows (issue 10, §3)
-- ---------------------------------------------------------------------------

-- Rows of server "sim", which alice may not use.
SELECT dalp_fdw.take_snapshot('sim', :'tok', now()) IS NOT NULL AS taken;
SET ROLE regress_alice;
-- alice's snapshot is computed by alice, the time set by the function
SELECT computed_by, computed_at <= now() AS computed_now FROM dalp_fdw.snapshots WHERE id = :s_alice;
-- she sees the rows of led and led2 only
SELECT 'snapshots' AS t, array_agg(DISTINCT server) AS servers FROM dalp_fdw.snapshots
UNION ALL SELECT 'event_log', array_agg(DISTINCT server) FROM dalp_fdw.event_log
UNION ALL SELECT 'sync_state', array_agg(DISTINCT server) FROM dalp_fdw.sync_state;
SELECT count(*) AS balances_of_hidden_snapshots FROM dalp_fdw.snapshot_balances b
 WHERE NOT EXISTS (SELECT 1 FROM dalp_fdw.snapshots s WHERE s.id = b.snapshot_id);
SELECT count(*) AS rows_of_sim FROM dalp_fdw.event_log WHERE server = 'sim';
-- and may not use sim through the functions
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.sync_events(%L, %L)', 'sim', :'tok'));
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.take_snapshot(%L, %L, now())', 'sim', :'tok'));
SELECT * FROM pg_temp.error_of($$SELECT dalp_fdw.indexer_ready('sim')$$);
SELECT * FROM pg_temp.error_of($$SELECT dalp_fdw.import_server_tables('sim')$$);
-- Rows are written by the functions only: a direct insert (a forged
-- computed_by, a back-dated ingested_at), update or delete is refused, and
-- the tables behind the views are out of reach, as are the functions that
-- run as the extension's owner.
SELECT * FROM pg_temp.error_of(format(
  $$INSERT INTO dalp_fdw.snapshots (server, token_address, record_time, events_replayed, holders, supply_exact,
                                    supply, decimals, reconciled, mismatches, computed_at, computed_by)
    VALUES ('led', %L, now(), 0, 1, 1, 1, 0, true, 0, now(), %L)$$, :'tok', :'admin'));
SELECT * FROM pg_temp.error_of(format('UPDATE dalp_fdw.snapshots SET computed_by = %L WHERE id = %s', :'admin', :s_alice));
SELECT * FROM pg_temp.error_of(format(
  $$INSERT INTO dalp_fdw.event_log (server, token_address, id, event_name, block_number, block_timestamp,
                                    transaction_hash, tx_index, amount, "values", ingested_at)
    VALUES ('led', %L, 'forged', 'TransferCompleted', 1, '2020-01-01', '0x00', 0, 1000,
            '{"from": "0x01", "to": "0x02"}', '2020-01-01')$$, :'tok'));
SELECT * FROM pg_temp.error_of($$UPDATE dalp_fdw.event_log SET ingested_at = '2020-01-01' WHERE server = 'led'$$);
SELECT * FROM pg_temp.error_of($$DELETE FROM dalp_fdw.snapshot_balances$$);
SELECT * FROM pg_temp.error_of($$UPDATE dalp_fdw.sync_state SET checkpoint_time = NULL$$);
SELECT * FROM pg_temp.error_of($$SELECT count(*) FROM dalp_fdw_ledger.event_log$$);
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.compute_snapshot_impl(%L, %L, now(), false, %L)', 'sim', :'tok', :'admin'));
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.sync_events_impl(%L, %L, NULL, %L)', 'sim', :'tok', :'admin'));
RESET ROLE;
-- Write privileges granted on the views by mistake change nothing.
GRANT INSERT, UPDATE, DELETE ON dalp_fdw.snapshots, dalp_fdw.event_log TO regress_alice;
SET ROLE regress_alice;
SELECT * FROM pg_temp.error_of(format('UPDATE dalp_fdw.snapshots SET computed_by = %L WHERE id = %s', :'admin', :s_alice));
SELECT * FROM pg_temp.error_of($$UPDATE dalp_fdw.event_log SET ingested_at = '2020-01-01' WHERE server = 'led'$$);
RESET ROLE;
REVOKE INSERT, UPDATE, DELETE ON dalp_fdw.snapshots, dalp_fdw.event_log FROM regress_alice;
SELECT count(*) AS forged_rows FROM dalp_fdw_ledger.event_log WHERE id = 'forged' OR ingested_at < '2021-01-01';
SELECT computed_by FROM dalp_fdw_ledger.snapshots WHERE id = :s_alice;

-- The API is read with the caller's user mapping: bob's key is wrong, carol
-- has none (and no USAGE).
SET ROLE regress_bob;
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.take_snapshot(%L, %L, now())', 'led', :'tok')) LIMIT 1;
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER led TO regress_carol;
SET ROLE regress_carol;
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.sync_events(%L, %L)', 'led', :'tok')) LIMIT 1;
RESET ROLE;
REVOKE USAGE ON FOREIGN SERVER led FROM regress_carol;

-- Auditors: the server's owner lets carol read led's rows, and only those;
-- she still may not use the server. alice, not its owner, may not.
SET ROLE regress_alice;
SELECT * FROM pg_temp.error_of($$SELECT dalp_fdw.grant_audit('led', 'regress_carol')$$);
RESET ROLE;
SET ROLE regress_carol;
SELECT count(*) AS snapshots_seen FROM dalp_fdw.snapshots;
RESET ROLE;
SELECT dalp_fdw.grant_audit('led', 'regress_carol');
SELECT server, auditor, granted_by = :'admin' AS granted_by_admin FROM dalp_fdw.auditors;
SET ROLE regress_carol;
SELECT 'snapshots' AS t, array_agg(DISTINCT server) AS servers FROM dalp_fdw.snapshots
UNION ALL SELECT 'event_log', array_agg(DISTINCT server) FROM dalp_fdw.event_log
UNION ALL SELECT 'sync_state', array_agg(DISTINCT server) FROM dalp_fdw.sync_state;
SELECT count(*) > 0 AS balances_seen FROM dalp_fdw.snapshot_balances;
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.sync_events(%L, %L)', 'led', :'tok'));
SELECT * FROM pg_temp.error_of($$DELETE FROM dalp_fdw.auditors$$);
SELECT * FROM pg_temp.error_of($$SELECT dalp_fdw.grant_audit('led2', 'regress_carol')$$);
RESET ROLE;
SELECT dalp_fdw.revoke_audit('led', 'regress_carol');
SET ROLE regress_carol;
SELECT count(*) AS snapshots_seen FROM dalp_fdw.snapshots;
RESET ROLE;

-- A grant holds for the very role and server it was made for, not for
-- whatever later takes their names. dave audits led, and is dropped; a new
-- role of that name (anyone with CREATEROLE can make one) sees nothing of
-- led until led's owner grants it again.
CREATE ROLE regress_dave;
SELECT dalp_fdw.grant_audit('led', 'regress_dave');
SET ROLE regress_dave;
SELECT count(*) > 0 AS snapshots_seen FROM dalp_fdw.snapshots;
RESET ROLE;
DROP ROLE regress_dave;
CREATE ROLE regress_dave;
SET ROLE regress_dave;
SELECT (SELECT count(*) FROM dalp_fdw.snapshots) AS snapshots_seen,
       (SELECT count(*) FROM dalp_fdw.snapshot_balances) AS balances_seen,
       (SELECT count(*) FROM dalp_fdw.event_log) AS events_seen,
       (SELECT count(*) FROM dalp_fdw.sync_state) AS checkpoints_seen,
       (SELECT count(*) FROM dalp_fdw.auditors) AS audits_seen;
RESET ROLE;
SELECT dalp_fdw.grant_audit('led', 'regress_dave');
SET ROLE regress_dave;
SELECT array_agg(DISTINCT server) AS servers FROM dalp_fdw.snapshots;
RESET ROLE;
SELECT dalp_fdw.revoke_audit('led', 'regress_dave');
DROP ROLE regress_dave;

-- A server name's rows are kept for the server that first wrote them
-- (dalp_fdw_ledger.servers). led3 is the superuser's: it mirrors and
-- snapshots, and carol audits it.
CREATE SERVER led3 FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'dalp_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER led3 OPTIONS (api_key :'dalp_key');
SELECT 'dalp_fdw_srv_' || oid AS nsp3 FROM pg_foreign_server WHERE srvname = 'led3' \gset
SET client_min_messages = error;
SELECT dalp_fdw.take_snapshot('led3', :'tok', now()) IS NOT NULL AS taken;
RESET client_min_messages;
SELECT dalp_fdw.grant_audit('led3', 'regress_carol');
-- What the caller sees of led3 in every view (its balances: of the
-- snapshots in led3_ids).
CREATE TEMP TABLE led3_ids AS SELECT id FROM dalp_fdw_ledger.snapshots WHERE server = 'led3';
GRANT SELECT ON pg_temp.led3_ids TO PUBLIC;
CREATE FUNCTION pg_temp.led3_seen(OUT snapshots bigint, OUT balances bigint, OUT events bigint,
                                  OUT checkpoints bigint, OUT audits bigint)
LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM dalp_fdw.snapshots WHERE server = 'led3'),
         (SELECT count(*) FROM dalp_fdw.snapshot_balances b
           WHERE b.snapshot_id IN (SELECT id FROM pg_temp.led3_ids)),
         (SELECT count(*) FROM dalp_fdw.event_log WHERE server = 'led3'),
         (SELECT count(*) FROM dalp_fdw.sync_state WHERE server = 'led3'),
         (SELECT count(*) FROM dalp_fdw.auditors WHERE server = 'led3')
$$;
-- Everything led3's rows hold, to show that nothing below changes them.
CREATE FUNCTION pg_temp.led3_rows() RETURNS text
LANGUAGE sql AS $$
  SELECT md5(concat_ws('|',
    (SELECT string_agg(s::text, ',' ORDER BY s.id) FROM dalp_fdw_ledger.snapshots s WHERE s.server = 'led3'),
    (SELECT string_agg(b::text, ',' ORDER BY b.snapshot_id, b.account) FROM dalp_fdw_ledger.snapshot_balances b
      WHERE b.snapshot_id IN (SELECT id FROM dalp_fdw_ledger.snapshots WHERE server = 'led3')),
    (SELECT string_agg(l::text, ',' ORDER BY l.log_id) FROM dalp_fdw_ledger.event_log l WHERE l.server = 'led3'),
    (SELECT string_agg(t::text, ',') FROM dalp_fdw_ledger.sync_state t WHERE t.server = 'led3'),
    (SELECT string_agg(a::text, ',' ORDER BY a.auditor) FROM dalp_fdw_ledger.auditors a WHERE a.server = 'led3')))
$$;
SET ROLE regress_carol;
SELECT * FROM pg_temp.led3_seen();
RESET ROLE;

-- Dropped and made anew by its owner, as a restore does (a new OID, the
-- same name and owner): the rows are still the server's, its syncs go on,
-- the record takes the new OID, and carol's grant holds.
SET client_min_messages = warning;
DROP SERVER led3 CASCADE;
RESET client_min_messages;
CREATE SERVER led3 FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'dalp_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER led3 OPTIONS (api_key :'dalp_key');
SELECT 'dalp_fdw_srv_' || oid AS nsp3b FROM pg_foreign_server WHERE srvname = 'led3' \gset
SELECT inserted = 0 AS nothing_new FROM dalp_fdw.sync_events('led3', :'tok');
SELECT p.server_oid = s.oid AS recorded_anew
  FROM dalp_fdw_ledger.servers p JOIN pg_foreign_server s ON s.srvname = p.server WHERE p.server = 'led3';
SET ROLE regress_carol;
SELECT snapshots > 0 AND balances > 0 AND events > 0 AND checkpoints > 0 AND audits > 0 AS carol_sees_all
  FROM pg_temp.led3_seen();
RESET ROLE;

-- Dropped, and made anew under its name by erin, who may create dalp_fdw
-- servers and lets bob use hers: neither sees a row of the old led3, nor
-- does carol any longer; erin may not sync, snapshot or grant through it
-- (before anything is read), and nothing of led3's rows changes.
SELECT pg_temp.led3_rows() AS led3_before \gset
SET client_min_messages = warning;
DROP SERVER led3 CASCADE;
RESET client_min_messages;
CREATE ROLE regress_erin;
GRANT USAGE ON FOREIGN DATA WRAPPER dalp_fdw TO regress_erin;
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SET ROLE regress_erin;
CREATE SERVER led3 FOREIGN DATA WRAPPER dalp_fdw OPTIONS (base_url :'dalp_url');
CREATE USER MAPPING FOR regress_erin SERVER led3 OPTIONS (api_key :'dalp_key');
GRANT USAGE ON FOREIGN SERVER led3 TO regress_bob;
SELECT 'dalp_fdw_srv_' || oid AS nsp3e FROM pg_foreign_server WHERE srvname = 'led3' \gset
SELECT * FROM pg_temp.led3_seen();
SELECT * FROM pg_temp.error_of(format('SELECT * FROM dalp_fdw.sync_events(%L, %L)', 'led3', :'tok'));
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.take_snapshot(%L, %L, now())', 'led3', :'tok'));
SELECT * FROM pg_temp.error_of($$SELECT dalp_fdw.grant_audit('led3', 'regress_bob')$$);
RESET ROLE;
SELECT pg_temp.sim_requests() AS requests;
SET ROLE regress_bob;
SELECT * FROM pg_temp.led3_seen();
RESET ROLE;
SET ROLE regress_carol;
SELECT * FROM pg_temp.led3_seen();
RESET ROLE;
-- the superuser too (its USAGE on every server reads no other server's rows)
SELECT * FROM pg_temp.error_of(format('SELECT * FROM dalp_fdw.sync_events(%L, %L)', 'led3', :'tok')) LIMIT 1;
SELECT pg_temp.led3_rows() = :'led3_before' AS led3_unchanged;

-- A superuser who finds the old rows are the new server's gives them to it,
-- with the statement of the hint (README): erin syncs, snapshots and sees
-- them, and so does bob; carol's grant, made for the old server, holds no
-- longer.
UPDATE dalp_fdw_ledger.servers p SET server_oid = s.oid, server_owner = s.srvowner
  FROM pg_foreign_server s WHERE s.srvname = p.server AND p.server = 'led3';
SET ROLE regress_erin;
SELECT inserted = 0 AS nothing_new FROM dalp_fdw.sync_events('led3', :'tok');
SET client_min_messages = error;
SELECT dalp_fdw.take_snapshot('led3', :'tok', now()) IS NOT NULL AS taken;
RESET client_min_messages;
SELECT snapshots > 1 AND balances > 0 AND events > 0 AND checkpoints > 0 AND audits > 0 AS erin_sees_all
  FROM pg_temp.led3_seen();
RESET ROLE;
SET ROLE regress_bob;
SELECT snapshots > 1 AND balances > 0 AND events > 0 AND checkpoints > 0 AS bob_sees_all FROM pg_temp.led3_seen();
RESET ROLE;
SET ROLE regress_carol;
SELECT * FROM pg_temp.led3_seen();
RESET ROLE;
-- The new owner may take back the old server's grants.
SET ROLE regress_erin;
SELECT dalp_fdw.revoke_audit('led3', 'regress_carol');
SELECT count(*) AS led3_audits FROM dalp_fdw.auditors WHERE server = 'led3';
RESET ROLE;

-- Rows stay under the name of a server renamed (or dropped): a server of
-- another wrapper given that name shows none of them. carol may create
-- servers of that wrapper, as roles often may of postgres_fdw's.
CREATE FOREIGN DATA WRAPPER regress_other_fdw;
GRANT USAGE ON FOREIGN DATA WRAPPER regress_other_fdw TO regress_carol;
ALTER SERVER led2 RENAME TO led2_renamed;
SET ROLE regress_carol;
CREATE SERVER led2 FOREIGN DATA WRAPPER regress_other_fdw;
SELECT (SELECT count(*) FROM dalp_fdw.event_log) AS events_seen,
       (SELECT count(*) FROM dalp_fdw.sync_state) AS checkpoints_seen;
DROP SERVER led2;
RESET ROLE;
ALTER SERVER led2_renamed RENAME TO led2;
DROP FOREIGN DATA WRAPPER regress_other_fdw;

-- ---------------------------------------------------------------------------
-- Unambiguous internal calls (issue 10, §5)
-- ---------------------------------------------------------------------------

-- An overload sync_events(name, text, text) would win over the mirror's
-- own sync_events(server, token, NULL) that a snapshot runs when its replay
-- disagrees with /holders. Here /holders disagrees, and the overload is not
-- called.
CREATE FUNCTION dalp_fdw.sync_events(server name, token_address text, reread_window text)
RETURNS TABLE (inserted bigint, retracted bigint, checkpoint_time timestamptz)
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the overload ran'; END $$;
SELECT pg_temp.sim_faults(format('{"every": {"patch": 1}, "path_prefix": "/api/v2/tokens/%s/holders", "patch": {"valueExact": "1"}}', :'tok'));
SET client_min_messages = error;
SELECT dalp_fdw.take_snapshot('led', :'tok', now()) AS s_over \gset
RESET client_min_messages;
SELECT reconciled, mismatches > 0 AS mismatches FROM dalp_fdw.snapshots WHERE id = :s_over;
SELECT pg_temp.sim_faults('{}');
DROP FUNCTION dalp_fdw.sync_events(name, text, text);

-- ---------------------------------------------------------------------------
-- A caller's collation
-- ---------------------------------------------------------------------------

-- A COLLATE on an argument stays with the caller: what runs as the
-- extension's owner compares in its own collations. A nondeterministic one
-- used to reach it, and broke the server lookup and the address check.
CREATE COLLATION regress_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
SELECT dalp_fdw.indexer_ready('led' COLLATE regress_ci) AS ready;
SELECT inserted >= 0 AS synced FROM dalp_fdw.sync_events('led', :'tok' COLLATE regress_ci);
SET client_min_messages = error;
SELECT dalp_fdw.take_snapshot('led' COLLATE regress_ci, :'tok' COLLATE regress_ci, now()) IS NOT NULL AS taken;
RESET client_min_messages;
SELECT dalp_fdw.grant_audit('led' COLLATE regress_ci, 'regress_carol');
SELECT server, auditor FROM dalp_fdw.auditors WHERE auditor = 'regress_carol';
SELECT dalp_fdw.revoke_audit('led' COLLATE regress_ci, 'regress_carol');
SELECT count(*) AS carol_audits FROM dalp_fdw.auditors WHERE auditor = 'regress_carol';
DROP COLLATION regress_ci;

-- ---------------------------------------------------------------------------
-- What PUBLIC may run
-- ---------------------------------------------------------------------------

-- The steps of a snapshot run inside compute_snapshot_impl, as the
-- extension's owner, and are for no one else.
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_run
  FROM pg_proc p
 WHERE p.pronamespace = 'dalp_fdw'::regnamespace AND p.proname LIKE 'snapshot\_%'
 ORDER BY 1;
-- Every function PUBLIC may run: entry points that check the caller, and
-- helpers that reveal nothing of other roles.
SELECT p.proname AS public_may_run
  FROM pg_proc p
 WHERE p.pronamespace = 'dalp_fdw'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;
SET ROLE regress_alice;
SELECT * FROM pg_temp.error_of(format('SELECT dalp_fdw.snapshot_replay(%L, %L, now())', 'led', :'tok'));
-- The balance-effect rules the replay applies, which everyone may read.
SELECT * FROM dalp_fdw.catalog_balance_effects();
RESET ROLE;

-- Clean up: the roles, the servers, their schemas and rows.
SET client_min_messages = warning;
DROP SERVER led, led2, led3 CASCADE;
DROP SCHEMA regress_alice_own, :"nsp", :"nsp2", :"nsp3", :"nsp3b", :"nsp3e" CASCADE;
-- as the README deletes a dropped server's rows
DO $$
BEGIN
  DELETE FROM dalp_fdw_ledger.snapshots WHERE server IN ('led', 'led2', 'led3');
  DELETE FROM dalp_fdw_ledger.event_log WHERE server IN ('led', 'led2', 'led3');
  DELETE FROM dalp_fdw_ledger.sync_state WHERE server IN ('led', 'led2', 'led3');
  DELETE FROM dalp_fdw_ledger.auditors WHERE server IN ('led', 'led2', 'led3');
  DELETE FROM dalp_fdw_ledger.servers WHERE server IN ('led', 'led2', 'led3');
END $$;
DROP OWNED BY regress_alice, regress_bob, regress_carol, regress_erin;
DROP ROLE regress_alice, regress_bob, regress_carol, regress_erin;
RESET client_min_messages;
SELECT count(*) AS lines FROM pg_temp.sim('reset');
