/*-------------------------------------------------------------------------
 *
 * decode.c
 *		  json-c documents → Datums: the envelope (data, meta), API error
 *		  bodies, and items converted by the catalog's column bindings.
 *
 * json.c parses each response with json-c as it arrives; this file reads
 * the document.  Only the columns a query uses are converted; the whole
 * item (raw) and the event values become jsonb straight from the json-c
 * tree, timestamps in DALP's shape are read directly, and every other
 * value goes through its column type's input function.  Numbers keep the
 * digits the API sent (dalp_json_number_text), never json-c's int64 or
 * double.
 *
 * A page's document belongs to the memory context current when it was
 * parsed; dalp_page_release only forgets it, and the scan frees it by
 * resetting that context.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_json.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

/* ----------------------------------------------------------------
 * Reading the json-c document
 * ----------------------------------------------------------------
 */

/*
 * An object's member: true when present, with *value set (NULL for a JSON
 * null, as json-c has it).  A repeated name has its last value.
 */
static bool
member(json_object *obj, const char *key, json_object **value)
{
	*value = NULL;
	return json_object_is_type(obj, json_type_object) &&
		json_object_object_get_ex(obj, key, value);
}

/* A member's value, or NULL when absent or null. */
static json_object *
object_get(json_object *obj, const char *key)
{
	json_object *value;

	member(obj, key, &value);
	return value;
}

/* A member's value when it is a string, else NULL. */
static const char *
object_get_string(json_object *obj, const char *key)
{
	json_object *v = object_get(obj, key);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* A string in the database's encoding; DALP sends UTF-8. */
static char *
server_string(const char *s, int len)
{
	if (GetDatabaseEncoding() == PG_UTF8)
		return (char *) s;
	return pg_any_to_server(s, len, PG_UTF8);
}

/* JSON text of a string, escaped as JSON wants. */
static void
append_json_string(StringInfo buf, const char *s, size_t len)
{
	appendStringInfoCharMacro(buf, '"');
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		switch (c)
		{
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			case '\b':
				appendStringInfoString(buf, "\\b");
				break;
			case '\f':
				appendStringInfoString(buf, "\\f");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			default:
				if (c < 0x20)
					appendStringInfo(buf, "\\u%04x", c);
				else
					appendStringInfoCharMacro(buf, (char) c);
		}
	}
	appendStringInfoCharMacro(buf, '"');
}

/*
 * Compact JSON text of a value, as the API could have sent it: numbers as
 * it sent them, members in its order.
 */
static void
append_json_text(StringInfo buf, json_object *v)
{
	bool		first = true;

	check_stack_depth();
	switch (json_object_get_type(v))
	{
		case json_type_null:
			appendStringInfoString(buf, "null");
			break;
		case json_type_boolean:
			appendStringInfoString(buf, json_object_get_boolean(v) ? "true" : "false");
			break;
		case json_type_int:
		case json_type_double:
			appendStringInfoString(buf, dalp_json_number_text(v));
			break;
		case json_type_string:
			append_json_string(buf, json_object_get_string(v),
							   json_object_get_string_len(v));
			break;
		case json_type_array:
			appendStringInfoCharMacro(buf, '[');
			for (size_t i = 0; i < json_object_array_length(v); i++)
			{
				if (i > 0)
					appendStringInfoCharMacro(buf, ',');
				append_json_text(buf, json_object_array_get_idx(v, i));
			}
			appendStringInfoCharMacro(buf, ']');
			break;
		case json_type_object:
			appendStringInfoCharMacro(buf, '{');
			{
				json_object_object_foreach(v, key, value)
				{
					if (!first)
						appendStringInfoCharMacro(buf, ',');
					first = false;
					append_json_string(buf, key, strlen(key));
					appendStringInfoCharMacro(buf, ':');
					append_json_text(buf, value);
				}
			}
			appendStringInfoCharMacro(buf, '}');
			break;
	}
}

/* A value as compact JSON text, for text columns and messages. */
static char *
json_text(json_object *v)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_json_text(&buf, v);
	return server_string(buf.data, buf.len);
}

/* ----------------------------------------------------------------
 * API errors
 * ----------------------------------------------------------------
 */

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
 * what it says is masked against the key, then capped and escaped, before
 * it is printed.
 */
