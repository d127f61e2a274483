/*-------------------------------------------------------------------------
 *
 * decode.c
 *		  JSON → Datums: the envelope (data, meta, links), API error bodies,
 *		  and items converted by the catalog's column bindings.
 *
 * Responses are parsed by a small JSON parser of our own rather than by a
 * general-purpose library.  Decoding a scan is mostly parsing: with json-c,
 * parsing and freeing the tree took two thirds of the backend's CPU time in
 * bench/'s 200,000-event scan, because json-c allocates every value, string
 * and key on its own and hashes every object.  The parser here makes one pass over a
 * copy of the body and records each value as a 16-byte node of a flat
 * array (the "tape"), in document order, with the index just past the
 * value's subtree so that readers skip what they do not need.  Strings are
 * unescaped in place and NUL-terminated where their closing quote was, so a
 * string value is a C string without a copy; numbers keep their text, which
 * is what PostgreSQL's input functions want (and stays exact, where a
 * library would have rounded it to a double or an int64).
 *
 * Everything is palloc'd in the memory context current when the page is
 * parsed; dalp_page_release only forgets it, and the scan reclaims it by
 * resetting that context.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

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
 * The JSON tape
 * ----------------------------------------------------------------
 */

typedef enum JsonKind
{
	JSON_NULL,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT
} JsonKind;

/* A string that held \u0000: its C string stops short, text cannot hold it */
#define JSON_FLAG_NUL	0x01

/*
 * One value.  An object's members follow it as key, value, key, value...;
 * an array's elements follow it; "next" skips the whole subtree.
 */
typedef struct JsonNode
{
	uint8		kind;			/* JsonKind */
	uint8		flags;			/* JSON_FLAG_* */
	uint32		start;			/* byte offset of the value in the text; of
								 * a string, of its first character */
	uint32		len;			/* string: bytes once unescaped; number: its
								 * text's length; array, object: how many
								 * elements or members */
	int32		next;			/* index of the node after this subtree */
} JsonNode;

/* A node index; JSON_NONE when a value is absent. */
typedef int32 JsonRef;

#define JSON_NONE	(-1)

typedef struct JsonDoc
{
	char	   *text;			/* a copy of the body, strings unescaped */
	JsonNode   *nodes;
	int32		nnodes;
	int32		cap;
} JsonDoc;

/* Why parsing stopped, and where. */
typedef struct JsonError
{
	const char *why;			/* NULL: the text ended too early */
	size_t		offset;
} JsonError;

/* Bytes that may appear unescaped in a string and end no string. */
static bool string_plain[256];
static bool string_plain_ready = false;

static void
init_string_plain(void)
{
	for (int c = 0; c < 256; c++)
		string_plain[c] = (c >= 0x20 && c != '"' && c != '\\');
	string_plain_ready = true;
}

/*
 * Whether any byte of w is '"', '\\' or below 0x20 (SWAR: a byte is zero
 * after the XOR exactly when it matched; bytes at or above 0x80 never
 * count as below 0x20).
 */
static inline bool
has_special_byte(uint64 w)
{
	const uint64 ones = UINT64CONST(0x0101010101010101);
	const uint64 highs = UINT64CONST(0x8080808080808080);
	uint64		quote = w ^ (ones * '"');
	uint64		backslash = w ^ (ones * '\\');

	return (((quote - ones) & ~quote) |
			((backslash - ones) & ~backslash) |
			((w - ones * 0x20) & ~w)) & highs;
}

#define JSON_IS_SPACE(c) ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')

static inline char *
skip_space(char *p, char *end)
{
	while (p < end && JSON_IS_SPACE(*p))
		p++;
	return p;
}

/* Out of line: a page's nodes are allocated once, and seldom grow. */
static pg_noinline void
grow_nodes(JsonDoc *doc)
{
	/* a node takes at least two bytes of text: this bound is never hit */
	if (doc->cap > PG_INT32_MAX / 2)
		elog(ERROR, "JSON document has too many values");
	doc->cap *= 2;
	doc->nodes = repalloc_huge(doc->nodes, sizeof(JsonNode) * doc->cap);
}

