/*-------------------------------------------------------------------------
 *
 * deparse.c
 *		  Request building: the only file that knows the API's query
 *		  language.  The texts of condition values, the filter variants,
 *		  tokens and item key of a scan's requests, their paths and query
 *		  strings, and EXPLAIN's text of them.
 *
 * Query parameters use bracket notation (filter[eventName][eq]=...), sent
 * percent-encoded; EXPLAIN and error messages show them decoded so that a
 * human can read them.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"
#include "compat.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/formatting.h"
#include "utils/lsyscache.h"
#include "utils/pg_locale.h"
#include "utils/ruleutils.h"
#include "utils/timestamp.h"

bool		dalp_pushdown_enabled = true;

/* RFC 3986 unreserved characters pass through; everything else is %XX. */
static void
append_percent_encoded(StringInfo buf, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
			*p == '.' || *p == '~')
			appendStringInfoChar(buf, (char) *p);
		else
		{
			appendStringInfoChar(buf, '%');
			appendStringInfoChar(buf, hex[*p >> 4]);
			appendStringInfoChar(buf, hex[*p & 0x0F]);
		}
	}
}

/*
 * Append "key=value" to a path being built, with '?' or '&' as needed.
 */
void
dalp_append_query_param(StringInfo buf, const char *key, const char *value)
{
	appendStringInfoChar(buf, strchr(buf->data, '?') ? '&' : '?');
	append_percent_encoded(buf, key);
	appendStringInfoChar(buf, '=');
	append_percent_encoded(buf, value);
}

/* The value of a hexadecimal digit, or -1. */
int
dalp_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The path with its percent-escapes decoded, for EXPLAIN and messages.
 * Never contains anything secret: the key travels only in a header.
 */