void
dalp_raise_for_status(const DalpHttpResult *res, const char *display_path,
					  const char *secret)
{
	json_object *err;
	char	   *message = NULL;
	char	   *error_id = NULL;

	if (res->status >= 200 && res->status < 300)
		return;

	err = object_get(res->body ? dalp_json_parse_buffer(res->body, res->body_len) : NULL,
					 "error");
	if (err != NULL)
	{
		const char *m = object_get_string(err, "message");
		const char *id = object_get_string(err, "id");

		if (m)
			message = dalp_display_text(mask_secret(server_string(m, strlen(m)),
													secret));
		if (id)
			error_id = dalp_display_text(mask_secret(server_string(id, strlen(id)),
													 secret));
	}

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

/* ----------------------------------------------------------------
 * Pages
 * ----------------------------------------------------------------
 */

static int64 count_of(json_object *v, const char *what,
					  const char *display_path);

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
 * The document of a 2xx response, parsed by parser as it arrived, as a
 * page.  Collections must have a "data" array of objects; single resources
 * a "data" object (or null), optionally with the rows in an array field of
 * it (the health summary's "services").  Anything else is an ERROR naming
 * the request (and the item, for an item that is not an object): never
 * rows of NULLs.
 */
void
dalp_page_parse(DalpPage *page, const DalpHttpResult *res,
				DalpJsonParser *parser, const DalpResourceDef *resdef,
				bool single, const char *display_path)
{
	json_object *root = dalp_json_parser_finish(parser, res, display_path);
	const char *rows_name = "data";
	json_object *data;
	json_object *total;
	json_object **items;

	memset(page, 0, sizeof(*page));
	page->total = -1;
	page->display_path = display_path;
	page->root = root;

	if (!member(root, "data", &data))
		raise_bad_shape(page, "the body has no \"data\" member");

	if (single)
	{
		if (data == NULL)
			return;
		if (!json_object_is_type(data, json_type_object))
			raise_bad_shape(page, "\"data\" is not an object");
		if (resdef->rows_field == NULL)
		{
			items = palloc(sizeof(json_object *));
			items[0] = data;
			page->items = items;
			page->nitems = 1;
			return;
		}
		rows_name = resdef->rows_field;
		data = object_get(data, rows_name);
		if (data == NULL)
			return;
	}
	if (!json_object_is_type(data, json_type_array))
		raise_bad_shape(page, psprintf("\"%s\" is not an array", rows_name));

	page->nitems = (int) json_object_array_length(data);
	items = palloc(sizeof(json_object *) * Max(page->nitems, 1));
	for (int i = 0; i < page->nitems; i++)
	{
		items[i] = json_object_array_get_idx(data, i);
		if (!json_object_is_type(items[i], json_type_object))
			raise_bad_shape(page, psprintf("item %d of \"%s\" is a JSON %s, not an object",
										   i, rows_name,
										   json_type_to_name(json_object_get_type(items[i]))));
	}
	page->items = items;

	if (member(object_get(root, "meta"), "total", &total) && total != NULL)
		page->total = count_of(total, "meta.total", display_path);
}

/*
 * Forget the page.  Its document belongs to the context it was parsed in,
 * which may already be gone: it is never freed here.
 */
void
dalp_page_release(DalpPage *page)
{
	page->root = NULL;
	page->items = NULL;
	page->nitems = 0;
}

static inline json_object *
page_item(const DalpPage *page, int index)
{
	Assert(index >= 0 && index < page->nitems);
	return ((json_object **) page->items)[index];
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
 * Follow one path; NULL when it leads nowhere or to a null.  Inside an
 * array a numeric segment is an index, and a name selects the element
 * whose "name" is that name and yields its "value": the shape of event
 * values ([{name, value}, ...]).
 */
static json_object *
follow_path(json_object *v, List *segments)
{
	ListCell   *lc;

	foreach(lc, segments)
	{
		const char *seg = strVal(lfirst(lc));
		json_object *next = NULL;
		size_t		n;

		switch (json_object_get_type(v))
		{
			case json_type_object:
				next = object_get(v, seg);
				break;
			case json_type_array:
				n = json_object_array_length(v);
				if (is_array_index(seg))
				{
					unsigned long idx = strtoul(seg, NULL, 10);

					if (idx < n)
						next = json_object_array_get_idx(v, idx);
					break;
				}
				for (size_t i = 0; i < n && next == NULL; i++)
				{
					json_object *e = json_object_array_get_idx(v, i);
					const char *name = object_get_string(e, "name");

					if (name && strcmp(name, seg) == 0)
						next = object_get(e, "value");
				}
				break;
			default:
				return NULL;
		}
		v = next;
	}
	return v;
}

/* The first alternative of the binding's paths that gives a value. */
static json_object *
resolve_binding(json_object *item, DalpColumnBinding *b)
{
	ListCell   *lc;

	foreach(lc, b->paths)
	{
		json_object *v = follow_path(item, (List *) lfirst(lc));

		if (v != NULL)
			return v;
	}
	return NULL;
}

/* ----------------------------------------------------------------
 * Conversion to Datums
 * ----------------------------------------------------------------
 */

/* What the error context says about the conversion under way. */
typedef struct ConversionContext
{
	const char *display_path;	/* the request, or NULL */
	const DalpColumnBinding *binding;
	const char *value;			/* the text being converted, or NULL */
} ConversionContext;

static void
conversion_error_callback(void *arg)
{
	ConversionContext *cc = (ConversionContext *) arg;
	const DalpColumnBinding *b = cc->binding;
	StringInfoData buf;

	if (b == NULL)
		return;
	initStringInfo(&buf);
	appendStringInfo(&buf, "column \"%s\" of type %s", b->colname, b->typname);
	if (b->path_text)
		appendStringInfo(&buf, " (json path \"%s\")", b->path_text);
	if (cc->value)
		appendStringInfo(&buf, " with value \"%s\"", dalp_display_text(cc->value));
	if (cc->display_path)
		appendStringInfo(&buf, " in the response to GET %s", cc->display_path);
	errcontext("%s", buf.data);
}

/*
 * text cannot hold a NUL character, which json-c keeps in a string; cc (if
 * not NULL) names the string in the error
 */
static void
reject_nul(const char *s, size_t len, ConversionContext *cc)
{
	if (strlen(s) == len)
		return;
	if (cc != NULL)
		cc->value = s;
	ereport(ERROR,
			(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
			 errmsg("unsupported Unicode escape sequence"),
			 errdetail("\\u0000 cannot be converted to text.")));
}

/*
 * The text a scalar converts from, in the database's encoding; NULL for
 * null, arrays and objects.  Numbers keep the digits the API sent, however
 * many.
 */
static char *
scalar_text(json_object *v, ConversionContext *cc)
{
	const char *s;
	size_t		len;

	switch (json_object_get_type(v))
	{
		case json_type_string:
			s = json_object_get_string(v);
			len = json_object_get_string_len(v);
			reject_nul(s, len, cc);
			return server_string(s, (int) len);
		case json_type_int:
		case json_type_double:
			return dalp_json_number_text(v);
		case json_type_boolean:
			return (char *) (json_object_get_boolean(v) ? "true" : "false");
		default:
			return NULL;
	}
}

/*
 * A count the API sent: a number, or a string holding one, checked by
 * dalp_api_count.
 */
static int64
count_of(json_object *v, const char *what, const char *display_path)
{
	json_type	type = json_object_get_type(v);

	return dalp_api_count((type == json_type_int || type == json_type_double ||
						   type == json_type_string) ? scalar_text(v, NULL) : NULL,
						  what, display_path);
}

/* jsonb's order of object keys: shorter first, then bytewise */
static inline int
jsonb_key_cmp(const JsonbPair *a, const JsonbPair *b)
{
	if (a->key.val.string.len != b->key.val.string.len)
		return (a->key.val.string.len > b->key.val.string.len) ? 1 : -1;
	return memcmp(a->key.val.string.val, b->key.val.string.val,
				  a->key.val.string.len);
}

/* ... and of a repeated key, the member written last first */
static int
jsonb_pair_cmp(const void *a, const void *b)
{
	const JsonbPair *pa = (const JsonbPair *) a;
	const JsonbPair *pb = (const JsonbPair *) b;
	int			res = jsonb_key_cmp(pa, pb);

	return res != 0 ? res : (pa->order > pb->order) ? -1 : 1;
}

/*
 * Put an object's pairs in jsonb's order and keep the last of each repeated
 * key, as jsonb_in does.  DALP objects have a dozen keys or fewer, which an
 * insertion sort orders faster than qsort's general machinery.
 */
static void
jsonb_sort_pairs(JsonbValue *object)
{
	JsonbPair  *pairs = object->val.object.pairs;
	int			n = object->val.object.nPairs;
	int			kept = 0;

	if (n > 16)
		qsort(pairs, n, sizeof(JsonbPair), jsonb_pair_cmp);
	else
		for (int i = 1; i < n; i++)
		{
			JsonbPair	p = pairs[i];
			int			j = i;

			for (; j > 0 && jsonb_pair_cmp(&pairs[j - 1], &p) > 0; j--)
				pairs[j] = pairs[j - 1];
			pairs[j] = p;
		}
	for (int i = 0; i < n; i++)
		if (kept == 0 || jsonb_key_cmp(&pairs[kept - 1], &pairs[i]) != 0)
			pairs[kept++] = pairs[i];
	object->val.object.nPairs = kept;
}

/* A string (or member name) as jsonb; cc names it if it cannot be one. */
static void
jsonb_string(JsonbValue *out, const char *s, size_t len, ConversionContext *cc)
{
	cc->value = s;
	reject_nul(s, len, cc);
	if (len > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("string too long to represent as jsonb string")));
	out->type = jbvString;
	out->val.string.val = server_string(s, (int) len);
	out->val.string.len = (out->val.string.val == s)
		? (int) len : (int) strlen(out->val.string.val);
	cc->value = NULL;
}

/*
 * A value as an in-memory jsonb tree, straight from json-c's: no JSON text
 * is printed and parsed again.  Strings point into json-c's tree, which
 * outlives the conversion to jsonb.
 */
static void
jsonb_value(JsonbValue *out, json_object *v, ConversionContext *cc)
{
	int			i = 0;
	size_t		len;

	check_stack_depth();
	switch (json_object_get_type(v))
	{
		case json_type_object:
			out->type = jbvObject;
			out->val.object.pairs = palloc(sizeof(JsonbPair) *
										   Max(json_object_object_length(v), 1));
			{
				json_object_object_foreach(v, key, value)
				{
					JsonbPair  *pair = &out->val.object.pairs[i];

					jsonb_string(&pair->key, key, strlen(key), cc);
					jsonb_value(&pair->value, value, cc);
					pair->order = i++;
				}
			}
			out->val.object.nPairs = i;
			jsonb_sort_pairs(out);
			break;
		case json_type_array:
			len = json_object_array_length(v);
			out->type = jbvArray;
			out->val.array.rawScalar = false;
			out->val.array.elems = palloc(sizeof(JsonbValue) * Max(len, 1));
			for (size_t e = 0; e < len; e++)
				jsonb_value(&out->val.array.elems[e], json_object_array_get_idx(v, e),
							cc);
			out->val.array.nElems = (int) len;
			break;
		case json_type_null:
			out->type = jbvNull;
			break;
		case json_type_boolean:
			out->type = jbvBool;
			out->val.boolean = json_object_get_boolean(v);
			break;
		case json_type_int:
		case json_type_double:
			/* numeric_in refuses an exponent no numeric holds: name it */
			cc->value = dalp_json_number_text(v);
			out->type = jbvNumeric;
			out->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																   CStringGetDatum(cc->value),
																   ObjectIdGetDatum(InvalidOid),
																   Int32GetDatum(-1)));
			cc->value = NULL;
			break;
		case json_type_string:
			jsonb_string(out, json_object_get_string(v),
						 json_object_get_string_len(v), cc);
			break;
	}
}

