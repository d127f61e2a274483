/*-------------------------------------------------------------------------
 *
 * dalp_fdw.h
 *		  Shared declarations of the DALP foreign-data wrapper.
 *
 * The resource catalog (catalog.c) describes every DALP collection as data;
 * planning, request building, decoding and IMPORT FOREIGN SCHEMA are generic
 * code over it.  libcurl stays in http.c and json-c in json.c and decode.c,
 * so that the rest of the code speaks PostgreSQL only.
 *
 * One section per file, in layers from the bottom up: a file calls only the
 * files of the sections above its own (never one that calls it back), and
 * nothing calls dalp_fdw.c, the last.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DALP_FDW_H
#define DALP_FDW_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"
#include "nodes/pg_list.h"
#include "nodes/plannodes.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#define DALP_API_PREFIX "/api/v2"
#define DALP_MAX_PAGE_SIZE 200
#define DALP_MAX_IN_VALUES 100

/* ----------------------------------------------------------------
 * What the server sends, made safe (untrusted.c)
 * ----------------------------------------------------------------
 */

/*
 * The largest count taken from the API: 2^53, the largest integer a
 * JavaScript server holds exactly.  More is no count of items, but garbage.
 */
#define DALP_MAX_API_COUNT	INT64CONST(9007199254740992)

extern char *dalp_display_text(const char *s);
extern Datum dalp_input_call(FmgrInfo *flinfo, char *text, Oid typioparam,
							 int32 typmod);
extern int64 dalp_api_count(const char *text, const char *what,
							const char *display_path);
extern int64 dalp_add_counts(int64 a, int64 b, const char *what);

/*
 * Bytes as a server sends them, in malloc'd memory that grows: libcurl's
 * callbacks fill it, where palloc and ERROR are not allowed.
 */
typedef struct DalpBytes
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		no_memory;		/* malloc failed: bytes were lost */
} DalpBytes;

extern bool dalp_bytes_append(DalpBytes *buf, const char *data, size_t n,
							  size_t first_cap, size_t most);

/* ----------------------------------------------------------------
 * Strings with a count each, in the order first seen (counts.c)
 * ----------------------------------------------------------------
 */

/* A value of a facet field and how many items have it. */
typedef struct DalpFacetCount
{
	char	   *value;			/* first: the key of a DalpCounts' hash */
	int64		count;
} DalpFacetCount;

typedef struct DalpCounts
{
	HTAB	   *hash;			/* DalpFacetCount entries, keyed by value;
								 * NULL until the first value */
	List	   *entries;		/* the same entries, first seen first */
	MemoryContext cxt;			/* current when the first value was added:
								 * holds them all */
} DalpCounts;

/* All zeroes is an empty DalpCounts (read_all_pages zeroes its *arg). */
#define DALP_COUNTS_EMPTY {NULL, NIL, NULL}

extern bool dalp_counts_add(DalpCounts *counts, const char *value, int64 n);
extern bool dalp_counts_contain(const DalpCounts *counts, const char *value);

/* ----------------------------------------------------------------
 * Resource catalog (catalog.c)
 * ----------------------------------------------------------------
 */

/* Where a column's value comes from. */
typedef enum DalpValueKind
{
	DALP_VALUE_PATH,			/* dotted json path into the item */
	DALP_VALUE_TOKEN,			/* the token address the request was for */
	DALP_VALUE_RAW,				/* the whole item, as jsonb */
	DALP_VALUE_NAMED_VALUES,	/* [{name,value},...] folded into a jsonb
								 * object */
	DALP_VALUE_SEARCH_ECHO		/* the value searched for (tokens.q) */
} DalpValueKind;

/*
 * API filter operators a column supports, as bits.  Each bit has a row in
 * the operator table (operator_defs in catalog.c, read through the
 * functions below), which says all else.
 */
#define DALP_OP_EQ			0x0001
#define DALP_OP_NE			0x0002
#define DALP_OP_GT			0x0004
#define DALP_OP_GTE			0x0008
#define DALP_OP_LT			0x0010
#define DALP_OP_LTE			0x0020
#define DALP_OP_ILIKE		0x0040
#define DALP_OP_IN			0x0080
#define DALP_OP_NOT_IN		0x0100
#define DALP_OP_EQ_BARE		0x0200
#define DALP_OP_RANGE		(DALP_OP_GT | DALP_OP_GTE | DALP_OP_LT | DALP_OP_LTE)

