/*-------------------------------------------------------------------------
 *
 * plan.c
 *		  Planning of DALP foreign scans: which conditions, sort, limit and
 *		  aggregates go to the API, parameterized paths for joins, costing.
 *
 * A condition the API evaluates exactly as PostgreSQL would (deparse.c
 * decides which: dalp_classify_clause and cond_texts()) is removed from
 * the local filter; the others stay as local filters.  LIMIT, OFFSET and
 * aggregates are pushed only when no local filter remains.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"
#include "compat.h"

#include <math.h>

#include "access/table.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "foreign/fdwapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "optimizer/tlist.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/pg_locale.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

/* Default row counts when the API is not asked (use_remote_estimate off). */
#define DEFAULT_ROWS_PER_TOKEN		1000.0
#define DEFAULT_ROWS_COLLECTION		50.0
#define DEFAULT_TOKEN_COUNT			20.0

/* Planner state of a base relation, in baserel->fdw_private. */
typedef struct DalpRelInfo
{
	const DalpResourceDef *res;
	Oid			relid;
	Oid			userid;			/* whose user mapping a remote estimate uses */
	char	   *table_token;	/* token_address table option, or NULL */
	DalpConnConfig conf;
	List	   *conds;			/* DalpCond * of baserestrictinfo */
	List	   *cond_values;	/* Expr *, parallel to conds */
	List	   *local_clauses;	/* RestrictInfos not pushed exactly */
	List	   *filter_clauses; /* RestrictInfos that narrow the rows of a
								 * token (all but the token path) */
	List	   *attnums;		/* attributes the query reads */
	bool		single_stream;	/* one token (or none needed): one ordered
								 * stream of rows */
	bool		item;			/* a single-item lookup */
	double		remote_rows;	/* rows the API is expected to return */
} DalpRelInfo;

/* An upper relation we may push down, in output_rel->fdw_private. */
typedef struct DalpUpperInfo
{
	UpperRelationKind stage;
	RelOptInfo *baserel;
} DalpUpperInfo;

/*
 * A join of two DALP tables read as one scan, in joinrel->fdw_private: the
 * outer table first, whose rows name tokens, then the inner, a per-token
 * table, for each of those tokens at once (scan.c).
 */
typedef struct DalpJoinInfo
{
	RelOptInfo *outerrel;
	RelOptInfo *innerrel;
	Var		   *outer_key;		/* the outer column holding token addresses */
	Var		   *inner_key;		/* the inner table's token_address */
	List	   *quals;			/* RestrictInfos checked on the joined rows */
} DalpJoinInfo;

static ForeignScan *make_join_plan(PlannerInfo *root, RelOptInfo *joinrel,
								   List *tlist, Plan *outer_plan,
								   DalpScanMode mode, const char *facet);

/* What an upper path computes: its ForeignPath's fdw_private. */
enum DalpUpperPrivateIndex
{
	DALP_UPPER_MODE,			/* Integer: DalpScanMode */
	DALP_UPPER_SORT,			/* String: sort parameter or "" */
	DALP_UPPER_FACET			/* String: facet field or "" */
};

/* Does this list pin the scan to exactly one token? */
static bool
pins_one_token(List *conds)
{
	ListCell   *lc;

	foreach(lc, conds)
	{
		DalpCond   *cond = (DalpCond *) lfirst(lc);

		if (cond->role == DALP_COND_TOKEN && cond->op == DALP_OP_EQ)
			return true;
	}
	return false;
}

static bool
has_role(List *conds, DalpCondRole role)
{
	ListCell   *lc;

	foreach(lc, conds)
		if (((DalpCond *) lfirst(lc))->role == role)
			return true;
	return false;
}

/* Attributes the query reads: target list and every restriction clause. */
static List *
used_attnums(RelOptInfo *baserel)
{
	Bitmapset  *attrs = NULL;
	List	   *result = NIL;
	ListCell   *lc;
	int			x = -1;

	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &attrs);
	foreach(lc, baserel->baserestrictinfo)
		pull_varattnos((Node *) ((RestrictInfo *) lfirst(lc))->clause,
					   baserel->relid, &attrs);
	foreach(lc, baserel->joininfo)
		pull_varattnos((Node *) ((RestrictInfo *) lfirst(lc))->clause,
					   baserel->relid, &attrs);

	/* a whole-row reference needs every column */
	if (bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs))
	{
		for (int i = 1; i <= baserel->max_attr; i++)
			result = lappend_int(result, i);
		return result;
	}
	while ((x = bms_next_member(attrs, x)) >= 0)
	{
		AttrNumber	attnum = x + FirstLowInvalidHeapAttributeNumber;

		if (attnum > 0)
			result = lappend_int(result, attnum);
	}
	return result;
}

/*
 * meta.total for the constant part of the conditions: one request of
 * page[limit]=1 (use_remote_estimate).  -1 when it cannot be asked.
 */
static double
remote_estimate(PlannerInfo *root, DalpRelInfo *info)
{
	DalpConnConfig conf;
	List	   *token_values = NIL;
	char	   *filters;
	char	   *path;
	int64		total;

	if (!dalp_cond_constant_filters(info->res, info->conds, info->cond_values,
									info->table_token, &token_values, &filters))
		return -1;
	if (dalp_resource_is_per_token(info->res) && list_length(token_values) != 1)
		return -1;
	dalp_get_conn_config(info->conf.serverid, info->userid, &conf);
	path = dalp_build_count_path(info->res,
								 token_values ? strVal(linitial(token_values)) : NULL,
								 filters);
	total = dalp_fetch_total(&conf, path);
	return total < 0 ? -1 : (double) total;
}

