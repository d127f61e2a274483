/*-------------------------------------------------------------------------
 *
 * compat.h
 *		  The calls into PostgreSQL whose form differs between the versions
 *		  dalp_fdw builds on (15, 16 and 17): every version guard is here.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DALP_COMPAT_H
#define DALP_COMPAT_H

#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"
#include "nodes/plannodes.h"

#if PG_VERSION_NUM < 160000
#include "executor/executor.h"
#include "parser/parsetree.h"
#endif

/*
 * The last arguments of create_foreignscan_path, create_foreign_join_path
 * and create_foreign_upper_path, from fdw_private: PostgreSQL 17 put
 * fdw_restrictinfo before it (the join clauses a parameterized path
 * enforces; dalp_fdw's paths enforce none that way).
 */
#if PG_VERSION_NUM >= 170000
#define DALP_FDW_PRIVATE(fdw_private) NIL, (fdw_private)
#else
#define DALP_FDW_PRIVATE(fdw_private) (fdw_private)
#endif

/*
 * The role whose user mapping a scan reads the API with: the one the
 * table's permissions are checked as (a view's owner, for a table read
 * through the view), else the current user.  Planning passes root and
 * baserel, execution the scan's node.  The one place that knows where
 * PostgreSQL keeps it: up to 15 the range table entry's checkAsUser; from
 * 16 (RTEPermissionInfo) RelOptInfo.userid and ForeignScan.checkAsUser.
 */
static inline Oid
dalp_scan_userid(PlannerInfo *root, RelOptInfo *baserel,
				 ForeignScanState *node)
{
	Oid			checkas;

#if PG_VERSION_NUM >= 160000
	if (node != NULL)
		checkas = ((ForeignScan *) node->ss.ps.plan)->checkAsUser;
	else
		checkas = baserel->userid;
#else
	RangeTblEntry *rte;

	if (node != NULL)
	{
		ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
		int			rtindex = fsplan->scan.scanrelid;

		/* a join or upper-relation scan has no scanrelid: use a base relation's */
		if (rtindex == 0)
			rtindex = bms_next_member(fsplan->fs_relids, -1);
		rte = exec_rt_fetch(rtindex, node->ss.ps.state);
	}
	else
		rte = planner_rt_fetch(baserel->relid, root);
	checkas = rte->checkAsUser;
#endif
	return OidIsValid(checkas) ? checkas : GetUserId();
}

#endif							/* DALP_COMPAT_H */
