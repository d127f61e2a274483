/*-------------------------------------------------------------------------
 *
 * options.c
 *		  Option validation and connection settings.
 *
 * Every option is checked when it is set (CREATE/ALTER), not when a query
 * first uses it, so that a typo never surfaces as a failing report at night.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stddef.h>

#include "access/reloptions.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "catalog/pg_attribute.h"
#include "commands/defrem.h"
#include "funcapi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

typedef enum DalpOptionKind
{
	DALP_OPT_URL,
	DALP_OPT_INT,
	DALP_OPT_BYTES,				/* an int stored in an int64 */
	DALP_OPT_BOOL,
	DALP_OPT_COST,
	DALP_OPT_TEXT,
	DALP_OPT_SECRET,
	DALP_OPT_RESOURCE,
	DALP_OPT_ADDRESS,
	DALP_OPT_CHOICE				/* one of "choices", stored as its index */
} DalpOptionKind;

static const char *const kind_names[] = {
	[DALP_OPT_URL] = "url",
	[DALP_OPT_INT] = "integer",
	[DALP_OPT_BYTES] = "bytes",
	[DALP_OPT_BOOL] = "boolean",
	[DALP_OPT_COST] = "cost",
	[DALP_OPT_TEXT] = "text",
	[DALP_OPT_SECRET] = "secret",
	[DALP_OPT_RESOURCE] = "resource",
	[DALP_OPT_ADDRESS] = "address",
	[DALP_OPT_CHOICE] = "choice",
};

/* The catalogs an option is accepted in, as bits of DalpOption.where. */
#define IN_SERVER	0x01
#define IN_TABLE	0x02		/* with IN_SERVER: overrides the server's */
#define IN_MAPPING	0x04
#define IN_COLUMN	0x08

/* Who may set an option; every rule also lets a superuser. */
typedef enum DalpSuperuserRule
{
	SU_ANYONE,
	SU_ALWAYS,					/* superuser only */
	SU_TO_FALSE,				/* a boolean: only a superuser turns it off */
	SU_PLAIN_HTTP				/* a URL: only a superuser sends http other
								 * than to the loopback */
} DalpSuperuserRule;

static const char *const superuser_rule_names[] = {
	[SU_ANYONE] = NULL,
	[SU_ALWAYS] = "always",
	[SU_TO_FALSE] = "to false",
	[SU_PLAIN_HTTP] = "plain http to a host other than the loopback",
};

/*
 * One option, everything about it in one row: its value rules, the default
 * a connection gets without it (text, read like a given value), where it is
 * accepted, who may set it and the DalpConnConfig field it lands in.  A new
 * server option is a row here and a field in DalpConnConfig (and a line in
 * README's option list, which test/t_readme.sh compares with these rows).
 */
typedef struct DalpOption
{
	const char *name;
	DalpOptionKind kind;
	int			where;			/* IN_* */
	const char *default_value;	/* NULL: none (the field stays NULL) */
	int			min;			/* DALP_OPT_INT/BYTES bounds */
	int			max;
	const char *choices;		/* DALP_OPT_CHOICE: "a, b", in index order */
	DalpSuperuserRule superuser;
	int			conf_offset;	/* field of DalpConnConfig, or -1 */
} DalpOption;

#define CONF(field) .conf_offset = offsetof(DalpConnConfig, field)
#define NO_CONF .conf_offset = -1
#define RANGE(lo, hi) .min = (lo), .max = (hi)

/*
 * In the order the hints list them: resource and token_address come before
 * the server options a foreign table overrides.
 */
