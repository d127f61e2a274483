/*-------------------------------------------------------------------------
 *
 * decode.c
 *		  json-c → Datums: the envelope (data, meta, links), API error bodies,
 *		  and items converted by the catalog's column bindings.
 *
 * This is the only file that includes json-c.  Parsed pages are owned by
 * DalpPage and released by dalp_page_release(), which the scan also calls
 * from a memory-context reset callback so that an ERROR never leaks them.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

/* PostgreSQL's SQL function json_object() would clash with json-c's type */
#define json_object pg_json_object
#include "utils/builtins.h"
#include "utils/json.h"
#undef json_object

#include <json-c/json.h>

/*
 * API status → SQLSTATE.  Retryable statuses only get here once retries
 * ran out.
 */
static int
sqlstate_for_status(long status)
{
	switch (status)
	{
		case 401:
			return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		case 403:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case 404:
			return ERRCODE_NO_DATA_FOUND;
		case 400:
		case 422:
			return ERRCODE_FDW_INVALID_STRING_FORMAT;
		case 429:
			return ERRCODE_CONFIGURATION_LIMIT_EXCEEDED;
		default:
			if (status >= 500)
				return ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
			return ERRCODE_FDW_ERROR;
	}
}

static const char *
hint_for_status(long status)
{
	switch (status)
	{
		case 401:
			return "Check the api_key option of the user mapping for this server.";
		case 403:
			return "The API key's user lacks the role this read needs; ask a DALP administrator.";
		case 404:
			return "Check the token address; a token created moments ago may not be indexed yet.";
		case 400:
		case 422:
			return "The API rejected the request; set dalp_fdw.pushdown to off to see whether a pushed-down condition is the cause.";
		case 429:
			return "Lower rate_limit_per_minute or concurrency on the server, or raise max_retries.";
		default:
			return "The DALP API failed; retry later, or raise max_retries on the server.";
	}
}

static const char *
json_string_field(json_object *obj, const char *key)
{
	json_object *v;

	if (obj != NULL && json_object_object_get_ex(obj, key, &v) &&
		json_object_get_type(v) == json_type_string)
		return json_object_get_string(v);
	return NULL;
}

/* A copy of s with every occurrence of secret masked. */
static char *
mask_secret(const char *s, const char *secret)
{
	StringInfoData buf;
	size_t		slen = secret ? strlen(secret) : 0;
	const char *hit;

	if (slen == 0)
		return pstrdup(s);
	initStringInfo(&buf);
	while ((hit = strstr(s, secret)) != NULL)
	{
		appendBinaryStringInfo(&buf, s, hit - s);
		appendStringInfoString(&buf, "********");
		s = hit + slen;
	}
	appendStringInfoString(&buf, s);
	return buf.data;
}

/*
 * Turn a non-2xx response into an ERROR carrying the HTTP status, the API's
 * error.message and the request path.  The server could echo anything, so
 * what it says is masked against the key before it is printed.
 */
void
dalp_raise_for_status(const DalpHttpResult *res, const char *display_path,
					  const char *secret)
{
	json_object *root;
	json_object *err = NULL;
	char	   *message = NULL;
	char	   *error_id = NULL;

	if (res->status >= 200 && res->status < 300)
		return;

	root = json_tokener_parse(res->body ? res->body : "");
	if (root != NULL && json_object_object_get_ex(root, "error", &err) &&
		json_object_get_type(err) == json_type_object)
	{
		const char *m = json_string_field(err, "message");
		const char *id = json_string_field(err, "id");

		if (m)
			message = mask_secret(m, secret);
		if (id)
			error_id = mask_secret(id, secret);
	}
	json_object_put(root);

	ereport(ERROR,
			(errcode(sqlstate_for_status(res->status)),
			 errmsg("DALP API returned HTTP %ld for GET %s: %s",
					res->status, display_path,
					message ? message : "(no error message in the response)"),
			 res->attempts > 1
			 ? errdetail("Error %s; %d attempts were made.",
						 error_id ? error_id : "without id", res->attempts)
			 : errdetail("Error %s.", error_id ? error_id : "without id"),
			 errhint("%s", hint_for_status(res->status))));
}

static void
raise_bad_shape(const DalpPage *page, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("unexpected DALP response for GET %s: %s",
					page->display_path, what),
			 errhint("Check that base_url points at a DALP platform; a proxy may have answered instead.")));
}

/*
 * Parse a 2xx response into a page.  Collections must have a "data" array;
 * single resources a "data" object (or null), optionally with the rows in
 * an array field of it (the health summary's "services").
 */