char *
dalp_decode_for_display(const char *path)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const char *p = path; *p; p++)
	{
		int			hi,
					lo;

		if (*p == '%' && (hi = dalp_hex_value(p[1])) >= 0 &&
			(lo = dalp_hex_value(p[2])) >= 0)
		{
			char		c = (char) ((hi << 4) | lo);

			/* keep control characters escaped so a log line stays one line */
			if ((unsigned char) c < 0x20 || c == 0x7F)
				appendBinaryStringInfo(&buf, p, 3);
			else
				appendStringInfoChar(&buf, c);
			p += 2;
		}
		else
			appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

/*
 * "/api/v2" + a path template with "{token}" and "{key}" replaced by the
 * percent-encoded token address and item key.
 */
char *
dalp_expand_path(const char *tmpl, const char *token, const char *key)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, DALP_API_PREFIX);
	for (const char *p = tmpl; *p; p++)
	{
		if (strncmp(p, "{token}", 7) == 0)
		{
			Assert(token != NULL);
			append_percent_encoded(&buf, token);
			p += 6;
		}
		else if (strncmp(p, "{key}", 5) == 0)
		{
			Assert(key != NULL);
			append_percent_encoded(&buf, key);
			p += 4;
		}
		else
			appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

/* How a condition's value turned out. */
typedef enum ValueVerdict
{
	VALUE_SEND,					/* send these texts */
	VALUE_NEVER,				/* no row can match */
	VALUE_ALWAYS,				/* every row matches: send nothing */
	VALUE_LOCAL					/* not sendable: send nothing, as planning
								 * kept the condition as a local filter */
} ValueVerdict;

/*
 * Can a value of an address or hash column match DALP's data, as
 * dalp_is_hex_id says?  (The API compares such columns ignoring case, and
 * rejects a malformed value.)
 */
static bool
can_match_dalp_hex(const DalpColumnDef *col, const char *s)
{
	return dalp_is_hex_id(s, col->is_hash ? DALP_HASH_DIGITS : DALP_ADDRESS_DIGITS);
}

/*
 * A timestamp range bound (a lower or an upper one) the API can take
 * exactly.  DALP timestamps have millisecond precision, so "> x" with x
 * between two milliseconds is ">= the next millisecond", and "<= x" is
 * "< the next millisecond".
 */
static ValueVerdict
timestamp_bound(DalpOpBound bound, int *op, Datum *value)
{
	TimestampTz ts = DatumGetTimestampTz(*value);
	bool		lower = (bound == DALP_BOUND_LOWER);
	int64		sub_ms = ts % 1000;

	if (TIMESTAMP_IS_NOBEGIN(ts))
		return lower ? VALUE_ALWAYS : VALUE_NEVER;
	if (TIMESTAMP_IS_NOEND(ts))
		return lower ? VALUE_NEVER : VALUE_ALWAYS;
	if (sub_ms != 0)
	{
		ts += (sub_ms > 0) ? 1000 - sub_ms : -sub_ms;
		*op = dalp_range_operator(bound, lower)->bit;
		*value = TimestampTzGetDatum(ts);
	}
	return VALUE_SEND;
}

/*
 * Why an address value was dropped: it cannot match DALP's lowercase hex.
 * Bits, so that a condition's (and a scan's) reasons add up.
 */
#define DROPPED_CASED		0x01	/* lowercased, it would be an address */
#define DROPPED_MALFORMED	0x02	/* not an address at all */

static int
dropped_reason(const DalpColumnDef *col, const char *s)
{
	return can_match_dalp_hex(col, asc_tolower(s, strlen(s))) ?
		DROPPED_CASED : DROPPED_MALFORMED;
}

/*
 * The texts to send for one condition's value, by its operator's value
 * rule (DalpOpValue).  *op may change (timestamp bounds).
 * *dropped gets the DROPPED_* reasons of address values dropped because
 * they cannot match DALP's lowercase hex.
 *
 * This is where a condition becomes exact: the API then returns exactly
 * the rows the SQL condition keeps, whatever the value, and planning
 * (dalp_classify_clause) removes it from the local filter.  The
 * values are normalized so that this holds: a mixed-case address matches
 * nothing, as it would against DALP's lowercase data; a timestamp bound is
 * moved to DALP's milliseconds; a NULL matches nothing.  Where it cannot
 * hold for every value, planning keeps the condition as a local filter
 * too, and a value that cannot be sent here is not sent (VALUE_LOCAL):
 * LIKE sent as the API's iLike (a superset), a list whose values may hold
 * the comma that separates them, a NOT IN list longer than one request.
 * For a constant list planning asks this function (in_list_is_exact).
 */
static ValueVerdict
cond_texts(const DalpCond *cond, Datum value, bool isnull, int *op,
		   List **texts, int *dropped)
{
	Oid			typid = cond->column->typid;
	const DalpOperatorDef *opdef = dalp_operator(*op);

	*texts = NIL;
	if (isnull)
		return VALUE_NEVER;		/* "col op NULL" is never true */

	if (dalp_operator_is_list(opdef))
	{
		ArrayType  *array = DatumGetArrayTypeP(value);
		int16		typlen;
		bool		typbyval;
		char		typalign;
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		DalpCounts	seen = DALP_COUNTS_EMPTY;

		get_typlenbyvalalign(typid, &typlen, &typbyval, &typalign);
		deconstruct_array(array, typid, typlen, typbyval, typalign,
						  &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			char	   *text;

			CHECK_FOR_INTERRUPTS();
			if (nulls[i])
			{
				if (opdef->negated)
					return VALUE_NEVER; /* x NOT IN (.., NULL) is never true */
				continue;
			}
			text = dalp_value_to_api_text(elems[i], typid);
			if (cond->column->case_insensitive &&
				!can_match_dalp_hex(cond->column, text))
			{
				*dropped |= dropped_reason(cond->column, text);
				continue;
			}
			if (!cond->column->case_insensitive && strchr(text, ',') != NULL)
				return VALUE_LOCAL;
			if (dalp_counts_add(&seen, text, 1))
				*texts = lappend(*texts, makeString(text));
		}
		if (*texts == NIL)
			return opdef->negated ? VALUE_ALWAYS : VALUE_NEVER;
		/* NOT IN cannot be split into requests */
		if (opdef->value == DALP_OPVAL_WHOLE_LIST &&
			list_length(*texts) > DALP_MAX_IN_VALUES)
			return VALUE_LOCAL;
		return VALUE_SEND;
	}

	if (typid == TIMESTAMPTZOID && opdef->bound != DALP_BOUND_NONE)
	{
		ValueVerdict v = timestamp_bound(opdef->bound, op, &value);

		if (v != VALUE_SEND)
			return v;
	}
	*texts = list_make1(makeString(dalp_value_to_api_text(value, typid)));
	if (cond->column->case_insensitive &&
		!can_match_dalp_hex(cond->column, strVal(linitial(*texts))))
	{
		*dropped |= dropped_reason(cond->column, strVal(linitial(*texts)));
		return opdef->negated ? VALUE_ALWAYS : VALUE_NEVER;
	}
	return VALUE_SEND;
}

/* "filter[field][op]", or "filter[field]" where the contract names no operator */
static char *
filter_key(const DalpCond *cond, int op)
{
	const char *api = dalp_operator_api_name(cond->column, op);

	if (api == NULL)
		return psprintf("filter[%s]", cond->column->filter);
	return psprintf("filter[%s][%s]", cond->column->filter, api);
}

/* "a,b,c" */
static char *
join_texts(List *texts, int from, int count)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = from; i < from + count && i < list_length(texts); i++)
		appendStringInfo(&buf, "%s%s", i > from ? "," : "", strVal(list_nth(texts, i)));
	return buf.data;
}