static const DalpOption valid_options[] = {
	{.name = "base_url", .kind = DALP_OPT_URL, .where = IN_SERVER,
	.superuser = SU_PLAIN_HTTP, CONF(base_url)},
	{.name = "page_size", .kind = DALP_OPT_INT, .where = IN_SERVER,
		.default_value = CppAsString2(DALP_MAX_PAGE_SIZE),
	RANGE(1, DALP_MAX_PAGE_SIZE), CONF(page_size)},
	{.name = "concurrency", .kind = DALP_OPT_INT, .where = IN_SERVER,
	.default_value = "4", RANGE(1, 32), CONF(concurrency)},
	{.name = "connect_timeout_ms", .kind = DALP_OPT_INT, .where = IN_SERVER,
	.default_value = "5000", RANGE(1, INT_MAX), CONF(connect_timeout_ms)},
	{.name = "timeout_ms", .kind = DALP_OPT_INT, .where = IN_SERVER,
	.default_value = "30000", RANGE(1, INT_MAX), CONF(timeout_ms)},
	{.name = "max_retries", .kind = DALP_OPT_INT, .where = IN_SERVER,
	.default_value = "5", RANGE(0, 100), CONF(max_retries)},
	{.name = "retry_base_ms", .kind = DALP_OPT_INT, .where = IN_SERVER,
	.default_value = "200", RANGE(0, 600000), CONF(retry_base_ms)},
	{.name = "retry_after_max_ms", .kind = DALP_OPT_INT, .where = IN_SERVER,
	.default_value = "60000", RANGE(0, 3600000), CONF(retry_after_max_ms)},
	{.name = "rate_limit_per_minute", .kind = DALP_OPT_INT, .where = IN_SERVER,
	.default_value = "10000", RANGE(1, 6000000), CONF(rate_limit_per_minute)},
	/* a 200-event page is about 150 kB: room for pages 25 times as large */
	{.name = "max_response_bytes", .kind = DALP_OPT_BYTES, .where = IN_SERVER,
	.default_value = "4194304", RANGE(1024, INT_MAX), CONF(max_response_bytes)},
	{.name = "verify_tls", .kind = DALP_OPT_BOOL, .where = IN_SERVER,
	.default_value = "true", .superuser = SU_TO_FALSE, CONF(verify_tls)},
	{.name = "compression", .kind = DALP_OPT_BOOL, .where = IN_SERVER,
	.default_value = "true", CONF(compression)},
	/* no default: the system's certificate store */
	{.name = "ca_file", .kind = DALP_OPT_TEXT, .where = IN_SERVER,
	.superuser = SU_ALWAYS, CONF(ca_file)},
	{.name = "fdw_startup_cost", .kind = DALP_OPT_COST, .where = IN_SERVER,
	.default_value = "100", CONF(fdw_startup_cost)},
	{.name = "fdw_request_cost", .kind = DALP_OPT_COST, .where = IN_SERVER,
	.default_value = "50", CONF(fdw_request_cost)},
	{.name = "fdw_tuple_cost", .kind = DALP_OPT_COST, .where = IN_SERVER,
	.default_value = "0.01", CONF(fdw_tuple_cost)},
	{.name = "resource", .kind = DALP_OPT_RESOURCE, .where = IN_TABLE, NO_CONF},
	{.name = "token_address", .kind = DALP_OPT_ADDRESS, .where = IN_TABLE,
	NO_CONF},
	{.name = "use_remote_estimate", .kind = DALP_OPT_BOOL,
		.where = IN_SERVER | IN_TABLE, .default_value = "false",
	CONF(use_remote_estimate)},
	{.name = "ledger_rereads", .kind = DALP_OPT_INT,
		.where = IN_SERVER | IN_TABLE, .default_value = "3", RANGE(0, 10),
	CONF(ledger_rereads)},
	/* the choices in the order of DalpOnLedgerChange */
	{.name = "on_ledger_change", .kind = DALP_OPT_CHOICE,
		.where = IN_SERVER | IN_TABLE, .default_value = "error",
	.choices = "error, warning", CONF(on_ledger_change)},
	{.name = "api_key", .kind = DALP_OPT_SECRET, .where = IN_MAPPING,
	CONF(api_key)},
	{.name = "json_path", .kind = DALP_OPT_TEXT, .where = IN_COLUMN, NO_CONF},
};

/* The IN_* bit of a catalog, or 0 (the foreign-data wrapper: none). */
static int
context_bit(Oid context)
{
	switch (context)
	{
		case ForeignServerRelationId:
			return IN_SERVER;
		case UserMappingRelationId:
			return IN_MAPPING;
		case ForeignTableRelationId:
			return IN_TABLE;
		case AttributeRelationId:
			return IN_COLUMN;
		default:
			return 0;
	}
}

