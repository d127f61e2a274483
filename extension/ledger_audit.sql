-- ---------------------------------------------------------------------------
-- extension/ledger_audit.sql: auditors, who read one server's rows without
-- using the server
-- ---------------------------------------------------------------------------

-- Adds (audits) or removes a server's auditor, for the server's owner or a
-- superuser only, through the server its name's rows are kept for
-- (ledger_writer). A grant records the role and the server as they are now
-- (see readable_servers): granted again, a grant that no longer held (its
-- role or server dropped and made anew, say, or restored into another
-- cluster) is made to hold for the present ones.
CREATE FUNCTION set_auditor(server name, auditor regrole, caller regrole, audits boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w record := dalp_fdw.ledger_writer(server, caller);
BEGIN
    IF NOT pg_has_role(caller::oid, w.owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of foreign server %', server
              USING ERRCODE = 'insufficient_privilege',
                    DETAIL = 'Only the server''s owner or a superuser decides who audits its snapshots and mirror.';
    END IF;
    -- By OID too: the grant of a role since renamed.
    IF NOT audits THEN
        DELETE FROM dalp_fdw_ledger.auditors a
         WHERE a.server = set_auditor.server
           AND (a.auditor = pg_get_userbyid(set_auditor.auditor) OR a.auditor_oid = set_auditor.auditor::oid);
        RETURN;
    END IF;
    IF auditor IS NULL THEN
        RAISE EXCEPTION 'auditor must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO dalp_fdw_ledger.auditors AS a
           (server, auditor, granted_by, granted_at, auditor_oid, server_oid, server_owner)
    VALUES (server, pg_get_userbyid(auditor), pg_get_userbyid(caller), clock_timestamp(), auditor, w.srv, w.owner)
        ON CONFLICT ON CONSTRAINT auditors_pkey DO UPDATE
       SET granted_by = excluded.granted_by, granted_at = excluded.granted_at, auditor_oid = excluded.auditor_oid,
           server_oid = excluded.server_oid, server_owner = excluded.server_owner
     WHERE (a.auditor_oid, a.server_oid, a.server_owner)
           IS DISTINCT FROM (excluded.auditor_oid, excluded.server_oid, excluded.server_owner);
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
