-- The event mirror (sync_events): a backfill mirrors every event, a second
-- call right away inserts nothing and rereads only the window; appended
-- events are inserted exactly; a reorg retracts exactly the events that
-- vanished and inserts their replacements; rows are never deleted;
-- snapshots ignore retracted events and stay reproducible from the mirror;
-- a cap table refreshed concurrently.
\i test/regress_setup.sql
\set SHOW_CONTEXT never
TRUNCATE dalp_fdw_ledger.snapshot_balances, dalp_fdw_ledger.snapshots, dalp_fdw_ledger.event_log, dalp_fdw_ledger.sync_state RESTART IDENTITY;
SELECT address AS tok FROM dalp.tokens WHERE symbol = 'NWEA' \gset

-- Events only in the mirror (not retracted) and only in the API, over
-- every mirrored column.
CREATE FUNCTION pg_temp.mirror_vs_api(t text)
RETURNS TABLE (only_in_mirror bigint, only_in_api bigint)
LANGUAGE sql AS $$
  WITH m AS (SELECT id, event_name, block_number, block_timestamp, transaction_hash, tx_index, emitter,
                    sender, from_address, to_address, account, amount, "values"
               FROM dalp_fdw.event_log WHERE server = 'sim' AND token_address = t AND retracted_at IS NULL),
  a AS (SELECT id, event_name, block_number, block_timestamp, transaction_hash, tx_index, emitter,
               sender, from_address, to_address, account, amount, "values"
          FROM dalp.events WHERE token_address = t)
  SELECT (SELECT count(*) FROM (TABLE m EXCEPT TABLE a) x), (SELECT count(*) FROM (TABLE a EXCEPT TABLE m) x)
$$;

-- The ids written by the last run that wrote any (its rows share one stamp).
CREATE FUNCTION pg_temp.last_ingested() RETURNS text[]
LANGUAGE sql AS $$
  SELECT array_agg(id ORDER BY id) FROM dalp_fdw.event_log
   WHERE ingested_at = (SELECT max(ingested_at) FROM dalp_fdw.event_log)
$$;

-- Balances replayed from a snapshot's recorded inputs (snapshot_events),
-- against the balances it recorded: the number of accounts that differ.
CREATE FUNCTION pg_temp.audit(sid bigint) RETURNS bigint
LANGUAGE sql AS $$
  WITH e AS (SELECT * FROM dalp_fdw.snapshot_events(sid)),
  r AS (SELECT d.account, sum(d.b) AS balance_exact
          FROM (SELECT to_address, amount FROM e WHERE event_name IN ('MintCompleted', 'TransferCompleted')
                UNION ALL SELECT from_address, -amount FROM e WHERE event_name IN ('BurnCompleted', 'TransferCompleted')
                UNION ALL SELECT account, -amount FROM e WHERE event_name = 'Redeemed') d(account, b)
         GROUP BY d.account HAVING sum(d.b) <> 0),
  s AS (SELECT account, balance_exact FROM dalp_fdw.snapshot_balances WHERE snapshot_id = sid AND balance_exact <> 0)
  SELECT count(*) FROM ((TABLE r EXCEPT TABLE s) UNION ALL (TABLE s EXCEPT TABLE r)) x
$$;

-- Backfill: every event, the checkpoint at the last one.
SELECT inserted = (SELECT count(*) FROM dalp.events WHERE token_address = :'tok') AS inserted_every_event,
       retracted,
       checkpoint_time = (SELECT max(block_timestamp) FROM dalp.events WHERE token_address = :'tok') AS checkpoint_is_last
  FROM dalp_fdw.sync_events('sim', :'tok');
SELECT * FROM pg_temp.mirror_vs_api(:'tok');
SELECT s.last_event_id = e.id AS id, s.last_tx_hash = e.transaction_hash AS tx_hash,
       s.last_block = e.block_number AS block, s.last_tx_index = e.tx_index AS tx_index,
       s.window_start IS NULL AS read_whole_history
  FROM dalp_fdw.sync_state s,
       LATERAL (SELECT * FROM dalp.events WHERE token_address = s.token_address
                 ORDER BY block_timestamp DESC, block_number DESC, tx_index DESC, id DESC LIMIT 1) e
 WHERE s.server = 'sim' AND s.token_address = :'tok';

-- Again right away: nothing new, one request, reading inclusively from the
-- checkpoint minus the window.
SELECT count(*) FROM pg_temp.sim('clear');
SELECT * FROM dalp_fdw.sync_events('sim', :'tok');
SELECT jsonb_array_length(l) AS requests,
       (l->0->'query'->>'filter[blockTimestamp][gte]')::timestamptz
         = (SELECT checkpoint_time - interval '1 hour' FROM dalp_fdw.sync_state WHERE token_address = :'tok') AS from_checkpoint_minus_window
  FROM (SELECT line::jsonb AS l FROM pg_temp.sim('log') line) x;

