/*-------------------------------------------------------------------------
 *
 * request.c
 *		  Building DALP request paths and query strings.
 *
 * Query parameters use bracket notation (filter[eventName][eq]=...), sent
 * percent-encoded; EXPLAIN and error messages show them decoded so that a
 * human can read them.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "utils/builtins.h"

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
