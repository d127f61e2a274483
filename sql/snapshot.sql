-- Record-date snapshots (take_snapshot): balances at several record times
-- equal two references that share nothing with it (a replay of the API's
-- events written below, and the simulator's own replay, `truth`); a snapshot
-- at now equals the current holders; the health gate; the errors.
\i test/regress_setup.sql
\set SHOW_CONTEXT never
-- A clean slate, so snapshot ids in the messages below are the same on every run.
TRUNCATE dalp_fdw_ledger.snapshot_balances, dalp_fdw_ledger.snapshots, dalp_fdw_ledger.event_log, dalp_fdw_ledger.sync_state RESTART IDENTITY;
-- HIF has custodian operations (ForcedTransfer, frozen tokens) and 6 decimals;
-- ACB30 has balances past 10^30 at 18 decimals.
SELECT address AS hif FROM dalp.tokens WHERE symbol = 'HIF' \gset
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
SELECT address AS eursc FROM dalp.tokens WHERE symbol = 'EURSC' \gset

-- The contract's balance-effect table over the API's events (not the mirror),
-- one branch per event kind.
CREATE FUNCTION pg_temp.replay(tok text, at timestamptz)
RETURNS TABLE (account text, balance_exact numeric, frozen_exact numeric)
LANGUAGE sql AS $$
  WITH e AS (SELECT * FROM dalp.events WHERE token_address = tok AND block_timestamp <= at)
  SELECT d.account, sum(d.b), sum(d.f)
    FROM (SELECT "values"->>'to', amount, 0 FROM e WHERE event_name = 'MintCompleted'
          UNION ALL SELECT "values"->>'from', -amount, 0 FROM e WHERE event_name = 'BurnCompleted'
          UNION ALL SELECT "values"->>'from', -amount, 0 FROM e WHERE event_name = 'TransferCompleted'
          UNION ALL SELECT "values"->>'to', amount, 0 FROM e WHERE event_name = 'TransferCompleted'
          UNION ALL SELECT "values"->>'owner', -amount, 0 FROM e WHERE event_name = 'Redeemed'
          UNION ALL SELECT "values"->>'user', 0, amount FROM e WHERE event_name = 'TokensFrozen'
          UNION ALL SELECT "values"->>'user', 0, -amount FROM e WHERE event_name = 'TokensUnfrozen') d(account, b, f)
   GROUP BY d.account
  HAVING sum(d.b) <> 0 OR sum(d.f) <> 0
$$;

-- The simulator's replay of its ledger at a time.
CREATE FUNCTION pg_temp.truth(tok text, at timestamptz) RETURNS jsonb
LANGUAGE sql AS $$
  SELECT line::jsonb
    FROM pg_temp.sim(format('truth %s --at %s', tok,
                            to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))) line
$$;

-- A snapshot against both references: accounts whose balance or frozen
-- amount differs from the replay above, accounts whose balance differs from
-- the truth, and whether its event count, holder count and supply agree
-- with the truth.
CREATE FUNCTION pg_temp.verdict(sid bigint)
RETURNS TABLE (diff_replay bigint, diff_truth bigint, counts_agree boolean)
LANGUAGE sql AS $$
  WITH s AS (SELECT * FROM dalp_fdw.snapshots WHERE id = sid),
  b AS (SELECT account, balance_exact, frozen_exact FROM dalp_fdw.snapshot_balances WHERE snapshot_id = sid),
  r AS (SELECT p.* FROM s, pg_temp.replay(s.token_address, s.record_time) p),
  t AS (SELECT pg_temp.truth(s.token_address, s.record_time) AS j FROM s),
  tb AS (SELECT key AS account, value AS balance FROM t, jsonb_each_text(t.j->'balances')),
  sb AS (SELECT account, balance_exact::text AS balance FROM b WHERE balance_exact <> 0)
  SELECT (SELECT count(*) FROM ((TABLE b EXCEPT TABLE r) UNION ALL (TABLE r EXCEPT TABLE b)) d),
         (SELECT count(*) FROM ((TABLE sb EXCEPT TABLE tb) UNION ALL (TABLE tb EXCEPT TABLE sb)) d),
         (SELECT s.events_replayed = (t.j->>'events')::bigint
                 AND s.holders = (t.j->>'holders')::bigint
                 AND s.supply_exact = (t.j->>'total_supply_exact')::numeric FROM s, t)