static Datum
jsonb_from_node(json_object *v, ConversionContext *cc)
{
	JsonbValue	jv;

	jsonb_value(&jv, v, cc);
	return JsonbPGetDatum(JsonbValueToJsonb(&jv));
}

/* event values [{name, value}] → {"name": "value", ...} */
static Datum
named_values_to_jsonb(json_object *v, ConversionContext *cc)
{
	JsonbValue	object;
	size_t		len;
	int			n = 0;

	if (!json_object_is_type(v, json_type_array))
		return jsonb_from_node(v, cc);
	len = json_object_array_length(v);
	object.type = jbvObject;
	object.val.object.pairs = palloc(sizeof(JsonbPair) * Max(len, 1));
	for (size_t i = 0; i < len; i++)
	{
		json_object *e = json_object_array_get_idx(v, i);
		json_object *name = object_get(e, "name");
		json_object *value;
		JsonbPair  *pair = &object.val.object.pairs[n];

		if (!json_object_is_type(name, json_type_string) ||
			!member(e, "value", &value))
			continue;
		jsonb_string(&pair->key, json_object_get_string(name),
					 json_object_get_string_len(name), cc);
		jsonb_value(&pair->value, value, cc);
		pair->order = n++;
	}
	object.val.object.nPairs = n;
	jsonb_sort_pairs(&object);
	return JsonbPGetDatum(JsonbValueToJsonb(&object));
}

