/*-------------------------------------------------------------------------
 *
 * plan.c
 *		  Planning of DALP foreign scans: which conditions go to the API,
 *		  costing, and the plan's private data.
 *
 * Every condition stays in the plan as a local filter too, so what the API
 * is sent only narrows the rows fetched: the API may compare addresses
 * case-insensitively, or match a superset (iLike for LIKE), and the local
 * recheck keeps the result exactly what PostgreSQL would compute.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include <math.h>

#include "access/table.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "foreign/fdwapi.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

/* Default row counts when the API is not asked (use_remote_estimate off). */
#define DEFAULT_ROWS_PER_TOKEN		1000.0
#define DEFAULT_ROWS_COLLECTION		50.0
#define DEFAULT_TOKEN_COUNT			20.0

/* Planner state kept in baserel->fdw_private. */
typedef struct DalpRelInfo
{
	const DalpResourceDef *res;
	char	   *table_token;	/* token_address table option, or NULL */
	DalpConnConfig conf;
	List	   *conds;			/* DalpCond * */
	List	   *cond_values;	/* Expr *, parallel to conds */
	List	   *attnums;		/* attributes the query reads */
	bool		pinned;			/* a token is known (option or condition) */
	bool		item;			/* a single-item lookup */
} DalpRelInfo;

const char *
dalp_op_name(int op)
{
	switch (op)
	{
		case DALP_OP_EQ:
			return "eq";
		case DALP_OP_NE:
			return "ne";
		case DALP_OP_GT:
			return "gt";
		case DALP_OP_GTE:
			return "gte";
		case DALP_OP_LT:
			return "lt";
		case DALP_OP_LTE:
			return "lte";
		case DALP_OP_ILIKE:
			return "iLike";
		case DALP_OP_IN:
			return "inArray";
		case DALP_OP_NOT_IN:
			return "notInArray";
	}
	return "eq";
}

/* SQL operator name → API operator, for a Var on the left. */
static int
op_from_sql_name(const char *name)
{
	if (strcmp(name, "=") == 0)
		return DALP_OP_EQ;
	if (strcmp(name, "<>") == 0)
		return DALP_OP_NE;
	if (strcmp(name, ">") == 0)
		return DALP_OP_GT;
	if (strcmp(name, ">=") == 0)
		return DALP_OP_GTE;
	if (strcmp(name, "<") == 0)
		return DALP_OP_LT;
	if (strcmp(name, "<=") == 0)
		return DALP_OP_LTE;
	if (strcmp(name, "~~") == 0 || strcmp(name, "~~*") == 0)
		return DALP_OP_ILIKE;
	return 0;
}

/*
 * A value the executor can compute before the scan starts: no Var, nothing
 * volatile, no subplan.  Constants, $n parameters and stable expressions
 * such as now() - interval '1 day' all qualify.
 */
static bool
is_pushable_value(Expr *expr)
{
	return !contain_var_clause((Node *) expr) &&
		!contain_volatile_functions((Node *) expr) &&
		!contain_subplans((Node *) expr) &&
		!contain_agg_clause((Node *) expr) &&
		!contain_window_function((Node *) expr);
}

/* The catalog column of a plain Var of this relation, or NULL. */
static const DalpColumnDef *
column_of_var(Expr *expr, RelOptInfo *baserel, Oid relid,
			  const DalpResourceDef *res)
{
	Var		   *var;
	char	   *attname;

	while (IsA(expr, RelabelType))
		expr = ((RelabelType *) expr)->arg;
	if (!IsA(expr, Var))
		return NULL;
	var = (Var *) expr;
	if (var->varno != baserel->relid || var->varlevelsup != 0 ||
		var->varattno <= 0)
		return NULL;
	/* a json_path option remaps the column: the catalog's filter no longer applies */
	if (dalp_column_json_path(relid, var->varattno) != NULL)
		return NULL;
	attname = get_attname(relid, var->varattno, false);
	return dalp_column_lookup(res, attname);
}

/* Only built-in operators: a user-defined "=" may mean anything. */
static int
pushable_operator(Oid opno, bool commuted)
{
	if (opno >= FirstNormalObjectId)
		return 0;
	if (commuted)
	{
		opno = get_commutator(opno);
		if (!OidIsValid(opno))
			return 0;
	}
	return op_from_sql_name(get_opname(opno));
}

