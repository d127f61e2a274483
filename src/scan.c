/*-------------------------------------------------------------------------
 *
 * scan.c
 *		  Executing DALP foreign scans: Begin/Iterate/ReScan/End, EXPLAIN,
 *		  and the request pipeline.
 *
 * A scan reads a list of streams: one per (token, filter variant), where a
 * per-token resource has one token (pinned) or many (an IN list, or every
 * token listed by /tokens), and an IN list longer than the API's cap is
 * split into variants.  Pages are requested in stream order; up to
 * "concurrency" requests are in flight.  Where a LIMIT or a cursor may stop
 * the scan early, the window grows with the pages the executor actually
 * consumes, so that a LIMIT never triggers a burst of pages nobody reads;
 * where the planner expects every row, it is open from the start.  Only
 * the current page is decoded and kept (or, for a collection read between
 * change markers, its rows in a tuplestore), so a scan's memory does not
 * grow with its row count.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"
#include "compat.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "common/int.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/ruleutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/* A join's outer rows naming one token, consecutive in the outer scan. */
typedef struct JoinGroup
{
	char	   *token;
	int64		rows;
} JoinGroup;

/* One stream: a token (or none) with one variant of the filters. */
typedef struct DalpStream
{
	const char *token;
	const char *filters;		/* encoded "k=v&k=v", or "" */
	const char *search_value;	/* what the search column returns, or NULL */
	bool		started;		/* its first page was requested */
	bool		finished;		/* its last page was consumed */
	int64		next_offset;	/* next page offset not yet requested */
	int64		end;			/* offset a LIMIT ends the stream at, or -1 */
	int64		extent;			/* meta.total seen: pages up to it may be
								 * prefetched (-1: not known yet) */
} DalpStream;

/* A page requested and not yet consumed. */
typedef struct DalpPending
{
	int			stream;
	int64		offset;
	char	   *path;
	DalpJsonParser *parser;		/* holds the body until its turn */
	DalpHttpRequest *req;
} DalpPending;

/* Execution state of one foreign scan. */
typedef struct DalpScanState
{
	DalpConnConfig conf;
	const DalpResourceDef *res;
	char	   *table_token;	/* token_address table option, or NULL */
	List	   *conds;			/* DalpCond * */
	List	   *exprs;			/* Expr *: the condition values, then LIMIT
								 * and OFFSET (for EXPLAIN) */
	List	   *cond_states;	/* ExprState *: the same, ready to run */
	int			limit_flags;	/* DALP_LIMIT_* */
	bool		every_row;		/* the planner expects every row read */
	DalpScanMode mode;
	const char *facet;			/* facet field (DALP_MODE_FACETS) */
	List	   *attnums;		/* base attnums by scan tuple position */
	DalpColumnBinding *bindings;
	int			nbindings;
	List	   *id_paths;		/* paths of the dedupe key's parts, or NIL */
	char	   *sort;			/* sort parameter, or NULL */
	int			noticed;		/* NOTICEs told about token addresses
								 * (dalp_plan_requests), rescans included */

	MemoryContext scan_cxt;		/* the whole scan, rescans included */
	MemoryContext exec_cxt;		/* one execution; reset by ReScan */
	MemoryContext page_cxt;		/* the current page */
	MemoryContext tuple_cxt;	/* the current row */
	MemoryContext ids_cxt[2];	/* ids of the current and previous page */
	int			ids_current;

	/* one execution */
	bool		started;
	bool		exhausted;
	DalpStream *streams;
	int			nstreams;
	List	   *pending;		/* DalpPending *, in stream/offset order */
	int			window;			/* requests allowed in flight */
	char	   *item_key;		/* single-item lookup key, or NULL */
	int64		limit;			/* rows still wanted, or -1 */
	int64		offset;			/* first row wanted */
	List	   *facet_rows;		/* DALP_MODE_FACETS: DalpFacetCount * */
	int			facet_next;		/* the next of facet_rows to return */
	List	   *all_tokens;		/* the /tokens listing of a fan-out, kept
								 * across rescans (scan_cxt) */

	/* the page being read */
	int			cur_stream;
	bool		have_page;
	DalpPage	page;
	int64		page_offset;	/* the offset it was read at */
	int			next_item;
	DalpCounts	ids[2];			/* ids of two pages, in ids_cxt */
	DalpCounts *prev_ids;		/* ids of the previous page, or NULL */
	DalpCounts *cur_ids;		/* ids of the current page */
	bool		may_repeat;		/* the page's next item may be a repeat */

	/* a stream read whole between two markers (hold_stream) */
	bool		marker_first;	/* the marker is read before the first page */
	bool		repeated;		/* rescanned: read once per outer row, a
								 * fan-out one token at a time */
	Tuplestorestate *held;		/* its rows not yet returned, or NULL */
	TupleTableSlot *held_slot;	/* reads them back */

	/* a join (plan.c, DalpJoinInfo): this state reads its inner table */
	struct DalpScanState *outer;	/* its outer table, or NULL */
	int			outer_key;		/* scan tuple index of the outer token column */
	Tuplestorestate *outer_rows;	/* the outer rows, group after group */
	TupleTableSlot *outer_slot; /* reads them back */
	List	   *groups;			/* JoinGroup *, in the outer rows' order */
	int			next_group;		/* index of the first group not reached */
	JoinGroup  *group;			/* the current inner row's */
	bool		group_read;		/* the outer rows' reader is at the group's
								 * end, not its start */
	int64		replay;			/* its rows still to join to the inner row */
	Datum	   *inner_values;	/* the current inner row */
	bool	   *inner_nulls;

	DalpServerStats *stats;		/* this backend's counters for the server */

	/* for EXPLAIN ANALYZE */
	int64		requests;
	int64		pages;
	int64		rows;
	int64		retries;
	int64		bytes;
} DalpScanState;

/* What next_page waits for (while_waiting): a page of the scan. */
typedef struct DalpAwait
{
	DalpScanState *st;
	DalpJsonParser *parser;
} DalpAwait;

static void fill_pipeline(DalpScanState *st, int awaited);
static void while_waiting(void *arg, bool others_ended);
static void remember_page_ids(DalpScanState *st, bool first_page);
static bool seen_on_previous_page(DalpScanState *st, int index);
static List *read_outer(ForeignScanState *node, DalpScanState *st);

/* Count a response in the scan's EXPLAIN ANALYZE figures. */
static void
count_result(DalpScanState *st, const DalpHttpResult *result)
{
	st->requests += result->attempts;
	st->retries += result->attempts - 1;
	st->bytes += result->bytes;
}

/* The request of a collection's change marker: its marker's newest item. */
static char *
marker_path(const DalpResourceDef *res, const char *token)
{
	const DalpResourceDef *mres = dalp_resource_lookup(res->marker);

	return dalp_build_path(mres, token, NULL, psprintf("-%s", mres->scan_sort),
						   NULL, 0, 1);
}

/*
 * The change marker of a collection (catalog.c: DalpResourceDef.marker):
 * the id of its marker resource's newest item and that resource's total,
 * read with one request of page[limit]=1.  A collection read page by page
 * between two equal markers was read in one state of the ledger.
 */
