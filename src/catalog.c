/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		  The DALP resource catalog: every collection described once, as data.
 *
 * Planning, request building, decoding, IMPORT FOREIGN SCHEMA and EXPLAIN
 * are generic code over these tables; adding a resource is adding an entry.
 * Field names, filters and operators follow dalp-api-contract.md; column
 * names and types follow sql-interface.md.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#define NAME_OPS	(DALP_OP_EQ | DALP_OP_NE | DALP_OP_ILIKE | DALP_OP_IN)
#define RAW_COLUMN	{"raw", JSONBOID, DALP_VALUE_RAW, NULL, NULL, 0, NULL}
#define TOKEN_COLUMN {"token_address", TEXTOID, DALP_VALUE_TOKEN, NULL, NULL, 0, NULL, true}

static const DalpColumnDef token_columns[] = {
	{"address", TEXTOID, DALP_VALUE_PATH, "id", NULL, 0, NULL, true},
	{"name", TEXTOID, DALP_VALUE_PATH, "name", "name", NAME_OPS, "name"},
	{"symbol", TEXTOID, DALP_VALUE_PATH, "symbol", "symbol", NAME_OPS, "symbol"},
	{"decimals", INT4OID, DALP_VALUE_PATH, "decimals", NULL, 0, NULL},
	{"type", TEXTOID, DALP_VALUE_PATH, "type", "type",
	DALP_OP_EQ | DALP_OP_NE | DALP_OP_IN, NULL, false, true},
	{"factory_address", TEXTOID, DALP_VALUE_PATH, "tokenFactory.id",
	"tokenFactory", DALP_OP_EQ | DALP_OP_IN, NULL, true},
	{"total_supply", NUMERICOID, DALP_VALUE_PATH, "totalSupply", NULL, 0, NULL},
	{"total_supply_exact", NUMERICOID, DALP_VALUE_PATH, "totalSupplyExact",
	NULL, 0, NULL},
	{"paused", BOOLOID, DALP_VALUE_PATH, "pausable.paused", NULL, 0, NULL},
	{"created_at", TIMESTAMPTZOID, DALP_VALUE_PATH, "createdAt", "createdAt",
	DALP_OP_RANGE, "createdAt"},
	{"created_by", TEXTOID, DALP_VALUE_PATH, "createdBy.id", NULL, 0, NULL},
	{"extensions", TEXTARRAYOID, DALP_VALUE_PATH, "extensions", NULL, 0, NULL},
	{"q", TEXTOID, DALP_VALUE_SEARCH_ECHO, NULL, "q",
	DALP_OP_EQ | DALP_OP_EQ_BARE, NULL},
	RAW_COLUMN
};

static const DalpColumnDef holder_columns[] = {
	TOKEN_COLUMN,
	{"account", TEXTOID, DALP_VALUE_PATH, "account.id", NULL, 0, NULL, true},
	{"balance", NUMERICOID, DALP_VALUE_PATH, "value", "value", DALP_OP_RANGE,
	"value"},
	{"balance_exact", NUMERICOID, DALP_VALUE_PATH, "valueExact", NULL, 0, NULL},
	{"available", NUMERICOID, DALP_VALUE_PATH, "available", NULL, 0, NULL},
	{"frozen", NUMERICOID, DALP_VALUE_PATH, "frozen", NULL, 0, NULL},
	{"is_frozen", BOOLOID, DALP_VALUE_PATH, "isFrozen", "isFrozen", DALP_OP_EQ,
	NULL},
	{"last_updated_at", TIMESTAMPTZOID, DALP_VALUE_PATH, "lastUpdatedAt", NULL,
	0, NULL},
	RAW_COLUMN
};