$$;

-- Before the first event: nothing held, no checkpoint.
SELECT min(block_timestamp) AS first_ts FROM dalp.events WHERE token_address = :'hif' \gset
SELECT dalp_fdw.take_snapshot('sim', :'hif', :'first_ts'::timestamptz - interval '1 ms') AS s_before \gset
SELECT events_replayed, holders, supply_exact, supply, record_block, last_event_id, reconciled, mismatches
  FROM dalp_fdw.snapshots WHERE id = :s_before;
SELECT count(*) AS balances FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_before;
SELECT * FROM pg_temp.verdict(:s_before);
-- the first snapshot of a token mirrored all its events
SELECT (SELECT count(*) FROM dalp_fdw.event_log WHERE token_address = :'hif')
     = (SELECT count(*) FROM dalp.events WHERE token_address = :'hif') AS mirrored_all;

-- Mid-history.
SELECT dalp_fdw.take_snapshot('sim', :'hif', '2026-05-01 00:00:00+00') AS s_mid \gset
SELECT record_time, events_replayed, holders, supply_exact, supply, decimals, reconciled, mismatches,
       indexer_status, computed_by = current_user AS computed_by_me
  FROM dalp_fdw.snapshots WHERE id = :s_mid;
SELECT * FROM pg_temp.verdict(:s_mid);
-- the replay checkpoint is the last event at or before the record time,
-- and the record block is its block
SELECT s.last_event_id = e.id AS id, s.last_event_time = e.block_timestamp AS "time",
       s.last_tx_hash = e.transaction_hash AS tx_hash, s.last_block = e.block_number AS block,
       s.last_tx_index = e.tx_index AS tx_index, s.record_block = e.block_number AS record_block
  FROM dalp_fdw.snapshots s,
       LATERAL (SELECT * FROM dalp.events
                 WHERE token_address = s.token_address AND block_timestamp <= s.record_time
                 ORDER BY block_timestamp DESC, block_number DESC, tx_index DESC, id DESC LIMIT 1) e
 WHERE s.id = :s_mid;
-- balance is balance_exact shifted by the decimals, exactly
SELECT bool_and(balance * 10::numeric ^ 6 = balance_exact) AS shifted, bool_and(balance_exact > 0) AS positive
  FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_mid;

-- The same inputs again: identical balances.
SELECT dalp_fdw.take_snapshot('sim', :'hif', '2026-05-01 00:00:00+00') AS s_mid2 \gset
SELECT count(*) AS differences
  FROM ((SELECT account, balance_exact, balance, frozen_exact FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_mid
         EXCEPT SELECT account, balance_exact, balance, frozen_exact FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_mid2)
        UNION ALL
        (SELECT account, balance_exact, balance, frozen_exact FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_mid2
         EXCEPT SELECT account, balance_exact, balance, frozen_exact FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_mid)) d;
SELECT count(*) AS differing_columns
  FROM dalp_fdw.snapshots a, dalp_fdw.snapshots b
 WHERE a.id = :s_mid AND b.id = :s_mid2
   AND (a.record_block, a.last_event_id, a.last_event_time, a.last_tx_hash, a.last_block, a.last_tx_index,
        a.events_replayed, a.holders, a.supply_exact, a.reconciled)
       IS DISTINCT FROM
       (b.record_block, b.last_event_id, b.last_event_time, b.last_tx_hash, b.last_block, b.last_tx_index,
        b.events_replayed, b.holders, b.supply_exact, b.reconciled);

-- A transaction of three events: TokensUnfrozen, TransferCompleted and its
-- ForcedTransfer, in one block. At its timestamp all count, 1 ms before none;
-- the tokens move once (ForcedTransfer is not applied on top of the transfer).
SELECT transaction_hash AS ftx, min(block_timestamp) AS ftx_ts
  FROM dalp.events WHERE token_address = :'hif'
 GROUP BY transaction_hash
HAVING count(*) FILTER (WHERE event_name = 'ForcedTransfer') = 1
   AND count(*) FILTER (WHERE event_name = 'TokensUnfrozen') = 1
 ORDER BY 2 LIMIT 1 \gset
