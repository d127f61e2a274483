/*-------------------------------------------------------------------------
 *
 * untrusted.c
 *		  What a DALP server sends, made safe to print and to count with.
 *
 * A server (or whatever answers at base_url) chooses every byte of its
 * answers.  Text of it that reaches a message is capped and has its
 * control characters escaped, so that it can neither forge lines of the
 * server log nor write megabytes per error; counts are range-checked before
 * they are used.  These helpers take C strings and integers, never the
 * JSON parser's types, so that they outlive any choice of parser.  The
 * bytes of a body are kept in malloc'd memory (DalpBytes) while libcurl
 * delivers them, for http.c and json.c alike.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "common/int.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

/* Bytes of server text a message shows before it is cut short. */
#define DALP_DISPLAY_MAX_BYTES	300

/* Escape a code point that some log readers take for a line break. */
static bool
is_unicode_line_break(pg_wchar c)
{
	return c == 0x85 || c == 0x2028 || c == 0x2029;
}

/*
 * Server text as a message may show it: control characters (and bytes that
 * are not valid in the database's encoding) written as escapes, so the text
 * stays on one line, and cut after about DALP_DISPLAY_MAX_BYTES, ending in
 * an ellipsis.  NULL stays NULL.
 */
char *
dalp_display_text(const char *s)
{
	int			encoding = GetDatabaseEncoding();
	StringInfoData buf;
	const char *p;
	size_t		remaining;

	if (s == NULL)
		return NULL;
	initStringInfo(&buf);
	remaining = strlen(s);
	for (p = s; remaining > 0;)
	{
		unsigned char c = (unsigned char) *p;
		int			len;

		if (buf.len >= DALP_DISPLAY_MAX_BYTES)
		{
			appendStringInfoString(&buf, encoding == PG_UTF8 ? "\xE2\x80\xA6" : "...");
			break;
		}
		if (c < 0x20 || c == 0x7F)
		{
			switch (c)
			{
				case '\n':
					appendStringInfoString(&buf, "\\n");
					break;
				case '\r':
					appendStringInfoString(&buf, "\\r");
					break;
				case '\t':
					appendStringInfoString(&buf, "\\t");
					break;
				default:
					appendStringInfo(&buf, "\\x%02X", c);
			}
			p++;
			remaining--;
			continue;
		}
		len = (c < 0x80) ? 1 :
			pg_encoding_verifymbchar(encoding, p,
									 (int) Min(remaining, MAX_MULTIBYTE_CHAR_LEN));
		if (len <= 0)
		{
			appendStringInfo(&buf, "\\x%02X", c);
			p++;
			remaining--;
			continue;
		}
		if (encoding == PG_UTF8 && len > 1 &&
			is_unicode_line_break(utf8_to_unicode((const unsigned char *) p)))
			appendStringInfo(&buf, "\\u%04X", utf8_to_unicode((const unsigned char *) p));
		else
			appendBinaryStringInfo(&buf, p, len);
		p += len;
		remaining -= len;
	}
	return buf.data;
}

/*
 * InputFunctionCall on text a server sent.  An input function's message
 * (and detail) quote the text whole, as in 'invalid input syntax for type
 * integer: "..."', so they are shown as dalp_display_text shows text.
 */
Datum
dalp_input_call(FmgrInfo *flinfo, char *text, Oid typioparam, int32 typmod)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum		result;

	PG_TRY();
	{
		result = InputFunctionCall(flinfo, text, typioparam, typmod);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->message = dalp_display_text(edata->message);
		edata->detail = dalp_display_text(edata->detail);
		ReThrowError(edata);
	}
	PG_END_TRY();
	return result;
}

/*
 * A count the API sent (meta.total, a facet count) from the text of its
 * number: a whole number from 0 to DALP_MAX_API_COUNT, else an ERROR that
 * names the field (what) and the request.
 */
int64
dalp_api_count(const char *text, const char *what, const char *display_path)
{
	const char *p = text ? text : "";
	int64		count = 0;

	if (*p == '\0')
		goto bad;
	for (; *p; p++)
	{
		if (*p < '0' || *p > '9')
			goto bad;
		if (pg_mul_s64_overflow(count, 10, &count) ||
			pg_add_s64_overflow(count, *p - '0', &count) ||
			count > DALP_MAX_API_COUNT)
			goto bad;
	}
	return count;

bad:
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("DALP response for GET %s has an invalid %s: %s",
					display_path, what,
					text ? dalp_display_text(text) : "(not a number)"),
			 errdetail("A count must be a whole number from 0 to " INT64_FORMAT ".",
					   DALP_MAX_API_COUNT),
			 errhint("Check that base_url points at a DALP platform; a proxy may have answered instead.")));
	pg_unreachable();
}

/* a + b, two counts taken from the API; an ERROR naming what on overflow. */
int64
dalp_add_counts(int64 a, int64 b, const char *what)
{
	int64		sum;

	if (pg_add_s64_overflow(a, b, &sum))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the counts the DALP API returned for %s add up to more than " INT64_FORMAT,
						what, PG_INT64_MAX)));
	return sum;
}

PG_FUNCTION_INFO_V1(dalp_fdw_display_text);

/* dalp_fdw.display_text(text): dalp_display_text for the SQL functions. */
Datum
dalp_fdw_display_text(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(dalp_display_text(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}

/*
 * Append n bytes to a DalpBytes.  No palloc, no ERROR: it runs inside
 * libcurl.  The buffer doubles from first_cap bytes, to at most "most" bytes
 * unless the bytes need more, and keeps room for a terminator after them.
 * False, with no_memory set, when malloc fails.
 */
bool
dalp_bytes_append(DalpBytes *buf, const char *data, size_t n,
				  size_t first_cap, size_t most)
{
	size_t		need = buf->len + n + 1;

	if (need > buf->cap)
	{
		size_t		cap = Max(buf->cap, first_cap);
		char	   *grown;

		while (cap < need)
			cap *= 2;
		cap = Max(Min(cap, most), need);
		grown = realloc(buf->data, cap);
		if (grown == NULL)
		{
			buf->no_memory = true;
			return false;
		}
		buf->data = grown;
		buf->cap = cap;
	}
	memcpy(buf->data + buf->len, data, n);
	buf->len += n;
	return true;
}