/*
 * GetForeignRelSize
 *		Estimate the rows of a foreign table's scan; the API is asked for a
 *		count when use_remote_estimate is on.
 */
void
dalp_get_foreign_rel_size(PlannerInfo *root, RelOptInfo *baserel,
						  Oid foreigntableid)
{
	DalpRelInfo *info = palloc0(sizeof(DalpRelInfo));
	ForeignTable *table = GetForeignTable(foreigntableid);
	Relation	rel;
	int			nbindings;
	List	   *all_attnums = NIL;
	double		rows = -1;

	baserel->fdw_private = info;
	info->relid = foreigntableid;
	info->userid = dalp_scan_userid(root, baserel, NULL);
	info->res = dalp_table_resource(foreigntableid, &info->table_token);
	dalp_get_server_config(table->serverid, &info->conf);
	dalp_apply_table_options(foreigntableid, &info->conf);
	info->attnums = used_attnums(baserel);

	/*
	 * Validate the mapping of every column, read by this query or not, so
	 * that a table with a column the catalog does not know fails at its
	 * first query whatever that query reads.
	 */
	rel = table_open(foreigntableid, NoLock);
	for (int i = 1; i <= RelationGetNumberOfAttributes(rel); i++)
		all_attnums = lappend_int(all_attnums, i);
	(void) dalp_make_bindings(rel, info->res, all_attnums, NIL, &nbindings);
	table_close(rel, NoLock);

	dalp_classify_clauses(baserel, info->res, info->relid,
						  baserel->baserestrictinfo, false,
						  &info->conds, &info->cond_values, &info->local_clauses,
						  &info->filter_clauses);
	info->item = has_role(info->conds, DALP_COND_ITEM);
	info->single_stream = (!dalp_resource_is_per_token(info->res) ||
							info->table_token != NULL ||
							pins_one_token(info->conds)) &&
		!dalp_conds_may_split(info->conds, info->cond_values);

	if (info->conf.use_remote_estimate && !info->item)
		rows = remote_estimate(root, info);
	if (rows < 0)
	{
		if (info->item)
			rows = 1.0;
		else if (!info->res->is_collection)
			rows = 2.0;
		else if (dalp_resource_is_per_token(info->res))
			rows = DEFAULT_ROWS_PER_TOKEN *
				(info->single_stream ? 1.0 : DEFAULT_TOKEN_COUNT) *
				clauselist_selectivity(root, info->filter_clauses, 0,
									   JOIN_INNER, NULL);
		else
			rows = DEFAULT_ROWS_COLLECTION *
				clauselist_selectivity(root, info->filter_clauses, 0,
									   JOIN_INNER, NULL);
	}
	info->remote_rows = clamp_row_est(rows);
	baserel->rows = clamp_row_est(info->remote_rows *
								  clauselist_selectivity(root, info->local_clauses,
														 0, JOIN_INNER, NULL));
	baserel->tuples = info->remote_rows;
}

/*
 * Cost of reading remote_rows in streams: a fixed start, one request per
 * page (plus the token listing of a fan-out), a per-row decoding cost and
 * the local filter.
 */
static void
estimate_cost(DalpRelInfo *info, RelOptInfo *baserel, double remote_rows,
			  double streams, Cost *startup, Cost *total)
{
	double		pages = Max(ceil(remote_rows / info->conf.page_size), streams);

	*startup = info->conf.fdw_startup_cost + info->conf.fdw_request_cost;
	*total = *startup + info->conf.fdw_request_cost * (pages - 1) +
		(info->conf.fdw_tuple_cost + cpu_tuple_cost +
		 baserel->baserestrictcost.per_tuple) * remote_rows;
}

/*
 * The API sort that yields these pathkeys, or NULL.  The first pathkey
 * picks the sort field and direction; any further ones must be the API's
 * tie-breakers in order (events: block_number, then tx_index, in the same
 * direction), so ties come out as PostgreSQL would order them.
 */