void
dalp_page_parse(DalpPage *page, const DalpHttpResult *res,
				const DalpResourceDef *resdef, bool single,
				const char *display_path)
{
	json_tokener *tok;
	enum json_tokener_error jerr;
	json_object *data;
	json_object *meta;
	json_object *links;
	json_object *v;

	memset(page, 0, sizeof(*page));
	page->total = -1;
	page->display_path = display_path;

	tok = json_tokener_new();
	if (tok == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while parsing a DALP response")));
	page->root = json_tokener_parse_ex(tok, res->body, (int) res->body_len);
	jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);

	if (page->root == NULL || jerr != json_tokener_success)
	{
		bool		html = res->content_type &&
			strstr(res->content_type, "json") == NULL;

		dalp_page_release(page);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("DALP response for GET %s is not valid JSON", display_path),
				 html
				 ? errdetail("The response has Content-Type \"%s\".", res->content_type)
				 : jerr == json_tokener_continue
				 ? errdetail("The response ends in the middle of a JSON value after %zu bytes.",
							 res->body_len)
				 : errdetail("The JSON parser stopped with: %s.",
							 json_tokener_error_desc(jerr)),
				 errhint("A proxy or gateway may have answered instead of DALP; check base_url.")));
	}

	if (json_object_get_type(page->root) != json_type_object ||
		!json_object_object_get_ex(page->root, "data", &data))
		raise_bad_shape(page, "the body has no \"data\" member");

	if (single)
	{
		if (json_object_get_type(data) == json_type_null)
			return;
		if (json_object_get_type(data) != json_type_object)
			raise_bad_shape(page, "\"data\" is not an object");
		if (resdef->rows_field == NULL)
		{
			page->items = data;
			page->nitems = 1;
			return;
		}
		if (!json_object_object_get_ex(data, resdef->rows_field, &data) ||
			json_object_get_type(data) == json_type_null)
			return;
	}
	if (json_object_get_type(data) != json_type_array)
		raise_bad_shape(page, single ? "the rows field is not an array"
						: "\"data\" is not an array");
	page->items = data;
	page->nitems = (int) json_object_array_length(data);

	if (json_object_object_get_ex(page->root, "meta", &meta) &&
		json_object_object_get_ex(meta, "total", &v))
	{
		if (json_object_get_type(v) == json_type_int)
			page->total = json_object_get_int64(v);
		else if (json_object_get_type(v) == json_type_string)
		{
			char	   *end;
			long long	t = strtoll(json_object_get_string(v), &end, 10);

			if (*end == '\0')
				page->total = t;
		}
	}
	if (json_object_object_get_ex(page->root, "links", &links) &&
		json_object_object_get_ex(links, "next", &v) &&
		json_object_get_type(v) == json_type_string)
		page->has_next = true;
}

void
dalp_page_release(DalpPage *page)
{
	if (page->root != NULL)
		json_object_put((json_object *) page->root);
	page->root = NULL;
	page->items = NULL;
	page->nitems = 0;
}

static json_object *
page_item(DalpPage *page, int index)
{
	json_object *items = (json_object *) page->items;

	Assert(index >= 0 && index < page->nitems);
	if (json_object_get_type(items) == json_type_array)
		return json_object_array_get_idx(items, index);
	return items;
}

/*
 * Split "a.b|c.d" into alternatives of segments; segments are kept as
 * String nodes so the list can live in a plan or a scan state.
 */
List *
dalp_parse_json_path(const char *path_text)
{
	List	   *alternatives = NIL;
	char	   *copy = pstrdup(path_text);
	char	   *alt_save;
	char	   *alt;

	for (alt = strtok_r(copy, "|", &alt_save); alt != NULL;
		 alt = strtok_r(NULL, "|", &alt_save))
	{
		List	   *segments = NIL;
		char	   *seg_save;
		char	   *seg;

		for (seg = strtok_r(alt, ".", &seg_save); seg != NULL;
			 seg = strtok_r(NULL, ".", &seg_save))
			segments = lappend(segments, makeString(pstrdup(seg)));
		if (segments != NIL)
			alternatives = lappend(alternatives, segments);
	}
	return alternatives;
}

static bool
is_array_index(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char) *s))
			return false;
	return true;
}

/*
 * Follow one path.  Inside an array a numeric segment is an index, and a
 * name selects the element whose "name" is that name and yields its
 * "value": the shape of event values ([{name, value}, ...]).
 */