SELECT event_name, tx_index, block_timestamp = :'ftx_ts' AS same_time
  FROM dalp.events WHERE token_address = :'hif' AND transaction_hash = :'ftx' ORDER BY event_name;
SELECT dalp_fdw.take_snapshot('sim', :'hif', :'ftx_ts'::timestamptz - interval '1 ms') AS s_pre \gset
SELECT dalp_fdw.take_snapshot('sim', :'hif', :'ftx_ts') AS s_at \gset
SELECT * FROM pg_temp.verdict(:s_pre);
SELECT * FROM pg_temp.verdict(:s_at);
SELECT b.events_replayed - a.events_replayed AS events_at_that_time,
       (SELECT count(*) FROM dalp.events WHERE token_address = :'hif' AND block_timestamp = :'ftx_ts') AS api_events_at_that_time
  FROM dalp_fdw.snapshots a, dalp_fdw.snapshots b WHERE a.id = :s_pre AND b.id = :s_at;
WITH t AS (SELECT from_address, to_address, amount FROM dalp.events
            WHERE token_address = :'hif' AND transaction_hash = :'ftx' AND event_name = 'TransferCompleted'),
     u AS (SELECT amount FROM dalp.events
            WHERE token_address = :'hif' AND transaction_hash = :'ftx' AND event_name = 'TokensUnfrozen'),
     d AS (SELECT coalesce(y.account, x.account) AS account,
                  coalesce(y.balance_exact, 0) - coalesce(x.balance_exact, 0) AS balance_delta,
                  coalesce(y.frozen_exact, 0) - coalesce(x.frozen_exact, 0) AS frozen_delta
             FROM (SELECT * FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_pre) x
             FULL JOIN (SELECT * FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_at) y USING (account))
SELECT (SELECT balance_delta = -t.amount FROM d WHERE account = t.from_address) AS sender_debited_once,
       (SELECT balance_delta = t.amount FROM d WHERE account = t.to_address) AS receiver_credited_once,
       (SELECT frozen_delta = -u.amount FROM d WHERE account = t.from_address) AS sender_unfrozen,
       (SELECT count(*) FROM d WHERE balance_delta <> 0 OR frozen_delta <> 0) AS accounts_changed
  FROM t, u;

-- Two blocks with the same timestamp, both with events of the token: a
-- record time equal to it takes both; the record block is the later one.
SELECT block_timestamp AS shared_ts, max(block_number) AS later_block
  FROM dalp.events WHERE token_address = :'hif'
 GROUP BY block_timestamp HAVING count(DISTINCT block_number) > 1
 ORDER BY block_timestamp LIMIT 1 \gset
SELECT dalp_fdw.take_snapshot('sim', :'hif', :'shared_ts') AS s_shared \gset
SELECT record_block = :later_block AS record_block_is_later_block,
       events_replayed = (SELECT count(*) FROM dalp.events WHERE token_address = :'hif' AND block_timestamp <= :'shared_ts') AS events
  FROM dalp_fdw.snapshots WHERE id = :s_shared;
SELECT * FROM pg_temp.verdict(:s_shared);

-- Now: the current holders, exactly, and the token's total supply.
SELECT dalp_fdw.take_snapshot('sim', :'hif', now()) AS s_now \gset
SELECT * FROM pg_temp.verdict(:s_now);
SELECT count(*) AS differences_from_holders
  FROM ((SELECT account, balance_exact, balance, frozen_exact FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_now
         EXCEPT SELECT account, balance_exact, balance, frozen * 10::numeric ^ 6 FROM dalp.holders WHERE token_address = :'hif')
        UNION ALL
        (SELECT account, balance_exact, balance, frozen * 10::numeric ^ 6 FROM dalp.holders WHERE token_address = :'hif'
         EXCEPT SELECT account, balance_exact, balance, frozen_exact FROM dalp_fdw.snapshot_balances WHERE snapshot_id = :s_now)) d;
SELECT s.holders = (SELECT count(*) FROM dalp.holders WHERE token_address = :'hif') AS holders,
       s.supply_exact = t.total_supply_exact AS supply_exact, s.supply = t.total_supply AS supply,
       s.reconciled, s.mismatches
  FROM dalp_fdw.snapshots s, dalp.tokens t WHERE s.id = :s_now AND t.address = :'hif';

