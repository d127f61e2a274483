/*-------------------------------------------------------------------------
 *
 * scan.c
 *		  Executing DALP foreign scans: the FDW handler, Begin/Iterate/ReScan/
 *		  End, and EXPLAIN.
 *
 * A scan visits a list of "streams": one per token for a per-token
 * resource (one for the pinned token, or every token listed by /tokens),
 * or a single one otherwise.  A stream is read page by page as the
 * executor asks for rows; only the current page is in memory, so a scan's
 * memory does not grow with its row count.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/ruleutils.h"

/* Execution state of one foreign scan. */
typedef struct DalpScanState
{
	DalpConnConfig conf;
	const DalpResourceDef *res;
	char	   *table_token;	/* token_address table option, or NULL */
	List	   *conds;			/* DalpCond * */
	List	   *cond_states;	/* ExprState *, parallel to conds */
	DalpColumnBinding *bindings;
	int			nbindings;
	List	   *id_path;		/* dedupe key path, or NIL */
	char	   *sort;			/* sort parameter, or NULL */

	MemoryContext exec_cxt;		/* one execution; reset by ReScan */
	MemoryContext page_cxt;		/* the current page */
	MemoryContext tuple_cxt;	/* the current row */
	MemoryContext ids_cxt[2];	/* ids of the current and previous page */
	int			ids_current;

	/* one execution */
	bool		started;
	bool		exhausted;
	List	   *tokens;			/* String nodes, or a single NULL: streams */
	int			next_token;
	char	   *filters;		/* encoded "&filter...=..." part */
	char	   *item_key;		/* single-item lookup key, or NULL */
	char	   *search_value;	/* echoed by the search column */

	/* the current stream */
	bool		in_stream;
	const char *token;
	int64		offset;
	bool		last_page;
	DalpPage	page;
	int			next_item;
	char	  **prev_ids;
	int			nprev_ids;
	char	  **cur_ids;
	int			ncur_ids;

	/* for EXPLAIN ANALYZE */
	int64		requests;
	int64		pages;
	int64		rows;
	int64		retries;
	int64		bytes;
} DalpScanState;

/* The page may hold json-c memory: release it whenever the scan dies. */
static void
release_page_callback(void *arg)
{
	dalp_page_release((DalpPage *) arg);
}

static void
dalp_begin_foreign_scan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EState	   *estate = node->ss.ps.state;
	Relation	rel = node->ss.ss_currentRelation;
	DalpScanState *st = palloc0(sizeof(DalpScanState));
	MemoryContextCallback *cb;
	Oid			userid;
	int			use_remote_estimate;
	const char *id_field;

	node->fdw_state = st;
	st->res = dalp_table_resource(RelationGetRelid(rel), &st->table_token,
								  &use_remote_estimate);
	st->conds = dalp_conds_from_private(st->res,
										list_nth(fsplan->fdw_private,
												 DALP_PRIVATE_CONDS));
	st->sort = strVal(list_nth(fsplan->fdw_private, DALP_PRIVATE_SORT));
	if (st->sort[0] == '\0')
		st->sort = (char *) st->res->scan_sort;
	dalp_get_server_config(GetForeignTable(RelationGetRelid(rel))->serverid,
						   &st->conf);

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

#if PG_VERSION_NUM >= 160000
	userid = OidIsValid(fsplan->checkAsUser) ? fsplan->checkAsUser : GetUserId();
#else
	{
		RangeTblEntry *rte = exec_rt_fetch(fsplan->scan.scanrelid, estate);

		userid = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
	}