static json_object *
follow_path(json_object *node, List *segments)
{
	ListCell   *lc;

	foreach(lc, segments)
	{
		const char *seg = strVal(lfirst(lc));
		json_object *next = NULL;

		if (node == NULL)
			return NULL;
		switch (json_object_get_type(node))
		{
			case json_type_object:
				if (!json_object_object_get_ex(node, seg, &next))
					return NULL;
				break;
			case json_type_array:
				{
					size_t		n = json_object_array_length(node);

					if (is_array_index(seg))
					{
						size_t		idx = strtoul(seg, NULL, 10);

						next = idx < n ? json_object_array_get_idx(node, idx) : NULL;
						break;
					}
					for (size_t i = 0; i < n && next == NULL; i++)
					{
						json_object *elem = json_object_array_get_idx(node, i);
						const char *name = json_string_field(elem, "name");

						if (name && strcmp(name, seg) == 0 &&
							!json_object_object_get_ex(elem, "value", &next))
							next = NULL;
					}
					break;
				}
			default:
				return NULL;
		}
		node = next;
	}
	return node;
}

static json_object *
resolve_binding(json_object *item, DalpColumnBinding *b)
{
	ListCell   *lc;

	foreach(lc, b->paths)
	{
		json_object *v = follow_path(item, (List *) lfirst(lc));

		if (v != NULL && json_object_get_type(v) != json_type_null)
			return v;
	}
	return NULL;
}

/* What the error context says about the conversion under way. */
typedef struct ConversionContext
{
	const DalpPage *page;
	const DalpColumnBinding *binding;
	const char *value;
} ConversionContext;

static void
conversion_error_callback(void *arg)
{
	ConversionContext *cc = (ConversionContext *) arg;

	if (cc->binding == NULL)
		return;
	errcontext("column \"%s\" (json path \"%s\") with value \"%s\" in the response to GET %s",
			   cc->binding->colname,
			   cc->binding->path_text ? cc->binding->path_text : "",
			   cc->value ? cc->value : "",
			   cc->page->display_path);
}

static const char *
json_plain_text(json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
										  JSON_C_TO_STRING_NOSLASHESCAPE);
}

/*
 * The text a scalar converts from.  json-c saturates integers that exceed
 * 64 bits, so such a value cannot be trusted: refuse it rather than return
 * a wrong amount.
 */
static const char *
scalar_text(json_object *v, ConversionContext *cc)
{
	switch (json_object_get_type(v))
	{
		case json_type_string:
			return json_object_get_string(v);
		case json_type_int:
			{
				int64		i = json_object_get_int64(v);

				if (i == PG_INT64_MAX || i == PG_INT64_MIN ||
					json_object_get_uint64(v) == PG_UINT64_MAX)
					ereport(ERROR,
							(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							 errmsg("JSON number too large to decode exactly for column \"%s\"",
									cc->binding->colname),
							 errhint("DALP sends large amounts as strings; map a string field instead.")));
				return json_object_get_string(v);
			}
		case json_type_double:
		case json_type_boolean:
			return json_object_get_string(v);
		default:
			return NULL;
	}
}

static Datum
jsonb_from_text(const char *text)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(text));
}

/* event values [{name, value}] → {"name": "value", ...} */
static Datum
named_values_to_jsonb(json_object *v)
{
	StringInfoData buf;
	size_t		n;

	if (json_object_get_type(v) != json_type_array)
		return jsonb_from_text(json_plain_text(v));
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++)
	{
		json_object *elem = json_object_array_get_idx(v, i);
		const char *name = json_string_field(elem, "name");
		json_object *value;

		if (name == NULL || !json_object_object_get_ex(elem, "value", &value))
			continue;
		if (buf.len > 1)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, name);
		appendStringInfoChar(&buf, ':');
		appendStringInfoString(&buf, json_plain_text(value));
	}
	appendStringInfoChar(&buf, '}');
	return jsonb_from_text(buf.data);
}

static Datum
array_from_json(json_object *v, DalpColumnBinding *b, ConversionContext *cc)
{
	size_t		n;
	Datum	   *elems;
	bool	   *elemnulls;
	int			dims[1];
	int			lbs[1] = {1};

	if (json_object_get_type(v) != json_type_array)
	{
		cc->value = json_plain_text(v);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("expected a JSON array for column \"%s\"", b->colname)));
	}
	n = json_object_array_length(v);
	elems = palloc(sizeof(Datum) * Max(n, 1));
	elemnulls = palloc(sizeof(bool) * Max(n, 1));
	for (size_t i = 0; i < n; i++)
	{
		json_object *e = json_object_array_get_idx(v, i);
		const char *text;

		elemnulls[i] = (e == NULL || json_object_get_type(e) == json_type_null);
		if (elemnulls[i])
			continue;
		text = scalar_text(e, cc);
		if (text == NULL)
			text = json_plain_text(e);
		cc->value = text;
		elems[i] = InputFunctionCall(&b->eleminfunc, (char *) text,
									 b->elemioparam, -1);
	}
	dims[0] = (int) n;
	return PointerGetDatum(construct_md_array(elems, elemnulls, 1, dims, lbs,
											  b->elemtypid, b->elemlen,
											  b->elembyval, b->elemalign));
}