static const DalpColumnDef event_columns[] = {
	TOKEN_COLUMN,
	{"id", TEXTOID, DALP_VALUE_PATH, "id", NULL, 0, NULL},
	{"event_name", TEXTOID, DALP_VALUE_PATH, "eventName", "eventName",
	DALP_OP_EQ | DALP_OP_NE | DALP_OP_IN | DALP_OP_NOT_IN, NULL, false, true},
	{"block_number", INT8OID, DALP_VALUE_PATH, "blockNumber", NULL, 0,
	"blockNumber"},
	{"block_timestamp", TIMESTAMPTZOID, DALP_VALUE_PATH, "blockTimestamp",
	"blockTimestamp", DALP_OP_RANGE, "blockTimestamp"},
	{"transaction_hash", TEXTOID, DALP_VALUE_PATH, "transactionHash",
	"transactionHash", DALP_OP_EQ, NULL, true},
	{"tx_index", INT4OID, DALP_VALUE_PATH, "txIndex", NULL, 0, NULL},
	{"emitter", TEXTOID, DALP_VALUE_PATH, "emitter.id", NULL, 0, NULL},
	{"sender", TEXTOID, DALP_VALUE_PATH, "sender.id", "senderAddress",
	DALP_OP_EQ | DALP_OP_IN, NULL, true},
	{"from_address", TEXTOID, DALP_VALUE_PATH, "values.from", NULL, 0, NULL},
	{"to_address", TEXTOID, DALP_VALUE_PATH, "values.to", NULL, 0, NULL},
	{"account", TEXTOID, DALP_VALUE_PATH,
	"values.account|values.user|values.owner", NULL, 0, NULL},
	{"amount", NUMERICOID, DALP_VALUE_PATH, "values.amount", NULL, 0, NULL},
	{"values", JSONBOID, DALP_VALUE_NAMED_VALUES, "values", NULL, 0, NULL},
	/*
	 * The API also takes accountAddress inArray, but a search column echoes
	 * the one value searched for: with a list it could not say which value
	 * an event matched, so only "=" is sent.
	 */
	{"involves_address", TEXTOID, DALP_VALUE_SEARCH_ECHO, NULL,
	"accountAddress", DALP_OP_EQ | DALP_OP_IN, NULL, true},
	RAW_COLUMN
};

static const DalpColumnDef factory_columns[] = {
	{"address", TEXTOID, DALP_VALUE_PATH, "id", NULL, 0, NULL},
	{"name", TEXTOID, DALP_VALUE_PATH, "name", "name",
	DALP_OP_EQ | DALP_OP_ILIKE, "name"},
	{"type_id", TEXTOID, DALP_VALUE_PATH, "typeId", "typeId",
	DALP_OP_EQ | DALP_OP_IN, NULL},
	{"has_tokens", BOOLOID, DALP_VALUE_PATH, "hasTokens", "hasTokens",
	DALP_OP_EQ, NULL},
	{"token_extensions", TEXTARRAYOID, DALP_VALUE_PATH, "tokenExtensions",
	NULL, 0, NULL},
	RAW_COLUMN
};

static const DalpColumnDef feature_columns[] = {
	TOKEN_COLUMN,
	{"feature_type_id", TEXTOID, DALP_VALUE_PATH, "featureTypeId", NULL, 0,
	NULL},
	{"address", TEXTOID, DALP_VALUE_PATH, "address", NULL, 0, NULL},
	{"attached_at", TIMESTAMPTZOID, DALP_VALUE_PATH, "attachedAt", NULL, 0,
	NULL},
	RAW_COLUMN
};

static const DalpColumnDef metadata_columns[] = {
	TOKEN_COLUMN,
	{"key", TEXTOID, DALP_VALUE_PATH, "key", NULL, 0, NULL},
	{"value", TEXTOID, DALP_VALUE_PATH, "value", NULL, 0, NULL},
	{"updated_at", TIMESTAMPTZOID, DALP_VALUE_PATH, "updatedAt", NULL, 0, NULL},
	RAW_COLUMN
};

static const DalpColumnDef compliance_columns[] = {
	TOKEN_COLUMN,
	{"module_address", TEXTOID, DALP_VALUE_PATH, "module.id", NULL, 0, NULL},
	{"type_id", TEXTOID, DALP_VALUE_PATH, "typeId", NULL, 0, NULL},
	{"parameters", JSONBOID, DALP_VALUE_PATH, "parameters", NULL, 0, NULL},
	RAW_COLUMN
};