static const char *
context_name(Oid context)
{
	switch (context)
	{
		case ForeignServerRelationId:
			return "a foreign server";
		case UserMappingRelationId:
			return "a user mapping";
		case ForeignTableRelationId:
			return "a foreign table";
		case AttributeRelationId:
			return "a foreign table column";
		default:
			return "the foreign-data wrapper";
	}
}

static const DalpOption *
find_option(const char *name, int where)
{
	for (int i = 0; i < lengthof(valid_options); i++)
		if ((valid_options[i].where & where) != 0 &&
			strcmp(valid_options[i].name, name) == 0)
			return &valid_options[i];
	return NULL;
}

static char *
valid_option_names(Oid context)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(valid_options); i++)
		if (valid_options[i].where & context_bit(context))
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "",
							 valid_options[i].name);
	return buf.data;
}

/*
 * Whether s is written as DALP writes an address (ndigits
 * DALP_ADDRESS_DIGITS) or a transaction hash (DALP_HASH_DIGITS): "0x" and
 * that many lowercase hexadecimal digits.  The one rule for addresses: a
 * token_address option or function argument is lowercased and must pass it
 * (extension/ledger_access.sql's token_address_arg has the same rule); a value
 * compared with an address column in a WHERE clause that fails it matches
 * no row, as "=" on text minds case.
 */
bool
dalp_is_hex_id(const char *s, int ndigits)
{
	if (strlen(s) != (size_t) (2 + ndigits) || s[0] != '0' || s[1] != 'x')
		return false;
	for (s += 2; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* An address as given in an option or argument, lowercased. */
static char *
lower_address(const char *s)
{
	return asc_tolower(s, strlen(s));
}

static int
parse_int_option(DefElem *def, const DalpOption *opt)
{
	char	   *value = defGetString(def);
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < opt->min || v > opt->max)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"",
						def->defname, value),
				 errhint("Use an integer between %d and %d.",
						 opt->min, opt->max)));
	return (int) v;
}

/* The index of the value in opt->choices ("a, b"). */
static int
parse_choice_option(DefElem *def, const DalpOption *opt)
{
	char	   *value = defGetString(def);
	char	   *copy = pstrdup(opt->choices);
	char	   *save;
	int			index = 0;

	for (char *c = strtok_r(copy, ", ", &save); c != NULL;
		 c = strtok_r(NULL, ", ", &save), index++)
		if (strcmp(c, value) == 0)
			return index;
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
			 errmsg("invalid value for option \"%s\": \"%s\"",
					def->defname, value),
			 errhint("Valid values are: %s.", opt->choices)));
	return -1;
}

static double
parse_cost_option(DefElem *def)
{
	char	   *value = defGetString(def);
	char	   *end;
	double		v;

	errno = 0;
	v = strtod(value, &end);
	if (errno != 0 || end == value || *end != '\0' || v < 0 || isnan(v) || isinf(v))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"",
						def->defname, value),
				 errhint("Use a non-negative number.")));
	return v;
}

/*
 * Whether s holds a control character.  Option values travel in HTTP
 * headers (api_key) and URLs (base_url): a CR or LF there would end the
 * header line and smuggle in headers, or requests, of the value's choice.
 */
static bool
has_control_char(const char *s)
{
	for (; *s; s++)
		if ((unsigned char) *s < 0x20 || *s == 0x7F)
			return true;
	return false;
}

/*
 * Whether the host of a URL (what follows "scheme://") is the loopback:
 * "localhost", an IPv4 address in 127.0.0.0/8 or [::1].  Any other
 * spelling counts as remote.
 */
