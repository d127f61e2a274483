/*-------------------------------------------------------------------------
 *
 * json.c
 *		  DALP responses parsed by json-c as their bytes arrive: within a
 *		  memory bound, exactly, and with json-c's memory tied to a
 *		  PostgreSQL memory context.
 *
 * http.c hands every byte of a 2xx body to the request's DalpJsonParser as
 * libcurl receives it.  A parser of a single GET is active: it parses the
 * bytes as they arrive.  A scan's parsers hold their bytes: the page the
 * scan waits for next parses what has arrived each time the wait wakes up
 * (dalp_json_parser_catch_up), outside libcurl, so that the pages that end
 * meanwhile are seen, and their successors sent, before it is parsed; the
 * pages behind it wait for their turn (dalp_json_parser_activate), so that
 * a page's tree is built just before its rows are read, while it is in the
 * CPU's caches, and at most two trees exist at a time.  json-c parses
 * (JSON_TOKENER_STRICT).  Before json-c sees a byte, a pre-scan over the raw
 * bytes does what json-c does not:
 *
 * - It bounds the cost.  json-c allocates every value on its own: about 800
 *   bytes for an empty object, 160 for an array, 110 for a number, so a
 *   small body can take a thousand times its size (and a gzip'd one a
 *   million times its size on the wire).  The pre-scan counts containers,
 *   members and values, and a response whose tree would take more than
 *   DALP_JSON_COST_FACTOR x max_response_bytes is refused before json-c
 *   allocates it.  json-c's depth limit bounds the nesting.
 * - It keeps big integers exact.  json-c parses an integer beyond 64 bits
 *   as the nearest bound and reports success.  An integer literal of
 *   DALP_JSON_EXACT_DIGITS digits or more goes to json-c with "e0"
 *   appended: json-c parses it as a double and keeps its text, which
 *   dalp_json_number_text returns without the "e0".
 * - It refuses what json-c accepts but JSON does not: NaN and Infinity, raw
 *   control characters in strings, \u escapes of unpaired surrogates (which
 *   json-c turns into U+FFFD) and member names holding \u0000 (which json-c
 *   cuts short).  It checks UTF-8 by PostgreSQL's rules (pg_utf8_islegal)
 *   where a string holds a byte of 0x80 or more (nothing else may), a
 *   character cut between two chunks held back until it is whole.
 *   JSON_TOKENER_VALIDATE_UTF8 is not used: it lets overlong forms and
 *   encoded surrogates through, refuses a character split between two
 *   calls, and costs a third of json-c's parsing time.
 *
 * The pre-scan tracks strings and escapes only as far as these checks need;
 * the grammar is json-c's.  It skips a string's plain text sixteen bytes at
 * a time: most of a page is strings, and json-c reads them again anyway.
 *
 * json-c's memory (tokener and tree) is malloc'd.  It is freed by the reset
 * callback of the parser's own memory context, so an ERROR, a cancel or a
 * scan that stops early frees it as surely as a finished page does.  Code
 * that runs inside libcurl (the sink) never raises an ERROR: it records why
 * it refused the body, and dalp_json_parser_finish raises it afterwards.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_json.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/memutils.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/*
 * What json-c 0.16 allocates, malloc's overhead included (measured on
 * x86-64, rounded up): an object with its hash table, an array, a member's
 * hash entry and name, a number or string or literal; and every byte of
 * the body at most once more, for the strings.
 */
#define COST_OBJECT		800
#define COST_ARRAY		160
#define COST_MEMBER		128
#define COST_VALUE		112
#define COST_LETTER		16		/* of true, false and null */

/* json-c may take this many times max_response_bytes for one response */
#define DALP_JSON_COST_FACTOR	4

/* an integer literal this long may not fit json-c's 64-bit integers */
#define DALP_JSON_EXACT_DIGITS	19

struct DalpJsonParser
{
	MemoryContext cxt;			/* holds this struct; its reset callback
								 * frees json-c's memory */
	MemoryContextCallback cb;
	DalpBodySink sink;
	int64		budget;			/* json-c bytes one response may take */
	bool		active;			/* parse bytes as they arrive; else hold
								 * them until dalp_json_parser_activate */
	json_tokener *tok;			/* NULL until the first byte */
	json_object *root;			/* the document, once complete */

	DalpBytes	held;			/* bytes received while not active */
	size_t		scanned;		/* body bytes through the pre-scan */
	int64		cost;			/* json-c bytes of what was scanned */
	const char *refusal;		/* why the body was refused, or NULL */
	size_t		refused_at;		/* ... at this byte */
	bool		too_costly;		/* ... because of the budget */
	char		carry[4];		/* a character cut at a chunk's end */
	int			ncarry;