/* What an operator's value is, and how it is sent (cond_texts, deparse.c). */
typedef enum DalpOpValue
{
	DALP_OPVAL_ONE,				/* one value of the column's type */
	DALP_OPVAL_PATTERN,			/* a constant LIKE pattern without escapes:
								 * the API knows % and _ but no escapes */
	DALP_OPVAL_LIST,			/* an array, sent comma-separated; a longer
								 * list than DALP_MAX_IN_VALUES is split
								 * into several requests */
	DALP_OPVAL_WHOLE_LIST		/* an array that must be sent in one request
								 * (a union of requests is not its rows): a
								 * longer list is checked locally */
} DalpOpValue;

/* Which end of a range an operator bounds. */
typedef enum DalpOpBound
{
	DALP_BOUND_NONE,
	DALP_BOUND_LOWER,			/* > and >= */
	DALP_BOUND_UPPER			/* < and <= */
} DalpOpBound;

/* A row of the operator table. */
typedef struct DalpOperatorDef
{
	int			bit;			/* DALP_OP_* */
	const char *api;			/* sent as filter[field][api]=value */
	int			spells;			/* or, when not 0: a column with this bit
								 * sends operator "spells" as
								 * filter[field]=value (api is NULL) */
	const char *sql;			/* built-in SQL operator "column sql value" */
	const char *sql_commuted;	/* the same with the value on the left:
								 * "value sql_commuted column" */
	const char *sql_superset;	/* a SQL operator keeping a subset of the
								 * API's rows (LIKE for iLike): sent, and
								 * checked locally too */
	bool		negated;		/* true where no value matches: <> and NOT
								 * IN (SQL's ALL) */
	DalpOpValue value;			/* a list (dalp_operator_is_list): SQL
								 * "column sql ANY/ALL (array)", IN and
								 * NOT IN */
	DalpOpBound bound;
	bool		inclusive;		/* a bound: the value itself is in range */
	const char *explain_each;	/* EXPLAIN's text for the values where each
								 * is read on its own (a token fan-out, a
								 * search per value), or NULL */
} DalpOperatorDef;

typedef struct DalpColumnDef
{
	const char *name;			/* SQL column name */
	Oid			typid;			/* PostgreSQL type */
	DalpValueKind kind;
	const char *json_path;		/* for DALP_VALUE_PATH: dotted path; '|'
								 * separates alternatives tried in turn */
	const char *filter;			/* API filter field, or NULL */
	int			ops;			/* DALP_OP_* the API accepts on it */
	const char *sort;			/* API sort field, or NULL */
	bool		case_insensitive;	/* the API compares it ignoring case
									 * (addresses, hashes) */
	bool		facet;			/* meta.facets counts it */
	bool		is_hash;		/* case_insensitive: a transaction hash, not
								 * an address (see dalp_is_hex_id) */
} DalpColumnDef;

typedef struct DalpResourceDef
{
	const char *name;			/* value of the "resource" option and the
								 * imported table's name */
	const char *path;			/* path under /api/v2; "{token}" marks a
								 * per-token collection */
	bool		is_collection;	/* false: a single resource */
	bool		token_listing;	/* the listing of every token, whose items'
								 * id_field is the address: what a per-token
								 * table without a token reads first */
	const char *rows_field;		/* single resource whose rows are an array
								 * field of data ("services"), else NULL */
	const char *item_path;		/* single-item GET by key column, or NULL */
	const char *item_key_column;	/* column whose "=" selects item_path */
	bool		item_404_is_empty;	/* a 404 there means "no such item" */
	const char *scan_sort;		/* sort sent on a full scan: a read order
								 * in which new items land on the last page */
	const char *id_field;		/* item field used to drop duplicates at page
								 * boundaries ("a,b": the fields that
								 * together identify an item), or NULL */
	const char *marker;			/* resource whose newest item changes
								 * whenever this one's items do (its change
								 * marker), or NULL */
	const char *sort_ties[2];	/* columns the API breaks sort ties by, in
								 * order (the sort column itself skipped) */
	const DalpColumnDef *columns;
	int			ncolumns;
} DalpResourceDef;