static inline JsonRef
add_node(JsonDoc *doc, JsonKind kind, size_t start)
{
	JsonNode   *n;

	if (unlikely(doc->nnodes == doc->cap))
		grow_nodes(doc);
	n = &doc->nodes[doc->nnodes];
	n->kind = (uint8) kind;
	n->flags = 0;
	n->start = (uint32) start;
	n->len = 0;
	n->next = doc->nnodes + 1;
	return doc->nnodes++;
}

/* Four hex digits at p, or -1. */
static int
hex4(const char *p)
{
	int			v = 0;

	for (int i = 0; i < 4; i++)
	{
		int			d = dalp_hex_value(p[i]);

		if (d < 0)
			return -1;
		v = (v << 4) | d;
	}
	return v;
}

/*
 * The string whose opening quote is at p[-1].  Returns the position after
 * the closing quote, or NULL with err set.  Escapes are decoded in place:
 * the decoded form is never longer than the escaped one.
 */
static char *
parse_string(JsonDoc *doc, char *p, char *end, JsonError *err)
{
	JsonRef		ref = add_node(doc, JSON_STRING, p - doc->text);
	char	   *start = p;
	char	   *w;

	/*
	 * Fast path: no escape until the closing quote.  Eight bytes at a time
	 * while none of them is '"', '\\' or a control character: most DALP
	 * strings are 42- or 66-character hex.
	 */
	while (end - p >= 8)
	{
		uint64		w;

		memcpy(&w, p, 8);
		if (has_special_byte(w))
			break;
		p += 8;
	}
	while (p < end && string_plain[(unsigned char) *p])
		p++;
	if (p < end && *p == '"')
	{
		*p = '\0';
		doc->nodes[ref].len = (uint32) (p - start);
		return p + 1;
	}

	w = p;
	while (p < end)
	{
		unsigned char c = (unsigned char) *p;
		int			cp;

		if (c == '"')
		{
			*w = '\0';
			doc->nodes[ref].len = (uint32) (w - start);
			return p + 1;
		}
		if (c < 0x20)
		{
			err->why = "a control character inside a string";
			err->offset = p - doc->text;
			return NULL;
		}
		if (c != '\\')
		{
			*w++ = *p++;
			continue;
		}
		if (end - p < 2)
			break;
		switch (p[1])
		{
			case '"':
			case '\\':
			case '/':
				*w++ = p[1];
				p += 2;
				continue;
			case 'b':
				*w++ = '\b';
				p += 2;
				continue;
			case 'f':
				*w++ = '\f';
				p += 2;
				continue;
			case 'n':
				*w++ = '\n';
				p += 2;
				continue;
			case 'r':
				*w++ = '\r';
				p += 2;
				continue;
			case 't':
				*w++ = '\t';
				p += 2;
				continue;
			case 'u':
				break;
			default:
				err->why = "an invalid escape sequence";
				err->offset = p - doc->text;
				return NULL;
		}
		if (end - p < 6)
			break;
		cp = hex4(p + 2);
		if (cp < 0)
		{
			err->why = "an invalid \\u escape";
			err->offset = p - doc->text;
			return NULL;
		}
		if (cp >= 0xD800 && cp <= 0xDBFF)
		{
			int			low;

			if (end - p >= 12 && p[6] == '\\' && p[7] == 'u')
				low = hex4(p + 8);
			else if (end - p < 12 &&
					 memcmp(p + 6, "\\u", Min(end - p - 6, 2)) == 0)
				break;			/* the text ends where the low half would be */
			else
				low = -1;
			if (low < 0xDC00 || low > 0xDFFF)
			{
				err->why = "a \\u escape of an unpaired surrogate";
				err->offset = p - doc->text;
				return NULL;
			}
			cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
			p += 12;
		}
		else if (cp >= 0xDC00 && cp <= 0xDFFF)
		{
			err->why = "a \\u escape of an unpaired surrogate";
			err->offset = p - doc->text;
			return NULL;
		}
		else
			p += 6;
		if (cp == 0)
			doc->nodes[ref].flags |= JSON_FLAG_NUL;
		unicode_to_utf8((pg_wchar) cp, (unsigned char *) w);
		w += pg_utf_mblen((unsigned char *) w);
	}
	err->why = NULL;			/* the text ended inside the string */
	return NULL;
}