#endif
	dalp_get_conn_config(GetForeignTable(RelationGetRelid(rel))->serverid,
						 userid, &st->conf);

	st->bindings = dalp_make_bindings(rel, st->res,
									  list_nth(fsplan->fdw_private,
											   DALP_PRIVATE_ATTRS),
									  &st->nbindings);
	st->cond_states = ExecInitExprList(fsplan->fdw_exprs, (PlanState *) node);
	id_field = st->res->id_field;
	if (id_field && st->res->is_collection)
		st->id_path = linitial(dalp_parse_json_path(id_field));

	st->exec_cxt = AllocSetContextCreate(estate->es_query_cxt,
										 "dalp_fdw execution",
										 ALLOCSET_DEFAULT_SIZES);
	st->page_cxt = AllocSetContextCreate(estate->es_query_cxt,
										 "dalp_fdw page",
										 ALLOCSET_DEFAULT_SIZES);
	st->tuple_cxt = AllocSetContextCreate(estate->es_query_cxt,
										  "dalp_fdw tuple",
										  ALLOCSET_SMALL_SIZES);
	for (int i = 0; i < 2; i++)
		st->ids_cxt[i] = AllocSetContextCreate(estate->es_query_cxt,
											   "dalp_fdw page ids",
											   ALLOCSET_SMALL_SIZES);

	cb = MemoryContextAlloc(estate->es_query_cxt, sizeof(MemoryContextCallback));
	cb->func = release_page_callback;
	cb->arg = &st->page;
	MemoryContextRegisterResetCallback(st->page_cxt, cb);
}

/* Lowercase-only addresses: the API returns lowercase hex. */
static bool
is_lowercase(const char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			return false;
	return true;
}

/* The non-null elements of an array value, as API text. */
static List *
array_values(Datum arr, Oid elemtype, bool *has_null)
{
	ArrayType  *array = DatumGetArrayTypeP(arr);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *result = NIL;

	*has_null = false;
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		bool		ok;
		char	   *text;

		if (nulls[i])
		{
			*has_null = true;
			continue;
		}
		text = dalp_value_to_api_text(elems[i], elemtype, &ok);
		if (ok)
			result = list_append_unique(result, makeString(text));
	}
	return result;
}

/* Keep in *tokens only the addresses also in others (NULL: no constraint yet). */
static List *
intersect_tokens(List *tokens, List *others, bool *constrained)
{
	List	   *result = NIL;
	ListCell   *lc;

	if (!*constrained)
	{
		*constrained = true;
		return others;
	}
	foreach(lc, tokens)
		if (list_member(others, lfirst(lc)))
			result = lappend(result, lfirst(lc));
	return result;
}

/*
 * Parameters are collected after a leading '?', so each one is added as
 * "&key=value"; this is the list without that prefix.
 */
static char *
query_params_tail(StringInfo buf)
{
	return buf->len > 1 ? buf->data + 2 : "";
}

static void
append_filter(StringInfo buf, const DalpCond *cond, const char *value)
{
	char	   *key = psprintf("filter[%s][%s]", cond->column->filter,
							   dalp_op_name(cond->op));

	dalp_append_query_param(buf, key, value);
}

/*
 * Evaluate the condition values for this execution ($n parameters and
 * stable expressions take their current values) and work out the token
 * list, the filters, the item key and the search value.  Returns false
 * when the conditions cannot match any row.
 */