static const DalpColumnDef approval_columns[] = {
	TOKEN_COLUMN,
	{"id", TEXTOID, DALP_VALUE_PATH, "id", NULL, 0, NULL},
	{"from_wallet", TEXTOID, DALP_VALUE_PATH, "fromWallet", NULL, 0, NULL},
	{"to_wallet", TEXTOID, DALP_VALUE_PATH, "toWallet", NULL, 0, NULL},
	{"amount", NUMERICOID, DALP_VALUE_PATH, "amount", NULL, 0, NULL},
	{"amount_exact", NUMERICOID, DALP_VALUE_PATH, "amountExact", NULL, 0, NULL},
	{"status", TEXTOID, DALP_VALUE_PATH, "status", NULL, 0, NULL},
	{"created_at", TIMESTAMPTZOID, DALP_VALUE_PATH, "createdAt", NULL, 0, NULL},
	RAW_COLUMN
};

static const DalpColumnDef asset_class_columns[] = {
	{"id", TEXTOID, DALP_VALUE_PATH, "id", NULL, 0, NULL},
	{"slug", TEXTOID, DALP_VALUE_PATH, "slug", NULL, 0, NULL},
	{"name", TEXTOID, DALP_VALUE_PATH, "name", NULL, 0, NULL},
	{"is_system", BOOLOID, DALP_VALUE_PATH, "isSystem", NULL, 0, NULL},
	RAW_COLUMN
};

#define HEALTH_SERVICE_COLUMNS \
	{"service_type", TEXTOID, DALP_VALUE_PATH, "serviceType", NULL, 0, NULL}, \
	{"chain_id", INT8OID, DALP_VALUE_PATH, "chainId", NULL, 0, NULL}, \
	{"network_name", TEXTOID, DALP_VALUE_PATH, "networkName", NULL, 0, NULL}, \
	{"status", TEXTOID, DALP_VALUE_PATH, "status", NULL, 0, NULL}, \
	{"block_height", INT8OID, DALP_VALUE_PATH, "blockHeight", NULL, 0, NULL}, \
	{"chain_head_block", INT8OID, DALP_VALUE_PATH, "chainHeadBlock", NULL, 0, \
	NULL}, \
	{"sync_lag", INT8OID, DALP_VALUE_PATH, "syncLag", NULL, 0, NULL}, \
	{"finality_lag_blocks", INT8OID, DALP_VALUE_PATH, "finalityLagBlocks", \
	NULL, 0, NULL}, \
	{"block_age_seconds", INT8OID, DALP_VALUE_PATH, "blockAgeSeconds", NULL, \
	0, NULL}, \
	{"stall_seconds", INT8OID, DALP_VALUE_PATH, "stallSeconds", NULL, 0, NULL}, \
	{"reindexing", BOOLOID, DALP_VALUE_PATH, "reindexing", NULL, 0, NULL}, \
	{"updated_at", TIMESTAMPTZOID, DALP_VALUE_PATH, "updatedAt", NULL, 0, NULL}

static const DalpColumnDef health_service_columns[] = {
	HEALTH_SERVICE_COLUMNS,
	RAW_COLUMN
};

static const DalpColumnDef health_snapshot_columns[] = {
	{"event_type", TEXTOID, DALP_VALUE_PATH, "eventType", NULL, 0, NULL},
	HEALTH_SERVICE_COLUMNS,
	{"created_at", TIMESTAMPTZOID, DALP_VALUE_PATH, "createdAt", NULL, 0, NULL},
	RAW_COLUMN
};

#define COLUMNS(a) a, lengthof(a)

/*
 * scan_sort is an ascending order where items created while a scan pages
 * through the collection land on its last page, so offset paging neither
 * repeats nor skips them.  A collection whose items can move in its read
 * order (holders by balance) or leave it has a change marker: a resource
 * whose newest item, sorted by the reverse of its scan_sort, changes
 * whenever the collection does; see hold_stream() in scan.c.
 */