extern const int dalp_nresources;

extern const DalpResourceDef *dalp_resource_at(int index);

extern const DalpResourceDef *dalp_resource_lookup(const char *name);
extern const DalpColumnDef *dalp_column_lookup(const DalpResourceDef *res,
											   const char *colname);
extern const DalpOperatorDef *dalp_operator(int bit);
extern bool dalp_operator_is_list(const DalpOperatorDef *op);
extern const DalpOperatorDef *dalp_operator_for_sql(const char *sqlname,
													bool array, bool use_or,
													bool commuted,
													bool *superset);
extern const DalpOperatorDef *dalp_range_operator(DalpOpBound bound,
												  bool inclusive);
extern const char *dalp_operator_api_name(const DalpColumnDef *col, int op);
extern const DalpResourceDef *dalp_token_listing(void);
extern bool dalp_resource_is_per_token(const DalpResourceDef *res);
extern char *dalp_resource_names(void);
extern char *dalp_column_names(const DalpResourceDef *res);

/* ----------------------------------------------------------------
 * Options (options.c)
 * ----------------------------------------------------------------
 */

/* What a read that kept seeing the ledger move does: option on_ledger_change. */
typedef enum DalpOnLedgerChange
{
	DALP_ON_LEDGER_CHANGE_ERROR,
	DALP_ON_LEDGER_CHANGE_WARNING
} DalpOnLedgerChange;

#define DALP_BUDGET_KEY_LEN 32	/* SHA-256 */

/*
 * Everything one HTTP request needs, resolved from server + user mapping
 * (+ a table's overrides).  The option fields are set from their rows in
 * options.c's valid_options, defaults included; a request keeps a copy.
 */
typedef struct DalpConnConfig
{
	Oid			serverid;
	Oid			umid;			/* user mapping oid: part of the handle cache
								 * key */
	char	   *server_name;
	char	   *base_url;		/* no trailing slash */
	char	   *api_key;		/* secret: never printed */
	int			page_size;
	int			concurrency;
	int			connect_timeout_ms;
	int			timeout_ms;
	int			max_retries;
	int			retry_base_ms;
	int			retry_after_max_ms;
	int			rate_limit_per_minute;
	bool		verify_tls;
	bool		compression;	/* ask for gzip (Accept-Encoding) */
	char	   *ca_file;		/* NULL: system store */
	int64		max_response_bytes;
	double		fdw_startup_cost;
	double		fdw_request_cost;
	double		fdw_tuple_cost;
	bool		use_remote_estimate;
	int			ledger_rereads; /* rereads of a collection that changed while
								 * it was read */
	int			on_ledger_change;	/* DalpOnLedgerChange, when it kept
									 * changing */
	/* the name of its request budget, set with api_key (dalp_budget_name) */
	uint8		budget_key[DALP_BUDGET_KEY_LEN];
} DalpConnConfig;

/*
 * While a ledger function's implementation runs as the extension's owner
 * (ledger.c), the scans it runs as "owner" read the API with the user
 * mapping of "caller", the role that called the function.  Backend-local:
 * a parallel worker would not see it, and dalp_fdw's scans never run in one.
 */
typedef struct DalpMappingOverride
{
	Oid			owner;
	Oid			caller;			/* InvalidOid: no override */
} DalpMappingOverride;

extern DalpMappingOverride dalp_mapping_override;

/* Addresses and transaction hashes as DALP writes them: see dalp_is_hex_id. */
#define DALP_ADDRESS_DIGITS 40
#define DALP_HASH_DIGITS	64

extern bool dalp_is_hex_id(const char *s, int ndigits);

extern void dalp_check_option_rows(void);
extern void dalp_get_server_config(Oid serverid, DalpConnConfig *conf);
extern void dalp_get_conn_config(Oid serverid, Oid userid, DalpConnConfig *conf);
extern void dalp_conn_config_copy(DalpConnConfig *dst,
								  const DalpConnConfig *src);
