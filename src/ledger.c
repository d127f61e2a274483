/*-------------------------------------------------------------------------
 *
 * ledger.c
 *		  Entry points of the ledger functions: run as the extension's owner,
 *		  read the API with the caller's user mapping.
 *
 * take_snapshot, sync_events, indexer_health and import_server_tables read
 * foreign tables of a per-server schema and write the bookkeeping tables.
 * Whoever owns those objects can make the next caller run code of its
 * choosing (a column retyped to a domain whose CHECK calls the owner's
 * function runs that function as the caller), so they belong to the
 * extension's owner and the work is done by SECURITY DEFINER functions
 * "<name>_impl" owned by it.
 * The API must still be read with the caller's user mapping, as the
 * caller's own query would be, yet a definer function's scans run as the
 * owner.  So the SQL function "<name>" is dalp_fdw_ledger_call: it notes
 * the role that called it, calls "<name>_impl" with the same arguments and
 * that role appended, and while the implementation runs, the owner's scans
 * use the caller's mapping (dalp_mapping_override, read by
 * dalp_get_conn_config).  Only the extension's script can bind a function
 * to this symbol (C functions need a superuser), and the implementation
 * must belong to the same extension: a caller can neither choose the
 * function that runs nor the role it acts for.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/pg_proc.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

/* The implementation of one entry point, looked up at its first call. */
typedef struct LedgerImpl
{
	FmgrInfo	flinfo;
	Oid			owner;
} LedgerImpl;

static LedgerImpl *
ledger_impl(FunctionCallInfo fcinfo)
{
	Oid			self = fcinfo->flinfo->fn_oid;
	HeapTuple	tp;
	Form_pg_proc proc;
	Oid			argtypes[FUNC_MAX_ARGS];
	char	   *name;
	Oid			impl;
	LedgerImpl *li;
	Oid			extension;
	bool		ok;

	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(self));
	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for function %u", self);
	proc = (Form_pg_proc) GETSTRUCT(tp);
	if (proc->pronargs >= FUNC_MAX_ARGS)
		elog(ERROR, "function %u has too many arguments", self);
	memcpy(argtypes, proc->proargtypes.values, proc->pronargs * sizeof(Oid));
	argtypes[proc->pronargs] = REGROLEOID;
	name = psprintf("%s_impl", NameStr(proc->proname));
	impl = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
						   CStringGetDatum(name),
						   PointerGetDatum(buildoidvector(argtypes, proc->pronargs + 1)),
						   ObjectIdGetDatum(proc->pronamespace));
	ReleaseSysCache(tp);
	if (!OidIsValid(impl))
		elog(ERROR, "dalp_fdw: function %s(..., regrole) is missing", name);

	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(impl));
	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for function %u", impl);
	proc = (Form_pg_proc) GETSTRUCT(tp);
	extension = getExtensionOfObject(ProcedureRelationId, self);
	ok = proc->prosecdef && OidIsValid(extension) &&
		getExtensionOfObject(ProcedureRelationId, impl) == extension;
	li = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(LedgerImpl));
	li->owner = proc->proowner;
	ReleaseSysCache(tp);
	if (!ok)
		elog(ERROR, "dalp_fdw: function %s is not a SECURITY DEFINER function of the extension", name);
	fmgr_info_cxt(impl, &li->flinfo, fcinfo->flinfo->fn_mcxt);
	return li;
}

PG_FUNCTION_INFO_V1(dalp_fdw_ledger_call);

Datum
dalp_fdw_ledger_call(PG_FUNCTION_ARGS)
{
	LedgerImpl *li = fcinfo->flinfo->fn_extra;
	DalpMappingOverride saved = dalp_mapping_override;
	FunctionCallInfo inner;
	Oid			caller = GetUserId();
	Datum		result;

	if (li == NULL)
		fcinfo->flinfo->fn_extra = li = ledger_impl(fcinfo);

	/* an implementation calling another entry point still acts for its caller */
	if (OidIsValid(saved.caller) && caller == saved.owner)
		caller = saved.caller;

	/*
	 * No collation: the implementation's parameters then have their declared
	 * types' (text the default, name "C"), never the caller's.  A caller's
	 * COLLATE would otherwise decide the owner's comparisons: a
	 * nondeterministic one breaks them, and any one makes the comparisons
	 * with event_log's keys miss its indexes.
	 */
	inner = palloc0(SizeForFunctionCallInfo(PG_NARGS() + 1));
	InitFunctionCallInfoData(*inner, &li->flinfo, PG_NARGS() + 1,
							 InvalidOid, fcinfo->context,
							 fcinfo->resultinfo);
	for (int i = 0; i < PG_NARGS(); i++)
		inner->args[i] = fcinfo->args[i];
	inner->args[PG_NARGS()].value = ObjectIdGetDatum(caller);
	inner->args[PG_NARGS()].isnull = false;

	dalp_mapping_override.owner = li->owner;
	dalp_mapping_override.caller = caller;
	PG_TRY();
	{
		result = FunctionCallInvoke(inner);
	}
	PG_FINALLY();
	{
		dalp_mapping_override = saved;
	}
	PG_END_TRY();

	fcinfo->isnull = inner->isnull;
	pfree(inner);
	return result;
}