static inline int
two_digits(const char *s)
{
	if (!isdigit((unsigned char) s[0]) || !isdigit((unsigned char) s[1]))
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/*
 * DALP's timestamps are all "YYYY-MM-DDTHH:MM:SS.sssZ".  Converting that
 * shape directly is several times cheaper than timestamptz_in, which
 * tokenizes any date style and consults the time zone.  False for any
 * other shape or an impossible date: the input function then decides.
 */
static bool
fast_timestamptz(const char *s, size_t len, TimestampTz *result)
{
	int			year;
	int			mon;
	int			mday;
	int			hour;
	int			min;
	int			sec;
	int			msec;

	if (len != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
		s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z')
		return false;
	year = two_digits(s) * 100 + two_digits(s + 2);
	mon = two_digits(s + 5);
	mday = two_digits(s + 8);
	hour = two_digits(s + 11);
	min = two_digits(s + 14);
	sec = two_digits(s + 17);
	msec = two_digits(s + 20) * 10 + (isdigit((unsigned char) s[22]) ? s[22] - '0' : -1000);
	if (two_digits(s) < 0 || two_digits(s + 2) < 0 || year < 1 ||
		mon < 1 || mon > 12 || mday < 1 ||
		mday > day_tab[isleap(year)][mon - 1] ||
		hour < 0 || hour > 23 || min < 0 || min > 59 ||
		sec < 0 || sec > 59 || msec < 0)
		return false;
	*result = (TimestampTz) (date2j(year, mon, mday) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY +
		((((int64) hour * MINS_PER_HOUR + min) * SECS_PER_MINUTE + sec) * USECS_PER_SEC) +
		(int64) msec * 1000;
	return true;
}

/* Are s[0..n) all digits? */
static bool
all_digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!isdigit((unsigned char) s[i]))
			return false;
	return true;
}

/*
 * An ISO 8601 timestamp with a time zone ("Z" or an offset).  The input
 * function alone would also take "now", a date without a time, or a time
 * without a zone (read in the session's zone): a wrong instant, silently.
 */
static bool
is_iso8601_zoned(const char *s)
{
	const char *p = s + 19;

	if (strlen(s) < 20 || !all_digits(s, 4) || s[4] != '-' ||
		!all_digits(s + 5, 2) || s[7] != '-' || !all_digits(s + 8, 2) ||
		(s[10] != 'T' && s[10] != ' ') || !all_digits(s + 11, 2) ||
		s[13] != ':' || !all_digits(s + 14, 2) || s[16] != ':' ||
		!all_digits(s + 17, 2))
		return false;
	if (*p == '.')
	{
		if (!isdigit((unsigned char) *++p))
			return false;
		while (isdigit((unsigned char) *p))
			p++;
	}
	if (*p == 'Z')
		return p[1] == '\0';
	if (*p != '+' && *p != '-')
		return false;
	p++;
	if (!all_digits(p, 2))
		return false;
	p += 2;
	if (*p == ':')
		p++;
	return *p == '\0' || (all_digits(p, 2) && p[2] == '\0');
}

static void
raise_bad_value(const DalpColumnBinding *b, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("invalid value for column \"%s\": expected %s",
					b->colname, expected)));
}