-- New events: exactly those are inserted, once.
CREATE TEMP TABLE appended AS
  SELECT e->>'id' AS id FROM pg_temp.sim(format('append %s 7', :'tok')) line, jsonb_array_elements(line::jsonb->'added') e;
SELECT inserted, retracted FROM dalp_fdw.sync_events('sim', :'tok');
SELECT pg_temp.last_ingested() = (SELECT array_agg(id ORDER BY id) FROM appended) AS inserted_the_appended;
SELECT inserted, retracted FROM dalp_fdw.sync_events('sim', :'tok');
SELECT * FROM pg_temp.mirror_vs_api(:'tok');

-- A snapshot now, kept for the audit below.
SELECT dalp_fdw.take_snapshot('sim', :'tok', now()) AS s_first \gset

-- A reorg inside the reread window: the vanished events are retracted (and
-- kept), their replacements inserted.
CREATE TEMP TABLE reorg AS SELECT line::jsonb AS j FROM pg_temp.sim(format('reorg %s 3 2', :'tok')) line;
SELECT jsonb_array_length(j->'removed') AS removed, jsonb_array_length(j->'added') AS added FROM reorg;
SELECT inserted, retracted FROM dalp_fdw.sync_events('sim', :'tok');
SELECT (SELECT array_agg(id ORDER BY id) FROM dalp_fdw.event_log WHERE retracted_at IS NOT NULL)
       = (SELECT array_agg(x ORDER BY x) FROM reorg, jsonb_array_elements_text(j->'removed') x) AS retracted_the_removed,
       pg_temp.last_ingested() = (SELECT array_agg(e->>'id' ORDER BY e->>'id') FROM reorg, jsonb_array_elements(j->'added') e)
         AS inserted_the_replacements;
SELECT * FROM pg_temp.mirror_vs_api(:'tok');
SELECT count(*) AS rows, count(*) FILTER (WHERE retracted_at IS NOT NULL) AS retracted,
       count(*) - (SELECT count(*) FROM dalp.events WHERE token_address = :'tok') AS rows_beyond_the_api
  FROM dalp_fdw.event_log WHERE token_address = :'tok';

-- A snapshot now ignores the retracted events: it matches the simulator's
-- new truth and the current holders.
SELECT dalp_fdw.take_snapshot('sim', :'tok', now()) AS s_after \gset
WITH t AS (SELECT line::jsonb AS j FROM pg_temp.sim(format('truth %s', :'tok')) line)
SELECT s.reconciled, s.events_replayed = (t.j->>'events')::bigint AS events,
       s.supply_exact = (t.j->>'total_supply_exact')::numeric AS supply,
       (SELECT count(*) FROM ((SELECT account, balance_exact::text FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_after
                               EXCEPT SELECT key, value FROM jsonb_each_text(t.j->'balances'))
                              UNION ALL
                              (SELECT key, value FROM jsonb_each_text(t.j->'balances')
                               EXCEPT SELECT account, balance_exact::text FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_after)) d)
         AS differences_from_truth,
       (SELECT count(*) FROM ((SELECT account, balance_exact FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_after
                               EXCEPT SELECT account, balance_exact FROM dalp.holders WHERE token_address = :'tok')
                              UNION ALL
                              (SELECT account, balance_exact FROM dalp.holders WHERE token_address = :'tok'
                               EXCEPT SELECT account, balance_exact FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_after)) d)
         AS differences_from_holders
  FROM dalp_fdw.snapshots s, t WHERE s.id = :s_after;

-- The earlier snapshot is still reproducible from the mirror: its inputs
-- (snapshot_events) include the events retracted since, and replay to its
-- balances.
SELECT (SELECT count(*) FROM dalp_fdw.snapshot_events(:s_first)) = s.events_replayed AS inputs_complete,
       (SELECT count(*) FROM dalp_fdw.snapshot_events(:s_first) WHERE retracted_at IS NOT NULL) AS since_retracted,
       pg_temp.audit(:s_first) AS audit_differences, pg_temp.audit(:s_after) AS audit_differences_after
  FROM dalp_fdw.snapshots s WHERE s.id = :s_first;