static char *
sort_for_pathkeys(RelOptInfo *baserel, DalpRelInfo *info, List *pathkeys)
{
	const DalpColumnDef *primary = NULL;
	bool		descending = false;
	int			tie = 0;
	ListCell   *lc;

	foreach(lc, pathkeys)
	{
		PathKey    *pk = (PathKey *) lfirst(lc);
		EquivalenceClass *ec = pk->pk_eclass;
		const DalpColumnDef *col = NULL;
		bool		desc = pk->pk_strategy == BTGreaterStrategyNumber;
		ListCell   *lm;

		if (ec->ec_has_volatile)
			return NULL;
		foreach(lm, ec->ec_members)
		{
			EquivalenceMember *em = (EquivalenceMember *) lfirst(lm);

			if (bms_equal(em->em_relids, baserel->relids) &&
				(col = dalp_column_of_var(em->em_expr, baserel, info->res,
										  info->relid)) != NULL)
				break;
		}
		if (col == NULL || (primary == NULL && col->sort == NULL) ||
			pk->pk_nulls_first != desc ||
			pk->pk_opfamily != lookup_type_cache(col->typid,
												 TYPECACHE_BTREE_OPFAMILY)->btree_opf)
			return NULL;
		/* the API orders strings by code point, PostgreSQL by the collation */
		if (col->typid == TEXTOID && !dalp_collation_is_c(ec->ec_collation))
			return NULL;

		if (primary == NULL)
		{
			primary = col;
			descending = desc;
			continue;
		}
		if (desc != descending)
			return NULL;
		/* skip the primary in the tie chain */
		while (tie < lengthof(info->res->sort_ties) && info->res->sort_ties[tie] &&
			   strcmp(info->res->sort_ties[tie], primary->name) == 0)
			tie++;
		if (tie >= lengthof(info->res->sort_ties) || info->res->sort_ties[tie] == NULL ||
			strcmp(info->res->sort_ties[tie], col->name) != 0)
			return NULL;
		tie++;
	}
	if (primary == NULL)
		return NULL;
	return psprintf("%s%s", descending ? "-" : "", primary->sort);
}

/*
 * Is this equivalence member a column the API looks up by equality (the
 * token path, a filter, an item key or a search key)?
 */
static bool
ec_member_is_key(PlannerInfo *root, RelOptInfo *rel, EquivalenceClass *ec,
				 EquivalenceMember *em, void *arg)
{
	DalpRelInfo *info = (DalpRelInfo *) arg;
	const DalpColumnDef *col = dalp_column_of_var(em->em_expr, rel, info->res,
												  info->relid);

	return col != NULL && dalp_column_accepts(info->res, col, DALP_OP_EQ);
}

/*
 * Add a path parameterized by required_outer: a nested loop passes the
 * outer row's values, and each rescan sends them (a join on token_address
 * reads just that token; on transaction_hash, a filtered lookup).
 */
static void
add_param_path(PlannerInfo *root, RelOptInfo *baserel, DalpRelInfo *info,
			   Relids required_outer)
{
	ParamPathInfo *ppi = get_baserel_parampathinfo(root, baserel, required_outer);
	List	   *conds;
	List	   *values;
	List	   *local;
	List	   *filters;
	bool		one_token;
	double		rows;
	Cost		startup;
	Cost		total;

	dalp_classify_clauses(baserel, info->res, info->relid, ppi->ppi_clauses,
						  true, &conds, &values, &local, &filters);
	one_token = info->single_stream || pins_one_token(conds);
	rows = clamp_row_est(ppi->ppi_rows);
	estimate_cost(info, baserel, rows,
				  one_token ? 1 : DEFAULT_TOKEN_COUNT + 1, &startup, &total);
	add_path(baserel, (Path *)
			 create_foreignscan_path(root, baserel, NULL, rows, startup, total,
									 NIL, required_outer, NULL,
									 DALP_FDW_PRIVATE(NIL)));
}

/* Parameterized paths for the join clauses the API can take. */
static void
add_join_paths(PlannerInfo *root, RelOptInfo *baserel, DalpRelInfo *info)
{
	List	   *clauses;
	List	   *outer_sets = NIL;
	ListCell   *lc;

	clauses = generate_implied_equalities_for_column(root, baserel,
													 ec_member_is_key,
													 info,
													 baserel->lateral_referencers);
	foreach(lc, baserel->joininfo)
	{
		RestrictInfo *rinfo = (RestrictInfo *) lfirst(lc);
		Expr	   *value;
		DalpCond   *cond;

		if (!join_clause_is_movable_to(rinfo, baserel))
			continue;
		cond = dalp_classify_clause(baserel, info->res, info->relid,
									rinfo->clause, true, &value);
		if (cond && cond->op == DALP_OP_EQ)
			clauses = lappend(clauses, rinfo);
	}

	/* one path per set of outer relations: it takes all their join clauses */
	foreach(lc, clauses)
	{
		RestrictInfo *rinfo = (RestrictInfo *) lfirst(lc);
		Relids		required_outer;
		ListCell   *lo;
		bool		seen = false;

		required_outer = bms_difference(bms_union(rinfo->clause_relids,
												  baserel->lateral_relids),
										baserel->relids);
		if (bms_is_empty(required_outer))
			continue;
		foreach(lo, outer_sets)
			seen |= bms_equal((Relids) lfirst(lo), required_outer);
		if (seen)
			continue;
		outer_sets = lappend(outer_sets, required_outer);
		add_param_path(root, baserel, info, required_outer);
	}
}

/*
 * GetForeignPaths
 *		Create the access paths of a scan of a foreign table: sorted,
 *		parameterized by a nested loop's outer token, and plain.
 */