/*
 * numeric_in also reads NaN and Infinity (any case, Infinity signed, after
 * spaces), which are no amounts.
 */
static bool
spells_nan_or_infinity(const char *s)
{
	while (isspace((unsigned char) *s))
		s++;
	if (*s == '+' || *s == '-')
		s++;
	/* an amount starts with a digit: the usual case costs one test */
	if (*s >= '0' && *s <= '9')
		return false;
	return pg_strncasecmp(s, "nan", 3) == 0 || pg_strncasecmp(s, "inf", 3) == 0;
}

/*
 * Checks stricter than some input functions, so that a bad value is never
 * read as another: booleans only as true or false, timestamps with a time
 * zone only in ISO 8601 with the zone, numerics only finite.  basetypid is
 * the type (or a domain's base type) of the column or of its elements.
 */
static void
check_text(const DalpColumnBinding *b, Oid basetypid, const char *text)
{
	if (basetypid == BOOLOID && strcmp(text, "true") != 0 &&
		strcmp(text, "false") != 0)
		raise_bad_value(b, "true or false");
	if (basetypid == TIMESTAMPTZOID && !is_iso8601_zoned(text))
		raise_bad_value(b, "an ISO 8601 timestamp with a time zone");
	if (basetypid == NUMERICOID && spells_nan_or_infinity(text))
		raise_bad_value(b, "a finite decimal number");
}