	/* the pre-scan */
	int			depth;
	bool		ended;			/* the top-level value closed: only
								 * whitespace follows */
	bool		in_string;
	bool		escaped;		/* after a backslash in a string */
	int			hex_left;		/* hex digits of a \u escape to come */
	uint32		code;			/* the \u escape's code unit */
	bool		want_low;		/* a high surrogate was escaped: a low one
								 * must follow at once */
	bool		string_nul;		/* the current string escapes \u0000 */
	bool		name_nul;		/* the last string did: it must not be a
								 * member name */
	bool		in_number;
	bool		integral;		/* no fraction or exponent so far */
	int			digits;
};

/*
 * Bytes a string's text may hold that the pre-scan need not look at: printable
 * ASCII but '"' and '\\'.  Control characters are refused, and a byte of
 * 0x80 or more starts a character whose UTF-8 is checked.
 */
static bool string_plain[256];
static bool string_plain_ready = false;

/*
 * The first byte of s[i..n) that string_plain does not allow, or n.  Sixteen
 * bytes at a time where SSE2 is there (every x86-64 CPU): a signed compare
 * below 0x20 finds control characters and the bytes of 0x80 or more at once.
 */
static inline size_t
skip_plain(const char *s, size_t i, size_t n)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i backslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20);

	for (; n - i >= 16; i += 16)
	{
		__m128i		v = _mm_loadu_si128((const __m128i *) (s + i));
		__m128i		special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
														_mm_cmpeq_epi8(v, backslash)),
										   _mm_cmplt_epi8(v, space));
		uint32		mask = (uint32) _mm_movemask_epi8(special);

		if (mask != 0)
			return i + pg_rightmost_one_pos32(mask);
	}
#endif
	while (i < n && string_plain[(unsigned char) s[i]])
		i++;
	return i;
}

static void
release_json(DalpJsonParser *p)
{
	if (p->tok != NULL)
		json_tokener_free(p->tok);
	p->tok = NULL;
	json_object_put(p->root);
	p->root = NULL;
	free(p->held.data);
	p->held.data = NULL;
}

static void
parser_reset_callback(void *arg)
{
	release_json((DalpJsonParser *) arg);
}

/* A new attempt of the request: forget what an earlier one sent. */
static void
parser_begin(void *arg)
{
	DalpJsonParser *p = (DalpJsonParser *) arg;

	release_json(p);
	memset(&p->held, 0,
		   sizeof(DalpJsonParser) - offsetof(DalpJsonParser, held));
}

static bool
refuse(DalpJsonParser *p, const char *why, size_t at)
{
	p->refusal = why;
	p->refused_at = at;
	return false;
}

/* Give n bytes to json-c; at is the body offset of s. */
static bool
feed(DalpJsonParser *p, const char *s, size_t n, size_t at)
{
	json_object *obj;
	enum json_tokener_error err;

	if (n == 0)
		return true;
	if (p->cost > p->budget)
	{
		p->too_costly = true;
		return refuse(p, "more json-c memory than allowed", at);
	}
	if (p->tok == NULL)
	{
		p->tok = json_tokener_new_ex(DALP_JSON_MAX_DEPTH);
		if (p->tok == NULL)
			return refuse(p, "no memory left for json-c", at);
		/* UTF-8 is checked before, better than JSON_TOKENER_VALIDATE_UTF8 */
		json_tokener_set_flags(p->tok, JSON_TOKENER_STRICT);
	}
	obj = json_tokener_parse_ex(p->tok, s, (int) n);
	err = json_tokener_get_error(p->tok);
	if (err == json_tokener_continue)
		return true;
	if (err == json_tokener_success)
	{
		p->root = obj;
		return true;
	}
	if (err == json_tokener_error_depth)
		return refuse(p, "containers nested too deep", at);
	return refuse(p, json_tokener_error_desc(err),
				  at + json_tokener_get_parse_end(p->tok));
}

/*
 * A byte of a string that is not plain text (see string_plain) or follows
 * a backslash; process() handles the closing quote.
 */