/*
 * One scan's streams (a token and a filter variant each, one request at
 * least) are counted in an int and kept in one palloc'd array: a product of
 * IN lists, search lists and tokens beyond that is refused before anything
 * is built, with an error rather than a wrapped count.
 */
void
dalp_check_stream_count(int64 n)
{
	if (n > DALP_MAX_STREAMS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a dalp_fdw scan would send more than %d requests", DALP_MAX_STREAMS),
				 errdetail("Its tokens, IN lists and searched values make " INT64_FORMAT " combinations, each a request of its own.", n),
				 errhint("Narrow the lists, or read fewer tokens at a time.")));
}

static DalpVariant *
make_variant(const DalpVariant *base, const char *key, const char *value,
			 const char *search_value)
{
	DalpVariant *v = palloc(sizeof(DalpVariant));
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "?%s", base->filters);
	dalp_append_query_param(&buf, key, value);
	/* drop the leading '?' and the '&' a first parameter got */
	v->filters = pstrdup(buf.data + (buf.data[1] == '&' ? 2 : 1));
	v->search_value = (char *) (search_value ? search_value : base->search_value);
	return v;
}

static List *
add_filter_to_variants(List *variants, const char *key, List *texts)
{
	List	   *result = NIL;
	ListCell   *lc;
	int64		chunks = (list_length(texts) + DALP_MAX_IN_VALUES - 1) / DALP_MAX_IN_VALUES;

	dalp_check_stream_count((int64) list_length(variants) * chunks);
	foreach(lc, variants)
		for (int from = 0; from < list_length(texts); from += DALP_MAX_IN_VALUES)
		{
			CHECK_FOR_INTERRUPTS();
			result = lappend(result,
							 make_variant(lfirst(lc), key,
										  join_texts(texts, from, DALP_MAX_IN_VALUES),
										  NULL));
		}
	return result;
}

/* A search key: one variant per value; a variant searching another value goes. */
static List *
add_search_to_variants(List *variants, const char *key, List *texts)
{
	List	   *result = NIL;
	ListCell   *lc;
	ListCell   *lt;

	dalp_check_stream_count((int64) list_length(variants) * list_length(texts));
	foreach(lc, variants)
	{
		DalpVariant *base = (DalpVariant *) lfirst(lc);

		foreach(lt, texts)
		{
			char	   *value = strVal(lfirst(lt));

			CHECK_FOR_INTERRUPTS();
			if (base->search_value == NULL)
				result = lappend(result, make_variant(base, key, value, value));
			else if (strcmp(base->search_value, value) == 0)
				result = lappend(result, base);
		}
	}
	return result;
}

/* Keep in tokens only those also in others; the first constraint sets them. */
static List *
intersect_tokens(List *tokens, List *others, bool *constrained)
{
	List	   *result = NIL;
	DalpCounts	in_others = DALP_COUNTS_EMPTY;
	ListCell   *lc;

	if (!*constrained)
	{
		*constrained = true;
		return others;
	}
	foreach(lc, others)
		dalp_counts_add(&in_others, strVal(lfirst(lc)), 1);
	foreach(lc, tokens)
		if (dalp_counts_contain(&in_others, strVal(lfirst(lc))))
			result = lappend(result, lfirst(lc));
	return result;
}