void
dalp_get_foreign_paths(PlannerInfo *root, RelOptInfo *baserel,
					   Oid foreigntableid)
{
	DalpRelInfo *info = (DalpRelInfo *) baserel->fdw_private;
	double		streams = info->single_stream ? 1 : DEFAULT_TOKEN_COUNT + 1;
	Cost		startup;
	Cost		total;
	char	   *sort;

	estimate_cost(info, baserel, info->remote_rows, streams, &startup, &total);
	add_path(baserel, (Path *)
			 create_foreignscan_path(root, baserel, NULL, baserel->rows,
									 startup, total, NIL, NULL, NULL,
									 DALP_FDW_PRIVATE(NIL)));

	/* the ORDER BY, when the API can produce it */
	if (dalp_pushdown_enabled && root->query_pathkeys != NIL &&
		info->single_stream && info->res->is_collection && !info->item &&
		(sort = sort_for_pathkeys(baserel, info, root->query_pathkeys)) != NULL)
		add_path(baserel, (Path *)
				 create_foreignscan_path(root, baserel, NULL, baserel->rows,
										 startup, total, root->query_pathkeys,
										 NULL, NULL,
										 DALP_FDW_PRIVATE(list_make1(makeString(sort)))));

	add_join_paths(root, baserel, info);
}

/* ForeignScan.fdw_private, in the order of enum DalpScanPrivateIndex. */
static List *
scan_private(PlannerInfo *root, DalpRelInfo *info, List *conds,
			 List *attnums, const char *sort, DalpScanMode mode,
			 const char *facet, int limit_flags)
{
	List	   *result = NIL;

	result = lappend(result, makeString(pstrdup(info->res->name)));
	result = lappend(result, dalp_conds_to_private(conds));
	result = lappend(result, attnums);
	result = lappend(result, makeString(pstrdup(sort)));
	result = lappend(result, makeInteger(mode));
	result = lappend(result, makeInteger(info->relid));
	result = lappend(result, makeString(pstrdup(facet)));
	result = lappend(result, makeInteger(limit_flags));
	/* 0: no LIMIT above, not a cursor's fast-start plan (see scan.c) */
	result = lappend(result, makeBoolean(root->tuple_fraction == 0.0));
	/* a join sets these (make_join_plan) */
	result = lappend(result, NIL);
	result = lappend(result, makeInteger(0));
	return result;
}

static ForeignScan *
make_base_plan(PlannerInfo *root, RelOptInfo *baserel, ForeignPath *best_path,
			   List *tlist, List *scan_clauses, Plan *outer_plan)
{
	DalpRelInfo *info = (DalpRelInfo *) baserel->fdw_private;
	List	   *conds;
	List	   *values;
	List	   *local;
	List	   *filters;
	List	   *fdw_private;
	char	   *sort = "";

	/* scan_clauses include the join clauses of a parameterized path */
	dalp_classify_clauses(baserel, info->res, info->relid, scan_clauses, true,
						  &conds, &values, &local, &filters);
	if (best_path->fdw_private != NIL)
		sort = strVal(linitial(best_path->fdw_private));

	fdw_private = scan_private(root, info, conds, info->attnums, sort,
							   DALP_MODE_ROWS, "", 0);

	return make_foreignscan(tlist,
							extract_actual_clauses(local, false),
							baserel->relid,
							values,
							fdw_private,
							NIL, NIL,
							outer_plan);
}

/* The scan tuple of an upper pushdown: the Vars (and count) the target needs. */
static List *
upper_scan_tlist(List *tlist, List **attnums)
{
	List	   *vars = pull_var_clause((Node *) tlist, PVC_INCLUDE_AGGREGATES);
	List	   *scan_tlist = NIL;
	ListCell   *lc;

	*attnums = NIL;
	foreach(lc, vars)
	{
		Node	   *node = (Node *) lfirst(lc);

		if (tlist_member((Expr *) node, scan_tlist))
			continue;
		scan_tlist = lappend(scan_tlist,
							 makeTargetEntry((Expr *) node,
											 list_length(scan_tlist) + 1,
											 NULL, false));
		*attnums = lappend_int(*attnums,
							   IsA(node, Var) ? ((Var *) node)->varattno : 0);
	}
	return scan_tlist;
}

static ForeignScan *
make_upper_plan(PlannerInfo *root, RelOptInfo *upperrel,
				ForeignPath *best_path, List *tlist, Plan *outer_plan)
{
	DalpUpperInfo *uinfo = (DalpUpperInfo *) upperrel->fdw_private;
	DalpRelInfo *info;
	List	   *path_private = best_path->fdw_private;
	int			mode = intVal(list_nth(path_private, DALP_UPPER_MODE));
	List	   *values;
	List	   *scan_tlist;
	List	   *attnums;
	List	   *fdw_private;
	int			limit_flags = 0;

	if (IS_JOIN_REL(uinfo->baserel))
		return make_join_plan(root, uinfo->baserel, tlist, outer_plan, mode,
							  strVal(list_nth(path_private, DALP_UPPER_FACET)));
	info = (DalpRelInfo *) uinfo->baserel->fdw_private;
	values = list_copy(info->cond_values);
	scan_tlist = upper_scan_tlist(tlist, &attnums);

	if (mode == DALP_MODE_ROWS)
	{
		/* LIMIT and OFFSET values follow the condition values */
		if (root->parse->limitCount)
		{
			values = lappend(values, root->parse->limitCount);
			limit_flags |= DALP_LIMIT_COUNT;
		}
		if (root->parse->limitOffset)
		{
			values = lappend(values, root->parse->limitOffset);
			limit_flags |= DALP_LIMIT_OFFSET;
		}
	}

	fdw_private = scan_private(root, info, info->conds, attnums,
							   strVal(list_nth(path_private, DALP_UPPER_SORT)),
							   mode,
							   strVal(list_nth(path_private, DALP_UPPER_FACET)),
							   limit_flags);

	return make_foreignscan(tlist, NIL, 0, values, fdw_private,
							scan_tlist, NIL, outer_plan);
}