/* A number as JSON spells it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static char *
parse_number(JsonDoc *doc, char *p, char *end, JsonError *err)
{
	char	   *start = p;
	JsonRef		ref;

	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		while (p < end && isdigit((unsigned char) *p))
			p++;
	else
		goto bad;
	if (p < end && *p == '.')
	{
		p++;
		if (!(p < end && isdigit((unsigned char) *p)))
			goto bad;
		while (p < end && isdigit((unsigned char) *p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!(p < end && isdigit((unsigned char) *p)))
			goto bad;
		while (p < end && isdigit((unsigned char) *p))
			p++;
	}
	ref = add_node(doc, JSON_NUMBER, start - doc->text);
	doc->nodes[ref].len = (uint32) (p - start);
	return p;

bad:
	err->why = (p == end) ? NULL : "an invalid number";
	err->offset = p - doc->text;
	return NULL;
}

/*
 * Parse len bytes of body into doc.  Returns false, with err set, when the
 * body is not one JSON value.  No ERROR is raised for bad JSON, so that
 * callers can choose what to say.
 */
static bool
json_parse(JsonDoc *doc, const char *body, size_t len, JsonError *err)
{
	char	   *p;
	char	   *end;
	JsonRef    *stack;
	int			depth = 0;
	int			stack_cap = 32;

	if (len >= PG_UINT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("DALP response of %zu bytes is too large to decode", len)));
	if (!string_plain_ready)
		init_string_plain();

	doc->text = palloc_extended(len + 1, MCXT_ALLOC_HUGE);
	memcpy(doc->text, body, len);
	doc->text[len] = '\0';
	/* about one value per 16 bytes of DALP JSON: one allocation, or two */
	doc->cap = (int32) Min(len / 12 + 64, (size_t) PG_INT32_MAX / 2);
	doc->nodes = palloc_extended(sizeof(JsonNode) * doc->cap, MCXT_ALLOC_HUGE);
	doc->nnodes = 0;
	stack = palloc(sizeof(JsonRef) * stack_cap);

	p = doc->text;
	end = doc->text + len;
	err->why = NULL;
	err->offset = len;

	for (;;)
	{
		JsonRef		ref;

		/* a value starts at p */
		p = skip_space(p, end);
		if (p == end)
			return false;
		switch (*p)
		{
			case '{':
			case '[':
				ref = add_node(doc, *p == '{' ? JSON_OBJECT : JSON_ARRAY,
							   p - doc->text);
				p = skip_space(p + 1, end);
				if (p < end && *p == (doc->nodes[ref].kind == JSON_OBJECT ? '}' : ']'))
				{
					p++;
					break;		/* empty: a complete value */
				}
				if (depth == stack_cap)
				{
					stack_cap *= 2;
					stack = repalloc(stack, sizeof(JsonRef) * stack_cap);
				}
				stack[depth++] = ref;
				if (doc->nodes[ref].kind == JSON_OBJECT)
					goto member_key;
				continue;		/* the first element */
			case '"':
				p = parse_string(doc, p + 1, end, err);
				if (p == NULL)
					return false;
				break;
			case 't':
			case 'f':
			case 'n':
				{
					const char *word = (*p == 't') ? "true" : (*p == 'f') ? "false" : "null";
					size_t		wlen = strlen(word);

					if ((size_t) (end - p) < wlen)
					{
						err->why = (memcmp(p, word, end - p) == 0) ? NULL : "an invalid literal";
						err->offset = p - doc->text;
						return false;
					}
					if (memcmp(p, word, wlen) != 0)
					{
						err->why = "an invalid literal";
						err->offset = p - doc->text;
						return false;
					}
					add_node(doc, (*p == 't') ? JSON_TRUE : (*p == 'f') ? JSON_FALSE : JSON_NULL,
							 p - doc->text);
					p += wlen;
					break;
				}
			default:
				if (*p != '-' && !isdigit((unsigned char) *p))
				{
					err->why = "a character that starts no JSON value";
					err->offset = p - doc->text;
					return false;
				}
				p = parse_number(doc, p, end, err);
				if (p == NULL)
					return false;
				break;
		}

		/* a value is complete: close the containers it completes */
		for (;;)
		{
			JsonNode   *top;

			p = skip_space(p, end);
			if (depth == 0)
			{
				if (p != end)
				{
					err->why = "text after the end of the JSON value";
					err->offset = p - doc->text;
					return false;
				}
				pfree(stack);
				return true;
			}
			top = &doc->nodes[stack[depth - 1]];
			top->len++;
			if (p == end)
				return false;
			if (*p == ',')
			{
				p++;
				break;
			}
			if (*p != (top->kind == JSON_OBJECT ? '}' : ']'))
			{
				err->why = (top->kind == JSON_OBJECT) ? "a member not followed by \",\" or \"}\""
					: "an element not followed by \",\" or \"]\"";
				err->offset = p - doc->text;
				return false;
			}
			p++;
			top->next = doc->nnodes;
			depth--;
		}
		if (doc->nodes[stack[depth - 1]].kind != JSON_OBJECT)
			continue;			/* the next element */

member_key:
		p = skip_space(p, end);
		if (p == end)
			return false;
		if (*p != '"')
		{
			err->why = "an object member whose name is not a string";
			err->offset = p - doc->text;
			return false;
		}
		p = parse_string(doc, p + 1, end, err);
		if (p == NULL)
			return false;
		p = skip_space(p, end);
		if (p == end)
			return false;
		if (*p != ':')
		{
			err->why = "a member name not followed by \":\"";
			err->offset = p - doc->text;
			return false;
		}
		p++;
	}
}