static char *
fetch_marker(DalpScanState *st, const DalpResourceDef *res, const char *token)
{
	const DalpResourceDef *mres = dalp_resource_lookup(res->marker);
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "dalp_fdw marker",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	char	   *path = marker_path(res, token);
	DalpJsonParser *parser = dalp_json_parser_create(st->conf.max_response_bytes,
													 true);
	DalpHttpResult *result = dalp_http_get(&st->conf, path,
										   dalp_json_parser_sink(parser));
	DalpPage	page;
	const char *id = NULL;
	char	   *marker;

	count_result(st, result);
	dalp_check_response(&st->conf, result, path, false);
	dalp_page_parse(&page, result, parser, mres, false,
					dalp_decode_for_display(path));
	if (page.nitems > 0)
		id = dalp_page_item_id(&page, 0,
							   linitial(dalp_parse_json_path(mres->id_field)));
	MemoryContextSwitchTo(old);
	marker = psprintf("%s " INT64_FORMAT, id ? id : "", page.total);
	MemoryContextDelete(cxt);
	return marker;
}

/*
 * After a read of a collection between the markers *before and after: did
 * the ledger hold still?  If not, the collection is to be read again
 * (*before becomes after) up to ledger_rereads times; then it is an error,
 * or, with on_ledger_change 'warning', a WARNING and the rows of the last
 * read.
 */
static bool
ledger_held_still(DalpScanState *st, const DalpResourceDef *res,
				  const char *token, char **before, char *after, int *reads)
{
	const DalpResourceDef *mres = dalp_resource_lookup(res->marker);
	bool		warn = st->conf.on_ledger_change == DALP_ON_LEDGER_CHANGE_WARNING;
	char	   *marker_path;

	if (strcmp(*before, after) == 0)
		return true;
	if ((*reads)++ < st->conf.ledger_rereads)
	{
		*before = after;
		return false;
	}
	marker_path = dalp_expand_path(mres->path, token, NULL);
	ereport(warn ? WARNING : ERROR,
			(errcode(warn ? ERRCODE_WARNING : ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("DALP collection GET %s changed while it was read%s",
					dalp_expand_path(res->path, token, NULL),
					warn ? "; its rows may mix two states of the ledger" : ""),
			 *reads == 1 ?
			 errdetail("Its newest change (the newest item of GET %s) differed before and after its read.",
					   marker_path) :
			 errdetail_plural("Its newest change (the newest item of GET %s) differed before and after its read and %d reread.",
							  "Its newest change (the newest item of GET %s) differed before and after its read and each of %d rereads.",
							  *reads - 1, marker_path, *reads - 1),
			 warn ? 0 :
			 errhint("Run the query again, or raise the server or table option ledger_rereads; with on_ledger_change 'warning' the rows of the last read are returned instead.")));
	return true;
}

/*
 * The state of one table's part of a scan, from its fdw_private (a join's
 * outer table has its own, DALP_PRIVATE_OUTER).  exprs are its condition
 * values, then LIMIT and OFFSET.
 */
static DalpScanState *
begin_table(ForeignScanState *node, List *priv, List *exprs, Oid userid,
			bool explain_only)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EState	   *estate = node->ss.ps.state;
	DalpScanState *st = palloc0(sizeof(DalpScanState));
	Oid			relid = (Oid) intVal(list_nth(priv, DALP_PRIVATE_RELID));
	Relation	rel;

	st->res = dalp_table_resource(relid, &st->table_token);
	st->conds = dalp_conds_from_private(st->res, list_nth(priv, DALP_PRIVATE_CONDS));
	st->exprs = exprs;
	st->attnums = list_nth(priv, DALP_PRIVATE_ATTRS);
	st->sort = strVal(list_nth(priv, DALP_PRIVATE_SORT));
	if (st->sort[0] == '\0')
		st->sort = (char *) st->res->scan_sort;
	st->mode = (DalpScanMode) intVal(list_nth(priv, DALP_PRIVATE_MODE));
	st->facet = strVal(list_nth(priv, DALP_PRIVATE_FACET));
	st->limit_flags = intVal(list_nth(priv, DALP_PRIVATE_LIMIT));
	st->every_row = boolVal(list_nth(priv, DALP_PRIVATE_EVERY_ROW));
	dalp_get_server_config(GetForeignTable(relid)->serverid, &st->conf);

	if (explain_only)
		return st;

	dalp_get_conn_config(st->conf.serverid, userid, &st->conf);
	dalp_apply_table_options(relid, &st->conf);
	st->stats = dalp_stats_for(st->conf.serverid);
	dalp_activity_scan_begin(st->conf.server_name, st->mode == DALP_MODE_ROWS,
							 estate->es_query_cxt);

	/* a base scan fills the table's columns; others their scan tuple */
	if (fsplan->scan.scanrelid > 0)
		st->bindings = dalp_make_bindings(node->ss.ss_currentRelation, st->res,
										  st->attnums, NIL, &st->nbindings);
	else
	{
		List	   *columns = NIL;
		List	   *positions = NIL;

		for (int i = 0; i < list_length(st->attnums); i++)
			if (list_nth_int(st->attnums, i) > 0)
			{
				columns = lappend_int(columns, list_nth_int(st->attnums, i));
				positions = lappend_int(positions, i + 1);
			}
		rel = table_open(relid, NoLock);
		st->bindings = dalp_make_bindings(rel, st->res, columns, positions,
										  &st->nbindings);
		table_close(rel, NoLock);
	}
	st->cond_states = ExecInitExprList(exprs, (PlanState *) node);
	if (st->res->id_field && st->res->is_collection)
	{
		char	   *fields = pstrdup(st->res->id_field);
		char	   *save;

		for (char *f = strtok_r(fields, ",", &save); f != NULL;
			 f = strtok_r(NULL, ",", &save))
			st->id_paths = lappend(st->id_paths,
								   linitial(dalp_parse_json_path(f)));
	}

	st->scan_cxt = estate->es_query_cxt;
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
	return st;
}

/*
 * BeginForeignScan
 *		Initiate the scan: the state of its table (and a join's outer
 *		table); no request is sent before the first row is asked for.
 */
void
dalp_begin_foreign_scan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	List	   *priv = fsplan->fdw_private;
	List	   *outer = list_nth(priv, DALP_PRIVATE_OUTER);
	List	   *exprs = fsplan->fdw_exprs;
	bool		explain_only = (eflags & EXEC_FLAG_EXPLAIN_ONLY) != 0;
	DalpScanState *outer_state = NULL;
	DalpScanState *st;
	Oid			userid = InvalidOid;

	if (!explain_only)
		userid = dalp_scan_userid(NULL, NULL, node);

	/* a join: the outer table's condition values come first */
	if (outer != NIL)
	{
		int			nouter = list_length(list_nth(outer, DALP_PRIVATE_CONDS));

		outer_state = begin_table(node, outer,
								  list_truncate(list_copy(exprs), nouter),
								  userid, explain_only);
		exprs = list_copy_tail(exprs, nouter);
	}
	st = begin_table(node, priv, exprs, userid, explain_only);
	st->outer = outer_state;
	st->outer_key = intVal(list_nth(priv, DALP_PRIVATE_OUTER_KEY)) - 1;
	node->fdw_state = st;
}

/*
 * Wait for a requested page, whose parser parses its bytes as they arrive
 * while the scan waits (or GET it when req is NULL), count it, check its status and make it st->page, the
 * parsed document then belonging to page_cxt.  False for a 404 the caller
 * treats as "no item".
 */