static bool
prepare_execution(ForeignScanState *node, DalpScanState *st)
{
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	StringInfoData filters;
	List	   *tokens = NIL;
	bool		constrained = false;
	ListCell   *lc_cond;
	ListCell   *lc_state;

	initStringInfo(&filters);
	/* the leading '?' makes dalp_append_query_param add '&' separators */
	appendStringInfoChar(&filters, '?');

	if (st->table_token)
		tokens = intersect_tokens(tokens, list_make1(makeString(st->table_token)),
								  &constrained);

	forboth(lc_cond, st->conds, lc_state, st->cond_states)
	{
		DalpCond   *cond = (DalpCond *) lfirst(lc_cond);
		ExprState  *state = (ExprState *) lfirst(lc_state);
		bool		isnull;
		Datum		value;
		List	   *values;
		bool		has_null = false;
		bool		ok = true;
		char	   *text = NULL;

		value = ExecEvalExpr(state, econtext, &isnull);
		if (isnull)
			return false;		/* "col op NULL" is never true */
		if (cond->op == DALP_OP_IN || cond->op == DALP_OP_NOT_IN)
		{
			values = array_values(value, cond->column->typid, &has_null);
			if (cond->op == DALP_OP_NOT_IN && has_null)
				return false;	/* x NOT IN (.., NULL) is never true */
			if (cond->op == DALP_OP_IN && values == NIL)
				return false;
		}
		else
		{
			text = dalp_value_to_api_text(value, cond->column->typid, &ok);
			values = ok ? list_make1(makeString(text)) : NIL;
		}
		if (!ok)
			continue;			/* cannot be sent exactly: checked locally */

		switch (cond->role)
		{
			case DALP_COND_TOKEN:
				{
					List	   *lower = NIL;
					ListCell   *lc;

					foreach(lc, values)
					{
						if (is_lowercase(strVal(lfirst(lc))))
							lower = lappend(lower, lfirst(lc));
						else
							ereport(NOTICE,
									(errmsg("token address \"%s\" matches no DALP token",
											strVal(lfirst(lc))),
									 errdetail("DALP addresses are lowercase hexadecimal."),
									 errhint("Compare with lower(...) of the address.")));
					}
					tokens = intersect_tokens(tokens, lower, &constrained);
					break;
				}
			case DALP_COND_ITEM:
				if (st->item_key && strcmp(st->item_key, text) != 0)
					return false;
				st->item_key = text;
				break;
			case DALP_COND_SEARCH:
				if (st->search_value && strcmp(st->search_value, text) != 0)
					return false;
				st->search_value = text;
				append_filter(&filters, cond, text);
				break;
			case DALP_COND_FILTER:
				if (cond->op == DALP_OP_IN || cond->op == DALP_OP_NOT_IN)
				{
					StringInfoData list;
					ListCell   *lc;
					bool		sendable = list_length(values) <= DALP_MAX_IN_VALUES;

					initStringInfo(&list);
					foreach(lc, values)
					{
						/* the API's lists are comma-separated */
						if (strchr(strVal(lfirst(lc)), ',') != NULL)
							sendable = false;
						appendStringInfo(&list, "%s%s", list.len ? "," : "",
										 strVal(lfirst(lc)));
					}
					if (sendable && values != NIL)
						append_filter(&filters, cond, list.data);
				}
				else
					append_filter(&filters, cond, text);
				break;
		}
	}
	st->filters = query_params_tail(&filters);

	if (!dalp_resource_is_per_token(st->res))
		st->tokens = list_make1(NULL);
	else
		st->tokens = tokens;	/* if unconstrained: NIL, filled by the listing */
	return !constrained || st->tokens != NIL || !dalp_resource_is_per_token(st->res);
}

/*
 * The request for one page: "/api/v2/<path>?page[limit]=N[&page[offset]=K]
 * [&sort=..][&filter...]", or the single-item path.  Used for EXPLAIN too,
 * with placeholders for values not known before execution.
 */
static char *
build_request_path(const DalpScanState *st, const DalpResourceDef *res,
				   const char *token, const char *item_key,
				   const char *sort, const char *filters, int64 offset)
{
	StringInfoData buf;

	if (item_key)
		return dalp_expand_path(res->item_path, token, item_key);

	initStringInfo(&buf);
	appendStringInfoString(&buf, dalp_expand_path(res->path, token, NULL));
	if (res->is_collection)
	{
		dalp_append_query_param(&buf, "page[limit]",
								psprintf("%d", st->conf.page_size));
		if (offset > 0)
			dalp_append_query_param(&buf, "page[offset]",
									psprintf(INT64_FORMAT, offset));
		if (sort)
			dalp_append_query_param(&buf, "sort", sort);
	}
	if (filters && filters[0])
		appendStringInfo(&buf, "%c%s", strchr(buf.data, '?') ? '&' : '?',
						 filters);
	return buf.data;
}