extern const DalpResourceDef *dalp_table_resource(Oid foreigntableid,
												  char **token_address);
extern void dalp_apply_table_options(Oid foreigntableid, DalpConnConfig *conf);
extern char *dalp_column_json_path(Oid relid, AttrNumber attnum);

/* ----------------------------------------------------------------
 * Request building (deparse.c): what the API can take and its exact text
 * ----------------------------------------------------------------
 */

/* What a pushed-down condition does with its value. */
typedef enum DalpCondRole
{
	DALP_COND_TOKEN,			/* selects the token path (fan-out for IN) */
	DALP_COND_ITEM,				/* selects the single-item path */
	DALP_COND_FILTER,			/* becomes filter[field][op]=value */
	DALP_COND_SEARCH			/* a search key; its column echoes the value */
} DalpCondRole;

/* A condition sent to the API; its value is fdw_exprs at the same index. */
typedef struct DalpCond
{
	const DalpColumnDef *column;
	DalpCondRole role;
	int			op;				/* one DALP_OP_* bit */
	bool		exact;			/* the API evaluates it exactly as SQL */
} DalpCond;

/*
 * One variant of the filters: a scan reads each token once per variant.
 * Every condition is added to each variant; an IN list longer than the
 * API's cap multiplies the variants by its chunks, and a search key with
 * several values by its values (each variant echoes its own).
 */
typedef struct DalpVariant
{
	char	   *filters;		/* encoded "k=v&k=v", or "" */
	char	   *search_value;	/* what the search column returns, or NULL */
} DalpVariant;

/* The requests of a scan, as its conditions shape them. */
typedef struct DalpRequestSet
{
	List	   *tokens;			/* the tokens to read, when constrained */
	bool		constrained;	/* false: every token (or none needed) */
	List	   *variants;		/* DalpVariant *: the filters of each read */
	char	   *item_key;		/* the single-item key, or NULL */
} DalpRequestSet;

struct ExplainState;

extern bool dalp_pushdown_enabled;

extern bool dalp_is_pushable_value(Expr *expr, RelOptInfo *baserel,
								   bool allow_outer);
extern const DalpColumnDef *dalp_column_of_var(Expr *expr,
											   RelOptInfo *baserel,
											   const DalpResourceDef *res,
											   Oid relid);
extern bool dalp_column_accepts(const DalpResourceDef *res,
								const DalpColumnDef *col, int op);
extern bool dalp_conds_may_split(List *conds, List *values);

/* the most streams (requests, at least) one scan may make */
#define DALP_MAX_STREAMS 1000000
extern void dalp_check_stream_count(int64 n);
extern DalpCond *dalp_classify_clause(RelOptInfo *baserel,
									  const DalpResourceDef *res, Oid relid,
									  Expr *clause, bool allow_outer,
									  Expr **value);
extern void dalp_classify_clauses(RelOptInfo *baserel,
								  const DalpResourceDef *res, Oid relid,
								  List *clauses, bool allow_outer,
								  List **conds, List **values, List **local,
								  List **filters);
extern void dalp_append_query_param(StringInfo buf, const char *key,
									const char *value);
extern char *dalp_decode_for_display(const char *path);
extern int	dalp_hex_value(char c);
extern char *dalp_expand_path(const char *tmpl, const char *token,
							  const char *key);
extern char *dalp_value_to_api_text(Datum value, Oid typid);
extern bool dalp_collation_is_c(Oid collation);
extern List *dalp_conds_to_private(List *conds);
extern List *dalp_conds_from_private(const DalpResourceDef *res,
									 List *private_conds);
extern void dalp_request_set_init(DalpRequestSet *rs);
extern bool dalp_request_set_add(DalpRequestSet *rs, const DalpCond *cond,
								 int op, List *texts, bool explain);
extern bool dalp_plan_requests(List *conds, Datum *values, bool *nulls,
							   bool *skip, List *given_tokens,
							   bool *tokens_constrained, List **tokens,
							   List **variants, char **item_key,
							   int *noticed);