static bool
receive_page(DalpScanState *st, const DalpResourceDef *res, const char *path,
			 DalpHttpRequest *req, DalpJsonParser *parser, bool single)
{
	MemoryContext old;
	DalpHttpResult *result;
	bool		found;

	dalp_page_release(&st->page);
	MemoryContextReset(st->page_cxt);
	old = MemoryContextSwitchTo(st->page_cxt);
	if (req == NULL)
	{
		parser = dalp_json_parser_create(st->conf.max_response_bytes, true);
		result = dalp_http_get(&st->conf, path, dalp_json_parser_sink(parser));
	}
	else
	{
		DalpAwait	await = {st, parser};

		result = dalp_http_wait_hook(req, while_waiting, &await);
		/* the next request leaves before the rest of this page is parsed */
		fill_pipeline(st, 0);
		dalp_json_parser_activate(parser);
	}
	count_result(st, result);
	found = dalp_check_response(&st->conf, result, path, single && res->item_404_is_empty);
	if (found)
		dalp_page_parse(&st->page, result, parser, res, single,
						dalp_decode_for_display(path));
	else
		dalp_json_parser_free(parser);
	MemoryContextSwitchTo(old);
	st->pages++;
	st->stats->pages++;
	return found;
}

/*
 * For dalp_fdw.activity: a page was read.  The first page of a stream,
 * read from offset "from" (up to "end", if not -1), says from its
 * meta.total how many pages the stream has; a page without a total counts
 * only itself.
 */
static void
report_page(DalpScanState *st, bool first, bool one_page, int64 from,
			int64 end)
{
	int64		expected = 0;

	if (one_page || st->page.total < 0)
		expected = 1;
	else if (first)
	{
		int64		last = (end >= 0) ? Min(end, st->page.total) : st->page.total;

		expected = Max(1, (last - from + st->conf.page_size - 1) /
					   st->conf.page_size);
	}
	dalp_activity_page(expected);
}

/*
 * Does this execution read one token alone?  Not a fan-out (an IN list, a
 * join, every token listed, a nested loop's inner side read once per
 * outer row), where a change marker read before each token's first page
 * would double the rounds of requests for tokens of one page.
 */
static bool
reads_one_token(const DalpScanState *st)
{
	return st->nstreams == 1 && st->streams[0].token != NULL &&
		st->outer == NULL && !st->repeated;
}

/* Gathers a page's items into arg, from first on (those before repeat the previous page's). */
typedef void (*PageCallback) (DalpScanState *st, int first, void *arg);

/*
 * Read a whole collection page by page, one request at a time, giving each
 * page to per_page, which gathers into *arg (arg_size bytes that start out
 * zero: 0, NIL, an empty DalpCounts).  A collection with a change marker
 * that spans several pages is read between two markers, as hold_stream
 * does, and *arg is zeroed before each read: with marker_first (one token
 * read alone) the first marker is answered before page 1 is sent; else
 * page 1 goes first, alone, and only if it shows more pages is the marker
 * read and the collection read again.  Items of the scan's own resource
 * that a page repeats from the previous one are dropped, as in a scan.
 */
static void
read_all_pages(DalpScanState *st, const DalpResourceDef *res, const char *token,
			   const char *sort, const char *filters, bool marker_first,
			   PageCallback per_page, void *arg, size_t arg_size)
{
	char	   *before = NULL;
	int			reads = 0;
	bool		drop_repeats = (res == st->res && st->id_paths != NIL);

	if (res->marker && marker_first)
		before = fetch_marker(st, res, token);
	for (;;)
	{
		int64		offset = 0;
		int			pages = 0;
		bool		last = false;

		while (!last)
		{
			char	   *path = dalp_build_path(res, token, NULL, sort, filters, offset,
											   st->conf.page_size);
			int			first = 0;

			receive_page(st, res, path, NULL, NULL, false);
			last = dalp_page_is_last(&st->page, offset, st->conf.page_size);
			if (res->marker && before == NULL && !last)
			{
				/* page 1 only told that there are more: start over */
				report_page(st, false, true, 0, -1);
				before = fetch_marker(st, res, token);
				continue;
			}
			report_page(st, offset == 0, false, 0, -1);
			if (drop_repeats)
			{
				remember_page_ids(st, offset == 0);
				while (first < st->page.nitems && seen_on_previous_page(st, first))
					first++;
			}
			per_page(st, first, arg);
			offset += st->page.nitems;
			pages++;
		}
		/* one page is one answer, so one state of the ledger */
		if (before == NULL || pages == 1 ||
			ledger_held_still(st, res, token, &before,
							  fetch_marker(st, res, token), &reads))
			break;
		memset(arg, 0, arg_size);
	}
	dalp_page_release(&st->page);
	MemoryContextReset(st->page_cxt);
}

static void
collect_token_ids(DalpScanState *st, int first, void *arg)
{
	DalpCounts *ids = (DalpCounts *) arg;
	List	   *id_path = linitial(dalp_parse_json_path(dalp_token_listing()->id_field));

	for (int i = first; i < st->page.nitems; i++)
	{
		const char *id = dalp_page_item_id(&st->page, i, id_path);

		CHECK_FOR_INTERRUPTS();
		/* a token created during the listing may shift onto the next page */
		if (id)
			dalp_counts_add(ids, id, 1);
	}
}

/*
 * Fan-out: every token address, from the catalog's token listing, each
 * once; listed once per scan, as a rescan (a nested loop) needs the same list.
 */