/* No condition yet: every token, one variant without filters. */
void
dalp_request_set_init(DalpRequestSet *rs)
{
	DalpVariant *none = palloc0(sizeof(DalpVariant));

	none->filters = "";
	rs->tokens = NIL;
	rs->constrained = false;
	rs->variants = list_make1(none);
	rs->item_key = NULL;
}

/*
 * The values a condition's role reads each on its own (the token path, a
 * search key); for EXPLAIN one text, shown by the operator's explain_each.
 */
static List *
each_value(List *texts, int op, bool explain)
{
	const char *each = dalp_operator(op)->explain_each;

	if (!explain || each == NULL)
		return texts;
	return list_make1(makeString(psprintf(each, strVal(linitial(texts)))));
}

/*
 * What one condition's texts add to the requests, by its role; false when
 * no row can match.  EXPLAIN (explain) passes one text that stands for all
 * of a condition's values and cannot be compared with another condition's:
 * the last condition of the token path or the item key is shown, and every
 * search key.
 */
bool
dalp_request_set_add(DalpRequestSet *rs, const DalpCond *cond, int op,
					 List *texts, bool explain)
{
	switch (cond->role)
	{
		case DALP_COND_TOKEN:
			texts = each_value(texts, op, explain);
			if (explain)
				rs->constrained = false;
			rs->tokens = intersect_tokens(rs->tokens, texts, &rs->constrained);
			return rs->tokens != NIL;
		case DALP_COND_ITEM:
			if (!explain && rs->item_key &&
				strcmp(rs->item_key, strVal(linitial(texts))) != 0)
				return false;
			rs->item_key = strVal(linitial(texts));
			return true;
		case DALP_COND_SEARCH:
			texts = each_value(texts, op, explain);
			if (explain)
				rs->variants = add_filter_to_variants(rs->variants,
													  filter_key(cond, DALP_OP_EQ),
													  texts);
			else
				rs->variants = add_search_to_variants(rs->variants,
													  filter_key(cond, DALP_OP_EQ),
													  texts);
			return rs->variants != NIL;
		case DALP_COND_FILTER:
			rs->variants = add_filter_to_variants(rs->variants,
												  filter_key(cond, op), texts);
			return true;
	}
	return false;
}

/*
 * Work out, from the conditions' current values, the tokens to read, the
 * filter variants, the item key and the search value.  values[i]/nulls[i]
 * are the values of conds (NULL values for conditions skipped: estimates
 * pass only constants).  given_tokens (a pinned token, a join's outer
 * tokens) come first, in their order.  Returns false when no row can match.
 *
 * A token address that cannot be DALP's gets a NOTICE, once per reason
 * for the whole scan however often it runs (*noticed keeps the reasons
 * told), and none from planning (noticed NULL), which the execution
 * follows.
 */
bool
dalp_plan_requests(List *conds, Datum *values, bool *nulls, bool *skip,
				   List *given_tokens, bool *tokens_constrained,
				   List **tokens, List **variants, char **item_key,
				   int *noticed)
{
	DalpRequestSet rs;
	int			i = 0;
	ListCell   *lc;

	dalp_request_set_init(&rs);
	if (given_tokens != NIL)
		rs.tokens = intersect_tokens(rs.tokens, given_tokens, &rs.constrained);

	foreach(lc, conds)
	{
		DalpCond   *cond = (DalpCond *) lfirst(lc);
		int			op = cond->op;
		List	   *texts;
		int			dropped = 0;
		ValueVerdict verdict;

		if (skip && skip[i])
		{
			i++;
			continue;
		}
		verdict = cond_texts(cond, values[i], nulls[i], &op, &texts, &dropped);
		i++;
		if (noticed && cond->role == DALP_COND_TOKEN)
		{
			int			untold = dropped & ~*noticed;

			if (untold & DROPPED_CASED)
				ereport(NOTICE,
						(errmsg("a token address that is not lowercase hexadecimal matches no DALP token"),
						 errdetail("DALP addresses are \"0x\" followed by lowercase hexadecimal digits."),
						 errhint("Compare with lower(...) of the address.")));
			if (untold & DROPPED_MALFORMED)
				ereport(NOTICE,
						(errmsg("a token address that is not \"0x\" and 40 hexadecimal digits matches no DALP token"),
						 errdetail("DALP addresses are \"0x\" followed by 40 lowercase hexadecimal digits.")));
			*noticed |= dropped;
		}
		if (verdict == VALUE_NEVER)
			return false;
		if (verdict == VALUE_ALWAYS || verdict == VALUE_LOCAL)
			continue;
		if (!dalp_request_set_add(&rs, cond, op, texts, false))
			return false;
	}
	*tokens = rs.tokens;
	*tokens_constrained = rs.constrained;
	*variants = rs.variants;
	*item_key = rs.item_key;
	return true;
}