static bool
string_byte(DalpJsonParser *p, unsigned char c, size_t at)
{
	static const char lone[] = "a \\u escape of an unpaired surrogate";

	if (p->escaped)
	{
		if (p->hex_left > 0)
		{
			int			d = dalp_hex_value((char) c);

			if (d < 0)
				return refuse(p, "an invalid \\u escape", at);
			p->code = (p->code << 4) | d;
			if (--p->hex_left > 0)
				return true;
			p->escaped = false;
			if (p->want_low)
			{
				if (p->code < 0xDC00 || p->code > 0xDFFF)
					return refuse(p, lone, at);
				p->want_low = false;
			}
			else if (p->code >= 0xD800 && p->code <= 0xDBFF)
				p->want_low = true;
			else if (p->code >= 0xDC00 && p->code <= 0xDFFF)
				return refuse(p, lone, at);
			else if (p->code == 0)
				p->string_nul = true;
			return true;
		}
		if (c == 'u')
		{
			p->hex_left = 4;
			p->code = 0;
			return true;
		}
		if (p->want_low)
			return refuse(p, lone, at);
		if (c < 0x20)
			return refuse(p, "a control character inside a string", at);
		p->escaped = false;		/* json-c checks the escape */
		return true;
	}
	if (c == '\\')
	{
		p->escaped = true;
		return true;
	}
	if (p->want_low)
		return refuse(p, lone, at);
	if (c < 0x20)
		return refuse(p, "a control character inside a string", at);
	return true;
}

/* After the top-level value: s[..n) at body offset at is whitespace only. */
static bool
only_whitespace(DalpJsonParser *p, const char *s, size_t n, size_t at)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return refuse(p, "text after the end of the JSON value", at + i);
	return true;
}

/*
 * Whether a byte of 0x80 or more at s[i] starts a valid UTF-8 character
 * within s[..n); *len is set to its length.
 */
static inline bool
utf8_char(const char *s, size_t i, size_t n, int *len)
{
	*len = pg_utf_mblen((const unsigned char *) s + i);
	return (size_t) *len <= n - i &&
		pg_utf8_islegal((const unsigned char *) s + i, *len);
}

/*
 * Pre-scan n bytes of whole characters at body offset p->scanned and give
 * them to json-c, with "e0" after every long integer literal and nothing
 * after the top-level value.  UTF-8 is checked here too: only a string may
 * hold a byte of 0x80 or more.  The state read at every byte is kept in
 * locals, and written back before json-c is fed and at the end.
 */
static bool
process(DalpJsonParser *p, const char *s, size_t n)
{
	static const char not_utf8[] = "bytes that are not valid UTF-8";
	static const char nul_name[] = "a member name holding \\u0000";
	size_t		base = p->scanned;
	size_t		seg = 0;		/* first byte not yet given to json-c */
	size_t		i = 0;
	bool		in_string = p->in_string;
	bool		in_number = p->in_number;
	bool		integral = p->integral;
	int			digits = p->digits;
	int			depth = p->depth;
	bool		name_nul = p->name_nul;
	int64		cost = p->cost;

#define SAVE_STATE() \
	(p->in_string = in_string, p->in_number = in_number, \
	 p->integral = integral, p->digits = digits, p->depth = depth, \
	 p->name_nul = name_nul, p->cost = cost)

	/* every byte may be a string's, once more in the tree */
	cost += n;
	p->scanned += n;

	while (i < n)
	{
		unsigned char c;

		if (in_string)
		{
			int			len = 1;

			if (!p->escaped && !p->want_low)
			{
				i = skip_plain(s, i, n);
				if (i == n)
					break;
				if (s[i] == '"')
				{
					in_string = false;
					name_nul = p->string_nul;
					i++;

					/*
					 * Most strings end in ":" or "," and another string:
					 * those two bytes as the switch below takes them.
					 */
					if (n - i >= 2 && s[i + 1] == '"' &&
						(s[i] == ':' || s[i] == ','))
					{
						if (s[i] == ':')
						{
							if (name_nul)
								return refuse(p, nul_name, base + i);
							cost += COST_MEMBER;
						}
						in_string = true;
						p->string_nul = false;
						name_nul = false;
						cost += COST_VALUE;
						i += 2;
					}
					continue;
				}
			}
			c = (unsigned char) s[i];
			if (c >= 0x80 && !utf8_char(s, i, n, &len))
				return refuse(p, not_utf8, base + i);
			if (!string_byte(p, c, base + i))
				return false;
			i += len;
			continue;
		}
		if (in_number)
		{
			/* the rest of the literal, which json-c checks */
			for (; i < n; i++)
			{
				c = (unsigned char) s[i];
				if (c >= '0' && c <= '9')
					digits++;
				else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')
					integral = false;
				else
					break;
			}
			if (i == n)
				break;
			in_number = false;
			if (integral && digits >= DALP_JSON_EXACT_DIGITS)
			{
				SAVE_STATE();
				if (!feed(p, s + seg, i - seg, base + seg) ||
					!feed(p, "e0", 2, base + i))
					return false;
				seg = i;
			}
		}
		c = (unsigned char) s[i];
		switch (c)
		{
			case ' ':
			case '\t':
			case '\n':
			case '\r':
				i++;
				continue;
			case '"':
				in_string = true;
				p->string_nul = false;
				cost += COST_VALUE;
				break;
			case ',':
				break;
			case ':':
				if (name_nul)
					return refuse(p, nul_name, base + i);
				cost += COST_MEMBER;
				break;
			case '{':
			case '[':
				cost += (c == '{') ? COST_OBJECT : COST_ARRAY;
				depth++;
				break;
			case '}':
			case ']':
				/* json-c checks that the brackets match */
				if (--depth == 0)
				{
					/* the top-level value ends: only whitespace may follow */
					SAVE_STATE();
					if (!feed(p, s + seg, i + 1 - seg, base + seg))
						return false;
					p->ended = true;
					return only_whitespace(p, s + i + 1, n - i - 1, base + i + 1);
				}
				break;
			case '-':
			case '0':
			case '1':
			case '2':
			case '3':
			case '4':
			case '5':
			case '6':
			case '7':
			case '8':
			case '9':
				in_number = true;
				integral = true;
				digits = (c != '-');
				cost += COST_VALUE;
				break;
			default:
				/* true, false, null; never NaN or Infinity */
				if (c < 'a' || c > 'z')
				{
					int			len;

					return refuse(p, c >= 0x80 && !utf8_char(s, i, n, &len) ?
								  not_utf8 : "a character that starts no JSON value",
								  base + i);
				}
				cost += COST_LETTER;
				break;
		}
		/* outside the top-level container (it returned when that closed) */
		if (depth <= 0)
			return refuse(p, "a character that starts no JSON object", base + i);
		if (c != ':')
			name_nul = false;
		i++;
	}
	SAVE_STATE();
	return seg >= n || feed(p, s + seg, n - seg, base + seg);
#undef SAVE_STATE
}