static List *
list_all_tokens(DalpScanState *st)
{
	const DalpResourceDef *tokens_res = dalp_token_listing();
	MemoryContext listing_cxt;
	MemoryContext old;
	DalpCounts	ids = DALP_COUNTS_EMPTY;
	ListCell   *lc;

	if (st->all_tokens != NIL)
		return st->all_tokens;
	listing_cxt = AllocSetContextCreate(st->exec_cxt, "dalp_fdw token listing",
										ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(listing_cxt);
	read_all_pages(st, tokens_res, NULL, tokens_res->scan_sort, NULL, false,
				   collect_token_ids, &ids, sizeof(DalpCounts));
	MemoryContextSwitchTo(st->scan_cxt);
	foreach(lc, ids.entries)
		st->all_tokens = lappend(st->all_tokens,
								 makeString(pstrdup(((DalpFacetCount *) lfirst(lc))->value)));
	MemoryContextSwitchTo(old);
	MemoryContextDelete(listing_cxt);
	return st->all_tokens;
}

/* Evaluate an int8 LIMIT/OFFSET value; NULL means none. */
static int64
eval_row_count(ExprState *state, ExprContext *econtext, const char *what,
			   int64 if_null)
{
	bool		isnull;
	Datum		v = ExecEvalExpr(state, econtext, &isnull);
	int64		n;

	if (isnull)
		return if_null;
	n = DatumGetInt64(v);
	if (n < 0)
		ereport(ERROR,
				(errcode(strcmp(what, "LIMIT") == 0
						 ? ERRCODE_INVALID_ROW_COUNT_IN_LIMIT_CLAUSE
						 : ERRCODE_INVALID_ROW_COUNT_IN_RESULT_OFFSET_CLAUSE),
				 errmsg("%s must not be negative", what)));
	return n;
}

static bool
stream_is_single(const DalpScanState *st)
{
	return st->item_key != NULL || !st->res->is_collection;
}

/*
 * Is the change marker read before page 1 (hold_stream)?  For one token
 * read alone (one_token_alone) in one stream of pages (not single) whose
 * rows may span pages: no LIMIT (limit -1), or one of more than a page.
 * Then page 1 need not be read twice.  EXPLAIN shows that request too.
 */
static bool
marker_goes_first(const DalpScanState *st, bool one_token_alone, bool single,
				  int64 limit)
{
	return st->res->marker != NULL && st->mode == DALP_MODE_ROWS &&
		one_token_alone && !single &&
		(limit < 0 || limit > st->conf.page_size);
}

/*
 * Evaluate the condition values for this execution ($n parameters, stable
 * expressions and nested-loop parameters take their current values) and
 * lay out the streams.  Returns false when nothing can match.
 */
static bool
start_execution(ForeignScanState *node, DalpScanState *st)
{
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	int			nconds = list_length(st->conds);
	Datum	   *values = palloc0(sizeof(Datum) * Max(nconds, 1));
	bool	   *nulls = palloc0(sizeof(bool) * Max(nconds, 1));
	List	   *given = NIL;
	List	   *tokens;
	List	   *variants;
	bool		constrained;
	ListCell   *lc;
	int			i = 0;
	int			s = 0;

	st->limit = -1;
	st->offset = 0;
	foreach(lc, st->cond_states)
	{
		if (i < nconds)
			values[i] = ExecEvalExpr((ExprState *) lfirst(lc), econtext, &nulls[i]);
		else if (i == nconds && (st->limit_flags & DALP_LIMIT_COUNT))
			st->limit = eval_row_count(lfirst(lc), econtext, "LIMIT", -1);
		else
			st->offset = eval_row_count(lfirst(lc), econtext, "OFFSET", 0);
		i++;
	}
	if (st->limit == 0)
		return false;
	if (st->outer)
	{
		/* a join: the tokens of the outer rows */
		given = read_outer(node, st);
		if (given == NIL)
			return false;
	}
	else if (st->table_token)
		given = list_make1(makeString(st->table_token));
	if (!dalp_plan_requests(st->conds, values, nulls, NULL, given,
							&constrained, &tokens, &variants, &st->item_key,
							&st->noticed))
		return false;

	if (!dalp_resource_is_per_token(st->res))
		tokens = list_make1(NULL);
	else if (!constrained)
		tokens = list_all_tokens(st);

	dalp_check_stream_count((int64) list_length(tokens) * list_length(variants));
	st->nstreams = list_length(tokens) * list_length(variants);
	st->streams = palloc0(sizeof(DalpStream) * Max(st->nstreams, 1));
	foreach(lc, tokens)
	{
		ListCell   *lv;

		foreach(lv, variants)
		{
			DalpStream *stream = &st->streams[s++];

			DalpVariant *variant = (DalpVariant *) lfirst(lv);

			stream->token = lfirst(lc) ? strVal(lfirst(lc)) : NULL;
			stream->filters = variant->filters;
			stream->search_value = variant->search_value;
			stream->next_offset = st->offset;
			stream->end = st->limit >= 0 ? st->offset + st->limit : -1;
			stream->extent = -1;
		}
	}

	/*
	 * Where a LIMIT or a cursor may stop early, the window grows with the
	 * pages consumed (next_page), so that nobody pays for pages nobody reads;
	 * where every row is wanted it opens whole at once.
	 */
	st->window = st->every_row ? st->conf.concurrency : 1;

	st->marker_first = marker_goes_first(st, reads_one_token(st),
										 stream_is_single(st), st->limit);
	return st->nstreams > 0;
}

/* Rows a page at this offset of the stream should ask for. */
static int
page_limit(const DalpScanState *st, const DalpStream *stream, int64 offset)
{
	if (st->mode != DALP_MODE_ROWS)
		return 1;
	if (stream->end >= 0)
		return (int) Max(1, Min(st->conf.page_size, stream->end - offset));
	return st->conf.page_size;
}

/* Start the request for a page and queue it in stream/offset order. */
static void
launch_page(DalpScanState *st, int stream_index, int64 offset)
{
	DalpStream *stream = &st->streams[stream_index];
	MemoryContext old = MemoryContextSwitchTo(st->exec_cxt);
	DalpPending *p = palloc(sizeof(DalpPending));
	ListCell   *lc;
	int			pos = 0;

	p->stream = stream_index;
	p->offset = offset;
	p->path = dalp_build_path(st->res, stream->token, st->item_key, st->sort,
							  stream->filters, offset,
							  page_limit(st, stream, offset));
	/*
	 * Made first, so that a reset of exec_cxt ends the request first.  It
	 * holds the bytes until the page is the next to be read (receive_page).
	 */
	p->parser = dalp_json_parser_create(st->conf.max_response_bytes, false);
	p->req = dalp_http_start(&st->conf, p->path,
							 dalp_json_parser_sink(p->parser));
	foreach(lc, st->pending)
	{
		DalpPending *q = (DalpPending *) lfirst(lc);

		if (q->stream > stream_index ||
			(q->stream == stream_index && q->offset > offset))
			break;
		pos++;
	}
	st->pending = list_insert_nth(st->pending, pos, p);
	stream->started = true;
	if (offset >= stream->next_offset)
		stream->next_offset = offset + page_limit(st, stream, offset);
	MemoryContextSwitchTo(old);
}

/*
 * Keep up to st->window requests in flight: the next pages of the current
 * stream (its extent known from meta.total), then first pages of later
 * streams.  Where every row is wanted, a later stream's page that has
 * arrived but is not consumed yet holds no slot, so that later streams'
 * first pages, arrived early, cannot keep the current stream's pages
 * waiting; one is requested only while fewer than the window wait in all,
 * so that no more than the window of them wait, and memory stays bounded.
 * The current stream's pages hold their slot until consumed: freeing it
 * too let the stream run ahead of the executor and was slower
 * (bench/network.sh, 1,000 pages at 20 ms: 2,900 ms against 2,743 ms).
 * Where a LIMIT may stop the scan, every page not consumed holds a slot.
 * awaited counts the pages requested but not in st->pending: the one
 * next_page waits for (while_waiting).
 */
static void
fill_pipeline(DalpScanState *st, int awaited)
{
	int			busy = awaited;
	ListCell   *lc;

	foreach(lc, st->pending)
	{
		DalpPending *p = (DalpPending *) lfirst(lc);

		busy += !st->every_row || p->stream == st->cur_stream ||
			!dalp_http_done(p->req);
	}
	for (int s = st->cur_stream; s < st->nstreams && busy < st->window; s++)
	{
		DalpStream *stream = &st->streams[s];

		if (stream->finished)
			continue;
		if (!stream->started)
		{
			if (list_length(st->pending) + awaited >= st->window)
				break;
			launch_page(st, s, stream->next_offset);
			busy++;
		}
		/* only the current stream knows its extent: its pages hold slots */
		while (stream->extent >= 0 && !stream_is_single(st) &&
			   stream->next_offset < stream->extent &&
			   (stream->end < 0 || stream->next_offset < stream->end) &&
			   busy < st->window)
		{
			launch_page(st, s, stream->next_offset);
			busy++;
		}
	}
}

/*
 * While next_page waits for its page (no longer in st->pending, it holds a
 * slot until it arrives): where every row is wanted, a later stream's page
 * that arrived meanwhile frees its slot for the next request at once; then
 * the bytes of the page waited for that have arrived are parsed.
 */
static void
while_waiting(void *arg, bool others_ended)
{
	DalpAwait  *await = (DalpAwait *) arg;

	if (others_ended && await->st->every_row)
		fill_pipeline(await->st, 1);
	dalp_json_parser_catch_up(await->parser);
}

/* Stop a requested page's transfer, then free its parser. */
static void
abandon_pending(DalpPending *p)
{
	dalp_http_abandon(p->req);
	dalp_json_parser_free(p->parser);
}

/* Drop the queued requests of a stream that ended. */
static void
abandon_stream_pending(DalpScanState *st, int stream_index)
{
	ListCell   *lc;

	foreach(lc, st->pending)
	{
		DalpPending *p = (DalpPending *) lfirst(lc);

		if (p->stream == stream_index)
		{
			abandon_pending(p);
			st->pending = foreach_delete_current(st->pending, lc);
		}
	}
}

/*
 * The dedupe key of item index of the current page: its id, or, for a
 * resource whose items have none, the fields that together identify one,
 * each prefixed with its length.  NULL when the item has none of them.
 */
static const char *
item_key(DalpScanState *st, int index)
{
	StringInfoData buf;
	bool		found = false;
	ListCell   *lc;

	if (list_length(st->id_paths) == 1)
		return dalp_page_item_id(&st->page, index, linitial(st->id_paths));
	initStringInfo(&buf);
	foreach(lc, st->id_paths)
	{
		const char *part = dalp_page_item_id(&st->page, index, lfirst(lc));

		if (part)
			appendStringInfo(&buf, "%zu:%s", strlen(part), part);
		else
			appendStringInfoChar(&buf, '-');
		found |= part != NULL;
	}
	return found ? buf.data : NULL;
}

/*
 * Remember the ids of the page just read, to drop repeats on the next one;
 * the page's own repeats are those of the previous page (none for a
 * stream's first page).
 */
static void
remember_page_ids(DalpScanState *st, bool first_page)
{
	MemoryContext old;

	st->prev_ids = first_page ? NULL : st->cur_ids;
	st->ids_current ^= 1;
	MemoryContextReset(st->ids_cxt[st->ids_current]);
	st->cur_ids = &st->ids[st->ids_current];
	memset(st->cur_ids, 0, sizeof(DalpCounts));
	old = MemoryContextSwitchTo(st->ids_cxt[st->ids_current]);
	for (int i = 0; i < st->page.nitems; i++)
	{
		const char *id = item_key(st, i);

		CHECK_FOR_INTERRUPTS();
		if (id)
			dalp_counts_add(st->cur_ids, id, 1);
	}
	MemoryContextSwitchTo(old);
	st->may_repeat = st->prev_ids != NULL && st->prev_ids->entries != NIL;
}

/*
 * Was this item on the previous page?  The collection shifting between two
 * requests repeats a run of the previous page's last items at the start of
 * this one, so once an item is new, the rest of the page is too.
 */
static bool
seen_on_previous_page(DalpScanState *st, int index)
{
	const char *id;

	if (!st->may_repeat)
		return false;
	id = item_key(st, index);
	st->may_repeat = id && dalp_counts_contain(st->prev_ids, id);
	return st->may_repeat;
}

/*
 * Make the next page in stream order the current page.  False when every
 * stream is finished.
 */
static bool
next_page(DalpScanState *st)
{
	DalpPending *p;
	DalpStream *stream;
	int64		offset;
	bool		single = stream_is_single(st);
	int			requested;

	while (st->cur_stream < st->nstreams && st->streams[st->cur_stream].finished)
		st->cur_stream++;
	if (st->cur_stream >= st->nstreams)
		return false;
	stream = &st->streams[st->cur_stream];
	if (!stream->started ||
		(st->pending == NIL ||
		 ((DalpPending *) linitial(st->pending))->stream != st->cur_stream))
		launch_page(st, st->cur_stream, stream->next_offset);
	fill_pipeline(st, 0);

	p = (DalpPending *) linitial(st->pending);
	st->pending = list_delete_first(st->pending);
	receive_page(st, st->res, p->path, p->req, p->parser, single);
	offset = st->page_offset = p->offset;
	pfree(p->path);
	pfree(p);
	st->have_page = true;
	st->next_item = 0;
	requested = page_limit(st, stream, offset);
	report_page(st, offset == st->offset, single || st->mode != DALP_MODE_ROWS,
				st->offset, stream->end);

	if (single || st->mode != DALP_MODE_ROWS ||
		dalp_page_is_last(&st->page, offset, requested) ||
		(stream->end >= 0 && offset + st->page.nitems >= stream->end))
	{
		stream->finished = true;
		abandon_stream_pending(st, st->cur_stream);
	}
	else
	{
		/*
		 * A server that returned fewer items than asked (a lower cap than
		 * the contract's) shifts every later offset: ask again from here.
		 */
		if (st->page.nitems < requested)
		{
			abandon_stream_pending(st, st->cur_stream);
			stream->next_offset = offset + st->page.nitems;
		}

		/*
		 * meta.total tells how far the stream goes, so its pages may be
		 * prefetched; whether a page is the last is still decided by that
		 * page itself, as the collection may grow meanwhile.  With the
		 * window open, they leave before this page's rows are returned
		 * (unless the stream is to be read again between change markers:
		 * it has one and is not read between them yet), as do the
		 * successors of the pages that arrived while this one was parsed.
		 */
		stream->extent = st->page.total;
		if (st->every_row && (st->res->marker == NULL || st->held != NULL))
		{
			dalp_http_poll();
			fill_pipeline(st, 0);
		}
	}
	if (st->id_paths != NIL && !single)
		remember_page_ids(st, offset == st->offset);

	/* the prefetch window grows with the pages the executor consumes */
	st->window = Min(st->conf.concurrency, st->window + 1);
	return true;
}

/* Fill the scan tuple from item index of the current page. */
static void
store_item(DalpScanState *st, TupleTableSlot *slot, int index)
{
	MemoryContext old;

	ExecClearTuple(slot);
	MemoryContextReset(st->tuple_cxt);
	old = MemoryContextSwitchTo(st->tuple_cxt);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	dalp_page_item_to_datums(&st->page, index, st->bindings, st->nbindings,
							 st->streams[st->cur_stream].token,
							 st->streams[st->cur_stream].search_value,
							 slot->tts_values,
							 slot->tts_isnull);
	MemoryContextSwitchTo(old);
	ExecStoreVirtualTuple(slot);
}

/*
 * The current stream's resource has a change marker: its items may move
 * between pages while they are read (holders, sorted by balance, as
 * transfers settle), so that one is read twice and another not at all.
 * Read the stream whole between two markers, holding its rows, until the
 * markers agree (or ledger_rereads is spent); its rows are then returned
 * from the hold.  A stream of one page, one answer of the API and so one
 * state of the ledger, needs no marker after it.
 *
 * Requests on separate connections are served in no known order, so the
 * first marker is answered before the stream's pages are sent.  Where one
 * token is read alone (marker_first), that is before its page 1: a stream
 * of n pages costs n + 2 requests.  In a fan-out, each token's page 1 is
 * read first, alone, so that the many tokens of one page cost nothing
 * more; this is called after it when it shows more pages, and the stream
 * is read again from page 1 (n + 3).
 */
static void
hold_stream(DalpScanState *st, TupleTableSlot *slot)
{
	DalpStream *stream = &st->streams[st->cur_stream];
	int64		extent = stream->started ? st->page.total : -1;
	char	   *before;
	int			reads = 0;
	MemoryContext old;

	abandon_stream_pending(st, st->cur_stream);
	before = fetch_marker(st, st->res, stream->token);
	old = MemoryContextSwitchTo(st->exec_cxt);
	st->held = tuplestore_begin_heap(false, false, work_mem);
	MemoryContextSwitchTo(st->scan_cxt);
	if (st->held_slot == NULL)
		st->held_slot = MakeSingleTupleTableSlot(slot->tts_tupleDescriptor,
												 &TTSOpsMinimalTuple);
	MemoryContextSwitchTo(old);
	for (;;)
	{
		int			pages = 0;

		stream->started = stream->finished = false;
		stream->next_offset = st->offset;
		stream->extent = extent;
		do
		{
			next_page(st);
			pages++;
			for (int i = 0; i < st->page.nitems; i++)
			{
				if (seen_on_previous_page(st, i))
					continue;
				store_item(st, slot, i);
				tuplestore_puttupleslot(st->held, slot);
			}
		} while (!stream->finished);
		extent = stream->extent;
		if (pages == 1 ||
			ledger_held_still(st, st->res, stream->token, &before,
							  fetch_marker(st, st->res, stream->token), &reads))
			break;
		tuplestore_clear(st->held);
	}
	ExecClearTuple(slot);
	st->have_page = false;
}

/* The next row of the hold into the scan tuple; false when none is left. */
static bool
take_held_row(DalpScanState *st, TupleTableSlot *slot)
{
	int			natts = slot->tts_tupleDescriptor->natts;

	if (!tuplestore_gettupleslot(st->held, true, false, st->held_slot))
	{
		tuplestore_end(st->held);
		st->held = NULL;
		return false;
	}
	slot_getallattrs(st->held_slot);
	memcpy(slot->tts_values, st->held_slot->tts_values, sizeof(Datum) * natts);
	memcpy(slot->tts_isnull, st->held_slot->tts_isnull, sizeof(bool) * natts);
	ExecStoreVirtualTuple(slot);
	return true;
}

/* A row goes to the executor: count it, and stop at a pushed LIMIT. */
static TupleTableSlot *
return_row(DalpScanState *st, TupleTableSlot *slot)
{
	st->rows++;
	st->stats->rows++;
	dalp_activity_row();
	if (st->limit > 0 && --st->limit == 0)
		st->exhausted = true;
	return slot;
}

/* The next row into slot, or slot empty when there is none. */
static TupleTableSlot *
iterate_rows(DalpScanState *st, TupleTableSlot *slot)
{
	ExecClearTuple(slot);
	while (!st->exhausted)
	{
		if (st->held)
		{
			if (take_held_row(st, slot))
				return return_row(st, slot);
			continue;
		}
		if (st->have_page && st->next_item < st->page.nitems)
		{
			int			index = st->next_item++;

			if (seen_on_previous_page(st, index))
				continue;
			store_item(st, slot, index);
			return return_row(st, slot);
		}
		if (st->marker_first && !st->streams[st->cur_stream].started)
			hold_stream(st, slot);
		else if (!next_page(st))
			st->exhausted = true;
		else if (st->res->marker && st->page_offset == st->offset &&
				 !st->streams[st->cur_stream].finished)
			hold_stream(st, slot);
	}
	return slot;
}

/*
 * A join's outer rows, all read first (DalpJoinInfo in plan.c), with the
 * tokens they name as groups of consecutive rows: a tokens row names one
 * token, a per-token table's rows come token by token.  The rows are kept
 * for DALP_MODE_ROWS, in memory up to work_mem, then in a temporary file.
 * Returns the tokens to read, in group order; an address that cannot be
 * DALP's is left out, as it matches nothing (see cond_texts).
 */
static List *
read_outer(ForeignScanState *node, DalpScanState *st)
{
	DalpScanState *o = st->outer;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	JoinGroup  *group = NULL;
	List	   *tokens = NIL;
	MemoryContext cxt = CurrentMemoryContext;
	bool		any;

	if (st->mode == DALP_MODE_ROWS)
	{
		st->outer_rows = tuplestore_begin_heap(false, false, work_mem);
		/* read pointer 1 marks the start of the current group */
		tuplestore_alloc_read_pointer(st->outer_rows, EXEC_FLAG_REWIND);
	}
	/* every outer row is read before the first joined row is made */
	o->every_row = true;
	MemoryContextSwitchTo(o->exec_cxt);
	any = start_execution(node, o);
	MemoryContextSwitchTo(cxt);
	while (any)
	{
		char	   *token;

		/* not inside TupIsNull(), which evaluates its argument twice */
		iterate_rows(o, slot);
		if (TupIsNull(slot))
			break;

		if (slot->tts_isnull[st->outer_key])
			continue;
		token = TextDatumGetCString(slot->tts_values[st->outer_key]);
		if (group == NULL || strcmp(group->token, token) != 0)
		{
			group = palloc0(sizeof(JoinGroup));
			group->token = token;
			st->groups = lappend(st->groups, group);
			if (dalp_is_hex_id(token, DALP_ADDRESS_DIGITS))
				tokens = lappend(tokens, makeString(token));
		}
		group->rows++;
		if (st->outer_rows)
			tuplestore_puttupleslot(st->outer_rows, slot);
	}
	ExecClearTuple(slot);
	return tokens;
}

/*
 * Make the group of this token the current one: the inner streams come in
 * the groups' order, so the outer rows' reader skips the groups before it
 * (tokens with no inner row), and read pointer 1 marks its start.
 */
static void
reach_group(DalpScanState *st, const char *token)
{
	while (st->group == NULL || strcmp(st->group->token, token) != 0)
	{
		/* the reader is at the start of a group that no inner row joined */
		if (st->group != NULL && !st->group_read && st->outer_rows)
			for (int64 i = 0; i < st->group->rows; i++)
				tuplestore_advance(st->outer_rows, true);
		Assert(st->next_group < list_length(st->groups));
		st->group = list_nth(st->groups, st->next_group++);
		st->group_read = false;
	}
}

/*
 * n rows of the current stream as a join counts them: each once per outer
 * row of its token (a table alone: n).
 */
static int64
joined_count(DalpScanState *st, int64 n, const char *what)
{
	int64		result;

	if (st->outer == NULL)
		return n;
	reach_group(st, st->streams[st->cur_stream].token);
	if (pg_mul_s64_overflow(n, st->group->rows, &result))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the count the DALP API returned for %s, times the joined rows, exceeds " INT64_FORMAT,
						what, PG_INT64_MAX)));
	return result;
}