/* The column's type read from text, as PostgreSQL reads a literal. */
static Datum
text_datum(DalpColumnBinding *b, const char *text, ConversionContext *cc)
{
	cc->value = text;
	if (b->conv == DALP_CONV_TEXT)
		return CStringGetTextDatum(text);
	if (b->conv != DALP_CONV_ARRAY)
		check_text(b, b->basetypid, text);
	return dalp_input_call(&b->infunc, (char *) text, b->typioparam,
						   b->typmod);
}

/*
 * A JSON array as an array literal with every element quoted, so that the
 * array type's input function builds the array, with the column's type
 * modifier for its elements (and a domain's constraints for the whole).
 */
static char *
array_literal(json_object *v, DalpColumnBinding *b, ConversionContext *cc)
{
	StringInfoData buf;
	size_t		len = json_object_array_length(v);

	initStringInfo(&buf);
	appendStringInfoCharMacro(&buf, '{');
	for (size_t i = 0; i < len; i++)
	{
		json_object *e = json_object_array_get_idx(v, i);
		const char *text = NULL;

		if (i > 0)
			appendStringInfoCharMacro(&buf, b->elemdelim);
		if (e == NULL)
		{
			appendStringInfoString(&buf, "NULL");
			continue;
		}
		if (!b->elem_json)
			text = scalar_text(e, cc);
		if (text == NULL)
			text = json_text(e);
		cc->value = text;
		check_text(b, b->elembasetypid, text);
		appendStringInfoCharMacro(&buf, '"');
		for (; *text; text++)
		{
			if (*text == '"' || *text == '\\')
				appendStringInfoCharMacro(&buf, '\\');
			appendStringInfoCharMacro(&buf, *text);
		}
		appendStringInfoCharMacro(&buf, '"');
	}
	appendStringInfoCharMacro(&buf, '}');
	return buf.data;
}