static bool
is_loopback_host(const char *rest)
{
	char		host[INET6_ADDRSTRLEN + 1];
	bool		bracketed = (*rest == '[');
	const char *end;
	size_t		len;
	struct in_addr v4;
	struct in6_addr v6;

	if (bracketed)
	{
		end = strchr(++rest, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':' && end[1] != '/'))
			return false;
	}
	else
		end = rest + strcspn(rest, ":/");
	len = end - rest;
	if (len == 0 || len >= sizeof(host))
		return false;
	memcpy(host, rest, len);
	host[len] = '\0';
	if (bracketed)
		return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
	if (pg_strcasecmp(host, "localhost") == 0)
		return true;
	return inet_pton(AF_INET, host, &v4) == 1 &&
		(ntohl(v4.s_addr) >> 24) == 127;
}

/*
 * Options that weaken security are for superusers only (as postgres_fdw's
 * password_required).  Checked before the value's own rules, as PostgreSQL
 * checks the privilege to set a parameter before its value.
 */
static void
check_superuser_rule(DefElem *def, const DalpOption *opt)
{
	switch (opt->superuser)
	{
		case SU_ANYONE:
			break;
		case SU_ALWAYS:
		case SU_TO_FALSE:
			if ((opt->superuser == SU_ALWAYS || !defGetBoolean(def)) &&
				!superuser())
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("only superuser can set option \"%s\"%s",
								opt->name,
								opt->superuser == SU_TO_FALSE ? " to false" : "")));
			break;
		case SU_PLAIN_HTTP:
			/* plain http sends the key in clear */
			if (pg_strncasecmp(defGetString(def), "http://", 7) == 0 &&
				!superuser() && !is_loopback_host(defGetString(def) + 7))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("only superuser can set option \"%s\" to a plain http URL of a host other than the loopback",
								opt->name),
						 errdetail("Over http the API key crosses the network in clear."),
						 errhint("Use an https URL.")));
			break;
	}
}

/*
 * base_url must be http(s), and must not carry credentials, a query or a
 * fragment: "/api/v2/..." is appended to it, and it appears in messages.
 */
static void
check_base_url(DefElem *def)
{
	char	   *url = defGetString(def);
	const char *rest;

	if (pg_strncasecmp(url, "https://", 8) == 0)
		rest = url + 8;
	else if (pg_strncasecmp(url, "http://", 7) == 0)
		rest = url + 7;
	else
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"base_url\": \"%s\"", url),
				 errdetail("Only http and https URLs are allowed."),
				 errhint("Use a URL such as 'https://platform.example.com'.")));
	if (*rest == '\0' || *rest == '/')
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"base_url\": \"%s\"", url),
				 errdetail("The URL has no host.")));
	if (strpbrk(rest, "?#@ ") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"base_url\": \"%s\"", url),
				 errdetail("The URL must not contain credentials, a query, a fragment or spaces."),
				 errhint("Give the scheme, host, optional port and optional path prefix; the API key belongs in the user mapping.")));
}

static void
check_one_option(DefElem *def, Oid context)
{
	const DalpOption *opt = find_option(def->defname, context_bit(context));

	if (opt == NULL)
	{
		if (strcmp(def->defname, "api_key") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("option \"api_key\" is accepted only in a user mapping"),
					 errhint("Use CREATE USER MAPPING FOR CURRENT_USER SERVER ... OPTIONS (api_key '...').")));
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\" for %s", def->defname,
						context_name(context)),
				 valid_option_names(context)[0] != '\0'
				 ? errhint("Valid options in this context are: %s.",
						   valid_option_names(context))
				 : errhint("dalp_fdw accepts no options in this context.")));
	}

	/* the value is not shown: it may be the key */
	if (def->arg != NULL && has_control_char(defGetString(def)))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" must not contain control characters",
						def->defname),
				 errdetail("A carriage return or line feed in a value sent in an HTTP header or URL would add headers of its own.")));

	check_superuser_rule(def, opt);
	switch (opt->kind)
	{
		case DALP_OPT_URL:
			check_base_url(def);
			break;
		case DALP_OPT_INT:
		case DALP_OPT_BYTES:
			(void) parse_int_option(def, opt);
			break;
		case DALP_OPT_BOOL:
			(void) defGetBoolean(def);
			break;
		case DALP_OPT_COST:
			(void) parse_cost_option(def);
			break;
		case DALP_OPT_CHOICE:
			(void) parse_choice_option(def, opt);
			break;
		case DALP_OPT_TEXT:
		case DALP_OPT_SECRET:
			if (defGetString(def)[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"%s\" must not be empty", def->defname)));
			break;
		case DALP_OPT_RESOURCE:
			if (dalp_resource_lookup(defGetString(def)) == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("unknown DALP resource \"%s\"", defGetString(def)),
						 errhint("Valid resources are: %s.", dalp_resource_names())));
			break;
		case DALP_OPT_ADDRESS:
			if (!dalp_is_hex_id(lower_address(defGetString(def)),
								DALP_ADDRESS_DIGITS))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"token_address\": \"%s\"",
								defGetString(def)),
						 errhint("Use a contract address: 0x followed by 40 hexadecimal digits.")));
			break;
	}
}