static DalpCondRole
role_for(const DalpResourceDef *res, const DalpColumnDef *col, int op)
{
	if (col->kind == DALP_VALUE_TOKEN)
		return DALP_COND_TOKEN;
	if (col->kind == DALP_VALUE_SEARCH_ECHO)
		return DALP_COND_SEARCH;
	if (res->item_key_column && op == DALP_OP_EQ &&
		strcmp(res->item_key_column, col->name) == 0)
		return DALP_COND_ITEM;
	return DALP_COND_FILTER;
}

/*
 * Does the API take this (column, operator)?  The token path and search
 * keys are always sent (they select what exists at all); filters only when
 * dalp_fdw.pushdown is on.
 */
static bool
column_accepts(const DalpResourceDef *res, const DalpColumnDef *col, int op)
{
	switch (role_for(res, col, op))
	{
		case DALP_COND_TOKEN:
			return op == DALP_OP_EQ || op == DALP_OP_IN;
		case DALP_COND_SEARCH:
			return op == DALP_OP_EQ;
		case DALP_COND_ITEM:
			return dalp_pushdown_enabled;
		case DALP_COND_FILTER:
			return dalp_pushdown_enabled && (col->ops & op) != 0 &&
				col->filter != NULL;
	}
	return false;
}

static void
add_cond(DalpRelInfo *info, const DalpColumnDef *col, int op, Expr *value)
{
	DalpCond   *cond = palloc(sizeof(DalpCond));

	cond->column = col;
	cond->op = op;
	cond->role = role_for(info->res, col, op);
	info->conds = lappend(info->conds, cond);
	info->cond_values = lappend(info->cond_values, value);
	if (cond->role == DALP_COND_TOKEN)
		info->pinned = true;
	if (cond->role == DALP_COND_ITEM)
		info->item = true;
}

/* Record what a restriction clause lets us send; the clause stays local. */
static void
classify_clause(RelOptInfo *baserel, Oid relid, DalpRelInfo *info,
				Expr *clause)
{
	if (IsA(clause, OpExpr) && list_length(((OpExpr *) clause)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) clause;
		Expr	   *left = linitial(op->args);
		Expr	   *right = lsecond(op->args);
		const DalpColumnDef *col;
		bool		commuted = false;
		int			apiop;

		col = column_of_var(left, baserel, relid, info->res);
		if (col == NULL)
		{
			col = column_of_var(right, baserel, relid, info->res);
			right = left;
			commuted = true;
		}
		if (col == NULL || !is_pushable_value(right) ||
			exprType((Node *) right) != col->typid)
			return;
		apiop = pushable_operator(op->opno, commuted);
		/* LIKE patterns with an escape are not the API's iLike */
		if (apiop == DALP_OP_ILIKE &&
			(commuted || !IsA(right, Const) ||
			 strchr(TextDatumGetCString(((Const *) right)->constvalue), '\\')))
			return;
		if (apiop != 0 && column_accepts(info->res, col, apiop))
			add_cond(info, col, apiop, right);
	}
	else if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) clause;
		const DalpColumnDef *col;
		Expr	   *values = lsecond(saop->args);
		int			sqlop = pushable_operator(saop->opno, false);
		int			apiop;

		col = column_of_var(linitial(saop->args), baserel, relid, info->res);
		if (col == NULL || !is_pushable_value(values) ||
			get_element_type(exprType((Node *) values)) != col->typid)
			return;
		if (saop->useOr && sqlop == DALP_OP_EQ)
			apiop = DALP_OP_IN;
		else if (!saop->useOr && sqlop == DALP_OP_NE)
			apiop = DALP_OP_NOT_IN;
		else
			return;
		if (column_accepts(info->res, col, apiop))
			add_cond(info, col, apiop, values);
	}
	else if (IsA(clause, Var) || IsA(clause, BoolExpr))
	{
		/* "WHERE is_frozen" and "WHERE NOT is_frozen" */
		bool		negated = IsA(clause, BoolExpr) &&
			((BoolExpr *) clause)->boolop == NOT_EXPR;
		Expr	   *arg = negated ? linitial(((BoolExpr *) clause)->args) : clause;
		const DalpColumnDef *col;

		if (IsA(clause, BoolExpr) && !negated)
			return;
		col = column_of_var(arg, baserel, relid, info->res);
		if (col && col->typid == BOOLOID && column_accepts(info->res, col, DALP_OP_EQ))
			add_cond(info, col, DALP_OP_EQ,
					 (Expr *) makeBoolConst(!negated, false));
	}
}

