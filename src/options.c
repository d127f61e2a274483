/*-------------------------------------------------------------------------
 *
 * options.c
 *		  Option validation, connection settings and the GUCs of dalp_fdw.
 *
 * Every option is checked when it is set (CREATE/ALTER), not when a query
 * first uses it, so that a typo never surfaces as a failing report at night.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include <arpa/inet.h>
#include <ctype.h>
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
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

PG_MODULE_MAGIC;

bool		dalp_pushdown_enabled = true;

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

typedef struct DalpOption
{
	const char *name;
	DalpOptionKind kind;
	int			min;			/* DALP_OPT_INT/BYTES bounds */
	int			max;
	Oid			context;		/* catalog the option belongs to */
	int			conf_offset;	/* server options: field of DalpConnConfig */
	const char *choices;		/* DALP_OPT_CHOICE: "a, b", in index order */
} DalpOption;

#define SERVER(field) ForeignServerRelationId, offsetof(DalpConnConfig, field)
#define NOT_SERVER(context) context, -1
#define ON_LEDGER_CHANGE_CHOICES "error, warning"	/* DalpOnLedgerChange */

/*
 * A foreign table option that is also a server option (same name, same
 * kind) overrides the server's setting for that table.
 */

static const DalpOption valid_options[] = {
	{"base_url", DALP_OPT_URL, 0, 0, SERVER(base_url)},
	{"page_size", DALP_OPT_INT, 1, DALP_MAX_PAGE_SIZE, SERVER(page_size)},
	{"concurrency", DALP_OPT_INT, 1, 32, SERVER(concurrency)},
	{"connect_timeout_ms", DALP_OPT_INT, 1, INT_MAX, SERVER(connect_timeout_ms)},
	{"timeout_ms", DALP_OPT_INT, 1, INT_MAX, SERVER(timeout_ms)},
	{"max_retries", DALP_OPT_INT, 0, 100, SERVER(max_retries)},
	{"retry_base_ms", DALP_OPT_INT, 0, 600000, SERVER(retry_base_ms)},
	{"retry_after_max_ms", DALP_OPT_INT, 0, 3600000, SERVER(retry_after_max_ms)},
	{"rate_limit_per_minute", DALP_OPT_INT, 1, 6000000, SERVER(rate_limit_per_minute)},
	{"max_response_bytes", DALP_OPT_BYTES, 1024, INT_MAX, SERVER(max_response_bytes)},
	{"verify_tls", DALP_OPT_BOOL, 0, 0, SERVER(verify_tls)},
	{"compression", DALP_OPT_BOOL, 0, 0, SERVER(compression)},
	{"ca_file", DALP_OPT_TEXT, 0, 0, SERVER(ca_file)},
	{"fdw_startup_cost", DALP_OPT_COST, 0, 0, SERVER(fdw_startup_cost)},
	{"fdw_request_cost", DALP_OPT_COST, 0, 0, SERVER(fdw_request_cost)},
	{"fdw_tuple_cost", DALP_OPT_COST, 0, 0, SERVER(fdw_tuple_cost)},
	{"use_remote_estimate", DALP_OPT_BOOL, 0, 0, SERVER(use_remote_estimate)},
	{"ledger_rereads", DALP_OPT_INT, 0, 10, SERVER(ledger_rereads)},
	{"on_ledger_change", DALP_OPT_CHOICE, 0, 0, SERVER(on_ledger_change),
	ON_LEDGER_CHANGE_CHOICES},
	{"api_key", DALP_OPT_SECRET, 0, 0, NOT_SERVER(UserMappingRelationId)},
	{"resource", DALP_OPT_RESOURCE, 0, 0, NOT_SERVER(ForeignTableRelationId)},
	{"token_address", DALP_OPT_ADDRESS, 0, 0, NOT_SERVER(ForeignTableRelationId)},
	{"use_remote_estimate", DALP_OPT_BOOL, 0, 0, NOT_SERVER(ForeignTableRelationId)},
	{"ledger_rereads", DALP_OPT_INT, 0, 10, NOT_SERVER(ForeignTableRelationId)},
	{"on_ledger_change", DALP_OPT_CHOICE, 0, 0,
	NOT_SERVER(ForeignTableRelationId), ON_LEDGER_CHANGE_CHOICES},
	{"json_path", DALP_OPT_TEXT, 0, 0, NOT_SERVER(AttributeRelationId)},
};

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
find_option(const char *name, Oid context)
{
	for (int i = 0; i < lengthof(valid_options); i++)
		if (valid_options[i].context == context &&
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
		if (valid_options[i].context == context)
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "",
							 valid_options[i].name);
	return buf.data;
}