static const DalpResourceDef resource_defs[] = {
	{"tokens", "/tokens", true, NULL, "/tokens/{key}", "address", true,
	"createdAt", "id", "tokens", {NULL, NULL}, COLUMNS(token_columns)},
	/* every change of a balance is an event of the token */
	{"holders", "/tokens/{token}/holders", true, NULL,
		"/tokens/{token}/holder-balances?holderAddress={key}", "account", false,
	NULL, "account.id", "events", {NULL, NULL}, COLUMNS(holder_columns)},
	{"events", "/tokens/{token}/events", true, NULL, NULL, NULL, false,
		"blockTimestamp", "id", NULL, {"block_number", "tx_index"},
	COLUMNS(event_columns)},
	{"factories", "/system/factories", true, NULL, NULL, NULL, false,
	NULL, "id", NULL, {NULL, NULL}, COLUMNS(factory_columns)},
	{"token_features", "/tokens/{token}/features", true, NULL, NULL, NULL,
	false, NULL, NULL, NULL, {NULL, NULL}, COLUMNS(feature_columns)},
	{"token_metadata", "/tokens/{token}/metadata", true, NULL, NULL, NULL,
	false, NULL, NULL, NULL, {NULL, NULL}, COLUMNS(metadata_columns)},
	{"compliance_modules", "/tokens/{token}/compliance-modules", true, NULL,
	NULL, NULL, false, NULL, NULL, NULL, {NULL, NULL}, COLUMNS(compliance_columns)},
	{"transfer_approvals", "/tokens/{token}/transfer-approvals", true, NULL,
	NULL, NULL, false, NULL, "id", NULL, {NULL, NULL}, COLUMNS(approval_columns)},
	{"asset_class_definitions", "/settings/asset-class-definitions", true,
	NULL, NULL, NULL, false, NULL, "id", NULL, {NULL, NULL},
	COLUMNS(asset_class_columns)},
	{"health_services", "/blockchain-monitoring/health-metrics/summary", false,
	"services", NULL, NULL, false, NULL, NULL, NULL, {NULL, NULL},
	COLUMNS(health_service_columns)},
	/* snapshots have no id in the contract: one per service, chain, kind and time */
	{"health_snapshots", "/blockchain-monitoring/health-snapshots", true, NULL,
		NULL, NULL, false, NULL, "createdAt,eventType,serviceType,networkName",
	NULL, {NULL, NULL}, COLUMNS(health_snapshot_columns)},
};

const int	dalp_nresources = lengthof(resource_defs);

const DalpResourceDef *
dalp_resource_at(int index)
{
	Assert(index >= 0 && index < dalp_nresources);
	return &resource_defs[index];
}

const DalpResourceDef *
dalp_resource_lookup(const char *name)
{
	for (int i = 0; i < dalp_nresources; i++)
		if (strcmp(resource_defs[i].name, name) == 0)
			return &resource_defs[i];
	return NULL;
}

const DalpColumnDef *
dalp_column_lookup(const DalpResourceDef *res, const char *colname)
{
	for (int i = 0; i < res->ncolumns; i++)
		if (strcmp(res->columns[i].name, colname) == 0)
			return &res->columns[i];
	return NULL;
}

bool
dalp_resource_is_per_token(const DalpResourceDef *res)
{
	return strstr(res->path, "{token}") != NULL;
}

/* "a, b, c": for hints that list the valid names. */
char *
dalp_resource_names(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < dalp_nresources; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", resource_defs[i].name);
	return buf.data;
}

char *
dalp_column_names(const DalpResourceDef *res)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < res->ncolumns; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", res->columns[i].name);
	return buf.data;
}

/* ----------------------------------------------------------------
 * SQL introspection of the catalog
 *
 * The README's table list is rendered from these functions
 * (test/readme_tables.py) and test/t_readme.sh fails when it differs, so
 * the documentation cannot drift from the code that plans and decodes.
 * ----------------------------------------------------------------
 */