-- Exact past 10^30 (18 decimals), and into_table gets (account, balance,
-- balance_exact) of every holder; its other columns keep their defaults.
CREATE TEMP TABLE payout (account text PRIMARY KEY, balance numeric, balance_exact numeric, paid boolean DEFAULT false);
SELECT dalp_fdw.take_snapshot('sim', :'acb', now(), into_table => 'payout') AS s_acb \gset
SELECT * FROM pg_temp.verdict(:s_acb);
SELECT count(*) AS rows, max(balance_exact) > 1e30 AS past_1e30, bool_and(NOT paid) AS defaults_kept,
       count(*) = (SELECT holders FROM dalp_fdw.snapshots WHERE id = :s_acb) AS one_per_holder
  FROM payout;
SELECT count(*) AS differences_from_holders
  FROM ((SELECT account, balance, balance_exact FROM payout
         EXCEPT SELECT account, balance, balance_exact FROM dalp.holders WHERE token_address = :'acb')
        UNION ALL
        (SELECT account, balance, balance_exact FROM dalp.holders WHERE token_address = :'acb'
         EXCEPT SELECT account, balance, balance_exact FROM payout)) d;
SELECT account, balance, balance_exact FROM payout ORDER BY balance_exact DESC LIMIT 2;

-- Reconciliation: when /holders disagrees with the replay carried to now,
-- the snapshot says so (after rereading the whole history did not help).
-- Here the simulator answers every holder of HIF with valueExact 1.
SELECT count(*) AS hif_holders FROM dalp.holders WHERE token_address = :'hif' \gset
SELECT pg_temp.sim_faults(format('{"every": {"patch": 1}, "path_prefix": "/api/v2/tokens/%s/holders", "patch": {"valueExact": "1"}}', :'hif'));
SELECT dalp_fdw.take_snapshot('sim', :'hif', '2026-05-01 00:00:00+00') AS s_bad \gset
SELECT pg_temp.sim_faults('{}');
SELECT reconciled, mismatches = :hif_holders AS every_holder_differs
  FROM dalp_fdw.snapshots WHERE id = :s_bad;
-- the balances themselves still come from the events
SELECT * FROM pg_temp.verdict(:s_bad);
SELECT dalp_fdw.take_snapshot('sim', :'hif', '2026-05-01 00:00:00+00') AS s_good \gset
SELECT reconciled FROM dalp_fdw.snapshots WHERE id = :s_good;

-- The health gate. A refused snapshot writes nothing, not even the mirror
-- of a token seen for the first time.
SELECT * FROM dalp_fdw.indexer_health('sim');
SELECT dalp_fdw.indexer_ready('sim');
CREATE TEMP TABLE counts AS
  SELECT (SELECT count(*) FROM dalp_fdw.snapshots) AS snapshots, (SELECT count(*) FROM dalp_fdw.snapshot_balances) AS balances,
         (SELECT count(*) FROM dalp_fdw.event_log) AS events, (SELECT count(*) FROM dalp_fdw.sync_state) AS sync_states;
SELECT count(*) FROM pg_temp.sim('health reindexing');
SELECT * FROM dalp_fdw.indexer_health('sim');
SELECT dalp_fdw.take_snapshot('sim', :'eursc', '2026-05-01 00:00:00+00');
SELECT count(*) FROM pg_temp.sim('health critical');
SELECT pg_temp.sqlstate_of(format('SELECT dalp_fdw.take_snapshot(%L, %L, %L)', 'sim', :'eursc', '2026-05-01 00:00:00+00'));
SELECT count(*) FROM pg_temp.sim('health unknown');
SELECT pg_temp.sqlstate_of(format('SELECT dalp_fdw.take_snapshot(%L, %L, %L)', 'sim', :'eursc', '2026-05-01 00:00:00+00'));
-- degraded is acceptable, but this one is 4800 blocks behind
SELECT count(*) FROM pg_temp.sim('health degraded');
SELECT * FROM dalp_fdw.indexer_health('sim');
SELECT dalp_fdw.indexer_ready('sim') AS ready_at_100, dalp_fdw.indexer_ready('sim', 5000) AS ready_at_5000;
SELECT pg_temp.sqlstate_of(format('SELECT dalp_fdw.take_snapshot(%L, %L, %L)', 'sim', :'eursc', '2026-05-01 00:00:00+00'));
SELECT (SELECT count(*) FROM dalp_fdw.snapshots) = c.snapshots AS no_snapshot,
       (SELECT count(*) FROM dalp_fdw.snapshot_balances) = c.balances AS no_balances,
       (SELECT count(*) FROM dalp_fdw.event_log) = c.events AS no_events,
       (SELECT count(*) FROM dalp_fdw.sync_state) = c.sync_states AS no_sync_state
  FROM counts c;