static bool
is_token_address(const char *s)
{
	if (strlen(s) != 42 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		return false;
	for (int i = 2; i < 42; i++)
		if (!isxdigit((unsigned char) s[i]))
			return false;
	return true;
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
 * base_url must be http(s), and must not carry credentials, a query or a
 * fragment: "/api/v2/..." is appended to it, and it appears in messages.
 * Plain http sends the key in clear: only a superuser may point it at
 * another host than the loopback (as only a superuser may turn verify_tls
 * off).
 */
static void
check_base_url(DefElem *def)
{
	char	   *url = defGetString(def);
	const char *rest;

	if (pg_strncasecmp(url, "https://", 8) == 0)
		rest = url + 8;
	else if (pg_strncasecmp(url, "http://", 7) == 0)
	{
		rest = url + 7;
		if (!superuser() && !is_loopback_host(rest))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("only superuser can set option \"base_url\" to a plain http URL of a host other than the loopback"),
					 errdetail("Over http the API key crosses the network in clear."),
					 errhint("Use an https URL.")));
	}
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
	const DalpOption *opt = find_option(def->defname, context);

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
			if (!is_token_address(defGetString(def)))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"token_address\": \"%s\"",
								defGetString(def)),
						 errhint("Use a contract address: 0x followed by 40 hexadecimal digits.")));
			break;
	}

	/* Options that weaken security are for superusers only (as postgres_fdw). */
	if (strcmp(def->defname, "ca_file") == 0 && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superuser can set option \"ca_file\"")));
	if (strcmp(def->defname, "verify_tls") == 0 && !defGetBoolean(def) &&
		!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superuser can set option \"verify_tls\" to false")));
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

/* A server option's value into conf; other options are ignored. */
static void
apply_server_option(DefElem *def, DalpConnConfig *conf)
{
	const DalpOption *opt = find_option(def->defname, ForeignServerRelationId);
	char	   *field;

	if (opt == NULL)
		return;
	field = (char *) conf + opt->conf_offset;
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
	ListCell   *lc;

	memset(conf, 0, sizeof(*conf));
	conf->serverid = serverid;
	conf->server_name = server->servername;
	conf->page_size = DALP_MAX_PAGE_SIZE;
	conf->concurrency = 4;
	conf->connect_timeout_ms = 5000;
	conf->timeout_ms = 30000;
	conf->max_retries = 5;
	conf->retry_base_ms = 200;
	conf->retry_after_max_ms = 60000;
	conf->rate_limit_per_minute = 10000;
	conf->verify_tls = true;
	conf->compression = true;
	/* a 200-event page is about 150 kB: room for pages 25 times as large */
	conf->max_response_bytes = 4 * 1024 * 1024;
	conf->fdw_startup_cost = 100.0;
	conf->fdw_request_cost = 50.0;
	conf->fdw_tuple_cost = 0.01;
	conf->ledger_rereads = 3;
	conf->on_ledger_change = DALP_ON_LEDGER_CHANGE_ERROR;

	foreach(lc, server->options)
		apply_server_option((DefElem *) lfirst(lc), conf);
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
	UserMapping *um;
	ListCell   *lc;

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

	um = GetUserMapping(userid, serverid);
	foreach(lc, um->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "api_key") == 0)
			conf->api_key = defGetString(def);
	}
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
		{
			char	   *addr = pstrdup(defGetString(def));

			for (char *p = addr; *p; p++)
				*p = pg_tolower((unsigned char) *p);
			*token_address = addr;
		}
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
	ListCell   *lc;

	foreach(lc, GetForeignTable(foreigntableid)->options)
		apply_server_option((DefElem *) lfirst(lc), conf);
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

void
_PG_init(void)
{
	DefineCustomBoolVariable("dalp_fdw.pushdown",
							 "Sends filters, sort, limit and aggregates to the DALP API.",
							 "When off, only the token path is pushed down; every query returns the same rows either way.",
							 &dalp_pushdown_enabled,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("dalp_fdw");
	dalp_shared_register();
}
