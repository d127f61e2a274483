-- Scans read every page until the collection ends; results equal what the
-- simulator holds, whatever the page size.
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset

CREATE TEMP TABLE truth AS
SELECT t.address, t.symbol, s.line::jsonb AS tr
  FROM dalp.tokens t, LATERAL pg_temp.sim('truth ' || t.address) s(line);

CREATE TEMP VIEW per_token AS
SELECT token_address, count(*) AS events,
       sum(amount) FILTER (WHERE event_name = 'TransferCompleted') AS transferred,
       sum(amount) FILTER (WHERE event_name = 'MintCompleted') AS minted
  FROM dalp.events GROUP BY token_address;

-- default page size (200)
SELECT t.symbol, p.events,
       p.events = (t.tr->>'events')::bigint AS events_match,
       p.transferred IS NOT DISTINCT FROM (t.tr->'sum_amount_by_event'->>'TransferCompleted')::numeric AS transfers_match,
       p.minted IS NOT DISTINCT FROM (t.tr->'sum_amount_by_event'->>'MintCompleted')::numeric AS mints_match
  FROM truth t JOIN per_token p ON p.token_address = t.address
 ORDER BY t.symbol;

SELECT t.symbol, h.holders = (t.tr->>'holders')::bigint AS holders_match,
       h.supply = (t.tr->>'total_supply_exact')::numeric AS supply_match
  FROM truth t
  JOIN (SELECT token_address, count(*) AS holders, sum(balance_exact) AS supply
          FROM dalp.holders GROUP BY token_address) h ON h.token_address = t.address
 ORDER BY t.symbol;

-- a small page size: many more pages, same answers
ALTER SERVER sim OPTIONS (ADD page_size '7');
SELECT t.symbol, p.events = (t.tr->>'events')::bigint AS events_match,
       p.transferred IS NOT DISTINCT FROM (t.tr->'sum_amount_by_event'->>'TransferCompleted')::numeric AS transfers_match
  FROM truth t JOIN per_token p ON p.token_address = t.address
 ORDER BY t.symbol;

-- one request per page, never a page more than needed, no page cap
ALTER SERVER sim OPTIONS (SET page_size '20');
SELECT count(*) AS lines FROM pg_temp.sim('clear');
SELECT count(*) AS events FROM dalp.events WHERE token_address = :'acb';
SELECT pg_temp.sim_requests() = ceil((tr->>'events')::numeric / 20) AS one_request_per_page,
       pg_temp.sim_requests() > 10 AS many_pages
  FROM truth WHERE symbol = 'ACB30';
SELECT page_limit, count(*) AS requests,
       count(DISTINCT coalesce(page_offset, '0')) = count(*) AS each_offset_once
  FROM (SELECT l->'query'->>'page[limit]' AS page_limit, l->'query'->>'page[offset]' AS page_offset
          FROM pg_temp.sim('log') s(line), jsonb_array_elements(s.line::jsonb) l) q
 GROUP BY page_limit;
ALTER SERVER sim OPTIONS (DROP page_size);
