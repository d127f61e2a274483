-- A join of two DALP tables on token_address read as one scan: the outer
-- table's request first, then the inner table's for each of its tokens,
-- in flight together.  Every join returns what it returns with nothing
-- pushed down (dalp_fdw.pushdown = off: nested loops, hash joins).
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
SELECT address AS hif FROM dalp.tokens WHERE symbol = 'HIF' \gset
SELECT address AS pn26 FROM dalp.tokens WHERE symbol = 'PN26' \gset

-- EXPLAIN shows both requests
EXPLAIN (VERBOSE, COSTS OFF)
SELECT t.symbol, h.account, h.balance FROM dalp.tokens t JOIN dalp.holders h ON h.token_address = t.address
 WHERE t.type = 'bond';
-- a condition the API cannot evaluate is checked on the joined rows
EXPLAIN (VERBOSE, COSTS OFF)
SELECT t.symbol, e.id FROM dalp.tokens t JOIN dalp.events e ON e.token_address = t.address
 WHERE t.symbol <> 'HIF' AND e.event_name = 'TransferCompleted' AND e.amount > 1000;
-- holders to events: the outer reads every token, the inner each token of its rows
EXPLAIN (VERBOSE, COSTS OFF)
SELECT h.account, e.id FROM dalp.holders h JOIN dalp.events e ON e.token_address = h.token_address
 WHERE h.balance > 1000000 AND e.event_name = 'Redeemed';
-- a count over a join: one page[limit]=1 request per token, times its outer rows
EXPLAIN (VERBOSE, COSTS OFF)
SELECT e.event_name, count(*) FROM dalp.tokens t JOIN dalp.events e ON e.token_address = t.address
 WHERE t.type IN ('bond', 'fund') GROUP BY e.event_name;
-- not read as one scan: a condition on the outer table the API cannot
-- evaluate (it would decide which tokens to read), and an outer join
EXPLAIN (VERBOSE, COSTS OFF)
SELECT t.symbol, h.account FROM dalp.tokens t JOIN dalp.holders h ON h.token_address = t.address
 WHERE t.decimals > 2;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT t.symbol, h.account FROM dalp.tokens t LEFT JOIN dalp.holders h ON h.token_address = t.address;

-- an inner single-item lookup, and an inner search key, for each token
SELECT account AS agent FROM dalp.holders WHERE token_address = :'acb' ORDER BY balance DESC LIMIT 1 \gset
EXPLAIN (VERBOSE, COSTS OFF)
SELECT t.symbol, h.balance FROM dalp.tokens t JOIN dalp.holders h ON h.token_address = t.address
 WHERE h.account = :'agent';
SELECT pg_temp.same_rows(format('SELECT t.symbol, h.balance FROM dalp.tokens t
 JOIN dalp.holders h ON h.token_address = t.address WHERE h.account = %L', :'agent'));
SELECT pg_temp.same_rows(format('SELECT t.symbol, e.id FROM dalp.tokens t
 JOIN dalp.events e ON e.token_address = t.address WHERE t.type = %L AND e.involves_address = %L', 'bond', :'agent'));

-- the requests: the listing, then one per token of the outer rows
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT t.symbol, count(*) FROM dalp.tokens t JOIN dalp.token_metadata m ON m.token_address = t.address
 WHERE t.type = 'bond' GROUP BY t.symbol ORDER BY t.symbol;
SELECT regexp_replace(l->>'path', '0x[0-9a-f]{40}', '{token}') AS path, count(*) AS requests
  FROM pg_temp.sim('log') s(line), jsonb_array_elements(s.line::jsonb) l GROUP BY 1 ORDER BY 1;

-- Many joins, each compared with the unpushed plan: every outer table and
-- condition below with every per-token inner table, with and without a
-- condition on it, as rows and as a count.
CREATE TEMP TABLE outers (outer_table text, outer_key text, outer_where text, few_tokens bool);
INSERT INTO outers VALUES
  ('tokens', 'address', '', false),
  ('tokens', 'address', $$o.type = 'bond'$$, true),
  ('tokens', 'address', $$o.symbol IN ('ACB30', 'PN26', 'CSL')$$, true),
  ('tokens', 'address', $$o.created_at > '2026-03-01'$$, true),
  ('tokens', 'address', $$o.name ILIKE '%o%'$$, false),
  ('tokens', 'address', $$o.decimals > 2$$, false),
  ('holders', 'token_address', $$o.balance > 1000000$$, false),
  ('holders', 'token_address', $$o.balance > 1000000 AND o.token_address IN ('$$ || :'acb' || $$', '$$ || :'pn26' || $$')$$, true);
CREATE TEMP TABLE inners (inner_table text, inner_cols text, inner_where text);
INSERT INTO inners VALUES
  ('holders', 'i.account, i.balance_exact', ''),
  ('holders', 'i.account, i.balance_exact', 'i.balance > 100'),
  ('events', 'i.id, i.amount', $$i.event_name = 'Redeemed'$$),
  ('events', 'i.id, i.amount', $$i.event_name IN ('MintCompleted', 'BurnCompleted') AND i.amount > 1000$$),
  ('token_features', 'i.feature_type_id, i.address', ''),
  ('token_features', 'i.feature_type_id, i.address', $$i.feature_type_id <> 'historical-balances'$$),
  ('token_metadata', 'i.key, i.value', ''),
  ('token_metadata', 'i.key, i.value', $$i.key = 'isin'$$),
  ('compliance_modules', 'i.module_address, i.type_id', ''),
  ('compliance_modules', 'i.module_address, i.type_id', 'i.parameters IS NOT NULL'),
  ('transfer_approvals', 'i.id, i.amount_exact, i.status', ''),
  ('transfer_approvals', 'i.id, i.amount_exact, i.status', $$i.status = 'pending'$$);
CREATE TEMP TABLE joins AS
SELECT format('SELECT %s FROM dalp.%I o JOIN dalp.%I i ON i.token_address = o.%I%s',
              CASE WHEN count THEN 'count(*)' ELSE 'o.' || outer_key || ' AS outer_key, ' || inner_cols END,
              outer_table, inner_table, outer_key,
              CASE WHEN outer_where || inner_where = '' THEN ''
                   ELSE ' WHERE ' || concat_ws(' AND ', nullif(outer_where, ''), nullif(inner_where, '')) END) AS q
  FROM outers, inners, (VALUES (false), (true)) c(count)
 -- unpushed, these read every event (or holder) once per outer row: minutes
 WHERE (few_tokens OR inner_table <> 'events')
   AND NOT (outer_table = 'holders' AND inner_table = 'holders' AND inner_where = '');
-- does the plan read the join as one scan?
CREATE FUNCTION pg_temp.one_scan(q text) RETURNS bool LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
    IF line LIKE '%{each o.%' OR line LIKE '%{each i.%' THEN RETURN true; END IF;
  END LOOP;
  RETURN false;
END $$;
CREATE TEMP TABLE results AS SELECT q, pg_temp.one_scan(q) AS one_scan, pg_temp.same_rows(q) AS result FROM joins;
SELECT count(*) AS joins, count(*) FILTER (WHERE one_scan) AS read_as_one_scan,
       count(*) FILTER (WHERE result NOT LIKE '% rows, same') AS different,
       count(*) FILTER (WHERE result NOT LIKE '0 rows, %') AS with_rows
  FROM results;
SELECT q, result FROM results WHERE result NOT LIKE '% rows, same';
-- the joins not read as one scan: those with a condition on the outer
-- tokens that the API cannot evaluate
SELECT DISTINCT regexp_replace(q, '.* WHERE ', '') AS condition FROM results WHERE NOT one_scan;