static bool
has_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
		if (strcmp(((DefElem *) lfirst(lc))->defname, name) == 0)
			return true;
	return false;
}

PG_FUNCTION_INFO_V1(dalp_fdw_validator);

/*
 * Validate the options given to a FOREIGN DATA WRAPPER, SERVER, USER MAPPING
 * or FOREIGN TABLE that uses dalp_fdw.  Called with the complete option list
 * after CREATE and ALTER alike, so required options are checked here too.
 */
Datum
dalp_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			context = PG_GETARG_OID(1);
	ListCell   *lc;

	foreach(lc, options)
		check_one_option((DefElem *) lfirst(lc), context);

	if (context == ForeignServerRelationId && !has_option(options, "base_url"))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("a DALP server needs option \"base_url\""),
				 errhint("Use OPTIONS (base_url 'https://platform.example.com').")));
	if (context == ForeignTableRelationId && !has_option(options, "resource"))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("a DALP foreign table needs option \"resource\""),
				 errhint("Valid resources are: %s.", dalp_resource_names())));

	/* Without a key only the server's identity would be used: as postgres_fdw's password_required. */
	if (context == UserMappingRelationId && !has_option(options, "api_key") &&
		!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("a user mapping for dalp_fdw needs option \"api_key\""),
				 errhint("Use OPTIONS (api_key 'sm_dalp_...').")));

	PG_RETURN_VOID();
}

/* A value of opt, checked when it was set, into its field of conf. */
static void
apply_option(const DalpOption *opt, DefElem *def, DalpConnConfig *conf)
{
	char	   *field = (char *) conf + opt->conf_offset;

	switch (opt->kind)
	{
		case DALP_OPT_URL:
			{
				char	   *url = pstrdup(defGetString(def));
				size_t		len = strlen(url);

				/* "/api/v2/..." is appended */
				while (len > 0 && url[len - 1] == '/')
					url[--len] = '\0';
				*(char **) field = url;
				break;
			}
		case DALP_OPT_INT:
			*(int *) field = parse_int_option(def, opt);
			break;
		case DALP_OPT_BYTES:
			*(int64 *) field = parse_int_option(def, opt);
			break;
		case DALP_OPT_BOOL:
			*(bool *) field = defGetBoolean(def);
			break;
		case DALP_OPT_COST:
			*(double *) field = parse_cost_option(def);
			break;
		case DALP_OPT_CHOICE:
			*(int *) field = parse_choice_option(def, opt);
			break;
		default:
			*(char **) field = defGetString(def);
			break;
	}
}

/* The options given in a catalog (IN_*) that have a field in conf. */
static void
apply_options(List *options, int where, DalpConnConfig *conf)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		const DalpOption *opt = find_option(def->defname, where);

		if (opt != NULL && opt->conf_offset >= 0)
			apply_option(opt, def, conf);
	}
}

/* Every row's default, read as the same value given in OPTIONS would be. */
static void
apply_defaults(DalpConnConfig *conf)
{
	for (int i = 0; i < lengthof(valid_options); i++)
	{
		const DalpOption *opt = &valid_options[i];

		if (opt->default_value != NULL && opt->conf_offset >= 0)
			apply_option(opt,
						 makeDefElem((char *) opt->name,
									 (Node *) makeString((char *) opt->default_value),
									 -1),
						 conf);
	}
}