/*
 * The filters of the constant conditions, for a planning-time estimate;
 * false when they cannot match anything.
 */
bool
dalp_cond_constant_filters(const DalpResourceDef *res, List *conds,
						   List *values, const char *table_token,
						   List **token_values, char **filters)
{
	int			n = list_length(conds);
	Datum	   *datums = palloc0(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc0(sizeof(bool) * Max(n, 1));
	bool	   *skip = palloc0(sizeof(bool) * Max(n, 1));
	List	   *variants;
	char	   *item_key;
	bool		constrained;
	int			i = 0;
	ListCell   *lc;

	foreach(lc, values)
	{
		Expr	   *expr = (Expr *) lfirst(lc);

		if (IsA(expr, Const))
		{
			datums[i] = ((Const *) expr)->constvalue;
			nulls[i] = ((Const *) expr)->constisnull;
		}
		else
			skip[i] = true;
		i++;
	}
	if (!dalp_plan_requests(conds, datums, nulls, skip,
							table_token ? list_make1(makeString((char *) table_token)) : NIL,
							&constrained, token_values, &variants, &item_key,
							NULL))
		return false;
	/* several variants: the first one's total is an estimate of the order */
	*filters = ((DalpVariant *) linitial(variants))->filters;
	return true;
}

/*
 * A request path: "/api/v2/<path>?page[limit]=N[&page[offset]=K]
 * [&sort=..][&filter...]", or the single-item path.  Used for EXPLAIN
 * too, with placeholders for values not known before execution.
 */
char *
dalp_build_path_text(const DalpResourceDef *res, const char *token,
					 const char *item_key, const char *sort, const char *filters,
					 const char *offset, const char *limit)
{
	StringInfoData buf;

	if (item_key)
		return dalp_expand_path(res->item_path, token, item_key);

	initStringInfo(&buf);
	appendStringInfoString(&buf, dalp_expand_path(res->path, token, NULL));
	if (res->is_collection)
	{
		dalp_append_query_param(&buf, "page[limit]", limit);
		if (offset)
			dalp_append_query_param(&buf, "page[offset]", offset);
		if (sort)
			dalp_append_query_param(&buf, "sort", sort);
	}
	if (filters && filters[0])
		appendStringInfo(&buf, "%c%s", strchr(buf.data, '?') ? '&' : '?', filters);
	return buf.data;
}

char *
dalp_build_path(const DalpResourceDef *res, const char *token, const char *item_key,
				const char *sort, const char *filters, int64 offset, int limit)
{
	return dalp_build_path_text(res, token, item_key, sort, filters,
								offset > 0 ? psprintf(INT64_FORMAT, offset) : NULL,
								psprintf("%d", limit));
}

char *
dalp_build_count_path(const DalpResourceDef *res, const char *token,
					  const char *filters)
{
	return dalp_build_path(res, token, NULL, NULL, filters, 0, 1);
}

/* An expression as EXPLAIN shows it: a constant's value, else the expression. */
char *
dalp_explain_expr(ExplainState *es, Expr *expr)
{
	Oid			outfunc;
	bool		isvarlena;

	if (IsA(expr, Const) && !((Const *) expr)->constisnull)
	{
		getTypeOutputInfo(((Const *) expr)->consttype, &outfunc, &isvarlena);
		return OidOutputFunctionCall(outfunc, ((Const *) expr)->constvalue);
	}
	return deparse_expression((Node *) expr, es->deparse_cxt, false, false);
}

/*
 * A condition's value as EXPLAIN shows it: the constant, or its expression;
 * NULL for a constant that is not sent (cond_texts: every row matches, or
 * it is checked locally), as execution sends no filter for it.
 */
char *
dalp_explain_value(ExplainState *es, const DalpCond *cond, Expr *expr, int *op)
{
	if (IsA(expr, Const))
	{
		Const	   *c = (Const *) expr;
		List	   *texts;
		int			dropped = 0;

		switch (cond_texts(cond, c->constvalue, c->constisnull, op, &texts,
						   &dropped))
		{
			case VALUE_SEND:
				return join_texts(texts, 0, list_length(texts));
			case VALUE_ALWAYS:
			case VALUE_LOCAL:
				return NULL;
			case VALUE_NEVER:
				break;
		}
	}
	return dalp_explain_expr(es, expr);
}

/* Private conditions for fdw_private: (colname, role, op, exact) lists. */
List *
dalp_conds_to_private(List *conds)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, conds)
	{
		DalpCond   *cond = (DalpCond *) lfirst(lc);

		result = lappend(result,
						 list_make4(makeString(pstrdup(cond->column->name)),
									makeInteger(cond->role),
									makeInteger(cond->op),
									makeBoolean(cond->exact)));
	}
	return result;
}

