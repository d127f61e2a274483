-- ---------------------------------------------------------------------------
-- extension/ledger_audit.sql: auditors, who read one server's rows without
-- using the server
-- ---------------------------------------------------------------------------

-- Adds (audits) or removes a server's auditor, for the server's owner or a
-- superuser only.
CREATE FUNCTION set_auditor(server name, auditor regrole, caller regrole, audits boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dalp_fdw.ledger_server(server, caller);
    IF NOT pg_has_role(caller::oid, (SELECT s.srvowner FROM pg_foreign_server s WHERE s.srvname = set_auditor.server), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of foreign server %', server
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'Only the server''s owner or a superuser decides who audits its snapshots and mirror.';
    END IF;
    IF NOT audits THEN
        DELETE FROM dalp_fdw_ledger.auditors a
         WHERE a.server = set_auditor.server AND a.auditor = pg_get_userbyid(set_auditor.auditor);
        RETURN;
    END IF;
    IF auditor IS NULL THEN
        RAISE EXCEPTION 'auditor must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO dalp_fdw_ledger.auditors (server, auditor, granted_by, granted_at)
    VALUES (server, pg_get_userbyid(auditor), pg_get_userbyid(caller), clock_timestamp())
        ON CONFLICT DO NOTHING;
END
$$;

CREATE FUNCTION grant_audit_impl(server name, auditor regrole, caller regrole)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT dalp_fdw.set_auditor(server, auditor, caller, true) $$;

CREATE FUNCTION revoke_audit_impl(server name, auditor regrole, caller regrole)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT dalp_fdw.set_auditor(server, auditor, caller, false) $$;

CREATE FUNCTION grant_audit(server name, auditor regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_ledger_call'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION grant_audit(name, regrole) IS
    'dalp_fdw: lets a role read the server''s rows of event_log, sync_state, snapshots and snapshot_balances (for its owner or a superuser)';

CREATE FUNCTION revoke_audit(server name, auditor regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'dalp_fdw_ledger_call'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION revoke_audit(name, regrole) IS 'dalp_fdw: undoes grant_audit';

-- Only the entry points are for everyone.
REVOKE ALL ON FUNCTION set_auditor(name, regrole, regrole, boolean), grant_audit_impl(name, regrole, regrole),
                       revoke_audit_impl(name, regrole, regrole)
    FROM PUBLIC;