extern bool dalp_cond_constant_filters(const DalpResourceDef *res,
									   List *conds, List *values,
									   const char *table_token,
									   List **token_values, char **filters);
extern char *dalp_build_path_text(const DalpResourceDef *res,
								  const char *token, const char *item_key,
								  const char *sort, const char *filters,
								  const char *offset, const char *limit);
extern char *dalp_build_path(const DalpResourceDef *res, const char *token,
							 const char *item_key, const char *sort,
							 const char *filters, int64 offset, int limit);
extern char *dalp_build_count_path(const DalpResourceDef *res,
								   const char *token, const char *filters);
extern char *dalp_explain_expr(struct ExplainState *es, Expr *expr);
extern char *dalp_explain_value(struct ExplainState *es, const DalpCond *cond,
								Expr *expr, int *op);

/* ----------------------------------------------------------------
 * Cluster-wide state (shmem.c), with dalp_fdw preloaded only
 * ----------------------------------------------------------------
 */

/* A request's claim on the budget of its (API key, origin). */
typedef struct DalpBudgetTicket
{
	uint8		key[DALP_BUDGET_KEY_LEN];	/* SHA-256(salt, origin, key) */
	int			slot;			/* where the budget was last found, or -1 */
	int64		reserved_at;	/* send time reserved, or 0 */
	int64		tat_before;		/* the budget's TAT before and after the */
	int64		tat_after;		/* reservation, to give it back */
} DalpBudgetTicket;

typedef enum DalpBudgetVerdict
{
	DALP_BUDGET_GO,				/* send now */
	DALP_BUDGET_RATE,			/* wait: rate limit */
	DALP_BUDGET_HOLD,			/* wait: another request's 429 Retry-After */
	DALP_BUDGET_LOCAL			/* no shared slot left: per-backend bucket */
} DalpBudgetVerdict;

typedef enum DalpCommand
{
	DALP_CMD_NONE,				/* not using the API: no row */
	DALP_CMD_SCAN,
	DALP_CMD_COUNT,
	DALP_CMD_ESTIMATE,			/* planning: use_remote_estimate */
	DALP_CMD_SYNC_EVENTS,
	DALP_CMD_TAKE_SNAPSHOT
} DalpCommand;

typedef enum DalpPhase
{
	DALP_PHASE_NONE,
	DALP_PHASE_HEALTH_CHECK,
	DALP_PHASE_BACKFILL,
	DALP_PHASE_REPLAY,
	DALP_PHASE_RECONCILE
} DalpPhase;

typedef enum DalpWaitKind
{
	DALP_WAIT_NONE,
	DALP_WAIT_NETWORK,			/* a transfer in flight */
	DALP_WAIT_BACKOFF,			/* before a retry after an error */
	DALP_WAIT_RATE_LIMIT,		/* for the budget */
	DALP_WAIT_RETRY_AFTER		/* for a 429's Retry-After */
} DalpWaitKind;

#define DALP_ACTIVITY_PATH_LEN 256

/* One backend's row of dalp_fdw.activity; written by its owner only. */
typedef struct DalpActivitySlot
{
	int			changecount;	/* odd while the owner writes */
	int			pid;			/* 0: slot free */
	Oid			dbid;
	Oid			userid;			/* the session user */
	DalpCommand command;
	DalpPhase	phase;
	DalpWaitKind wait;
	TimestampTz started;		/* the command's start */
	TimestampTz wait_since;
	int64		pages_done;
	int64		pages_expected;
	int64		rows;
	int64		retries;
	NameData	server;
	char		path[DALP_ACTIVITY_PATH_LEN];	/* decoded; never the key */
} DalpActivitySlot;

/* The int64 counters of DalpServerStats (stats.c; all but serverid). */
#define DALP_STATS_NCOUNTERS 12

/* A row of the cluster-wide counters. */
typedef struct DalpSharedStats
{
	Oid			dbid;
	Oid			serverid;
	NameData	server;
	int64		counters[DALP_STATS_NCOUNTERS];
} DalpSharedStats;

extern void dalp_shared_register(void);
extern bool dalp_shared_enabled(void);
extern Size dalp_shared_size(void);
extern int64 dalp_monotonic_us(void);
extern void dalp_budget_name(uint8 *key, const char *origin,
							 const char *api_key);