/*
 * Bind the relation's columns (those in attnums) to the catalog: by name,
 * or by a json_path column option.  A column that is neither is an error
 * here, at the first query, naming the valid names.
 */
DalpColumnBinding *
dalp_make_bindings(Relation rel, const DalpResourceDef *res, List *attnums,
				   int *nbindings)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	DalpColumnBinding *bindings = palloc0(sizeof(DalpColumnBinding) *
										  Max(list_length(attnums), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, attnums)
	{
		AttrNumber	attnum = lfirst_int(lc);
		Form_pg_attribute att = TupleDescAttr(tupdesc, attnum - 1);
		DalpColumnBinding *b = &bindings[n];
		char	   *json_path = dalp_column_json_path(RelationGetRelid(rel), attnum);
		const DalpColumnDef *col = dalp_column_lookup(res, NameStr(att->attname));
		Oid			infunc;

		if (att->attisdropped)
			continue;
		b->attnum = attnum;
		b->colname = pstrdup(NameStr(att->attname));
		b->typid = att->atttypid;
		b->typmod = att->atttypmod;
		if (json_path != NULL)
		{
			b->kind = DALP_VALUE_PATH;
			b->path_text = json_path;
		}
		else if (col != NULL)
		{
			b->kind = col->kind;
			b->path_text = col->json_path ? pstrdup(col->json_path) : NULL;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_FDW_COLUMN_NAME_NOT_FOUND),
					 errmsg("column \"%s\" of foreign table \"%s\" is not a column of DALP resource \"%s\"",
							NameStr(att->attname), RelationGetRelationName(rel),
							res->name),
					 errdetail("Valid column names are: %s.", dalp_column_names(res)),
					 errhint("Rename the column, or map it with the column option json_path, e.g. OPTIONS (json_path 'tokenFactory.id').")));
		if (b->path_text)
			b->paths = dalp_parse_json_path(b->path_text);

		b->elemtypid = (b->typid == JSONBOID || b->typid == JSONOID)
			? InvalidOid : get_element_type(b->typid);
		if (OidIsValid(b->elemtypid))
		{
			get_typlenbyvalalign(b->elemtypid, &b->elemlen, &b->elembyval,
								 &b->elemalign);
			getTypeInputInfo(b->elemtypid, &infunc, &b->elemioparam);
			fmgr_info(infunc, &b->eleminfunc);
		}
		getTypeInputInfo(b->typid, &infunc, &b->typioparam);
		fmgr_info(infunc, &b->infunc);
		n++;
	}
	*nbindings = n;
	return bindings;
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

void
dalp_get_foreign_rel_size(PlannerInfo *root, RelOptInfo *baserel,
						  Oid foreigntableid)
{
	DalpRelInfo *info = palloc0(sizeof(DalpRelInfo));
	ForeignTable *table = GetForeignTable(foreigntableid);
	Relation	rel;
	int			use_remote_estimate;
	int			nbindings;
	ListCell   *lc;
	double		rows;

	baserel->fdw_private = info;
	info->res = dalp_table_resource(foreigntableid, &info->table_token,
									&use_remote_estimate);
	dalp_get_server_config(table->serverid, &info->conf);
	info->attnums = used_attnums(baserel);

	/* validate the column mapping now, so a bad table fails at its first query */
	rel = table_open(foreigntableid, NoLock);
	(void) dalp_make_bindings(rel, info->res, info->attnums, &nbindings);
	table_close(rel, NoLock);

	foreach(lc, baserel->baserestrictinfo)
		classify_clause(baserel, foreigntableid, info,
						((RestrictInfo *) lfirst(lc))->clause);
	if (info->table_token)
		info->pinned = true;

	if (info->item)
		rows = 1.0;
	else if (!info->res->is_collection)
		rows = 2.0;
	else if (dalp_resource_is_per_token(info->res))
		rows = DEFAULT_ROWS_PER_TOKEN * (info->pinned ? 1.0 : DEFAULT_TOKEN_COUNT);
	else
		rows = DEFAULT_ROWS_COLLECTION;

	baserel->rows = clamp_row_est(rows *
								  clauselist_selectivity(root,
														 baserel->baserestrictinfo,
														 0, JOIN_INNER, NULL));
	baserel->tuples = rows;
}