/*
 * A row that lands in a field other than text needs a default: without
 * one, a connection would get a zero no one chose.  Checked when the
 * library loads, so that such a row fails every test.
 */
void
dalp_check_option_rows(void)
{
	for (int i = 0; i < lengthof(valid_options); i++)
	{
		const DalpOption *opt = &valid_options[i];

		if (opt->conf_offset >= 0 && opt->default_value == NULL &&
			opt->kind != DALP_OPT_URL && opt->kind != DALP_OPT_TEXT &&
			opt->kind != DALP_OPT_SECRET)
			elog(ERROR, "dalp_fdw option \"%s\" has no default", opt->name);
	}
}

/*
 * conf for a request, in CurrentMemoryContext: its text copied, so that it
 * lives as long as the context, but not the key (a request keeps that in
 * its headers only, which are wiped when freed).
 */
void
dalp_conn_config_copy(DalpConnConfig *dst, const DalpConnConfig *src)
{
	*dst = *src;
	dst->server_name = pstrdup(src->server_name);
	for (int i = 0; i < lengthof(valid_options); i++)
	{
		const DalpOption *opt = &valid_options[i];
		char	  **text;

		if (opt->conf_offset < 0)
			continue;
		text = (char **) ((char *) dst + opt->conf_offset);
		if (opt->kind == DALP_OPT_SECRET)
			*text = NULL;
		else if ((opt->kind == DALP_OPT_URL || opt->kind == DALP_OPT_TEXT) &&
				 *text != NULL)
			*text = pstrdup(*text);
	}
}

/*
 * An option that the validator would refuse, stored by a version that did
 * not check it: refused when used, before any request.  The value is not
 * shown (it may be the key).
 */
static void
refuse_stored_option(const char *option, const char *owner, const char *fix)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
			 errmsg("option \"%s\" of %s contains a control character",
					option, owner),
			 errhint("Run: %s;", fix)));
}

/*
 * Server settings with their documented defaults; no user mapping needed
 * (the planner costs paths with these).
 */
void
dalp_get_server_config(Oid serverid, DalpConnConfig *conf)
{
	ForeignServer *server = GetForeignServer(serverid);

	memset(conf, 0, sizeof(*conf));
	conf->serverid = serverid;
	conf->server_name = server->servername;
	apply_defaults(conf);
	apply_options(server->options, IN_SERVER, conf);
	if (conf->base_url != NULL && has_control_char(conf->base_url))
		refuse_stored_option("base_url",
							 psprintf("DALP server \"%s\"", conf->server_name),
							 psprintf("ALTER SERVER %s OPTIONS (SET base_url 'https://...')",
									  quote_identifier(conf->server_name)));
}

/*
 * Look the user mapping up ourselves rather than through GetUserMapping(),
 * so that a missing one gets a hint with the statement to run.
 */
static Oid
find_user_mapping(Oid userid, Oid serverid)
{
	HeapTuple	tp;
	Oid			umid;

	tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(userid),
						 ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tp))
		tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							 ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tp))
		return InvalidOid;
	umid = ((Form_pg_user_mapping) GETSTRUCT(tp))->oid;
	ReleaseSysCache(tp);
	return umid;
}

/* See dalp_fdw.h; set by ledger.c only. */
DalpMappingOverride dalp_mapping_override = {InvalidOid, InvalidOid};