static inline JsonNode *
node(const JsonDoc *doc, JsonRef ref)
{
	return &doc->nodes[ref];
}

static inline const char *
node_text(const JsonDoc *doc, JsonRef ref)
{
	return doc->text + doc->nodes[ref].start;
}

/* The value of an object's member; the last one when a name repeats. */
static JsonRef
object_get(const JsonDoc *doc, JsonRef obj, const char *key)
{
	size_t		klen = strlen(key);
	JsonRef		found = JSON_NONE;
	JsonRef		end;

	if (obj == JSON_NONE || node(doc, obj)->kind != JSON_OBJECT)
		return JSON_NONE;
	end = node(doc, obj)->next;
	for (JsonRef k = obj + 1; k < end; k = node(doc, k + 1)->next)
	{
		if (node(doc, k)->len == klen &&
			memcmp(node_text(doc, k), key, klen) == 0)
			found = k + 1;
	}
	return found;
}

/* A member's value when it is a string, else NULL. */
static const char *
object_get_string(const JsonDoc *doc, JsonRef obj, const char *key)
{
	JsonRef		v = object_get(doc, obj, key);

	if (v == JSON_NONE || node(doc, v)->kind != JSON_STRING)
		return NULL;
	return node_text(doc, v);
}

static JsonRef
array_get(const JsonDoc *doc, JsonRef arr, size_t index)
{
	JsonRef		end = node(doc, arr)->next;
	JsonRef		e = arr + 1;

	if (index >= node(doc, arr)->len)
		return JSON_NONE;
	for (size_t i = 0; i < index && e < end; i++)
		e = node(doc, e)->next;
	return e;
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

/* Compact JSON text of a value, as the API could have sent it. */
static void
append_json_text(StringInfo buf, const JsonDoc *doc, JsonRef ref)
{
	JsonNode   *n = node(doc, ref);

	check_stack_depth();
	switch ((JsonKind) n->kind)
	{
		case JSON_NULL:
			appendStringInfoString(buf, "null");
			break;
		case JSON_FALSE:
			appendStringInfoString(buf, "false");
			break;
		case JSON_TRUE:
			appendStringInfoString(buf, "true");
			break;
		case JSON_NUMBER:
			appendBinaryStringInfo(buf, node_text(doc, ref), n->len);
			break;
		case JSON_STRING:
			append_json_string(buf, node_text(doc, ref), n->len);
			break;
		case JSON_ARRAY:
			appendStringInfoCharMacro(buf, '[');
			for (JsonRef e = ref + 1; e < n->next; e = node(doc, e)->next)
			{
				if (e > ref + 1)
					appendStringInfoCharMacro(buf, ',');
				append_json_text(buf, doc, e);
			}
			appendStringInfoCharMacro(buf, ']');
			break;
		case JSON_OBJECT:
			appendStringInfoCharMacro(buf, '{');
			for (JsonRef k = ref + 1; k < n->next; k = node(doc, k + 1)->next)
			{
				if (k > ref + 1)
					appendStringInfoCharMacro(buf, ',');
				append_json_string(buf, node_text(doc, k), node(doc, k)->len);
				appendStringInfoCharMacro(buf, ':');
				append_json_text(buf, doc, k + 1);
			}
			appendStringInfoCharMacro(buf, '}');
			break;
	}
}

/* A value as compact JSON text, for text columns and messages. */
static char *
json_text(const JsonDoc *doc, JsonRef ref)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_json_text(&buf, doc, ref);
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
	JsonDoc		doc;
	JsonError	jerr;
	char	   *message = NULL;
	char	   *error_id = NULL;

	if (res->status >= 200 && res->status < 300)
		return;

	if (res->body != NULL &&
		json_parse(&doc, res->body, res->body_len, &jerr) &&
		pg_verify_mbstr(PG_UTF8, res->body, (int) res->body_len, true))
	{
		JsonRef		err = object_get(&doc, 0, "error");
		const char *m = object_get_string(&doc, err, "message");
		const char *id = object_get_string(&doc, err, "id");

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

static int64 count_of(const JsonDoc *doc, JsonRef v, const char *what,
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

static void
raise_not_json(const DalpHttpResult *res, const char *display_path,
			   const JsonError *jerr)
{
	bool		html = res->content_type &&
		strstr(res->content_type, "json") == NULL;

	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("DALP response for GET %s is not valid JSON", display_path),
			 html
			 ? errdetail("The response has Content-Type \"%s\".",
						 dalp_display_text(res->content_type))
			 : res->body_len == 0
			 ? errdetail("The response is empty.")
			 : jerr == NULL
			 ? errdetail("The response is not valid UTF-8.")
			 : jerr->why == NULL
			 ? errdetail("The response ends in the middle of a JSON value after %zu bytes.",
						 res->body_len)
			 : errdetail("The response has %s at byte %zu.",
						 jerr->why, jerr->offset),
			 errhint("A proxy or gateway may have answered instead of DALP; check base_url.")));
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
	JsonDoc    *doc = palloc(sizeof(JsonDoc));
	JsonError	jerr;
	JsonRef		data;
	JsonRef		v;
	JsonRef    *items;

	memset(page, 0, sizeof(*page));
	page->total = -1;
	page->display_path = display_path;

	if (!json_parse(doc, res->body ? res->body : "", res->body_len, &jerr))
		raise_not_json(res, display_path, &jerr);
	/* once per page, so that every string taken from it is valid text */
	if (!pg_verify_mbstr(PG_UTF8, res->body, (int) res->body_len, true))
		raise_not_json(res, display_path, NULL);
	page->root = doc;

	data = object_get(doc, 0, "data");
	if (data == JSON_NONE)
		raise_bad_shape(page, "the body has no \"data\" member");

	if (single)
	{
		if (node(doc, data)->kind == JSON_NULL)
			return;
		if (node(doc, data)->kind != JSON_OBJECT)
			raise_bad_shape(page, "\"data\" is not an object");
		if (resdef->rows_field == NULL)
		{
			items = palloc(sizeof(JsonRef));
			items[0] = data;
			page->items = items;
			page->nitems = 1;
			return;
		}
		data = object_get(doc, data, resdef->rows_field);
		if (data == JSON_NONE || node(doc, data)->kind == JSON_NULL)
			return;
	}
	if (node(doc, data)->kind != JSON_ARRAY)
		raise_bad_shape(page, single ? "the rows field is not an array"
						: "\"data\" is not an array");

	/* the items' nodes, so that item i is found without walking to it */
	page->nitems = (int) node(doc, data)->len;
	items = palloc(sizeof(JsonRef) * Max(page->nitems, 1));
	v = data + 1;
	for (int i = 0; i < page->nitems; i++)
	{
		items[i] = v;
		v = node(doc, v)->next;
	}
	page->items = items;

	v = object_get(doc, object_get(doc, 0, "meta"), "total");
	if (v != JSON_NONE && node(doc, v)->kind != JSON_NULL)
		page->total = count_of(doc, v, "meta.total", display_path);
}

/*
 * Forget the page.  Its memory belongs to the context it was parsed in,
 * which may already be gone: it is never freed here.
 */
void
dalp_page_release(DalpPage *page)
{
	page->root = NULL;
	page->items = NULL;
	page->nitems = 0;
}

static inline JsonRef
page_item(const DalpPage *page, int index)
{
	Assert(index >= 0 && index < page->nitems);
	return ((JsonRef *) page->items)[index];
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
static JsonRef
follow_path(const JsonDoc *doc, JsonRef ref, List *segments)
{
	ListCell   *lc;

	foreach(lc, segments)
	{
		const char *seg = strVal(lfirst(lc));
		JsonRef		next = JSON_NONE;

		if (ref == JSON_NONE)
			return JSON_NONE;
		switch ((JsonKind) node(doc, ref)->kind)
		{
			case JSON_OBJECT:
				next = object_get(doc, ref, seg);
				break;
			case JSON_ARRAY:
				if (is_array_index(seg))
				{
					unsigned long idx = strtoul(seg, NULL, 10);

					next = array_get(doc, ref, idx);
					break;
				}
				for (JsonRef e = ref + 1; e < node(doc, ref)->next && next == JSON_NONE;
					 e = node(doc, e)->next)
				{
					const char *name = object_get_string(doc, e, "name");

					if (name && strcmp(name, seg) == 0)
						next = object_get(doc, e, "value");
				}
				break;
			default:
				return JSON_NONE;
		}
		ref = next;
	}
	return ref;
}

static JsonRef
resolve_binding(const JsonDoc *doc, JsonRef item, DalpColumnBinding *b)
{
	ListCell   *lc;

	foreach(lc, b->paths)
	{
		JsonRef		v = follow_path(doc, item, (List *) lfirst(lc));

		if (v != JSON_NONE && node(doc, v)->kind != JSON_NULL)
			return v;
	}
	return JSON_NONE;
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

/* text cannot hold a NUL character */
static void
reject_nul(const JsonDoc *doc, JsonRef v)
{
	if (node(doc, v)->flags & JSON_FLAG_NUL)
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
scalar_text(const JsonDoc *doc, JsonRef v)
{
	JsonNode   *n = node(doc, v);

	switch ((JsonKind) n->kind)
	{
		case JSON_STRING:
			reject_nul(doc, v);
			return server_string(node_text(doc, v), n->len);
		case JSON_NUMBER:
			return pnstrdup(node_text(doc, v), n->len);
		case JSON_TRUE:
			return (char *) "true";
		case JSON_FALSE:
			return (char *) "false";
		default:
			return NULL;
	}
}

/*
 * A count the API sent: a number, or a string holding one, checked by
 * dalp_api_count.
 */
static int64
count_of(const JsonDoc *doc, JsonRef v, const char *what,
		 const char *display_path)
{
	JsonKind	kind = (JsonKind) node(doc, v)->kind;

	return dalp_api_count((kind == JSON_NUMBER || kind == JSON_STRING)
						  ? scalar_text(doc, v) : NULL,
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

static void
jsonb_string(JsonbValue *out, const JsonDoc *doc, JsonRef ref)
{
	JsonNode   *n = node(doc, ref);

	reject_nul(doc, ref);
	if (n->len > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("string too long to represent as jsonb string")));
	out->type = jbvString;
	out->val.string.val = server_string(node_text(doc, ref), n->len);
	out->val.string.len = (out->val.string.val == node_text(doc, ref))
		? (int) n->len : (int) strlen(out->val.string.val);
}

/*
 * A value as an in-memory jsonb tree, straight from the tape: no JSON text
 * is printed and parsed again.  Strings point into the page's text, which
 * outlives the conversion to jsonb.
 */
static void
jsonb_value(JsonbValue *out, const JsonDoc *doc, JsonRef ref)
{
	JsonNode   *n = node(doc, ref);
	int			i = 0;

	check_stack_depth();
	switch ((JsonKind) n->kind)
	{
		case JSON_OBJECT:
			out->type = jbvObject;
			out->val.object.pairs = palloc(sizeof(JsonbPair) * Max(n->len, 1));
			for (JsonRef k = ref + 1; k < n->next; k = node(doc, k + 1)->next, i++)
			{
				JsonbPair  *pair = &out->val.object.pairs[i];

				jsonb_string(&pair->key, doc, k);
				jsonb_value(&pair->value, doc, k + 1);
				pair->order = i;
			}
			out->val.object.nPairs = i;
			jsonb_sort_pairs(out);
			break;
		case JSON_ARRAY:
			out->type = jbvArray;
			out->val.array.rawScalar = false;
			out->val.array.elems = palloc(sizeof(JsonbValue) * Max(n->len, 1));
			for (JsonRef e = ref + 1; e < n->next; e = node(doc, e)->next, i++)
				jsonb_value(&out->val.array.elems[i], doc, e);
			out->val.array.nElems = i;
			break;
		case JSON_NULL:
			out->type = jbvNull;
			break;
		case JSON_FALSE:
		case JSON_TRUE:
			out->type = jbvBool;
			out->val.boolean = (n->kind == JSON_TRUE);
			break;
		case JSON_NUMBER:
			out->type = jbvNumeric;
			out->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																   CStringGetDatum(pnstrdup(node_text(doc, ref), n->len)),
																   ObjectIdGetDatum(InvalidOid),
																   Int32GetDatum(-1)));
			break;
		case JSON_STRING:
			jsonb_string(out, doc, ref);
			break;
	}
}

static Datum
jsonb_from_node(const JsonDoc *doc, JsonRef ref)
{
	JsonbValue	v;

	jsonb_value(&v, doc, ref);
	return JsonbPGetDatum(JsonbValueToJsonb(&v));
}

/* event values [{name, value}] → {"name": "value", ...} */
static Datum
named_values_to_jsonb(const JsonDoc *doc, JsonRef v)
{
	JsonbValue	object;
	int			n = 0;

	if (node(doc, v)->kind != JSON_ARRAY)
		return jsonb_from_node(doc, v);
	object.type = jbvObject;
	object.val.object.pairs = palloc(sizeof(JsonbPair) * Max(node(doc, v)->len, 1));
	for (JsonRef e = v + 1; e < node(doc, v)->next; e = node(doc, e)->next)
	{
		JsonRef		name = object_get(doc, e, "name");
		JsonRef		value = object_get(doc, e, "value");
		JsonbPair  *pair = &object.val.object.pairs[n];

		if (name == JSON_NONE || node(doc, name)->kind != JSON_STRING ||
			value == JSON_NONE)
			continue;
		jsonb_string(&pair->key, doc, name);
		jsonb_value(&pair->value, doc, value);
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
array_literal(const JsonDoc *doc, JsonRef v, DalpColumnBinding *b,
			  ConversionContext *cc)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoCharMacro(&buf, '{');
	for (JsonRef e = v + 1; e < node(doc, v)->next; e = node(doc, e)->next)
	{
		const char *text = NULL;

		if (e > v + 1)
			appendStringInfoCharMacro(&buf, b->elemdelim);
		if (node(doc, e)->kind == JSON_NULL)
		{
			appendStringInfoString(&buf, "NULL");
			continue;
		}
		if (!b->elem_json)
			text = scalar_text(doc, e);
		if (text == NULL)
			text = json_text(doc, e);
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
node_datum(const JsonDoc *doc, JsonRef v, DalpColumnBinding *b,
		   ConversionContext *cc)
{
	JsonNode   *n = node(doc, v);
	char	   *text;

	switch (b->conv)
	{
		case DALP_CONV_JSONB:
			return jsonb_from_node(doc, v);
		case DALP_CONV_JSON_TEXT:
			return text_datum(b, json_text(doc, v), cc);
		case DALP_CONV_ARRAY:
			cc->value = json_text(doc, v);
			if (n->kind != JSON_ARRAY)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
						 errmsg("expected a JSON array for column \"%s\"",
								b->colname)));
			text = array_literal(doc, v, b, cc);
			cc->value = json_text(doc, v);
			return dalp_input_call(&b->infunc, text, b->typioparam,
								   b->typmod);
		case DALP_CONV_TEXT:
			if (n->kind == JSON_STRING)
			{
				reject_nul(doc, v);
				text = server_string(node_text(doc, v), n->len);
				return PointerGetDatum(cstring_to_text_with_len(text,
																text == node_text(doc, v)
																? (int) n->len : (int) strlen(text)));
			}
			break;
		case DALP_CONV_TIMESTAMPTZ:
			{
				TimestampTz ts;

				if (n->kind == JSON_STRING &&
					fast_timestamptz(node_text(doc, v), n->len, &ts))
					return TimestampTzGetDatum(ts);
			}
			break;
		case DALP_CONV_INPUT:
			break;
	}
	/* scalars convert from their text, arrays and objects from their JSON */
	text = scalar_text(doc, v);
	if (text == NULL)
		text = json_text(doc, v);
	return text_datum(b, text, cc);
}

/*
 * Event values, folded into one object (named_values_to_jsonb), as a
 * Datum of the column's type: other types than jsonb read its text.
 */
static Datum
named_values_datum(const JsonDoc *doc, JsonRef v, DalpColumnBinding *b,
				   ConversionContext *cc)
{
	Jsonb	   *folded;

	if (node(doc, v)->kind != JSON_ARRAY)
		return node_datum(doc, v, b, cc);
	folded = DatumGetJsonbP(named_values_to_jsonb(doc, v));
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
	const JsonDoc *doc = (const JsonDoc *) page->root;
	JsonRef		list;
	char	   *what = psprintf("count in meta.facets.%s", field);

	*counts = NIL;
	list = object_get(doc, object_get(doc, object_get(doc, 0, "meta"), "facets"),
					  field);
	if (list == JSON_NONE || node(doc, list)->kind != JSON_ARRAY)
		return false;
	for (JsonRef e = list + 1; e < node(doc, list)->next; e = node(doc, e)->next)
	{
		JsonRef		value = object_get(doc, e, "value");
		JsonRef		count = object_get(doc, e, "count");
		DalpFacetCount *fc = palloc(sizeof(DalpFacetCount));

		if (value == JSON_NONE || node(doc, value)->kind != JSON_STRING ||
			count == JSON_NONE)
			raise_bad_shape(page, "a facet entry lacks \"value\" or \"count\"");
		reject_nul(doc, value);
		fc->value = pstrdup(server_string(node_text(doc, value),
										  node(doc, value)->len));
		fc->count = count_of(doc, count, what, page->display_path);
		*counts = lappend(*counts, fc);
	}
	return true;
}

/* The item's dedupe key (a dotted path), or NULL. */
const char *
dalp_page_item_id(DalpPage *page, int index, List *id_path)
{
	const JsonDoc *doc = (const JsonDoc *) page->root;
	JsonRef		v = follow_path(doc, page_item(page, index), id_path);

	if (v == JSON_NONE || node(doc, v)->kind != JSON_STRING ||
		(node(doc, v)->flags & JSON_FLAG_NUL))
		return NULL;
	return node_text(doc, v);
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
	const JsonDoc *doc = (const JsonDoc *) page->root;
	JsonRef		item = page_item(page, index);
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
		JsonRef		v;

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
				values[att] = node_datum(doc, item, b, &cc);
				nulls[att] = false;
				break;
			case DALP_VALUE_NAMED_VALUES:
				v = resolve_binding(doc, item, b);
				if (v != JSON_NONE)
				{
					values[att] = named_values_datum(doc, v, b, &cc);
					nulls[att] = false;
				}
				break;
			case DALP_VALUE_PATH:
				v = resolve_binding(doc, item, b);
				if (v != JSON_NONE)
				{
					values[att] = node_datum(doc, v, b, &cc);
					nulls[att] = false;
				}
				break;
		}
	}
	error_context_stack = errcallback.previous;
}