/*
 * Cost: a fixed start, one request per page (plus the token listing of a
 * fan-out), and a per-row decoding cost.
 */
void
dalp_get_foreign_paths(PlannerInfo *root, RelOptInfo *baserel,
					   Oid foreigntableid)
{
	DalpRelInfo *info = (DalpRelInfo *) baserel->fdw_private;
	double		pages = ceil(Max(baserel->tuples, 1.0) / info->conf.page_size);
	Cost		startup;
	Cost		total;

	if (dalp_resource_is_per_token(info->res) && !info->pinned)
		pages += DEFAULT_TOKEN_COUNT;
	startup = info->conf.fdw_startup_cost + info->conf.fdw_request_cost;
	total = startup + info->conf.fdw_request_cost * (pages - 1) +
		(info->conf.fdw_tuple_cost + cpu_tuple_cost) * baserel->tuples +
		baserel->baserestrictcost.per_tuple * baserel->tuples;

	add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL,
													   baserel->rows,
													   startup, total,
													   NIL, NULL, NULL,
													   NIL));
}

ForeignScan *
dalp_get_foreign_plan(PlannerInfo *root, RelOptInfo *baserel,
					  Oid foreigntableid, ForeignPath *best_path,
					  List *tlist, List *scan_clauses, Plan *outer_plan)
{
	DalpRelInfo *info = (DalpRelInfo *) baserel->fdw_private;
	List	   *private_conds = NIL;
	List	   *fdw_private;
	ListCell   *lc;

	foreach(lc, info->conds)
	{
		DalpCond   *cond = (DalpCond *) lfirst(lc);

		private_conds = lappend(private_conds,
								list_make3(makeString(pstrdup(cond->column->name)),
										   makeInteger(cond->role),
										   makeInteger(cond->op)));
	}
	fdw_private = list_make4(makeString(pstrdup(info->res->name)),
							 private_conds,
							 info->attnums,
							 makeString(pstrdup("")));

	/* all clauses are rechecked locally (see the file header) */
	return make_foreignscan(tlist,
							extract_actual_clauses(scan_clauses, false),
							baserel->relid,
							info->cond_values,
							fdw_private,
							NIL, NIL,
							outer_plan);
}

/* Rebuild DalpConds from ForeignScan.fdw_private. */
List *
dalp_conds_from_private(const DalpResourceDef *res, List *private_conds)
{
	List	   *conds = NIL;
	ListCell   *lc;

	foreach(lc, private_conds)
	{
		List	   *triple = (List *) lfirst(lc);
		DalpCond   *cond = palloc(sizeof(DalpCond));

		cond->column = dalp_column_lookup(res, strVal(linitial(triple)));
		cond->role = (DalpCondRole) intVal(lsecond(triple));
		cond->op = intVal(lthird(triple));
		Assert(cond->column != NULL);
		conds = lappend(conds, cond);
	}
	return conds;
}

/*
 * A value as the API expects it in a query string: timestamps as ISO 8601
 * UTC with milliseconds, booleans as true/false, the rest as their text.
 * *ok is false when the value cannot be sent exactly (sub-millisecond
 * timestamps, infinities); the condition is then only checked locally.
 */
char *
dalp_value_to_api_text(Datum value, Oid typid, bool *ok)
{
	Oid			outfunc;
	bool		isvarlena;

	*ok = true;
	if (typid == TIMESTAMPTZOID)
	{
		TimestampTz ts = DatumGetTimestampTz(value);
		struct pg_tm tm;
		fsec_t		fsec;

		if (TIMESTAMP_NOT_FINITE(ts) ||
			timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0 ||
			fsec % 1000 != 0)
		{
			*ok = false;
			return NULL;
		}
		return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
						tm.tm_year, tm.tm_mon, tm.tm_mday,
						tm.tm_hour, tm.tm_min, tm.tm_sec, fsec / 1000);
	}
	if (typid == BOOLOID)
		return pstrdup(DatumGetBool(value) ? "true" : "false");
	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	return OidOutputFunctionCall(outfunc, value);
}