#define CATALOG_RESOURCE_COLS	9
#define CATALOG_COLUMN_COLS		10

/* A nullable text Datum. */
static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/*
 * The operator bits as the API's operator names, in the order of the bits.
 * DALP_OP_EQ_BARE is left out: it says how eq is spelled, not an operator.
 */
static Datum
op_names_array(int ops)
{
	Datum		names[16];
	int			n = 0;

	for (int bit = DALP_OP_EQ; bit <= DALP_OP_NOT_IN; bit <<= 1)
		if (ops & bit)
			names[n++] = CStringGetTextDatum(dalp_op_name(bit));
	return PointerGetDatum(construct_array(names, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

static const char *
value_kind_name(DalpValueKind kind)
{
	switch (kind)
	{
		case DALP_VALUE_PATH:
			return "path";
		case DALP_VALUE_TOKEN:
			return "token";
		case DALP_VALUE_RAW:
			return "raw";
		case DALP_VALUE_NAMED_VALUES:
			return "named_values";
		case DALP_VALUE_SEARCH_ECHO:
			return "search";
	}
	return NULL;
}

/*
 * dalp_fdw.catalog_resources(): one row per resource, in catalog order
 * (the order IMPORT FOREIGN SCHEMA creates the tables in).
 */
PG_FUNCTION_INFO_V1(dalp_fdw_catalog_resources);

Datum
dalp_fdw_catalog_resources(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < dalp_nresources; i++)
	{
		const DalpResourceDef *res = &resource_defs[i];
		Datum		values[CATALOG_RESOURCE_COLS];
		bool		nulls[CATALOG_RESOURCE_COLS] = {0};
		Datum		ties[lengthof(res->sort_ties)];
		int			nties = 0;

		for (int t = 0; t < lengthof(res->sort_ties) && res->sort_ties[t]; t++)
			ties[nties++] = CStringGetTextDatum(res->sort_ties[t]);

		values[0] = CStringGetTextDatum(res->name);
		values[1] = CStringGetTextDatum(psprintf("%s%s", DALP_API_PREFIX,
												 res->path));
		values[2] = BoolGetDatum(dalp_resource_is_per_token(res));
		values[3] = BoolGetDatum(res->is_collection);
		values[4] = text_or_null(res->rows_field, &nulls[4]);
		values[5] = text_or_null(res->item_path
								 ? psprintf("%s%s", DALP_API_PREFIX, res->item_path)
								 : NULL, &nulls[5]);
		values[6] = text_or_null(res->item_key_column, &nulls[6]);
		values[7] = text_or_null(res->scan_sort, &nulls[7]);
		values[8] = PointerGetDatum(construct_array(ties, nties, TEXTOID, -1,
													false, TYPALIGN_INT));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * dalp_fdw.catalog_columns(): one row per column of every resource, in the
 * order IMPORT FOREIGN SCHEMA declares them.
 */
PG_FUNCTION_INFO_V1(dalp_fdw_catalog_columns);

Datum
dalp_fdw_catalog_columns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < dalp_nresources; i++)
	{
		const DalpResourceDef *res = &resource_defs[i];

		for (int c = 0; c < res->ncolumns; c++)
		{
			const DalpColumnDef *col = &res->columns[c];
			Datum		values[CATALOG_COLUMN_COLS];
			bool		nulls[CATALOG_COLUMN_COLS] = {0};

			values[0] = CStringGetTextDatum(res->name);
			values[1] = Int32GetDatum(c + 1);
			values[2] = CStringGetTextDatum(col->name);
			values[3] = ObjectIdGetDatum(col->typid);
			values[4] = CStringGetTextDatum(value_kind_name(col->kind));
			values[5] = text_or_null(col->json_path, &nulls[5]);
			values[6] = text_or_null(col->filter, &nulls[6]);
			values[7] = op_names_array(col->filter ? col->ops : 0);
			values[8] = text_or_null(col->sort, &nulls[8]);
			values[9] = BoolGetDatum(col->facet);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
								 values, nulls);
		}
	}
	return (Datum) 0;
}