/* Rebuild DalpConds from ForeignScan.fdw_private. */
List *
dalp_conds_from_private(const DalpResourceDef *res, List *private_conds)
{
	List	   *conds = NIL;
	ListCell   *lc;

	foreach(lc, private_conds)
	{
		List	   *entry = (List *) lfirst(lc);
		DalpCond   *cond = palloc(sizeof(DalpCond));

		cond->column = dalp_column_lookup(res, strVal(linitial(entry)));
		cond->role = (DalpCondRole) intVal(lsecond(entry));
		cond->op = intVal(lthird(entry));
		cond->exact = boolVal(lfourth(entry));
		Assert(cond->column != NULL);
		conds = lappend(conds, cond);
	}
	return conds;
}

/*
 * A value as the API expects it in a query string: timestamps as ISO 8601
 * UTC with milliseconds, booleans as true/false, the rest as their text.
 */
char *
dalp_value_to_api_text(Datum value, Oid typid)
{
	Oid			outfunc;
	bool		isvarlena;

	if (typid == TIMESTAMPTZOID)
	{
		TimestampTz ts = DatumGetTimestampTz(value);
		struct pg_tm tm;
		fsec_t		fsec;

		if (TIMESTAMP_NOT_FINITE(ts) ||
			timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range for the DALP API")));
		return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
						tm.tm_year, tm.tm_mon, tm.tm_mday,
						tm.tm_hour, tm.tm_min, tm.tm_sec, fsec / 1000);
	}
	if (typid == BOOLOID)
		return pstrdup(DatumGetBool(value) ? "true" : "false");
	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	return OidOutputFunctionCall(outfunc, value);
}

/* Does this collation order strings by code point, as the API does? */
bool
dalp_collation_is_c(Oid collation)
{
	if (!OidIsValid(collation))
		return false;
	if (collation == C_COLLATION_OID || collation == POSIX_COLLATION_OID)
		return true;
	return lc_collate_is_c(collation);
}

/*
 * A value the executor can compute before the scan starts: nothing of this
 * relation, nothing volatile, no subplan.  Constants, $n parameters, stable
 * expressions such as now() - interval '1 day', and (for a parameterized
 * path) columns of the outer side of a nested loop all qualify.
 */
bool
dalp_is_pushable_value(Expr *expr, RelOptInfo *baserel, bool allow_outer)
{
	Relids		varnos = pull_varnos(NULL, (Node *) expr);

	if (bms_is_member(baserel->relid, varnos) ||
		(!allow_outer && !bms_is_empty(varnos)))
		return false;
	return !contain_volatile_functions((Node *) expr) &&
		!contain_subplans((Node *) expr) &&
		!contain_agg_clause((Node *) expr) &&
		!contain_window_function((Node *) expr);
}

/* The catalog column of a plain Var of this relation, or NULL. */
const DalpColumnDef *
dalp_column_of_var(Expr *expr, RelOptInfo *baserel,
				   const DalpResourceDef *res, Oid relid)
{
	Var		   *var;

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
	return dalp_column_lookup(res, get_attname(relid, var->varattno, false));
}