extern void dalp_budget_ticket_init(DalpBudgetTicket *t, const uint8 *key);
extern DalpBudgetVerdict dalp_budget_take(DalpBudgetTicket *t, int64 now,
										  int64 interval_us, int64 *until);
extern void dalp_budget_release(DalpBudgetTicket *t);
extern void dalp_budget_hold(DalpBudgetTicket *t, int64 until,
							 int64 interval_us);
extern DalpActivitySlot *dalp_shared_my_activity(void);
extern int	dalp_shared_read_activity(DalpActivitySlot **rows);
extern int	dalp_shared_stats_slot(Oid serverid, const char *server_name);
extern void dalp_shared_stats_add(int slot, const int64 *deltas);
extern int	dalp_shared_read_stats(DalpSharedStats **rows, TimestampTz *since);
extern void dalp_shared_stats_reset(void);

/* ----------------------------------------------------------------
 * Statistics (stats.c): per server, per backend
 * ----------------------------------------------------------------
 */

typedef struct DalpServerStats
{
	Oid			serverid;
	int64		requests;
	int64		pages;
	int64		rows;
	int64		bytes;
	int64		retries;
	int64		rate_limit_waits;
	int64		errors;
	int64		connections_opened;
	int64		network_wait_us;
	int64		responses_429;
	int64		retry_after_waits;	/* waits for another request's 429 */
	int64		budget_wait_us; /* waiting for the rate limit or a 429 */
} DalpServerStats;

extern DalpServerStats *dalp_stats_for(Oid serverid);
extern void dalp_stats_flush(void);

/* ----------------------------------------------------------------
 * This backend's activity (activity.c), for dalp_fdw.activity
 * ----------------------------------------------------------------
 */
extern void dalp_activity_scan_begin(const char *server, bool returns_rows,
									 MemoryContext query_cxt);
extern void dalp_activity_page(int64 expected_more);
extern void dalp_activity_row(void);
extern void dalp_activity_retry(void);
extern void dalp_activity_request(const char *server, const char *display_path);
extern void dalp_activity_wait(DalpWaitKind kind);

/* ----------------------------------------------------------------
 * HTTP (http.c): the only file that calls libcurl
 * ----------------------------------------------------------------
 */

typedef struct DalpHttpResult
{
	long		status;			/* final HTTP status */
	char	   *body;			/* NUL-terminated, palloc'd; NULL when a sink
								 * took it */
	size_t		body_len;
	char	   *content_type;	/* palloc'd, or NULL */
	int			attempts;		/* requests sent for this result */
	int64		bytes;			/* body bytes received over all attempts,
								 * as sent: before gzip decoding */
} DalpHttpResult;

typedef struct DalpHttpRequest DalpHttpRequest;

/*
 * Where the body of a 2xx response goes as it arrives (other bodies are
 * kept in DalpHttpResult.body).  Both functions run inside libcurl: they
 * must neither palloc nor raise an ERROR.
 */
typedef struct DalpBodySink
{
	/* an attempt starts: forget the bytes of an earlier one */
	void		(*begin) (void *arg);
	/* the next bytes; false stops the transfer */
	bool		(*consume) (void *arg, const char *data, size_t len);
	void	   *arg;
} DalpBodySink;

extern DalpHttpRequest *dalp_http_start(const DalpConnConfig *conf,
										const char *path, DalpBodySink *sink);
extern DalpHttpResult *dalp_http_wait(DalpHttpRequest *req);
extern DalpHttpResult *dalp_http_wait_hook(DalpHttpRequest *req,
										   void (*hook) (void *arg, bool others_ended),
										   void *arg);
extern void dalp_http_poll(void);
extern bool dalp_http_done(const DalpHttpRequest *req);
extern void dalp_http_abandon(DalpHttpRequest *req);
extern void dalp_http_name_budget(DalpConnConfig *conf);
extern DalpHttpResult *dalp_http_get(const DalpConnConfig *conf,
									 const char *path, DalpBodySink *sink);