/* A JSON value as a Datum of the column's type. */
static Datum
node_datum(json_object *v, DalpColumnBinding *b, ConversionContext *cc)
{
	bool		is_string = json_object_is_type(v, json_type_string);
	const char *s = is_string ? json_object_get_string(v) : NULL;
	size_t		len = is_string ? json_object_get_string_len(v) : 0;
	char	   *text;

	switch (b->conv)
	{
		case DALP_CONV_JSONB:
			return jsonb_from_node(v, cc);
		case DALP_CONV_JSON_TEXT:
			return text_datum(b, json_text(v), cc);
		case DALP_CONV_ARRAY:
			{
				if (!json_object_is_type(v, json_type_array))
				{
					cc->value = json_text(v);
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
							 errmsg("expected a JSON array for column \"%s\"",
									b->colname)));
				}
				/* array_literal names elements; then the literal is the value */
				text = array_literal(v, b, cc);
				cc->value = text;
			}
			return dalp_input_call(&b->infunc, text, b->typioparam,
								   b->typmod);
		case DALP_CONV_TEXT:
			if (is_string)
			{
				reject_nul(s, len, cc);
				text = server_string(s, (int) len);
				return PointerGetDatum(cstring_to_text_with_len(text,
																text == s ? (int) len : (int) strlen(text)));
			}
			break;
		case DALP_CONV_TIMESTAMPTZ:
			{
				TimestampTz ts;

				if (is_string && fast_timestamptz(s, len, &ts))
					return TimestampTzGetDatum(ts);
			}
			break;
		case DALP_CONV_INPUT:
			break;
	}
	/* scalars convert from their text, arrays and objects from their JSON */
	text = scalar_text(v, cc);
	if (text == NULL)
		text = json_text(v);
	return text_datum(b, text, cc);
}

/*
 * Event values, folded into one object (named_values_to_jsonb), as a
 * Datum of the column's type: other types than jsonb read its text.
 */
static Datum
named_values_datum(json_object *v, DalpColumnBinding *b, ConversionContext *cc)
{
	Jsonb	   *folded;

	if (!json_object_is_type(v, json_type_array))
		return node_datum(v, b, cc);
	folded = DatumGetJsonbP(named_values_to_jsonb(v, cc));
	if (b->conv == DALP_CONV_JSONB)
		return JsonbPGetDatum(folded);
	cc->value = JsonbToCString(NULL, &folded->root, VARSIZE(folded));
	if (b->conv == DALP_CONV_ARRAY)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("expected a JSON array for column \"%s\"", b->colname)));
	return text_datum(b, cc->value, cc);
}

/*
 * Decide, once per binding, how the values of a column of this declared
 * type are converted (DalpConversion).  A role may declare any type:
 * outside the fast paths for exactly text, jsonb and timestamptz, every
 * value goes through the type's input function with the type modifier, as
 * postgres_fdw reads remote text, so no Datum is handed out as another
 * type.
 */
void
dalp_binding_set_type(DalpColumnBinding *b, Oid typid, int32 typmod)
{
	Oid			infunc;
	Oid			elemtypid;

	b->typid = typid;
	b->typmod = typmod;
	b->typname = format_type_with_typemod(typid, typmod);
	b->basetypid = getBaseType(typid);
	getTypeInputInfo(typid, &infunc, &b->typioparam);
	fmgr_info(infunc, &b->infunc);
	elemtypid = get_element_type(b->basetypid);

	if (typid == TEXTOID)
		b->conv = DALP_CONV_TEXT;
	else if (typid == JSONBOID)
		b->conv = DALP_CONV_JSONB;
	else if (typid == TIMESTAMPTZOID && typmod < 0)
		b->conv = DALP_CONV_TIMESTAMPTZ;
	else if (b->basetypid == JSONOID || b->basetypid == JSONBOID)
		b->conv = DALP_CONV_JSON_TEXT;
	/* a true array, not a fixed-layout type such as int2vector */
	else if (OidIsValid(elemtypid) && get_array_type(elemtypid) == b->basetypid)
	{
		int16		elemlen;
		bool		elembyval;
		char		elemalign;
		Oid			elemioparam;
		Oid			eleminfunc;

		b->conv = DALP_CONV_ARRAY;
		b->elembasetypid = getBaseType(elemtypid);
		b->elem_json = (b->elembasetypid == JSONOID ||
						b->elembasetypid == JSONBOID);
		get_type_io_data(elemtypid, IOFunc_input, &elemlen, &elembyval,
						 &elemalign, &b->elemdelim, &elemioparam, &eleminfunc);
	}
	else
		b->conv = DALP_CONV_INPUT;
}

/*
 * A text value (a token address, a search value, a facet value) as a
 * Datum of the column's type; display_path, if known, names the request
 * in errors.
 */