static Datum
convert_value(json_object *v, DalpColumnBinding *b, ConversionContext *cc)
{
	const char *text;

	if (b->typid == JSONBOID)
		return jsonb_from_text(json_plain_text(v));
	if (OidIsValid(b->elemtypid))
		return array_from_json(v, b, cc);

	text = scalar_text(v, cc);
	if (text == NULL)
	{
		if (b->typid == TEXTOID)
			return CStringGetTextDatum(json_plain_text(v));
		cc->value = json_plain_text(v);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("cannot convert a JSON %s to type %s for column \"%s\"",
						json_type_to_name(json_object_get_type(v)),
						format_type_be(b->typid), b->colname)));
	}
	if (b->typid == TEXTOID)
		return PointerGetDatum(cstring_to_text_with_len(text,
														json_object_get_type(v) == json_type_string
														? json_object_get_string_len(v)
														: (int) strlen(text)));
	cc->value = text;
	return InputFunctionCall(&b->infunc, (char *) text, b->typioparam, b->typmod);
}

/*
 * meta.facets.<field> as a List of (String value, Integer count) pairs;
 * false when the response has no counts for that field.
 */
bool
dalp_page_facets(DalpPage *page, const char *field, List **pairs)
{
	json_object *meta;
	json_object *facets;
	json_object *list;
	size_t		n;

	*pairs = NIL;
	if (!json_object_object_get_ex((json_object *) page->root, "meta", &meta) ||
		!json_object_object_get_ex(meta, "facets", &facets) ||
		!json_object_object_get_ex(facets, field, &list) ||
		json_object_get_type(list) != json_type_array)
		return false;
	n = json_object_array_length(list);
	for (size_t i = 0; i < n; i++)
	{
		json_object *entry = json_object_array_get_idx(list, i);
		const char *value = json_string_field(entry, "value");
		json_object *count;

		if (value == NULL || !json_object_object_get_ex(entry, "count", &count))
			raise_bad_shape(page, "a facet entry lacks \"value\" or \"count\"");
		*pairs = lappend(*pairs, list_make2(makeString(pstrdup(value)),
											makeInteger((int) json_object_get_int64(count))));
	}
	return true;
}

/* The item's dedupe key (a dotted path), or NULL. */
const char *
dalp_page_item_id(DalpPage *page, int index, List *id_path)
{
	json_object *v = follow_path(page_item(page, index), id_path);

	return (v && json_object_get_type(v) == json_type_string)
		? json_object_get_string(v) : NULL;
}

/*
 * Fill values/nulls of the bound columns from item number index; unbound
 * columns are left as the caller set them (NULL).
 */
void
dalp_page_item_to_datums(DalpPage *page, int index,
						 DalpColumnBinding *bindings, int nbindings,
						 const char *token_address, const char *search_echo,
						 Datum *values, bool *nulls)
{
	json_object *item = page_item(page, index);
	ConversionContext cc = {page, NULL, NULL};
	ErrorContextCallback errcallback;

	errcallback.callback = conversion_error_callback;
	errcallback.arg = &cc;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	for (int i = 0; i < nbindings; i++)
	{
		DalpColumnBinding *b = &bindings[i];
		int			att = b->attnum - 1;
		json_object *v;

		cc.binding = b;
		cc.value = NULL;
		nulls[att] = true;
		switch (b->kind)
		{
			case DALP_VALUE_TOKEN:
				if (token_address)
				{
					values[att] = CStringGetTextDatum(token_address);
					nulls[att] = false;
				}
				break;
			case DALP_VALUE_SEARCH_ECHO:
				if (search_echo)
				{
					values[att] = CStringGetTextDatum(search_echo);
					nulls[att] = false;
				}
				break;
			case DALP_VALUE_RAW:
				values[att] = jsonb_from_text(json_plain_text(item));
				nulls[att] = false;
				break;
			case DALP_VALUE_NAMED_VALUES:
				v = resolve_binding(item, b);
				if (v)
				{
					values[att] = named_values_to_jsonb(v);
					nulls[att] = false;
				}
				break;
			case DALP_VALUE_PATH:
				v = resolve_binding(item, b);
				if (v)
				{
					values[att] = convert_value(v, b, &cc);
					nulls[att] = false;
				}
				break;
		}
	}
	error_context_stack = errcallback.previous;
}