/*
 * A joined row: the next outer row of the current group, with the inner
 * row's columns.
 */
static TupleTableSlot *
next_joined_row(DalpScanState *st, TupleTableSlot *slot)
{
	int			natts = slot->tts_tupleDescriptor->natts;
	int			outer_natts = list_length(st->outer->attnums);

	if (!tuplestore_gettupleslot(st->outer_rows, true, false, st->outer_slot))
		elog(ERROR, "dalp_fdw: a join's outer rows ended before their group");
	st->replay--;
	slot_getallattrs(st->outer_slot);
	ExecClearTuple(slot);
	for (int a = 0; a < natts; a++)
	{
		bool		from_outer = a < outer_natts &&
			list_nth_int(st->outer->attnums, a) > 0;

		slot->tts_values[a] = from_outer ? st->outer_slot->tts_values[a] : st->inner_values[a];
		slot->tts_isnull[a] = from_outer ? st->outer_slot->tts_isnull[a] : st->inner_nulls[a];
	}
	return ExecStoreVirtualTuple(slot);
}

/*
 * The rows of a join: each inner row (its stream's token known) joined to
 * the outer rows of that token, read again from the group's start for
 * each inner row of the token.
 */
static TupleTableSlot *
iterate_join(ForeignScanState *node, DalpScanState *st, TupleTableSlot *slot)
{
	int			natts = slot->tts_tupleDescriptor->natts;

	if (st->outer_slot == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(st->scan_cxt);

		st->outer_slot = MakeSingleTupleTableSlot(slot->tts_tupleDescriptor,
												  &TTSOpsMinimalTuple);
		st->inner_values = palloc(sizeof(Datum) * natts);
		st->inner_nulls = palloc(sizeof(bool) * natts);
		MemoryContextSwitchTo(old);
	}
	while (st->replay == 0)
	{
		iterate_rows(st, slot);
		if (TupIsNull(slot))
			return slot;
		memcpy(st->inner_values, slot->tts_values, sizeof(Datum) * natts);
		memcpy(st->inner_nulls, slot->tts_isnull, sizeof(bool) * natts);
		reach_group(st, st->streams[st->cur_stream].token);
		if (st->group_read)
			tuplestore_copy_read_pointer(st->outer_rows, 1, 0);
		else
			tuplestore_copy_read_pointer(st->outer_rows, 0, 1);
		st->group_read = true;
		st->replay = st->group->rows;
	}
	return next_joined_row(st, slot);
}