/*
 * Parse the next bytes of the body.  No palloc, no ERROR (the sink runs it
 * inside libcurl).  A character cut at the end of the chunk waits for the
 * rest of it.
 */
static bool
parse_bytes(DalpJsonParser *p, const char *data, size_t len)
{
	size_t		whole;

	if (p->refusal != NULL)
		return false;
	if (p->ended)
	{
		/* json-c has finished */
		p->scanned += len;
		return only_whitespace(p, data, len, p->scanned - len);
	}
	if (p->ncarry > 0)
	{
		int			need = pg_utf_mblen((unsigned char *) p->carry);

		while (p->ncarry < need && len > 0)
		{
			p->carry[p->ncarry++] = *data++;
			len--;
		}
		if (p->ncarry < need)
			return true;
		p->ncarry = 0;
		if (!process(p, p->carry, need))
			return false;
	}

	/* keep back the lead and continuation bytes of a cut character */
	whole = len;
	for (size_t back = 1; back <= 3 && back <= len; back++)
	{
		unsigned char c = (unsigned char) data[len - back];

		if ((c & 0xC0) == 0x80)
			continue;
		if (c >= 0xC0 && pg_utf_mblen(&c) > (int) back)
			whole = len - back;
		break;
	}
	if (!process(p, data, whole))
		return false;
	memcpy(p->carry, data + whole, len - whole);
	p->ncarry = (int) (len - whole);
	return true;
}

/* The sink: bytes as libcurl received them, parsed or held. */
static bool
parser_consume(void *arg, const char *data, size_t len)
{
	DalpJsonParser *p = (DalpJsonParser *) arg;

	if (p->refusal != NULL || p->held.no_memory)
		return false;
	/* held until the parser is activated; http.c caps them */
	if (!p->active)
		return dalp_bytes_append(&p->held, data, len, 65536, SIZE_MAX);
	return parse_bytes(p, data, len);
}

/*
 * A parser for one response of at most max_response_bytes, in a memory
 * context of its own under CurrentMemoryContext.  An active parser parses
 * bytes as they arrive; an inactive one holds them until it is activated.
 */
DalpJsonParser *
dalp_json_parser_create(int64 max_response_bytes, bool active)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "dalp_fdw json-c",
											  ALLOCSET_SMALL_SIZES);
	DalpJsonParser *p = MemoryContextAllocZero(cxt, sizeof(DalpJsonParser));

	if (!string_plain_ready)
	{
		for (int c = 0; c < 256; c++)
			string_plain[c] = (c >= 0x20 && c < 0x80 && c != '"' && c != '\\');
		string_plain_ready = true;
	}
	p->cxt = cxt;
	p->cb.func = parser_reset_callback;
	p->cb.arg = p;
	MemoryContextRegisterResetCallback(cxt, &p->cb);
	p->budget = DALP_JSON_COST_FACTOR * max_response_bytes;
	p->active = active;
	p->sink.begin = parser_begin;
	p->sink.consume = parser_consume;
	p->sink.arg = p;
	return p;
}