/*
 * The operator table's row for a SQL operator (see dalp_operator_for_sql).
 * Only built-in operators: a user-defined "=" may mean anything.
 */
static const DalpOperatorDef *
pushable_operator(Oid opno, bool array, bool use_or, bool commuted,
				  bool *superset)
{
	if (opno >= FirstNormalObjectId)
		return NULL;
	return dalp_operator_for_sql(get_opname(opno), array, use_or, commuted,
								 superset);
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
 * keys are always sent (they select what exists at all); filters and item
 * lookups only when dalp_fdw.pushdown is on.
 */
bool
dalp_column_accepts(const DalpResourceDef *res, const DalpColumnDef *col, int op)
{
	switch (role_for(res, col, op))
	{
		case DALP_COND_TOKEN:
		case DALP_COND_SEARCH:
			return (col->ops & op) != 0;
		case DALP_COND_ITEM:
			return dalp_pushdown_enabled;
		case DALP_COND_FILTER:
			return dalp_pushdown_enabled && (col->ops & op) != 0 &&
				col->filter != NULL;
	}
	return false;
}

/* A constant list short enough for one request. */
static bool
in_list_fits(Expr *values)
{
	return IsA(values, Const) && !((Const *) values)->constisnull &&
		ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(((Const *) values)->constvalue)),
					   ARR_DIMS(DatumGetArrayTypeP(((Const *) values)->constvalue))) <= DALP_MAX_IN_VALUES;
}

/*
 * Could these conditions (values: their value expressions) split a read
 * into several requests (several streams of one token)?
 */
bool
dalp_conds_may_split(List *conds, List *values)
{
	ListCell   *lc;
	ListCell   *lv;

	forboth(lc, conds, lv, values)
	{
		DalpCond   *cond = (DalpCond *) lfirst(lc);
		bool		list = dalp_operator(cond->op)->value == DALP_OPVAL_LIST;

		if (cond->role == DALP_COND_FILTER && list &&
			!in_list_fits((Expr *) lfirst(lv)))
			return true;
		/* each searched value is a request of its own */
		if (cond->role == DALP_COND_SEARCH && list)
			return true;
	}
	return false;
}

/*
 * Is an IN or NOT IN list sent exactly?  cond_texts says which lists it
 * cannot send (VALUE_LOCAL): a constant list is given to it.  A list known
 * only at execution is exact where no list can be unsendable: addresses
 * hold no comma, and a list of them is split into requests.
 */
static bool
in_list_is_exact(const DalpColumnDef *col, const DalpOperatorDef *op,
				 Expr *values)
{
	DalpCond	cond = {.column = col, .op = op->bit};
	int			sent_op = op->bit;
	int			dropped = 0;
	List	   *texts;

	if (IsA(values, Const))
		return cond_texts(&cond, ((Const *) values)->constvalue,
						  ((Const *) values)->constisnull, &sent_op, &texts,
						  &dropped) != VALUE_LOCAL;
	return col->case_insensitive && op->value == DALP_OPVAL_LIST;
}

/*
 * Can this value be sent under the operator's value rule (DalpOpValue)?
 * Clears *exact when the API may keep other rows than SQL would.
 */
static bool
value_is_sendable(const DalpColumnDef *col, const DalpOperatorDef *op,
				  Expr *value, bool *exact)
{
	switch (op->value)
	{
		case DALP_OPVAL_ONE:
			return true;
		case DALP_OPVAL_PATTERN:
			return IsA(value, Const) && !((Const *) value)->constisnull &&
				strchr(TextDatumGetCString(((Const *) value)->constvalue), '\\') == NULL;
		case DALP_OPVAL_LIST:
		case DALP_OPVAL_WHOLE_LIST:
			*exact = *exact && in_list_is_exact(col, op, value);
			return true;
	}
	return false;
}

/*
 * Classify one restriction clause.  Returns the condition to send (and its
 * value expression in *value), or NULL when the clause stays local.
 */