-- allow_unhealthy takes it anyway, and the snapshot says so
SELECT count(*) FROM pg_temp.sim('health reindexing');
SELECT dalp_fdw.take_snapshot('sim', :'eursc', '2026-05-01 00:00:00+00', allow_unhealthy => true) AS s_unhealthy \gset
SELECT indexer_status, reconciled FROM dalp_fdw.snapshots WHERE id = :s_unhealthy;
SELECT * FROM pg_temp.verdict(:s_unhealthy);
SELECT count(*) FROM pg_temp.sim('health healthy');
SELECT dalp_fdw.indexer_ready('sim');

-- Errors, each with nothing written.
TRUNCATE counts;
INSERT INTO counts
  SELECT (SELECT count(*) FROM dalp_fdw.snapshots), (SELECT count(*) FROM dalp_fdw.snapshot_balances),
         (SELECT count(*) FROM dalp_fdw.event_log), (SELECT count(*) FROM dalp_fdw.sync_state);
SELECT dalp_fdw.take_snapshot('sim', :'hif', '2999-01-01 00:00:00+00');
SELECT dalp_fdw.take_snapshot('sim', '0x00000000000000000000000000000000000000aa', now());
SELECT dalp_fdw.take_snapshot('sim', 'acme', now());
SELECT dalp_fdw.take_snapshot('nosuchserver', :'hif', now());
CREATE FOREIGN DATA WRAPPER other_fdw;
CREATE SERVER other FOREIGN DATA WRAPPER other_fdw;
SELECT dalp_fdw.take_snapshot('other', :'hif', now());
CREATE TEMP TABLE wrong_shape (account text, amount numeric);
SELECT dalp_fdw.take_snapshot('sim', :'hif', now(), into_table => 'wrong_shape');
-- their SQLSTATEs
SELECT left(pg_temp.sqlstate_of(format(stmt, :'hif')), 5) AS sqlstate, stmt
  FROM (VALUES ('SELECT dalp_fdw.take_snapshot(''sim'', %L, ''2999-01-01'')'),
               ('SELECT dalp_fdw.take_snapshot(''sim'', ''0x00000000000000000000000000000000000000aa'', now())'),
               ('SELECT dalp_fdw.take_snapshot(''sim'', ''acme'', now())'),
               ('SELECT dalp_fdw.take_snapshot(''nosuchserver'', %L, now())'),
               ('SELECT dalp_fdw.take_snapshot(''other'', %L, now())'),
               ('SELECT dalp_fdw.take_snapshot(''sim'', %L, now(), into_table => ''wrong_shape'')'),
               ('SELECT dalp_fdw.take_snapshot(''sim'', %L, NULL)'),
               ('SELECT dalp_fdw.indexer_ready(''sim'', -1)')) AS t(stmt);
-- addresses are case-insensitive: a mixed-case one finds the token
SELECT dalp_fdw.take_snapshot('sim', '0X' || upper(substr(:'hif', 3)), '2026-05-01 00:00:00+00') AS s_upper \gset
SELECT token_address = :'hif' AS lowercase, reconciled FROM dalp_fdw.snapshots WHERE id = :s_upper;
SELECT (SELECT count(*) FROM dalp_fdw.snapshots) - c.snapshots AS new_snapshots,
       (SELECT count(*) FROM dalp_fdw.event_log) = c.events AS no_new_events,
       (SELECT count(*) FROM dalp_fdw.sync_state) = c.sync_states AS no_new_sync_state
  FROM counts c;
DROP SERVER other;
DROP FOREIGN DATA WRAPPER other_fdw;

SELECT count(*) AS lines FROM pg_temp.sim('reset');