DalpBodySink *
dalp_json_parser_sink(DalpJsonParser *parser)
{
	return &parser->sink;
}

/*
 * Parse the bytes held so far, a chunk at a time with a check for
 * interrupts between chunks; the buffer then holds the bytes to come.
 */
void
dalp_json_parser_catch_up(DalpJsonParser *parser)
{
	const size_t chunk = 65536;

	for (size_t at = 0; at < parser->held.len; at += chunk)
	{
		CHECK_FOR_INTERRUPTS();
		if (!parse_bytes(parser, parser->held.data + at,
						 Min(chunk, parser->held.len - at)))
			break;
	}
	parser->held.len = 0;
}

/*
 * Parse the bytes held so far, and from now on the bytes as they arrive:
 * the page's turn has come.
 */
void
dalp_json_parser_activate(DalpJsonParser *parser)
{
	if (parser->active)
		return;
	dalp_json_parser_catch_up(parser);
	parser->active = true;
	free(parser->held.data);
	parser->held.data = NULL;
	parser->held.cap = 0;
}

/* Free the parser and its document now. */
void
dalp_json_parser_free(DalpJsonParser *parser)
{
	MemoryContextDelete(parser->cxt);
}

/*
 * The body does not parse: say why, and where.  A proxy's HTML page is the
 * usual cause.
 */
static void
raise_not_json(const DalpJsonParser *p, const DalpHttpResult *res,
			   const char *display_path)
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
			 : p->refusal == NULL
			 ? errdetail("The response ends in the middle of a JSON value after %zu bytes.",
						 res->body_len)
			 : errdetail("The response has %s at byte %zu.",
						 p->refusal, p->refused_at),
			 errhint("A proxy or gateway may have answered instead of DALP; check base_url.")));
}

/*
 * The parsed document of a 2xx response, after the transfer; an ERROR if
 * the body was refused or ended early.  The document then belongs to
 * CurrentMemoryContext (it is freed with it).
 */
json_object *
dalp_json_parser_finish(DalpJsonParser *parser, const DalpHttpResult *res,
						const char *display_path)
{
	if (parser->too_costly)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("DALP response to GET %s is too large to parse", display_path),
				 errdetail("Parsing its first %zu bytes would take json-c more than %lld bytes of memory, %d times the server's max_response_bytes.",
						   parser->refused_at, (long long) parser->budget,
						   DALP_JSON_COST_FACTOR),
				 errhint("Raise max_response_bytes if the API's pages are this large; a proxy or a broken server may have answered instead.")));
	if (parser->held.no_memory)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not keep the DALP response to GET %s.", display_path)));
	if (parser->refusal != NULL || parser->root == NULL || parser->ncarry > 0)
		raise_not_json(parser, res, display_path);
	MemoryContextSetParent(parser->cxt, CurrentMemoryContext);
	return parser->root;
}

/*
 * A whole body already in memory (an API error's), or NULL when it does
 * not parse.  Its budget is that of a body of 64 kB at least, ample for
 * any error body.  Freed with CurrentMemoryContext.
 */
json_object *
dalp_json_parse_buffer(const char *body, size_t len)
{
	DalpJsonParser *p = dalp_json_parser_create(Max((int64) len, 65536), true);

	if (!parser_consume(p, body, len) || p->ncarry > 0)
		return NULL;
	return p->root;
}

/*
 * The text of a JSON number as the API sent it, palloc'd (json-c prints
 * integers as it read them; a double keeps its text).
 */
char *
dalp_json_number_text(json_object *number)
{
	const char *text;
	size_t		len;

	/* at most DALP_JSON_EXACT_DIGITS - 1 digits: json-c read it exactly */
	if (json_object_get_type(number) == json_type_int)
		return psprintf(INT64_FORMAT, json_object_get_int64(number));
	text = json_object_get_userdata(number);
	if (text == NULL)
		text = json_object_get_string(number);
	len = strlen(text);
	/* "e0" appended to a long integer by process(): not the API's */
	if (len >= DALP_JSON_EXACT_DIGITS + 2 &&
		text[len - 2] == 'e' && text[len - 1] == '0' &&
		strspn(text + (text[0] == '-'), "0123456789") ==
		len - 2 - (text[0] == '-'))
		len -= 2;
	return pnstrdup(text, len);
}