/*
 * A join's scan tuple: the two token columns, then the Vars of the join's
 * target and of the conditions checked on the joined rows; attnums of
 * each table by position (0 where the position is the other table's).
 */
static List *
join_scan_tlist(RelOptInfo *joinrel, DalpJoinInfo *ji, List *quals,
				List **outer_attnums, List **inner_attnums)
{
	List	   *scan_tlist;
	ListCell   *lc;

	scan_tlist = add_to_flat_tlist(NIL, list_make2(ji->outer_key, ji->inner_key));
	scan_tlist = add_to_flat_tlist(scan_tlist,
								   pull_var_clause((Node *) joinrel->reltarget->exprs, 0));
	scan_tlist = add_to_flat_tlist(scan_tlist, pull_var_clause((Node *) quals, 0));
	*outer_attnums = *inner_attnums = NIL;
	foreach(lc, scan_tlist)
	{
		Var		   *var = (Var *) ((TargetEntry *) lfirst(lc))->expr;
		bool		outer = var->varno == ji->outerrel->relid;

		*outer_attnums = lappend_int(*outer_attnums, outer ? var->varattno : 0);
		*inner_attnums = lappend_int(*inner_attnums, outer ? 0 : var->varattno);
	}
	return scan_tlist;
}

/*
 * The plan of a join (see DalpJoinInfo), or of a count over one (mode
 * DALP_MODE_COUNT or DALP_MODE_FACETS): fdw_private describes the inner
 * table and holds the outer one's (DALP_PRIVATE_OUTER); fdw_exprs are the
 * outer table's condition values, then the inner one's.
 */
static ForeignScan *
make_join_plan(PlannerInfo *root, RelOptInfo *joinrel, List *tlist,
			   Plan *outer_plan, DalpScanMode mode, const char *facet)
{
	DalpJoinInfo *ji = (DalpJoinInfo *) joinrel->fdw_private;
	DalpRelInfo *oi = (DalpRelInfo *) ji->outerrel->fdw_private;
	DalpRelInfo *ii = (DalpRelInfo *) ji->innerrel->fdw_private;
	List	   *quals = NIL;
	List	   *outer_attnums = NIL;
	List	   *inner_attnums;
	List	   *scan_tlist;
	List	   *fdw_private;
	int			key_position = 1;

	if (mode == DALP_MODE_ROWS)
	{
		quals = extract_actual_clauses(ji->quals, false);
		scan_tlist = join_scan_tlist(joinrel, ji, quals, &outer_attnums,
									 &inner_attnums);
	}
	else
	{
		/* the count (and grouped column), then the outer rows' token */
		scan_tlist = upper_scan_tlist(tlist, &inner_attnums);
		for (int i = 0; i < list_length(scan_tlist); i++)
			outer_attnums = lappend_int(outer_attnums, 0);
		key_position = list_length(scan_tlist) + 1;
		scan_tlist = lappend(scan_tlist,
							 makeTargetEntry((Expr *) ji->outer_key,
											 key_position, NULL, true));
		inner_attnums = lappend_int(inner_attnums, 0);
		outer_attnums = lappend_int(outer_attnums, ji->outer_key->varattno);
	}
	fdw_private = scan_private(root, ii, ii->conds, inner_attnums, "", mode,
							   facet, 0);
	lfirst(list_nth_cell(fdw_private, DALP_PRIVATE_OUTER)) =
		scan_private(root, oi, oi->conds, outer_attnums, "", DALP_MODE_ROWS,
					 "", 0);
	lfirst(list_nth_cell(fdw_private, DALP_PRIVATE_OUTER_KEY)) =
		makeInteger(key_position);

	return make_foreignscan(tlist, quals, 0,
							list_concat(list_copy(oi->cond_values), ii->cond_values),
							fdw_private, scan_tlist, NIL, outer_plan);
}

/*
 * GetForeignPlan
 *		Create the ForeignScan plan node of the chosen path, its fdw_private
 *		saying what the executor sends.
 */
ForeignScan *
dalp_get_foreign_plan(PlannerInfo *root, RelOptInfo *foreignrel,
					  Oid foreigntableid, ForeignPath *best_path,
					  List *tlist, List *scan_clauses, Plan *outer_plan)
{
	if (IS_UPPER_REL(foreignrel))
		return make_upper_plan(root, foreignrel, best_path, tlist, outer_plan);
	if (IS_JOIN_REL(foreignrel))
		return make_join_plan(root, foreignrel, tlist, outer_plan,
							  DALP_MODE_ROWS, "");
	return make_base_plan(root, foreignrel, best_path, tlist, scan_clauses,
						  outer_plan);
}

/* Does this column hold token addresses (a per-token table's key)? */
static bool
column_is_token_key(const DalpResourceDef *res, const DalpColumnDef *col)
{
	return col->kind == DALP_VALUE_TOKEN ||
		(res->token_listing &&
		 strcmp(col->name, res->item_key_column) == 0);
}

/*
 * Is the clause "outer token column = inner token_address" (text equality
 * by a deterministic collation, so that it means the same token)?  Sets
 * the two Vars.
 */