static void
add_page_items(DalpScanState *st, int first, void *arg)
{
	*(int64 *) arg += st->page.nitems - first;
}

/* The items of a stream counted by paging, when the API gives no total. */
static int64
count_by_paging(DalpScanState *st, int stream_index)
{
	DalpStream *stream = &st->streams[stream_index];
	int64		n = 0;

	read_all_pages(st, st->res, stream->token, NULL, stream->filters,
				   reads_one_token(st), add_page_items, &n, sizeof(n));
	return n;
}

/* count(*): the sum of meta.total over the streams, requests in flight together. */
static int64
count_streams(DalpScanState *st)
{
	int64		total = 0;

	st->window = st->conf.concurrency;
	while (next_page(st))
	{
		int64		t = st->page.total;

		if (t < 0)
			t = count_by_paging(st, st->cur_stream);
		total = dalp_add_counts(total, joined_count(st, t, "count(*)"), "count(*)");
	}
	return total;
}

/* Count the facet column's values on the current page into arg, a DalpCounts. */
static void
count_facet_values(DalpScanState *st, int first, void *arg)
{
	DalpCounts *counts = (DalpCounts *) arg;
	int			natts = list_length(st->attnums);
	Datum	   *values = MemoryContextAlloc(st->page_cxt, sizeof(Datum) * natts);
	bool	   *nulls = MemoryContextAlloc(st->page_cxt, sizeof(bool) * natts);
	MemoryContext old;

	Assert(st->nbindings == 1);
	for (int i = first; i < st->page.nitems; i++)
	{
		char	   *value = NULL;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(st->tuple_cxt);
		old = MemoryContextSwitchTo(st->tuple_cxt);
		dalp_page_item_to_datums(&st->page, i, st->bindings, 1, NULL, NULL,
								 values, nulls);
		if (!nulls[st->bindings[0].attnum - 1])
			value = TextDatumGetCString(values[st->bindings[0].attnum - 1]);
		MemoryContextSwitchTo(old);
		/* counted in the caller's context, which the counts outlive */
		if (value)
			dalp_counts_add(counts, value, 1);
	}
}

