-- ---------------------------------------------------------------------------
-- extension/ledger_access.sql: what the ledger functions check before they
-- read: the caller's server, the foreign tables they read it through, the
-- indexer's health, the token address
-- ---------------------------------------------------------------------------


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

-- The OID and owner of a dalp_fdw server the caller may use and whose
-- name's ledger rows are kept for it, or an error: run before every write
-- of those rows. The first write through a server records it
-- (dalp_fdw_ledger.servers); later ones need the server the record holds
-- for (recorded_server), and record it anew: a restored server's new OID,
-- a server's new owner.
CREATE FUNCTION ledger_writer(server name, caller regrole, OUT srv oid, OUT owner oid)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    srv := dalp_fdw.ledger_server(server, caller);
    owner := (SELECT s.srvowner FROM pg_foreign_server s WHERE s.oid = srv);
    INSERT INTO dalp_fdw_ledger.servers (server, server_oid, server_owner) VALUES (server, srv, owner)
        ON CONFLICT DO NOTHING;
    UPDATE dalp_fdw_ledger.servers p SET server_oid = srv, server_owner = owner
     WHERE p.server = ledger_writer.server
       AND dalp_fdw_ledger.recorded_server(p.server, p.server_oid, p.server_owner) = srv
       AND (p.server_oid, p.server_owner) IS DISTINCT FROM (srv, owner);
    IF NOT EXISTS (SELECT 1 FROM dalp_fdw_ledger.servers p
                    WHERE p.server = ledger_writer.server AND p.server_oid = srv AND p.server_owner = owner) THEN
        RAISE EXCEPTION 'server "%" is not the server whose snapshots and mirror are kept under its name', server
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'They were written through another dalp_fdw server of that name, of another owner, since dropped or renamed; a server made anew under its name by another role neither reads nor writes them.',
                    HINT = format('If they are this server''s, a superuser gives them to it: UPDATE dalp_fdw_ledger.servers p SET server_oid = s.oid, server_owner = s.srvowner FROM pg_foreign_server s WHERE s.srvname = p.server AND p.server = %L; else deletes them (README, "Rows of a dropped server").', server);
    END IF;
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
CREATE FUNCTION check_server_tables(server name, srv oid)
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

-- Imports the foreign tables the ledger functions read from a server, those
-- missing (all of them, into a new schema, at the server's first use), and
-- returns their schema.
CREATE FUNCTION import_server_tables_impl(server name, caller regrole)
RETURNS name
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    srv oid := dalp_fdw.ledger_server(server, caller);
    nsp name := 'dalp_fdw_srv_' || srv;
    missing text[] := dalp_fdw.check_server_tables(server, srv);
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
        IF cardinality(dalp_fdw.check_server_tables(server, srv)) > 0 THEN
            RAISE;
        END IF;
    END;
    RETURN nsp;
END
$$;

CREATE FUNCTION import_server_tables(server name)
RETURNS name
AS 'MODULE_PATHNAME', 'dalp_fdw_ledger_call'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION import_server_tables(name) IS
    'dalp_fdw: imports what is missing of the server''s foreign tables used by take_snapshot, sync_events and indexer_health (into a schema owned by the extension''s owner) and returns their schema';

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
    nsp := dalp_fdw.import_server_tables_impl(server, caller);
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

-- Only the entry points are for everyone: the rest run as the extension's
-- owner, or serve those that do.
REVOKE ALL ON FUNCTION trusted_role(oid), ledger_server(name, regrole), ledger_writer(name, regrole),
                       check_server_tables(name, oid),
                       import_server_tables_impl(name, regrole), indexer_health_impl(name, bigint, regrole)
    FROM PUBLIC;