static bool
is_token_join_clause(Expr *clause, RelOptInfo *o, RelOptInfo *i,
					 Var **outer_key, Var **inner_key)
{
	OpExpr	   *op = (OpExpr *) clause;
	Var		   *l;
	Var		   *r;
	const DalpColumnDef *ocol;
	const DalpColumnDef *icol;

	if (!IsA(clause, OpExpr) || op->opno != TextEqualOperator ||
		list_length(op->args) != 2 || !OidIsValid(op->inputcollid) ||
		!get_collation_isdeterministic(op->inputcollid))
		return false;
	l = (Var *) strip_implicit_coercions(linitial(op->args));
	r = (Var *) strip_implicit_coercions(lsecond(op->args));
	if (!IsA(l, Var) || !IsA(r, Var))
		return false;
	if (l->varno == i->relid)
	{
		Var		   *t = l;

		l = r;
		r = t;
	}
	ocol = dalp_column_of_var((Expr *) l, o,
							  ((DalpRelInfo *) o->fdw_private)->res,
							  ((DalpRelInfo *) o->fdw_private)->relid);
	icol = dalp_column_of_var((Expr *) r, i,
							  ((DalpRelInfo *) i->fdw_private)->res,
							  ((DalpRelInfo *) i->fdw_private)->relid);
	if (ocol == NULL || icol == NULL || l->vartype != TEXTOID ||
		r->vartype != TEXTOID || icol->kind != DALP_VALUE_TOKEN ||
		!column_is_token_key(((DalpRelInfo *) o->fdw_private)->res, ocol))
		return false;
	*outer_key = l;
	*inner_key = r;
	return true;
}

/* Only plain columns of the two tables: what the scan tuple can hold. */
static bool
only_plain_columns(Node *node, Relids relids)
{
	ListCell   *lc;

	foreach(lc, pull_var_clause(node, PVC_INCLUDE_PLACEHOLDERS))
	{
		Var		   *var = (Var *) lfirst(lc);

		if (!IsA(var, Var) || var->varattno <= 0 ||
			!bms_is_member(var->varno, relids))
			return false;
	}
	return true;
}

/*
 * Can the join be read with o first, naming the tokens, and i, a per-token
 * table with no token of its own, read for each of them?  Among the join
 * clauses there must be o's token column = i.token_address; the others,
 * and i's conditions the API cannot evaluate, are checked on the joined
 * rows.  o's rows must all be kept: a condition on them that the API
 * cannot evaluate keeps the join local.
 */
static DalpJoinInfo *
join_info(RelOptInfo *joinrel, RelOptInfo *o, RelOptInfo *i,
		  List *restrictlist)
{
	DalpRelInfo *oi = (DalpRelInfo *) o->fdw_private;
	DalpRelInfo *ii = (DalpRelInfo *) i->fdw_private;
	DalpJoinInfo *ji;
	ListCell   *lc;

	if (o->reloptkind != RELOPT_BASEREL || i->reloptkind != RELOPT_BASEREL ||
		oi == NULL || ii == NULL || oi->local_clauses != NIL ||
		!dalp_resource_is_per_token(ii->res) || ii->table_token != NULL ||
		pins_one_token(ii->conds))
		return NULL;
	ji = palloc0(sizeof(DalpJoinInfo));
	ji->outerrel = o;
	ji->innerrel = i;
	foreach(lc, restrictlist)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);

		if (ji->outer_key == NULL &&
			is_token_join_clause(rinfo->clause, o, i, &ji->outer_key,
								 &ji->inner_key))
			continue;
		ji->quals = lappend(ji->quals, rinfo);
	}
	ji->quals = list_concat(ji->quals, ii->local_clauses);
	if (ji->outer_key == NULL ||
		!only_plain_columns((Node *) joinrel->reltarget->exprs, joinrel->relids) ||
		!only_plain_columns((Node *) extract_actual_clauses(ji->quals, false),
							joinrel->relids))
		return NULL;
	return ji;
}

/*
 * The cost of a join (DalpJoinInfo): the outer scan, then the inner
 * table's pages for each token, concurrency at a time.
 */
static void
estimate_join_cost(RelOptInfo *joinrel, DalpJoinInfo *ji, Cost *startup,
				   Cost *total)
{
	DalpRelInfo *oi = (DalpRelInfo *) ji->outerrel->fdw_private;
	DalpRelInfo *ii = (DalpRelInfo *) ji->innerrel->fdw_private;
	bool		outer_per_token = dalp_resource_is_per_token(oi->res);
	double		tokens;
	double		rows_per_token = ii->remote_rows / DEFAULT_TOKEN_COUNT;
	double		requests;
	Cost		outer_startup;
	Cost		outer_total;
	QualCost	quals;

	estimate_cost(oi, ji->outerrel, oi->remote_rows,
				  oi->single_stream ? 1 : DEFAULT_TOKEN_COUNT + 1,
				  &outer_startup, &outer_total);
	/* a tokens row names one token; a per-token table's rows, their tokens */
	tokens = !outer_per_token ? ji->outerrel->rows :
		oi->single_stream ? 1 : DEFAULT_TOKEN_COUNT;
	requests = tokens * Max(1.0, ceil(rows_per_token / ii->conf.page_size));
	cost_qual_eval(&quals, extract_actual_clauses(ji->quals, false), NULL);

	*startup = outer_total + ii->conf.fdw_request_cost;
	*total = outer_total +
		ii->conf.fdw_request_cost * ceil(requests / ii->conf.concurrency) +
		(ii->conf.fdw_tuple_cost + cpu_tuple_cost) * tokens * rows_per_token +
		(quals.per_tuple + cpu_tuple_cost) * joinrel->rows;
}