DalpCond *
dalp_classify_clause(RelOptInfo *baserel, const DalpResourceDef *res,
					 Oid relid, Expr *clause, bool allow_outer, Expr **value)
{
	const DalpColumnDef *col = NULL;
	const DalpOperatorDef *apiop = NULL;
	bool		superset = false;
	bool		exact;
	DalpCond   *cond;

	if (IsA(clause, OpExpr) && list_length(((OpExpr *) clause)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) clause;
		Expr	   *left = linitial(op->args);
		Expr	   *right = lsecond(op->args);
		bool		commuted = false;

		col = dalp_column_of_var(left, baserel, res, relid);
		if (col == NULL)
		{
			col = dalp_column_of_var(right, baserel, res, relid);
			right = left;
			commuted = true;
		}
		if (col == NULL || !dalp_is_pushable_value(right, baserel, allow_outer) ||
			exprType((Node *) right) != col->typid)
			return NULL;
		apiop = pushable_operator(op->opno, false, false, commuted, &superset);
		*value = right;
	}
	else if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) clause;
		Expr	   *values = lsecond(saop->args);

		col = dalp_column_of_var(linitial(saop->args), baserel, res, relid);
		if (col == NULL || !dalp_is_pushable_value(values, baserel, allow_outer) ||
			get_element_type(exprType((Node *) values)) != col->typid)
			return NULL;
		apiop = pushable_operator(saop->opno, true, saop->useOr, false,
								  &superset);
		*value = values;
	}
	else if (IsA(clause, Var) ||
			 (IsA(clause, BoolExpr) && ((BoolExpr *) clause)->boolop == NOT_EXPR))
	{
		/* "WHERE is_frozen" and "WHERE NOT is_frozen" */
		bool		negated = IsA(clause, BoolExpr);
		Expr	   *arg = negated ? linitial(((BoolExpr *) clause)->args) : clause;

		col = dalp_column_of_var(arg, baserel, res, relid);
		if (col == NULL || col->typid != BOOLOID)
			return NULL;
		apiop = dalp_operator(DALP_OP_EQ);
		*value = (Expr *) makeBoolConst(!negated, false);
	}
	exact = !superset;
	if (col == NULL || apiop == NULL ||
		!dalp_column_accepts(res, col, apiop->bit) ||
		!value_is_sendable(col, apiop, *value, &exact))
		return NULL;

	cond = palloc(sizeof(DalpCond));
	cond->column = col;
	cond->op = apiop->bit;
	cond->role = role_for(res, col, apiop->bit);
	cond->exact = exact;
	return cond;
}

/*
 * Classify a list of RestrictInfos: the conditions to send, their values,
 * and the clauses left to check locally.
 */
void
dalp_classify_clauses(RelOptInfo *baserel, const DalpResourceDef *res,
					  Oid relid, List *clauses, bool allow_outer, List **conds,
					  List **values, List **local, List **filters)
{
	int			nclauses = list_length(clauses);
	DalpCond  **found = palloc0(sizeof(DalpCond *) * Max(nclauses, 1));
	Expr	  **found_values = palloc0(sizeof(Expr *) * Max(nclauses, 1));
	bool		has_item = false;
	bool		has_search = false;
	int			i = 0;
	ListCell   *lc;

	foreach(lc, clauses)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);

		if (!rinfo->pseudoconstant)
			found[i] = dalp_classify_clause(baserel, res, relid, rinfo->clause,
									   allow_outer, &found_values[i]);
		if (found[i])
		{
			has_item |= found[i]->role == DALP_COND_ITEM;
			has_search |= found[i]->role == DALP_COND_SEARCH;
		}
		i++;
	}

	/*
	 * The single-item path takes neither filters nor search keys.  A search
	 * key selects what exists, which a lookup by key cannot do: next to one,
	 * the key is checked locally.  Otherwise the lookup is used and the
	 * filters are checked locally (on one row at most).
	 */
	if (has_search)
		has_item = false;

	*conds = *values = *local = *filters = NIL;
	i = 0;
	foreach(lc, clauses)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		DalpCond   *cond = found[i];

		if (cond && ((has_search && cond->role == DALP_COND_ITEM) ||
					 (has_item && cond->role == DALP_COND_FILTER)))
			cond = NULL;
		if (cond)
		{
			*conds = lappend(*conds, cond);
			*values = lappend(*values, found_values[i]);
		}
		if (cond == NULL || !cond->exact)
			*local = lappend(*local, rinfo);
		if (cond == NULL || cond->role != DALP_COND_TOKEN)
			*filters = lappend(*filters, rinfo);
		i++;
	}
}