/*
 * count(*) GROUP BY a facet field: meta.facets of every stream, one request
 * of page[limit]=1 each, in flight together, and the counts summed.  They
 * add up: the streams' rows are disjoint (other tokens, other chunks of a
 * split IN list), or, for several values of a search key, the rows of each
 * value, which a scan returns once per value; a join's, once per outer row
 * of their token.  A DalpFacetCount per value; a value one answer lists
 * twice is one group too.
 */
static List *
sum_facets(DalpScanState *st)
{
	DalpCounts	sums = DALP_COUNTS_EMPTY;

	st->window = st->conf.concurrency;
	while (next_page(st))
	{
		DalpStream *stream = &st->streams[st->cur_stream];
		MemoryContext stream_cxt = AllocSetContextCreate(CurrentMemoryContext,
														 "dalp_fdw facet counts",
														 ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(stream_cxt);
		DalpCounts	counted = DALP_COUNTS_EMPTY;
		List	   *listed;
		ListCell   *lc;

		/* meta.facets may be {}: then count the values page by page */
		if ((!dalp_page_facets(&st->page, st->facet, &listed) || listed == NIL) &&
			st->page.total != 0)
		{
			read_all_pages(st, st->res, stream->token, NULL, stream->filters,
						   reads_one_token(st), count_facet_values, &counted,
						   sizeof(DalpCounts));
			listed = counted.entries;
		}
		MemoryContextSwitchTo(old);
		foreach(lc, listed)
		{
			DalpFacetCount *fc = (DalpFacetCount *) lfirst(lc);

			CHECK_FOR_INTERRUPTS();
			dalp_counts_add(&sums, fc->value,
							joined_count(st, fc->count, "a facet value"));
		}
		MemoryContextDelete(stream_cxt);
	}
	return sums.entries;
}

/* Put a count into every aggregate position of the scan tuple. */
static void
store_count(DalpScanState *st, TupleTableSlot *slot, int64 count,
			const char *facet_value)
{
	int			natts = slot->tts_tupleDescriptor->natts;

	for (int i = 0; i < natts; i++)
	{
		bool		is_agg = list_nth_int(st->attnums, i) == 0;

		/* a join's count holds the outer rows' token too: never returned */
		if (st->outer && list_nth_int(st->outer->attnums, i) > 0)
		{
			slot->tts_isnull[i] = true;
			continue;
		}
		slot->tts_isnull[i] = !is_agg && facet_value == NULL;
		if (is_agg)
			slot->tts_values[i] = Int64GetDatum(count);
		else if (facet_value)
		{
			/* the only column of a facet scan: the grouped one */
			Assert(st->nbindings == 1 && st->bindings[0].attnum == i + 1);
			slot->tts_values[i] = dalp_text_to_datum(&st->bindings[0],
													 facet_value, NULL);
		}
	}
	ExecStoreVirtualTuple(slot);
}

static TupleTableSlot *
iterate_aggregate(DalpScanState *st, TupleTableSlot *slot)
{
	MemoryContext old;

	if (st->mode == DALP_MODE_COUNT)
	{
		if (st->exhausted)
			return slot;
		old = MemoryContextSwitchTo(st->tuple_cxt);
		store_count(st, slot, st->nstreams > 0 ? count_streams(st) : 0, NULL);
		MemoryContextSwitchTo(old);
		st->exhausted = true;
		return slot;
	}

	/* facets: one row per value */
	if (!st->exhausted && st->facet_rows == NIL && st->nstreams > 0)
	{
		old = MemoryContextSwitchTo(st->exec_cxt);
		st->facet_rows = sum_facets(st);
		st->facet_next = 0;
		MemoryContextSwitchTo(old);
	}
	while (!st->exhausted && st->facet_next < list_length(st->facet_rows))
	{
		DalpFacetCount *fc = list_nth(st->facet_rows, st->facet_next++);

		if (fc->count == 0)
			continue;
		old = MemoryContextSwitchTo(st->tuple_cxt);
		store_count(st, slot, fc->count, fc->value);
		MemoryContextSwitchTo(old);
		return slot;
	}
	st->exhausted = true;
	return slot;
}

/*
 * IterateForeignScan
 *		Return the next row in the scan tuple slot, or an empty slot when
 *		there is none.
 */
TupleTableSlot *
dalp_iterate_foreign_scan(ForeignScanState *node)
{
	DalpScanState *st = (DalpScanState *) node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	ExecClearTuple(slot);
	if (!st->started)
	{
		MemoryContext old = MemoryContextSwitchTo(st->exec_cxt);

		st->started = true;
		if (!start_execution(node, st))
		{
			st->nstreams = 0;
			st->exhausted = (st->mode == DALP_MODE_ROWS);
		}
		MemoryContextSwitchTo(old);
	}
	if (st->mode == DALP_MODE_ROWS)
		return st->outer ? iterate_join(node, st, slot) : iterate_rows(st, slot);
	return iterate_aggregate(st, slot);
}

/* Abandon what is in flight and forget the execution. */
static void
reset_execution(DalpScanState *st)
{
	ListCell   *lc;

	foreach(lc, st->pending)
		abandon_pending((DalpPending *) lfirst(lc));
	st->pending = NIL;
	/* before their memory goes: they may have spilled to temporary files */
	if (st->held)
		tuplestore_end(st->held);
	st->held = NULL;
	if (st->outer_rows)
		tuplestore_end(st->outer_rows);
	st->outer_rows = NULL;
	if (st->outer)
		reset_execution(st->outer);
	st->groups = NIL;
	st->next_group = 0;
	st->group = NULL;
	st->group_read = false;
	st->replay = 0;
	dalp_page_release(&st->page);
	MemoryContextReset(st->page_cxt);
	MemoryContextReset(st->exec_cxt);
	st->started = false;
	st->exhausted = false;
	st->have_page = false;
	st->streams = NULL;
	st->nstreams = 0;
	st->cur_stream = 0;
	st->item_key = NULL;
	st->facet_rows = NIL;
	st->facet_next = 0;
	st->prev_ids = st->cur_ids = NULL;
	st->may_repeat = false;
}

/*
 * ReScanForeignScan
 *		Start over.  Parameters may have changed, so the conditions are
 *		evaluated again: a nested loop's new token reads just that token.
 */
void
dalp_rescan_foreign_scan(ForeignScanState *node)
{
	DalpScanState *st = (DalpScanState *) node->fdw_state;

	reset_execution(st);
	st->repeated = true;
}

/*
 * EndForeignScan
 *		End the scan: stop the requests in flight and release its resources.
 */
void
dalp_end_foreign_scan(ForeignScanState *node)
{
	DalpScanState *st = (DalpScanState *) node->fdw_state;

	if (st == NULL || st->exec_cxt == NULL)
		return;
	reset_execution(st);
	if (st->held_slot != NULL)
		ExecDropSingleTupleTableSlot(st->held_slot);
	if (st->outer_slot != NULL)
		ExecDropSingleTupleTableSlot(st->outer_slot);
	if (st->outer != NULL && st->outer->held_slot != NULL)
		ExecDropSingleTupleTableSlot(st->outer->held_slot);
}

/*
 * The planned requests of one table of the scan as "DALP Request: GET ...",
 * decoded for reading.  join_token: what a join's inner table reads each
 * token of, else NULL.
 */
static void
explain_requests(ExplainState *es, DalpScanState *st, const char *join_token)
{
	DalpRequestSet rs;
	const char *token = st->table_token;
	char	   *limit_text = NULL;
	char	   *offset_text = NULL;
	int64		limit = -1;
	int			nconds = list_length(st->conds);
	int			i = 0;
	ListCell   *lc;
	char	   *path;

	/* one token, known before the scan runs (not a nested loop's outer value) */
	bool		one_token = (st->table_token != NULL);

	dalp_request_set_init(&rs);
	foreach(lc, st->exprs)
	{
		Expr	   *expr = (Expr *) lfirst(lc);

		if (i < nconds)
		{
			DalpCond   *cond = list_nth(st->conds, i);
			int			op = cond->op;
			char	   *text = dalp_explain_value(es, cond, expr, &op);

			if (cond->role == DALP_COND_TOKEN)
				one_token |= IsA(expr, Const) &&
					dalp_operator(op)->explain_each == NULL;
			if (text != NULL)
				(void) dalp_request_set_add(&rs, cond, op,
											list_make1(makeString(text)), true);
		}
		else if (i == nconds && (st->limit_flags & DALP_LIMIT_COUNT))
		{
			limit_text = dalp_explain_expr(es, expr);
			if (IsA(expr, Const) && !((Const *) expr)->constisnull)
				limit = DatumGetInt64(((Const *) expr)->constvalue);
		}
		else
			offset_text = dalp_explain_expr(es, expr);
		i++;
	}
	if (rs.constrained)
		token = strVal(linitial(rs.tokens));
	if (join_token)
		token = join_token;
	else if (dalp_resource_is_per_token(st->res) && token == NULL)
	{
		const DalpResourceDef *tokens_res = dalp_token_listing();

		path = dalp_build_path(tokens_res, NULL, NULL, tokens_res->scan_sort,
							   NULL, 0, st->conf.page_size);
		ExplainPropertyText("DALP Request",
							psprintf("GET %s", dalp_decode_for_display(path)), es);
		token = "{each token}";
	}
	if (marker_goes_first(st, one_token && join_token == NULL &&
						  st->outer == NULL &&
						  !dalp_conds_may_split(st->conds,
												list_truncate(list_copy(st->exprs), nconds)),
						  rs.item_key != NULL || !st->res->is_collection, limit))
		ExplainPropertyText("DALP Request",
							psprintf("GET %s",
									 dalp_decode_for_display(marker_path(st->res, token))),
							es);
	if (st->mode != DALP_MODE_ROWS)
		limit_text = "1";
	else if (limit_text == NULL)
		limit_text = psprintf("%d", st->conf.page_size);
	path = dalp_build_path_text(st->res, token, rs.item_key,
								st->mode == DALP_MODE_ROWS ? st->sort : NULL,
								((DalpVariant *) linitial(rs.variants))->filters,
								offset_text, limit_text);
	ExplainPropertyText("DALP Request",
						psprintf("GET %s", dalp_decode_for_display(path)), es);
}

/*
 * ExplainForeignScan
 *		EXPLAIN (VERBOSE): the planned requests, a join's outer table's
 *		first; EXPLAIN ANALYZE adds what was sent and received.
 */
void
dalp_explain_foreign_scan(ForeignScanState *node, ExplainState *es)
{
	DalpScanState *st = (DalpScanState *) node->fdw_state;
	DalpScanState *o = st->outer;
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;

	if (es->verbose)
	{
		char	   *join_token = NULL;

		if (o)
		{
			TargetEntry *key = list_nth(fsplan->fdw_scan_tlist, st->outer_key);

			explain_requests(es, o, NULL);
			join_token = psprintf("{each %s}",
								  deparse_expression((Node *) key->expr,
													 es->deparse_cxt, true, false));
		}
		explain_requests(es, st, join_token);
	}
	if (es->analyze)
	{
		ExplainPropertyInteger("DALP Requests", NULL,
							   st->requests + (o ? o->requests : 0), es);
		ExplainPropertyInteger("DALP Pages", NULL,
							   st->pages + (o ? o->pages : 0), es);
		ExplainPropertyInteger("DALP Rows", NULL, st->rows + (o ? o->rows : 0), es);
		ExplainPropertyInteger("DALP Retries", NULL,
							   st->retries + (o ? o->retries : 0), es);
		ExplainPropertyInteger("DALP Bytes", NULL, st->bytes + (o ? o->bytes : 0), es);
	}
}