/* ----------------------------------------------------------------
 * JSON (json.c): responses parsed by json-c as they arrive
 * ----------------------------------------------------------------
 */

typedef struct DalpJsonParser DalpJsonParser;

extern DalpJsonParser *dalp_json_parser_create(int64 max_response_bytes,
											   bool active);
extern DalpBodySink *dalp_json_parser_sink(DalpJsonParser *parser);
extern void dalp_json_parser_catch_up(DalpJsonParser *parser);
extern void dalp_json_parser_activate(DalpJsonParser *parser);
extern void dalp_json_parser_free(DalpJsonParser *parser);

/* ----------------------------------------------------------------
 * Decoding (decode.c): json-c documents to Datums
 * ----------------------------------------------------------------
 */

/*
 * How a value becomes a Datum of the column's declared type: decided once,
 * when the binding is made, from that type (any type a role declared).
 */
typedef enum DalpConversion
{
	DALP_CONV_TEXT,				/* text: the value's text */
	DALP_CONV_JSONB,			/* jsonb: the JSON value itself */
	DALP_CONV_TIMESTAMPTZ,		/* timestamptz: DALP's timestamp shape read
								 * directly, anything else as DALP_CONV_INPUT */
	DALP_CONV_JSON_TEXT,		/* json, domains over json or jsonb: the
								 * input function reads the JSON text */
	DALP_CONV_ARRAY,			/* arrays: a JSON array, as an array literal
								 * of its elements' texts, read by the input
								 * function */
	DALP_CONV_INPUT				/* any other type: the input function reads
								 * the value's text */
} DalpConversion;

/* How one attribute of the foreign table is filled from an item. */
typedef struct DalpColumnBinding
{
	AttrNumber	attnum;
	const char *colname;
	Oid			typid;
	int32		typmod;
	const char *typname;		/* with its modifier, for errors */
	DalpValueKind kind;
	List	   *paths;			/* alternatives; each a List of String
								 * segments */
	char	   *path_text;		/* as the user wrote it, for errors */
	DalpConversion conv;
	Oid			basetypid;		/* typid, or a domain's base type */
	FmgrInfo	infunc;
	Oid			typioparam;
	Oid			elembasetypid;	/* DALP_CONV_ARRAY: the elements' base type */
	bool		elem_json;		/* ... elements are json or jsonb */
	char		elemdelim;		/* ... the array literal's delimiter */
} DalpColumnBinding;

/* One decoded response page; json-c stays inside decode.c. */
typedef struct DalpPage
{
	void	   *root;			/* the parsed document (a json_object), freed
								 * with the page's memory context */
	void	   *items;			/* the items (json_object pointers) */
	int			nitems;
	int64		total;			/* meta.total, or -1 when absent */
	const char *display_path;	/* for errors */
} DalpPage;

extern void dalp_raise_for_status(const DalpHttpResult *res,
								  const char *display_path,
								  const char *secret);
extern void dalp_page_parse(DalpPage *page, const DalpHttpResult *res,
							DalpJsonParser *parser,
							const DalpResourceDef *resdef, bool single,
							const char *display_path);
extern void dalp_page_release(DalpPage *page);
extern bool dalp_page_facets(DalpPage *page, const char *field,
							 List **counts);
extern const char *dalp_page_item_id(DalpPage *page, int index,
									 List *id_path);
extern void dalp_page_item_to_datums(DalpPage *page, int index,
									 DalpColumnBinding *bindings,
									 int nbindings,
									 const char *token_address,
									 const char *search_echo,
									 Datum *values, bool *nulls);
extern List *dalp_parse_json_path(const char *path_text);
extern void dalp_binding_set_type(DalpColumnBinding *b, Oid typid,
								  int32 typmod);
extern Datum dalp_text_to_datum(DalpColumnBinding *b, const char *text,
								const char *display_path);
extern DalpColumnBinding *dalp_make_bindings(Relation rel,
											 const DalpResourceDef *res,
											 List *attnums, List *positions,
											 int *nbindings);

/* ----------------------------------------------------------------
 * Reading pages (pages.c), for planning and execution
 * ----------------------------------------------------------------
 */

