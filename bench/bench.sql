-- bench/bench.sql: the SQL side of bench/run.sh.  Loaded into the
-- benchmark's throwaway cluster, as a superuser (pg_read_file of /proc).

CREATE EXTENSION IF NOT EXISTS dalp_fdw;
CREATE EXTENSION IF NOT EXISTS plpython3u;

-- The PL/Python peer: what a user writes without dalp_fdw.  It pages
-- through a token's events with urllib and json, one request at a time as
-- such code usually does, and returns the rows; SQL sums them.
CREATE FUNCTION bench_py_events(base_url text, api_key text, token text,
                                page_size int DEFAULT 200)
RETURNS TABLE (id text, amount numeric)
LANGUAGE plpython3u AS $$
import json
import urllib.request

offset = 0
while True:
    url = ("%s/api/v2/tokens/%s/events?page%%5Blimit%%5D=%d&page%%5Boffset%%5D=%d"
           "&sort=blockTimestamp" % (base_url, token, page_size, offset))
    request = urllib.request.Request(url, headers={"X-Api-Key": api_key})
    with urllib.request.urlopen(request, timeout=30) as response:
        page = json.load(response)
    for event in page["data"]:
        amount = None
        for value in event.get("values", []):
            if value["name"] == "amount":
                amount = value["value"]
                break
        yield (event["id"], amount)
    if "next" not in page.get("links", {}):
        break
    offset += len(page["data"])
$$;

-- CPU time (user + system) of a process so far, in ms, from /proc.
CREATE FUNCTION bench_cpu_ms(pid int, ticks_per_s int)
RETURNS float8 LANGUAGE sql AS $$
  SELECT (split_part(s, ' ', 14)::float8 + split_part(s, ' ', 15)::float8)
         * 1000 / ticks_per_s
    FROM pg_read_file('/proc/' || pid || '/stat') AS s
$$;

-- Peak resident memory of this backend so far (VmHWM), in kB.
CREATE FUNCTION bench_backend_hwm_kb()
RETURNS int LANGUAGE sql AS $$
  SELECT substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s*(\d+)')::int
$$;

-- Run query `runs` times.  Per run: wall time, this backend's CPU time and
-- the simulator's CPU time (so that results.md can show who was busy), and
-- the query's result, to check that every run read the same data.
CREATE FUNCTION bench_time(query text, runs int, sim_pid int, ticks_per_s int)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
  ms float8[] := '{}';
  cpu float8[] := '{}';
  sim float8[] := '{}';
  results text[] := '{}';
  result text;
  t0 timestamptz;
  c0 float8;
  s0 float8;
BEGIN
  FOR i IN 1..runs LOOP
    c0 := bench_cpu_ms(pg_backend_pid(), ticks_per_s);
    s0 := bench_cpu_ms(sim_pid, ticks_per_s);
    t0 := clock_timestamp();
    EXECUTE query INTO result;
    ms := ms || 1000 * extract(epoch FROM clock_timestamp() - t0)::float8;
    cpu := cpu || bench_cpu_ms(pg_backend_pid(), ticks_per_s) - c0;
    sim := sim || bench_cpu_ms(sim_pid, ticks_per_s) - s0;
    results := results || result;
  END LOOP;
  RETURN json_build_object('ms', ms, 'cpu_ms', cpu, 'sim_cpu_ms', sim,
                           'results', results);
END
$$;