/*
 * GetForeignJoinPaths
 *		Add a path for a join of two DALP tables of one server on
 *		token_address (tokens to any per-token table, or two per-token
 *		tables), read as one scan (DalpJoinInfo) instead of a nested loop
 *		whose inner scans run one outer token after the other.  Inner joins
 *		only, and only with dalp_fdw.pushdown on.
 */
void
dalp_get_foreign_join_paths(PlannerInfo *root, RelOptInfo *joinrel,
							RelOptInfo *outerrel, RelOptInfo *innerrel,
							JoinType jointype, JoinPathExtraData *extra)
{
	DalpJoinInfo *ji;
	DalpJoinInfo *other;
	Cost		startup;
	Cost		total;
	Cost		other_startup;
	Cost		other_total;

	/* considered once per join relation, in whichever order it comes */
	if (joinrel->fdw_private != NULL || jointype != JOIN_INNER ||
		!dalp_pushdown_enabled || root->parse->rowMarks != NIL ||
		!bms_is_empty(joinrel->lateral_relids))
		return;
	/* either table may name the tokens of the other: the cheaper way */
	ji = join_info(joinrel, outerrel, innerrel, extra->restrictlist);
	other = join_info(joinrel, innerrel, outerrel, extra->restrictlist);
	if (ji)
		estimate_join_cost(joinrel, ji, &startup, &total);
	if (other)
		estimate_join_cost(joinrel, other, &other_startup, &other_total);
	if (other && (ji == NULL || other_total < total))
	{
		ji = other;
		startup = other_startup;
		total = other_total;
	}
	if (ji == NULL)
		return;
	joinrel->fdw_private = ji;
	add_path(joinrel, (Path *)
			 create_foreign_join_path(root, joinrel, NULL, joinrel->rows,
									  startup, total, NIL, NULL, NULL,
									  DALP_FDW_PRIVATE(NIL)));
}

/* Can everything about the base relation be left to the API? */
static bool
base_fully_pushed(DalpRelInfo *info)
{
	return dalp_pushdown_enabled && info->local_clauses == NIL &&
		info->res->is_collection && !info->item;
}

/*
 * count(*), alone or grouped by a facet field, from meta.total or
 * meta.facets: one request of page[limit]=1 per token.
 */
static void
add_aggregate_path(PlannerInfo *root, RelOptInfo *input_rel,
				   RelOptInfo *grouped_rel, GroupPathExtraData *extra)
{
	RelOptInfo *rel = input_rel;	/* the table whose rows are counted */
	DalpJoinInfo *ji = NULL;
	DalpRelInfo *info;
	Query	   *parse = root->parse;
	PathTarget *target = grouped_rel->reltarget;
	const DalpColumnDef *facet = NULL;
	double		rows = 1;
	double		streams;
	ListCell   *lc;
	Cost		startup;
	Cost		total;

	/*
	 * A join (DalpJoinInfo) with nothing to check on its rows: the inner
	 * table's rows, each counted once per outer row of its token (scan.c).
	 */
	if (IS_JOIN_REL(input_rel))
	{
		ji = (DalpJoinInfo *) input_rel->fdw_private;
		if (ji == NULL || ji->quals != NIL)
			return;
		rel = ji->innerrel;
	}
	info = (DalpRelInfo *) rel->fdw_private;
	streams = info->single_stream ? 1 : DEFAULT_TOKEN_COUNT + 1;
	if (!base_fully_pushed(info) || parse->groupingSets || parse->hasWindowFuncs ||
		extra->havingQual != NULL || list_length(parse->groupClause) > 1)
		return;
	/* GROUP BY one facet column: the streams' counts add up (scan.c) */
	if (parse->groupClause != NIL)
	{
		SortGroupClause *sgc = linitial(parse->groupClause);
		TargetEntry *tle = get_sortgroupclause_tle(sgc, parse->targetList);

		facet = dalp_column_of_var(tle->expr, rel, info->res, info->relid);
		if (facet == NULL || !facet->facet)
			return;

		/*
		 * The API counts by exact string.  Grouping by another type's
		 * equality (a "char" column keeps the first byte, bool reads "yes"
		 * and "true" alike) would split a group in two.
		 */
		if (sgc->eqop != TextEqualOperator ||
			!get_collation_isdeterministic(exprCollation((Node *) tle->expr)))
			return;
		rows = 10;
	}
	foreach(lc, target->exprs)
	{
		Expr	   *expr = (Expr *) lfirst(lc);

		if (IsA(expr, Aggref))
		{
			Aggref	   *agg = (Aggref *) expr;

			if (agg->aggfnoid != F_COUNT_ || agg->aggfilter ||
				agg->aggdistinct || agg->aggorder)
				return;
		}
		else if (contain_var_clause((Node *) expr) &&
				 (facet == NULL ||
				  dalp_column_of_var(expr, rel, info->res, info->relid) != facet))
			return;
	}

	/* one request per stream; the rows are the groups, no more than the rows */
	rows = Min(rows, info->remote_rows);
	if (ji)
		startup = total = input_rel->cheapest_total_path->total_cost;
	else
		estimate_cost(info, rel, rows, streams, &startup, &total);

	/*
	 * A count asks each stream for one item where a scan fetches every row,
	 * so it never costs more than the scan it replaces: priced below the
	 * cheapest one, so that the planner's fuzz does not take the two for
	 * equal (and keep the scan, sorted for the grouping, instead).
	 */
	total = Min(total, input_rel->cheapest_total_path->total_cost * 0.95);
	startup = Min(startup, total);
	add_path(grouped_rel, (Path *)
			 create_foreign_upper_path(root, grouped_rel, target, rows,
									   startup, total, NIL, NULL,
									   DALP_FDW_PRIVATE(list_make3(makeInteger(facet ? DALP_MODE_FACETS : DALP_MODE_COUNT),
																   makeString(""),
																   makeString(facet ? pstrdup(facet->filter) : "")))));
}