extern bool dalp_check_response(const DalpConnConfig *conf,
								DalpHttpResult *res, const char *path,
								bool missing_is_empty);
extern int64 dalp_fetch_total(const DalpConnConfig *conf, const char *path);
extern bool dalp_page_is_last(const DalpPage *page, int64 offset,
							  int requested);

/* ----------------------------------------------------------------
 * Planning (plan.c) and execution (scan.c)
 * ----------------------------------------------------------------
 */

/* What a foreign scan returns. */
typedef enum DalpScanMode
{
	DALP_MODE_ROWS,				/* the items */
	DALP_MODE_COUNT,			/* count(*) from meta.total */
	DALP_MODE_FACETS			/* (value, count(*)) from meta.facets */
} DalpScanMode;

/* Which of LIMIT and OFFSET follow the condition values in fdw_exprs. */
#define DALP_LIMIT_COUNT	0x01
#define DALP_LIMIT_OFFSET	0x02

/* Indexes into ForeignScan.fdw_private (a List). */
enum DalpScanPrivateIndex
{
	DALP_PRIVATE_RESOURCE,		/* String: resource name */
	DALP_PRIVATE_CONDS,			/* List of (colname, role, op, exact) */
	DALP_PRIVATE_ATTRS,			/* IntList: base attnums to decode, in scan
								 * tuple order (0: not a column) */
	DALP_PRIVATE_SORT,			/* String: sort parameter, or "" for none */
	DALP_PRIVATE_MODE,			/* Integer: DalpScanMode */
	DALP_PRIVATE_RELID,			/* Integer: the foreign table's OID */
	DALP_PRIVATE_FACET,			/* String: facet field, or "" */
	DALP_PRIVATE_LIMIT,			/* Integer: DALP_LIMIT_* flags */
	DALP_PRIVATE_EVERY_ROW,		/* Boolean: the planner expects every row to
								 * be read (no LIMIT above, no cursor) */
	DALP_PRIVATE_OUTER,			/* List: a join's outer table, read first
								 * (the same layout; its condition values
								 * come first in fdw_exprs), or NIL */
	DALP_PRIVATE_OUTER_KEY		/* Integer: a join's scan tuple position of
								 * the outer column holding token addresses */
};

extern void dalp_get_foreign_rel_size(PlannerInfo *root, RelOptInfo *baserel,
									  Oid foreigntableid);
extern void dalp_get_foreign_paths(PlannerInfo *root, RelOptInfo *baserel,
								   Oid foreigntableid);
extern ForeignScan *dalp_get_foreign_plan(PlannerInfo *root,
										  RelOptInfo *baserel,
										  Oid foreigntableid,
										  ForeignPath *best_path,
										  List *tlist, List *scan_clauses,
										  Plan *outer_plan);
extern void dalp_get_foreign_join_paths(PlannerInfo *root,
										RelOptInfo *joinrel,
										RelOptInfo *outerrel,
										RelOptInfo *innerrel,
										JoinType jointype,
										JoinPathExtraData *extra);
extern void dalp_get_foreign_upper_paths(PlannerInfo *root,
										 UpperRelationKind stage,
										 RelOptInfo *input_rel,
										 RelOptInfo *output_rel,
										 void *extra);


extern void dalp_begin_foreign_scan(ForeignScanState *node, int eflags);
extern TupleTableSlot *dalp_iterate_foreign_scan(ForeignScanState *node);
extern void dalp_rescan_foreign_scan(ForeignScanState *node);
extern void dalp_end_foreign_scan(ForeignScanState *node);
extern void dalp_explain_foreign_scan(ForeignScanState *node,
									  struct ExplainState *es);

/* ----------------------------------------------------------------
 * IMPORT FOREIGN SCHEMA (import.c)
 * ----------------------------------------------------------------
 */
struct ImportForeignSchemaStmt;
extern List *dalp_import_foreign_schema(struct ImportForeignSchemaStmt *stmt,
										Oid serverOid);

/* ----------------------------------------------------------------
 * The module (dalp_fdw.c): _PG_init and the FDW handler
 * ----------------------------------------------------------------
 */
extern void _PG_init(void);

#endif							/* DALP_FDW_H */
