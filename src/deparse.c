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
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/pg_locale.h"
#include "utils/ruleutils.h"
#include "utils/timestamp.h"

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
	VALUE_ALWAYS				/* every row matches: send nothing */
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
 * A timestamp bound the API can take exactly.  DALP timestamps have
 * millisecond precision, so "> x" with x between two milliseconds is
 * ">= the next millisecond", and "<= x" is "< the next millisecond".
 */
static ValueVerdict
timestamp_bound(int *op, Datum *value)
{
	TimestampTz ts = DatumGetTimestampTz(*value);
	DalpOpBound bound = dalp_operator(*op)->bound;
	bool		lower = (bound == DALP_BOUND_LOWER);
	int64		sub_ms = ts % 1000;

	if (bound == DALP_BOUND_NONE)
		return VALUE_SEND;
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
 * The texts to send for one condition's value, by its operator's value
 * rule (DalpOpValue).  *op may change (timestamp bounds).
 * *dropped_malformed counts address values dropped because they cannot
 * match DALP's lowercase hex.
 *
 * This is where a condition becomes exact: the API then returns exactly
 * the rows the SQL condition keeps, whatever the value, and planning
 * (classify_clause in plan.c) removes it from the local filter.  The
 * values are normalized so that this holds: a mixed-case address matches
 * nothing, as it would against DALP's lowercase data; a timestamp bound is
 * moved to DALP's milliseconds; a NULL matches nothing.  Where it cannot
 * hold for every value, planning keeps the condition as a local filter
 * too, and a value that cannot be sent here is not sent (VALUE_ALWAYS):
 * LIKE sent as the API's iLike (a superset), a list whose values may hold
 * the comma that separates them, a NOT IN list longer than one request.
 */
static ValueVerdict
cond_texts(const DalpCond *cond, Datum value, bool isnull, int *op,
		   List **texts, int *dropped_malformed)
{
	Oid			typid = cond->column->typid;
	const DalpOperatorDef *opdef = dalp_operator(*op);
	bool		is_list = (opdef->value == DALP_OPVAL_LIST ||
						   opdef->value == DALP_OPVAL_WHOLE_LIST);

	*texts = NIL;
	if (isnull)
		return VALUE_NEVER;		/* "col op NULL" is never true */

	if (is_list)
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
				(*dropped_malformed)++;
				continue;
			}
			if (!cond->column->case_insensitive && strchr(text, ',') != NULL)
				return VALUE_ALWAYS;	/* not sendable: checked locally */
			if (dalp_counts_add(&seen, text, 1))
				*texts = lappend(*texts, makeString(text));
		}
		if (*texts == NIL)
			return opdef->negated ? VALUE_ALWAYS : VALUE_NEVER;
		/* NOT IN cannot be split into requests: checked locally (plan.c) */
		if (opdef->value == DALP_OPVAL_WHOLE_LIST &&
			list_length(*texts) > DALP_MAX_IN_VALUES)
			return VALUE_ALWAYS;
		return VALUE_SEND;
	}

	if (typid == TIMESTAMPTZOID)
	{
		ValueVerdict v = timestamp_bound(op, &value);

		if (v != VALUE_SEND)
			return v;
	}
	*texts = list_make1(makeString(dalp_value_to_api_text(value, typid)));
	if (cond->column->case_insensitive &&
		!can_match_dalp_hex(cond->column, strVal(linitial(*texts))))
	{
		(*dropped_malformed)++;
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

	foreach(lc, variants)
		for (int from = 0; from < list_length(texts); from += DALP_MAX_IN_VALUES)
			result = lappend(result,
							 make_variant(lfirst(lc), key,
										  join_texts(texts, from, DALP_MAX_IN_VALUES),
										  NULL));
	return result;
}

/* A search key: one variant per value; a variant searching another value goes. */
static List *
add_search_to_variants(List *variants, const char *key, List *texts)
{
	List	   *result = NIL;
	ListCell   *lc;
	ListCell   *lt;

	foreach(lc, variants)
	{
		DalpVariant *base = (DalpVariant *) lfirst(lc);

		foreach(lt, texts)
		{
			char	   *value = strVal(lfirst(lt));

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
 */
bool
dalp_plan_requests(List *conds, Datum *values, bool *nulls, bool *skip,
				   List *given_tokens, bool *tokens_constrained,
				   List **tokens, List **variants, char **item_key)
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
		int			dropped_malformed = 0;
		ValueVerdict verdict;

		if (skip && skip[i])
		{
			i++;
			continue;
		}
		verdict = cond_texts(cond, values[i], nulls[i], &op, &texts, &dropped_malformed);
		i++;
		if (dropped_malformed > 0 && cond->role == DALP_COND_TOKEN)
			ereport(NOTICE,
					(errmsg("a token address that is not lowercase hexadecimal matches no DALP token"),
					 errdetail("DALP addresses are \"0x\" followed by lowercase hexadecimal digits."),
					 errhint("Compare with lower(...) of the address.")));
		if (verdict == VALUE_NEVER)
			return false;
		if (verdict == VALUE_ALWAYS)
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
							&constrained, token_values, &variants, &item_key))
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

/* A condition's value as EXPLAIN shows it: the constant, or its expression. */
char *
dalp_explain_value(ExplainState *es, const DalpCond *cond, Expr *expr, int *op)
{
	if (IsA(expr, Const))
	{
		Const	   *c = (Const *) expr;
		List	   *texts;
		int			dropped = 0;

		if (cond_texts(cond, c->constvalue, c->constisnull, op, &texts,
					   &dropped) == VALUE_SEND)
			return join_texts(texts, 0, list_length(texts));
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