/* Is st->page, read at offset, the last page of its collection? */
static bool
page_is_last(const DalpScanState *st, int64 offset)
{
	return st->page.nitems == 0 || st->page.nitems < st->conf.page_size ||
		(st->page.total >= 0 && offset + st->page.nitems >= st->page.total);
}

/* GET one page (in page_cxt) and check its status; NULL for an empty 404. */
static DalpHttpResult *
fetch(DalpScanState *st, const char *path, bool missing_is_empty)
{
	DalpHttpResult *res = dalp_http_get(&st->conf, path);

	st->requests += res->attempts;
	st->retries += res->attempts - 1;
	st->bytes += res->bytes;
	if (res->status == 404 && missing_is_empty)
		return NULL;
	dalp_raise_for_status(res, dalp_decode_for_display(path), st->conf.api_key);
	return res;
}

/* Fan-out: every token address, from the /tokens collection. */
static List *
list_all_tokens(DalpScanState *st)
{
	const DalpResourceDef *tokens_res = dalp_resource_lookup("tokens");
	List	   *id_path = linitial(dalp_parse_json_path(tokens_res->id_field));
	List	   *result = NIL;
	int64		offset = 0;
	bool		last = false;

	while (!last)
	{
		MemoryContext old = MemoryContextSwitchTo(st->page_cxt);
		char	   *path = build_request_path(st, tokens_res, NULL, NULL,
											  tokens_res->scan_sort, NULL, offset);
		DalpHttpResult *res = fetch(st, path, false);

		dalp_page_release(&st->page);
		dalp_page_parse(&st->page, res, tokens_res, false,
						dalp_decode_for_display(path));
		MemoryContextSwitchTo(st->exec_cxt);
		for (int i = 0; i < st->page.nitems; i++)
		{
			const char *id = dalp_page_item_id(&st->page, i, id_path);

			/* a token created during the listing may shift onto the next page */
			if (id && !list_member(result, makeString((char *) id)))
				result = lappend(result, makeString(pstrdup(id)));
		}
		MemoryContextSwitchTo(old);
		last = page_is_last(st, offset);
		offset += st->page.nitems;
		dalp_page_release(&st->page);
		MemoryContextReset(st->page_cxt);
	}
	return result;
}

