/*-------------------------------------------------------------------------
 *
 * dalp_fdw.c
 *		  The module: PG_MODULE_MAGIC, _PG_init and the FDW handler, which
 *		  gives PostgreSQL the callbacks of plan.c, scan.c and import.c.
 *		  Nothing in dalp_fdw calls into this file.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "foreign/fdwapi.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

/*
 * Module load: the dalp_fdw.pushdown setting, a check of the option table,
 * and the shared memory request (with the library preloaded).
 */
void
_PG_init(void)
{
	DefineCustomBoolVariable("dalp_fdw.pushdown",
							 "Sends filters, sort, limit and aggregates to the DALP API.",
							 "When off, only the token path is pushed down; every query returns the same rows either way.",
							 &dalp_pushdown_enabled,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("dalp_fdw");
	dalp_check_option_rows();
	dalp_shared_register();
}

/*
 * The foreign-data wrapper handler: the FdwRoutine with the callbacks.
 */
PG_FUNCTION_INFO_V1(dalp_fdw_handler);

Datum
dalp_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = dalp_get_foreign_rel_size;
	routine->GetForeignPaths = dalp_get_foreign_paths;
	routine->GetForeignPlan = dalp_get_foreign_plan;
	routine->GetForeignJoinPaths = dalp_get_foreign_join_paths;
	routine->GetForeignUpperPaths = dalp_get_foreign_upper_paths;
	routine->BeginForeignScan = dalp_begin_foreign_scan;
	routine->IterateForeignScan = dalp_iterate_foreign_scan;
	routine->ReScanForeignScan = dalp_rescan_foreign_scan;
	routine->EndForeignScan = dalp_end_foreign_scan;
	routine->ExplainForeignScan = dalp_explain_foreign_scan;
	routine->ImportForeignSchema = dalp_import_foreign_schema;

	PG_RETURN_POINTER(routine);
}