void
dalp_get_conn_config(Oid serverid, Oid userid, DalpConnConfig *conf)
{
	if (OidIsValid(dalp_mapping_override.caller) &&
		userid == dalp_mapping_override.owner)
		userid = dalp_mapping_override.caller;
	dalp_get_server_config(serverid, conf);

	conf->umid = find_user_mapping(userid, serverid);
	if (!OidIsValid(conf->umid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no user mapping for role \"%s\" on DALP server \"%s\"",
						GetUserNameFromId(userid, false), conf->server_name),
				 errhint("Run: CREATE USER MAPPING FOR CURRENT_USER SERVER %s OPTIONS (api_key 'sm_dalp_...');",
						 quote_identifier(conf->server_name))));

	apply_options(GetUserMapping(userid, serverid)->options, IN_MAPPING, conf);
	if (conf->api_key != NULL && has_control_char(conf->api_key))
		refuse_stored_option("api_key",
							 psprintf("the user mapping for role \"%s\" on DALP server \"%s\"",
									  GetUserNameFromId(userid, false), conf->server_name),
							 psprintf("ALTER USER MAPPING FOR CURRENT_USER SERVER %s OPTIONS (SET api_key 'sm_dalp_...')",
									  quote_identifier(conf->server_name)));
	if (conf->api_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the user mapping for role \"%s\" on DALP server \"%s\" has no api_key",
						GetUserNameFromId(userid, false), conf->server_name),
				 errhint("Run: ALTER USER MAPPING FOR CURRENT_USER SERVER %s OPTIONS (ADD api_key 'sm_dalp_...');",
						 quote_identifier(conf->server_name))));
	dalp_http_name_budget(conf);
}

/* The table's resource and its pinned token (lowercased, or NULL). */
const DalpResourceDef *
dalp_table_resource(Oid foreigntableid, char **token_address)
{
	ForeignTable *table = GetForeignTable(foreigntableid);
	const DalpResourceDef *res = NULL;
	ListCell   *lc;

	*token_address = NULL;
	foreach(lc, table->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "resource") == 0)
			res = dalp_resource_lookup(defGetString(def));
		else if (strcmp(def->defname, "token_address") == 0)
			*token_address = lower_address(defGetString(def));
	}
	if (res == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("foreign table \"%s\" has no valid \"resource\" option",
						get_rel_name(foreigntableid)),
				 errhint("Valid resources are: %s.", dalp_resource_names())));
	return res;
}

/* The table's settings that override its server's (see valid_options). */
void
dalp_apply_table_options(Oid foreigntableid, DalpConnConfig *conf)
{
	apply_options(GetForeignTable(foreigntableid)->options, IN_TABLE, conf);
}

/* The column's json_path option, or NULL. */
char *
dalp_column_json_path(Oid relid, AttrNumber attnum)
{
	List	   *options = GetForeignColumnOptions(relid, attnum);
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "json_path") == 0)
			return defGetString(def);
	}
	return NULL;
}

#define CATALOG_OPTION_COLS 8

/*
 * dalp_fdw.catalog_options(): the option rows, as the validator and the
 * connection settings read them.
 */
PG_FUNCTION_INFO_V1(dalp_fdw_catalog_options);

Datum
dalp_fdw_catalog_options(PG_FUNCTION_ARGS)
{
	static const char *const where_names[] = {"server", "table",
	"user mapping", "column"};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < lengthof(valid_options); i++)
	{
		const DalpOption *opt = &valid_options[i];
		Datum		values[CATALOG_OPTION_COLS];
		bool		nulls[CATALOG_OPTION_COLS] = {0};
		Datum		where[lengthof(where_names)];
		int			nwhere = 0;
		bool		ranged = (opt->kind == DALP_OPT_INT ||
							  opt->kind == DALP_OPT_BYTES);

		for (int b = 0; b < lengthof(where_names); b++)
			if (opt->where & (1 << b))
				where[nwhere++] = CStringGetTextDatum(where_names[b]);
		values[0] = CStringGetTextDatum(opt->name);
		values[1] = CStringGetTextDatum(kind_names[opt->kind]);
		values[2] = PointerGetDatum(construct_array(where, nwhere, TEXTOID, -1,
													false, TYPALIGN_INT));
		nulls[3] = opt->default_value == NULL;
		values[3] = nulls[3] ? (Datum) 0 : CStringGetTextDatum(opt->default_value);
		nulls[4] = nulls[5] = !ranged;
		values[4] = Int32GetDatum(opt->min);
		values[5] = Int32GetDatum(opt->max);
		nulls[6] = opt->choices == NULL;
		values[6] = nulls[6] ? (Datum) 0 : CStringGetTextDatum(opt->choices);
		nulls[7] = opt->superuser == SU_ANYONE;
		values[7] = nulls[7] ? (Datum) 0 :
			CStringGetTextDatum(superuser_rule_names[opt->superuser]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