static int
compare_ids(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Remember the ids of the page just read, to drop repeats on the next one. */
static void
remember_page_ids(DalpScanState *st)
{
	MemoryContext old;

	st->prev_ids = st->cur_ids;
	st->nprev_ids = st->ncur_ids;
	st->ids_current ^= 1;
	MemoryContextReset(st->ids_cxt[st->ids_current]);
	old = MemoryContextSwitchTo(st->ids_cxt[st->ids_current]);
	st->cur_ids = palloc(sizeof(char *) * Max(st->page.nitems, 1));
	st->ncur_ids = 0;
	for (int i = 0; i < st->page.nitems; i++)
	{
		const char *id = dalp_page_item_id(&st->page, i, st->id_path);

		if (id)
			st->cur_ids[st->ncur_ids++] = pstrdup(id);
	}
	qsort(st->cur_ids, st->ncur_ids, sizeof(char *), compare_ids);
	MemoryContextSwitchTo(old);
}

static bool
seen_on_previous_page(DalpScanState *st, int index)
{
	const char *id;

	if (st->nprev_ids == 0)
		return false;
	id = dalp_page_item_id(&st->page, index, st->id_path);
	return id && bsearch(&id, st->prev_ids, st->nprev_ids, sizeof(char *),
						 compare_ids) != NULL;
}

/* Read the next page of the current stream into st->page. */
static void
read_page(DalpScanState *st)
{
	bool		single = st->item_key != NULL || !st->res->is_collection;
	MemoryContext old;
	char	   *path;
	DalpHttpResult *res;

	dalp_page_release(&st->page);
	MemoryContextReset(st->page_cxt);
	old = MemoryContextSwitchTo(st->page_cxt);
	path = build_request_path(st, st->res, st->token, st->item_key, st->sort,
							  st->filters, st->offset);
	res = fetch(st, path, single && st->res->item_404_is_empty);
	if (res == NULL)
		st->page.nitems = 0;
	else
		dalp_page_parse(&st->page, res, st->res, single,
						dalp_decode_for_display(path));
	MemoryContextSwitchTo(old);

	st->pages++;
	dalp_stats_for(st->conf.serverid)->pages++;
	st->next_item = 0;
	st->last_page = single || page_is_last(st, st->offset);
	st->offset += st->page.nitems;
	if (st->id_path != NIL && !single)
		remember_page_ids(st);
}

/* Move to the next stream; false when there is none. */
static bool
open_next_stream(DalpScanState *st)
{
	if (st->next_token >= list_length(st->tokens))
		return false;
	{
		String	   *token = list_nth(st->tokens, st->next_token++);

		st->token = token ? strVal(token) : NULL;
	}
	st->offset = 0;
	st->prev_ids = NULL;
	st->nprev_ids = 0;
	st->cur_ids = NULL;
	st->ncur_ids = 0;
	read_page(st);
	st->in_stream = true;
	return true;
}

static TupleTableSlot *
dalp_iterate_foreign_scan(ForeignScanState *node)
{
	DalpScanState *st = (DalpScanState *) node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	TupleDesc	tupdesc = slot->tts_tupleDescriptor;
	MemoryContext old;

	ExecClearTuple(slot);
	if (!st->started)
	{
		old = MemoryContextSwitchTo(st->exec_cxt);
		st->started = true;
		st->exhausted = !prepare_execution(node, st);
		if (!st->exhausted && st->tokens == NIL)
			st->tokens = list_all_tokens(st);
		MemoryContextSwitchTo(old);
	}

	while (!st->exhausted)
	{
		if (st->in_stream && st->next_item < st->page.nitems)
		{
			int			index = st->next_item++;

			if (seen_on_previous_page(st, index))
				continue;
			MemoryContextReset(st->tuple_cxt);
			old = MemoryContextSwitchTo(st->tuple_cxt);
			memset(slot->tts_isnull, true, sizeof(bool) * tupdesc->natts);
			dalp_page_item_to_datums(&st->page, index, st->bindings,
									 st->nbindings, st->token,
									 st->search_value, slot->tts_values,
									 slot->tts_isnull);
			MemoryContextSwitchTo(old);
			st->rows++;
			dalp_stats_for(st->conf.serverid)->rows++;
			return ExecStoreVirtualTuple(slot);
		}
		if (st->in_stream && !st->last_page)
			read_page(st);
		else if (!open_next_stream(st))
			st->exhausted = true;
	}
	return slot;
}

/* Start over; parameters may have changed, so conditions are re-evaluated. */
static void
dalp_rescan_foreign_scan(ForeignScanState *node)
{
	DalpScanState *st = (DalpScanState *) node->fdw_state;

	dalp_page_release(&st->page);
	MemoryContextReset(st->page_cxt);
	MemoryContextReset(st->exec_cxt);
	st->started = false;
	st->exhausted = false;
	st->in_stream = false;
	st->tokens = NIL;
	st->next_token = 0;
	st->item_key = NULL;
	st->search_value = NULL;
	st->filters = NULL;
	st->prev_ids = st->cur_ids = NULL;
	st->nprev_ids = st->ncur_ids = 0;
}

static void
dalp_end_foreign_scan(ForeignScanState *node)
{
	DalpScanState *st = (DalpScanState *) node->fdw_state;

	if (st != NULL)
		dalp_page_release(&st->page);
}

/* A condition's value as EXPLAIN shows it: the constant, or its expression. */
static char *
explain_value(ExplainState *es, const DalpCond *cond, Expr *expr)
{
	if (IsA(expr, Const) && !((Const *) expr)->constisnull)
	{
		Const	   *c = (Const *) expr;
		bool		ok;

		if (cond->op == DALP_OP_IN || cond->op == DALP_OP_NOT_IN)
		{
			bool		has_null;
			StringInfoData buf;
			ListCell   *lc;

			initStringInfo(&buf);
			foreach(lc, array_values(c->constvalue, cond->column->typid, &has_null))
				appendStringInfo(&buf, "%s%s", buf.len ? "," : "", strVal(lfirst(lc)));
			return buf.data;
		}
		{
			char	   *text = dalp_value_to_api_text(c->constvalue, c->consttype, &ok);

			if (ok)
				return text;
		}
	}
	return deparse_expression((Node *) expr, es->deparse_cxt, false, false);
}

/*
 * EXPLAIN (VERBOSE): each planned request as "DALP Request: GET ...",
 * decoded for reading; EXPLAIN ANALYZE adds what was sent and received.
 */
static void
dalp_explain_foreign_scan(ForeignScanState *node, ExplainState *es)
{
	DalpScanState *st = (DalpScanState *) node->fdw_state;
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;

	if (es->verbose)
	{
		StringInfoData filters;
		const char *token = st->table_token;
		const char *item_key = NULL;
		ListCell   *lc_cond;
		ListCell   *lc_expr;
		char	   *path;

		initStringInfo(&filters);
		appendStringInfoChar(&filters, '?');
		forboth(lc_cond, st->conds, lc_expr, fsplan->fdw_exprs)
		{
			DalpCond   *cond = (DalpCond *) lfirst(lc_cond);
			char	   *text = explain_value(es, cond, (Expr *) lfirst(lc_expr));

			if (cond->role == DALP_COND_TOKEN)
				token = (cond->op == DALP_OP_IN) ? psprintf("{each of %s}", text) : text;
			else if (cond->role == DALP_COND_ITEM)
				item_key = text;
			else
				append_filter(&filters, cond, text);
		}
		if (dalp_resource_is_per_token(st->res) && token == NULL)
		{
			const DalpResourceDef *tokens_res = dalp_resource_lookup("tokens");

			path = build_request_path(st, tokens_res, NULL, NULL,
									  tokens_res->scan_sort, NULL, 0);
			ExplainPropertyText("DALP Request", psprintf("GET %s",
														 dalp_decode_for_display(path)), es);
			token = "{each token}";
		}
		path = build_request_path(st, st->res, token, item_key, st->sort,
								  query_params_tail(&filters), 0);
		ExplainPropertyText("DALP Request",
							psprintf("GET %s", dalp_decode_for_display(path)), es);
	}
	if (es->analyze)
	{
		ExplainPropertyInteger("DALP Requests", NULL, st->requests, es);
		ExplainPropertyInteger("DALP Pages", NULL, st->pages, es);
		ExplainPropertyInteger("DALP Rows", NULL, st->rows, es);
		ExplainPropertyInteger("DALP Retries", NULL, st->retries, es);
		ExplainPropertyInteger("DALP Bytes", NULL, st->bytes, es);
	}
}

static List *
dalp_import_foreign_schema_cb(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	return dalp_import_foreign_schema(stmt, serverOid);
}

PG_FUNCTION_INFO_V1(dalp_fdw_handler);

Datum
dalp_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = dalp_get_foreign_rel_size;
	routine->GetForeignPaths = dalp_get_foreign_paths;
	routine->GetForeignPlan = dalp_get_foreign_plan;
	routine->BeginForeignScan = dalp_begin_foreign_scan;
	routine->IterateForeignScan = dalp_iterate_foreign_scan;
	routine->ReScanForeignScan = dalp_rescan_foreign_scan;
	routine->EndForeignScan = dalp_end_foreign_scan;
	routine->ExplainForeignScan = dalp_explain_foreign_scan;
	routine->ImportForeignSchema = dalp_import_foreign_schema_cb;

	PG_RETURN_POINTER(routine);
}