-- A reorg deeper than the window: a routine sync sees only the part inside
-- it (events older than checkpoint - 1 hour stay as they were) ...
SELECT checkpoint_time - interval '1 hour' AS window_from FROM dalp_fdw.sync_state WHERE token_address = :'tok' \gset
TRUNCATE reorg;
INSERT INTO reorg SELECT line::jsonb FROM pg_temp.sim(format('reorg %s 12 5', :'tok')) line;
SELECT jsonb_array_length(j->'removed') AS removed, jsonb_array_length(j->'added') AS added FROM reorg;
SELECT inserted = (SELECT count(*) FROM reorg, jsonb_array_elements(j->'added') e
                    WHERE (e->>'blockTimestamp')::timestamptz >= :'window_from') AS inserted_those_in_window,
       retracted = (SELECT count(*) FROM dalp_fdw.event_log l, reorg
                     WHERE l.id IN (SELECT jsonb_array_elements_text(j->'removed'))
                       AND l.block_timestamp >= :'window_from') AS retracted_those_in_window
  FROM dalp_fdw.sync_events('sim', :'tok');
SELECT only_in_mirror > 0 AS stale_rows_left, only_in_api > 0 AS replacements_missing FROM pg_temp.mirror_vs_api(:'tok');
-- ... and a snapshot notices (the replay no longer matches /holders),
-- rereads the whole history, and reconciles without a warning.
SELECT dalp_fdw.take_snapshot('sim', :'tok', now()) AS s_deep \gset
SELECT reconciled, mismatches FROM dalp_fdw.snapshots WHERE id = :s_deep;
SELECT * FROM pg_temp.mirror_vs_api(:'tok');
SELECT count(*) AS removed_not_retracted
  FROM reorg, jsonb_array_elements_text(j->'removed') x
 WHERE x IN (SELECT id FROM dalp_fdw.event_log WHERE retracted_at IS NULL);

-- reread_window NULL rereads the whole history: a deep reorg, caught whole.
TRUNCATE reorg;
INSERT INTO reorg SELECT line::jsonb FROM pg_temp.sim(format('reorg %s 20 9', :'tok')) line;
SELECT inserted = (SELECT jsonb_array_length(j->'added') FROM reorg) AS inserted_every_replacement,
       retracted = (SELECT jsonb_array_length(j->'removed') FROM reorg) AS retracted_every_removed
  FROM dalp_fdw.sync_events('sim', :'tok', NULL);
SELECT * FROM pg_temp.mirror_vs_api(:'tok');
SELECT window_start IS NULL AS read_whole_history FROM dalp_fdw.sync_state WHERE token_address = :'tok';
-- after all these reorgs, the first snapshot still replays from its inputs
SELECT pg_temp.audit(:s_first) AS audit_differences;
SELECT count(*) - count(DISTINCT (id, transaction_hash, block_number, tx_index)) AS duplicates,
       count(*) = (SELECT count(*) FROM dalp.events WHERE token_address = :'tok') AS as_many_as_the_api
  FROM dalp_fdw.event_log WHERE token_address = :'tok' AND retracted_at IS NULL;

-- Arguments.
SELECT * FROM dalp_fdw.sync_events('sim', :'tok', '-1 hour');
SELECT * FROM dalp_fdw.sync_events('sim', '0xnot-an-address');
SELECT left(pg_temp.sqlstate_of(stmt), 5) AS sqlstate, stmt
  FROM (VALUES ('SELECT dalp_fdw.sync_events(''sim'', ''0x00000000000000000000000000000000000000aa'')'),
               ('SELECT dalp_fdw.sync_events(''nosuchserver'', ''0x00000000000000000000000000000000000000aa'')'),
               ('SELECT dalp_fdw.sync_events(''sim'', ''0xnot-an-address'')'),
               (format('SELECT dalp_fdw.sync_events(''sim'', %L, ''-1 hour'')', :'tok'))) AS t(stmt);

-- A cap table as a materialized view over the foreign tables, refreshed
-- concurrently (the unique index allows it) after the holders changed.
CREATE MATERIALIZED VIEW cap_table AS
  SELECT account, balance, balance_exact FROM dalp.holders WHERE token_address = :'tok';
CREATE UNIQUE INDEX ON cap_table (account);
CREATE TEMP TABLE cap_before AS SELECT * FROM cap_table;
SELECT count(*) FROM pg_temp.sim(format('append %s 30', :'tok'));
REFRESH MATERIALIZED VIEW CONCURRENTLY cap_table;
SELECT (SELECT count(*) FROM ((TABLE cap_table EXCEPT TABLE cap_before) UNION ALL (TABLE cap_before EXCEPT TABLE cap_table)) d) > 0 AS changed,
       (SELECT count(*) FROM ((SELECT account, balance, balance_exact FROM dalp.holders WHERE token_address = :'tok' EXCEPT TABLE cap_table)
                              UNION ALL (TABLE cap_table EXCEPT SELECT account, balance, balance_exact FROM dalp.holders WHERE token_address = :'tok')) d)
         AS differences_from_holders;
DROP MATERIALIZED VIEW cap_table;

SELECT count(*) AS lines FROM pg_temp.sim('reset');