/*
 * LIMIT/OFFSET as page[limit]/page[offset]: only for a single stream whose
 * conditions and whole ORDER BY the API takes, so the API's first rows are
 * the query's first rows.
 */
static void
add_final_path(PlannerInfo *root, RelOptInfo *input_rel, RelOptInfo *final_rel,
			   FinalPathExtraData *extra)
{
	DalpUpperInfo *uinfo = (DalpUpperInfo *) input_rel->fdw_private;
	RelOptInfo *baserel = input_rel;
	DalpRelInfo *info;
	Query	   *parse = root->parse;
	char	   *sort = "";
	double		rows;
	Cost		startup;
	Cost		total;
	ListCell   *lc;

	if (!extra->limit_needed || parse->hasTargetSRFs || parse->rowMarks)
		return;
	if (IS_UPPER_REL(input_rel))
	{
		if (uinfo == NULL || uinfo->stage != UPPERREL_ORDERED)
			return;
		baserel = uinfo->baserel;
	}
	if (baserel->reloptkind != RELOPT_BASEREL || baserel->fdw_private == NULL)
		return;
	info = (DalpRelInfo *) baserel->fdw_private;
	if (!base_fully_pushed(info) || !info->single_stream)
		return;
	if (parse->sortClause)
	{
		sort = sort_for_pathkeys(baserel, info, root->sort_pathkeys);
		if (sort == NULL)
			return;
	}
	if ((parse->limitCount && !dalp_is_pushable_value((Expr *) parse->limitCount, baserel, false)) ||
		(parse->limitOffset && !dalp_is_pushable_value((Expr *) parse->limitOffset, baserel, false)))
		return;
	/* every Var the target needs must be a plain column */
	foreach(lc, pull_var_clause((Node *) root->upper_targets[UPPERREL_FINAL]->exprs, 0))
		if (((Var *) lfirst(lc))->varattno <= 0)
			return;

	/* the final relation's plan reads the base relation */
	((DalpUpperInfo *) final_rel->fdw_private)->baserel = baserel;

	rows = Min(info->remote_rows, Max(extra->count_est, 1));
	estimate_cost(info, baserel, rows, 1, &startup, &total);
	/* cheaper than the same scan under a Limit node: fewer rows requested */
	total -= info->conf.fdw_startup_cost / 10;

	add_path(final_rel, (Path *)
			 create_foreign_upper_path(root, final_rel,
									   root->upper_targets[UPPERREL_FINAL],
									   rows, startup, total,
									   parse->sortClause ? root->sort_pathkeys : NIL,
									   NULL,
									   DALP_FDW_PRIVATE(list_make3(makeInteger(DALP_MODE_ROWS),
																   makeString(sort),
																   makeString("")))));
}

/*
 * GetForeignUpperPaths
 *		Add paths that have the API compute a grouping stage (count(*), by a
 *		facet) or the final stage's LIMIT and OFFSET.
 */
void
dalp_get_foreign_upper_paths(PlannerInfo *root, UpperRelationKind stage,
							 RelOptInfo *input_rel, RelOptInfo *output_rel,
							 void *extra)
{
	DalpUpperInfo *uinfo;

	if (output_rel->fdw_private != NULL || !dalp_pushdown_enabled)
		return;
	if (stage != UPPERREL_GROUP_AGG && stage != UPPERREL_ORDERED &&
		stage != UPPERREL_FINAL)
		return;

	uinfo = palloc0(sizeof(DalpUpperInfo));
	uinfo->stage = stage;
	uinfo->baserel = input_rel;
	output_rel->fdw_private = uinfo;

	switch (stage)
	{
		case UPPERREL_GROUP_AGG:
			if (input_rel->reloptkind == RELOPT_BASEREL || IS_JOIN_REL(input_rel))
				add_aggregate_path(root, input_rel, output_rel,
								   (GroupPathExtraData *) extra);
			break;
		case UPPERREL_ORDERED:
			/* the base relation's sorted paths already serve ORDER BY */
			if (input_rel->reloptkind != RELOPT_BASEREL)
				output_rel->fdw_private = NULL;
			break;
		case UPPERREL_FINAL:
			add_final_path(root, input_rel, output_rel,
						   (FinalPathExtraData *) extra);
			break;
		default:
			break;
	}
}

