-- Scans that read many pages stay consistent while events arrive: no event
-- returned twice, none of those present at the start missed.
\i test/regress_setup.sql
SELECT address AS acb FROM dalp.tokens WHERE symbol = 'ACB30' \gset
SELECT set_config('dalp.acb', :'acb', false) IS NOT NULL AS ok;
ALTER SERVER sim OPTIONS (ADD page_size '50');

CREATE TEMP TABLE seen (id text);
-- read q row by row; after `first` rows, the simulator appends `appends` events
CREATE FUNCTION pg_temp.read_while_appending(q text, first int, appends int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE c refcursor; r record; n int := 0;
BEGIN
  TRUNCATE seen;
  OPEN c FOR EXECUTE q;
  LOOP
    FETCH c INTO r;
    EXIT WHEN NOT FOUND;
    INSERT INTO seen VALUES (r.id);
    n := n + 1;
    IF n = first THEN
      PERFORM count(*) FROM pg_temp.sim(format('append %s %s', current_setting('dalp.acb'), appends));
    END IF;
  END LOOP;
  CLOSE c;
END $$;

-- ascending (the default read order): new events land on the last page
CREATE TEMP TABLE before AS SELECT id FROM dalp.events WHERE token_address = :'acb';
SELECT pg_temp.read_while_appending(format('SELECT id FROM dalp.events WHERE token_address = %L', :'acb'), 60, 30);
SELECT count(*) - count(DISTINCT id) AS duplicates,
       (SELECT count(*) FROM before b WHERE b.id NOT IN (SELECT id FROM seen)) AS missed,
       count(*) - (SELECT count(*) FROM before) AS new_events_read
  FROM seen;

-- newest first: appended events shift every page; repeats are dropped
TRUNCATE before;
INSERT INTO before SELECT id FROM dalp.events WHERE token_address = :'acb';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM dalp.events WHERE token_address = :'acb' ORDER BY block_timestamp DESC;
SELECT pg_temp.read_while_appending(format('SELECT id FROM dalp.events WHERE token_address = %L ORDER BY block_timestamp DESC', :'acb'), 120, 20);
SELECT count(*) - count(DISTINCT id) AS duplicates,
       (SELECT count(*) FROM before b WHERE b.id NOT IN (SELECT id FROM seen)) AS missed
  FROM seen;

ALTER SERVER sim OPTIONS (DROP page_size);
SELECT count(*) AS lines FROM pg_temp.sim('reset');