Datum
dalp_text_to_datum(DalpColumnBinding *b, const char *text,
				   const char *display_path)
{
	ConversionContext cc = {display_path, b, NULL};
	ErrorContextCallback errcallback;
	Datum		result;

	errcallback.callback = conversion_error_callback;
	errcallback.arg = &cc;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	result = text_datum(b, text, &cc);
	error_context_stack = errcallback.previous;
	return result;
}

/*
 * meta.facets.<field> as a List of DalpFacetCount, in the response's order
 * (a value may repeat); false when the response has no counts for that
 * field.
 */
bool
dalp_page_facets(DalpPage *page, const char *field, List **counts)
{
	json_object *list = object_get(object_get(object_get(page->root, "meta"),
											  "facets"),
								   field);
	char	   *what = psprintf("count in meta.facets.%s", field);
	size_t		len;

	*counts = NIL;
	if (!json_object_is_type(list, json_type_array))
		return false;
	len = json_object_array_length(list);
	for (size_t i = 0; i < len; i++)
	{
		json_object *e = json_object_array_get_idx(list, i);
		json_object *value = object_get(e, "value");
		json_object *count = object_get(e, "count");
		DalpFacetCount *fc = palloc(sizeof(DalpFacetCount));
		const char *s;

		if (!json_object_is_type(value, json_type_string) || count == NULL)
			raise_bad_shape(page, "a facet entry lacks \"value\" or \"count\"");
		s = json_object_get_string(value);
		reject_nul(s, json_object_get_string_len(value), NULL);
		fc->value = pstrdup(server_string(s, strlen(s)));
		fc->count = count_of(count, what, page->display_path);
		*counts = lappend(*counts, fc);
	}
	return true;
}

/* The item's dedupe key (a dotted path), or NULL. */
const char *
dalp_page_item_id(DalpPage *page, int index, List *id_path)
{
	json_object *v = follow_path(page_item(page, index), id_path);

	if (!json_object_is_type(v, json_type_string) ||
		strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v))
		return NULL;
	return json_object_get_string(v);
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
	ConversionContext cc = {page->display_path, NULL, NULL};
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
					values[att] = text_datum(b, token_address, &cc);
					nulls[att] = false;
				}
				break;
			case DALP_VALUE_SEARCH_ECHO:
				if (search_echo)
				{
					values[att] = text_datum(b, search_echo, &cc);
					nulls[att] = false;
				}
				break;
			case DALP_VALUE_RAW:
				values[att] = node_datum(item, b, &cc);
				nulls[att] = false;
				break;
			case DALP_VALUE_NAMED_VALUES:
				v = resolve_binding(item, b);
				if (v != NULL)
				{
					values[att] = named_values_datum(v, b, &cc);
					nulls[att] = false;
				}
				break;
			case DALP_VALUE_PATH:
				v = resolve_binding(item, b);
				if (v != NULL)
				{
					values[att] = node_datum(v, b, &cc);
					nulls[att] = false;
				}
				break;
		}
	}
	error_context_stack = errcallback.previous;
}

/*
 * Bind columns to the catalog: attnums[i] of rel fills slot position
 * positions[i] (the same attnum when positions is NIL).  A column that is
 * neither a catalog column nor has a json_path is an error here, at the
 * first query, naming the valid names.
 */
DalpColumnBinding *
dalp_make_bindings(Relation rel, const DalpResourceDef *res, List *attnums,
				   List *positions, int *nbindings)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	DalpColumnBinding *bindings = palloc0(sizeof(DalpColumnBinding) *
										  Max(list_length(attnums), 1));
	int			n = 0;

	for (int i = 0; i < list_length(attnums); i++)
	{
		AttrNumber	attnum = list_nth_int(attnums, i);
		Form_pg_attribute att = TupleDescAttr(tupdesc, attnum - 1);
		DalpColumnBinding *b = &bindings[n];
		char	   *json_path = dalp_column_json_path(RelationGetRelid(rel), attnum);
		const DalpColumnDef *col = dalp_column_lookup(res, NameStr(att->attname));

		if (att->attisdropped)
			continue;
		b->attnum = positions ? list_nth_int(positions, i) : attnum;
		b->colname = pstrdup(NameStr(att->attname));
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

		dalp_binding_set_type(b, att->atttypid, att->atttypmod);
		n++;
	}
	*nbindings = n;
	return bindings;
}
