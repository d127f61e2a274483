/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		  The DALP resource catalog: every collection described once, as data.
 *
 * Planning, request building, decoding, IMPORT FOREIGN SCHEMA and EXPLAIN
 * are generic code over these tables; adding a resource is adding an entry.
 * Field names, filters and operators are those the DALP REST API
 * (/api/v2) documents for each collection; column names and types are the
 * SQL interface the README's "Tables" lists.
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

/*
 * The operator table: every DALP_OP_* bit, in the order of the bits (the
 * order catalog_columns() lists them in).  Clause classification and
 * request building (deparse.c), EXPLAIN and catalog_columns() read it;
 * adding an operator is adding its bit and its row, and naming the bit in
 * the ops of the columns the contract allows it on.
 */
static const DalpOperatorDef operator_defs[] = {
	{.bit = DALP_OP_EQ, .api = "eq", .sql = "=", .sql_commuted = "=",
		.value = DALP_OPVAL_ONE},
	{.bit = DALP_OP_NE, .api = "ne", .sql = "<>", .sql_commuted = "<>",
		.negated = true, .value = DALP_OPVAL_ONE},
	{.bit = DALP_OP_GT, .api = "gt", .sql = ">", .sql_commuted = "<",
		.value = DALP_OPVAL_ONE, .bound = DALP_BOUND_LOWER},
	{.bit = DALP_OP_GTE, .api = "gte", .sql = ">=", .sql_commuted = "<=",
		.value = DALP_OPVAL_ONE, .bound = DALP_BOUND_LOWER, .inclusive = true},
	{.bit = DALP_OP_LT, .api = "lt", .sql = "<", .sql_commuted = ">",
		.value = DALP_OPVAL_ONE, .bound = DALP_BOUND_UPPER},
	{.bit = DALP_OP_LTE, .api = "lte", .sql = "<=", .sql_commuted = ">=",
		.value = DALP_OPVAL_ONE, .bound = DALP_BOUND_UPPER, .inclusive = true},
	/* ILIKE; LIKE is case-sensitive, so iLike fetches a superset */
	{.bit = DALP_OP_ILIKE, .api = "iLike", .sql = "~~*", .sql_superset = "~~",
		.value = DALP_OPVAL_PATTERN},
	/* IN (...) and = ANY (array) */
	{.bit = DALP_OP_IN, .api = "inArray", .sql = "=",
		.value = DALP_OPVAL_LIST, .explain_each = "{each of %s}"},
	/* NOT IN (...) and <> ALL (array) */
	{.bit = DALP_OP_NOT_IN, .api = "notInArray", .sql = "<>",
		.negated = true, .value = DALP_OPVAL_WHOLE_LIST},
	/* eq sent as filter[field]=value: the contract names no operator there */
	{.bit = DALP_OP_EQ_BARE, .spells = DALP_OP_EQ},
};

#define NAME_OPS	(DALP_OP_EQ | DALP_OP_NE | DALP_OP_ILIKE | DALP_OP_IN)
#define RAW_COLUMN	\
	{.name = "raw", .typid = JSONBOID, .kind = DALP_VALUE_RAW}
/* the token path takes one token, or fans out to each of a list */
#define TOKEN_COLUMN \
	{.name = "token_address", .typid = TEXTOID, .kind = DALP_VALUE_TOKEN, \
	.ops = DALP_OP_EQ | DALP_OP_IN, .case_insensitive = true}

static const DalpColumnDef token_columns[] = {
	{.name = "address", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "id", .case_insensitive = true},
	{.name = "name", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "name", .filter = "name", .ops = NAME_OPS,
		.sort = "name"},
	{.name = "symbol", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "symbol", .filter = "symbol", .ops = NAME_OPS,
		.sort = "symbol"},
	{.name = "decimals", .typid = INT4OID, .kind = DALP_VALUE_PATH,
		.json_path = "decimals"},
	{.name = "type", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "type", .filter = "type",
		.ops = DALP_OP_EQ | DALP_OP_NE | DALP_OP_IN, .facet = true},
	{.name = "factory_address", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "tokenFactory.id", .filter = "tokenFactory",
		.ops = DALP_OP_EQ | DALP_OP_IN, .case_insensitive = true},
	{.name = "total_supply", .typid = NUMERICOID, .kind = DALP_VALUE_PATH,
		.json_path = "totalSupply"},
	{.name = "total_supply_exact", .typid = NUMERICOID,
		.kind = DALP_VALUE_PATH, .json_path = "totalSupplyExact"},
	{.name = "paused", .typid = BOOLOID, .kind = DALP_VALUE_PATH,
		.json_path = "pausable.paused"},
	{.name = "created_at", .typid = TIMESTAMPTZOID, .kind = DALP_VALUE_PATH,
		.json_path = "createdAt", .filter = "createdAt", .ops = DALP_OP_RANGE,
		.sort = "createdAt"},
	{.name = "created_by", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "createdBy.id"},
	{.name = "extensions", .typid = TEXTARRAYOID, .kind = DALP_VALUE_PATH,
		.json_path = "extensions"},
	{.name = "q", .typid = TEXTOID, .kind = DALP_VALUE_SEARCH_ECHO,
		.filter = "q", .ops = DALP_OP_EQ | DALP_OP_EQ_BARE},
	RAW_COLUMN
};

static const DalpColumnDef holder_columns[] = {
	TOKEN_COLUMN,
	{.name = "account", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "account.id", .case_insensitive = true},
	{.name = "balance", .typid = NUMERICOID, .kind = DALP_VALUE_PATH,
		.json_path = "value", .filter = "value", .ops = DALP_OP_RANGE,
		.sort = "value"},
	{.name = "balance_exact", .typid = NUMERICOID, .kind = DALP_VALUE_PATH,
		.json_path = "valueExact"},
	{.name = "available", .typid = NUMERICOID, .kind = DALP_VALUE_PATH,
		.json_path = "available"},
	{.name = "frozen", .typid = NUMERICOID, .kind = DALP_VALUE_PATH,
		.json_path = "frozen"},
	{.name = "is_frozen", .typid = BOOLOID, .kind = DALP_VALUE_PATH,
		.json_path = "isFrozen", .filter = "isFrozen", .ops = DALP_OP_EQ},
	{.name = "last_updated_at", .typid = TIMESTAMPTZOID,
		.kind = DALP_VALUE_PATH, .json_path = "lastUpdatedAt"},
	RAW_COLUMN
};

static const DalpColumnDef event_columns[] = {
	TOKEN_COLUMN,
	{.name = "id", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "id"},
	{.name = "event_name", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "eventName", .filter = "eventName",
		.ops = DALP_OP_EQ | DALP_OP_NE | DALP_OP_IN | DALP_OP_NOT_IN,
		.facet = true},
	{.name = "block_number", .typid = INT8OID, .kind = DALP_VALUE_PATH,
		.json_path = "blockNumber", .sort = "blockNumber"},
	{.name = "block_timestamp", .typid = TIMESTAMPTZOID,
		.kind = DALP_VALUE_PATH, .json_path = "blockTimestamp",
		.filter = "blockTimestamp", .ops = DALP_OP_RANGE,
		.sort = "blockTimestamp"},
	{.name = "transaction_hash", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "transactionHash", .filter = "transactionHash",
		.ops = DALP_OP_EQ, .case_insensitive = true, .is_hash = true},
	{.name = "tx_index", .typid = INT4OID, .kind = DALP_VALUE_PATH,
		.json_path = "txIndex"},
	{.name = "emitter", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "emitter.id"},
	{.name = "sender", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "sender.id", .filter = "senderAddress",
		.ops = DALP_OP_EQ | DALP_OP_IN, .case_insensitive = true},
	{.name = "from_address", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "values.from"},
	{.name = "to_address", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "values.to"},
	{.name = "account", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "values.account|values.user|values.owner"},
	{.name = "amount", .typid = NUMERICOID, .kind = DALP_VALUE_PATH,
		.json_path = "values.amount"},
	{.name = "values", .typid = JSONBOID, .kind = DALP_VALUE_NAMED_VALUES,
		.json_path = "values"},
	/*
	 * The API also takes accountAddress inArray, but a search column echoes
	 * the one value searched for: with a list it could not say which value
	 * an event matched, so only "=" is sent.
	 */
	{.name = "involves_address", .typid = TEXTOID,
		.kind = DALP_VALUE_SEARCH_ECHO, .filter = "accountAddress",
		.ops = DALP_OP_EQ | DALP_OP_IN, .case_insensitive = true},
	RAW_COLUMN
};

static const DalpColumnDef factory_columns[] = {
	{.name = "address", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "id"},
	{.name = "name", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "name", .filter = "name",
		.ops = DALP_OP_EQ | DALP_OP_ILIKE, .sort = "name"},
	{.name = "type_id", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "typeId", .filter = "typeId",
		.ops = DALP_OP_EQ | DALP_OP_IN},
	{.name = "has_tokens", .typid = BOOLOID, .kind = DALP_VALUE_PATH,
		.json_path = "hasTokens", .filter = "hasTokens", .ops = DALP_OP_EQ},
	{.name = "token_extensions", .typid = TEXTARRAYOID,
		.kind = DALP_VALUE_PATH, .json_path = "tokenExtensions"},
	RAW_COLUMN
};

static const DalpColumnDef feature_columns[] = {
	TOKEN_COLUMN,
	{.name = "feature_type_id", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "featureTypeId"},
	{.name = "address", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "address"},
	{.name = "attached_at", .typid = TIMESTAMPTZOID, .kind = DALP_VALUE_PATH,
		.json_path = "attachedAt"},
	RAW_COLUMN
};

static const DalpColumnDef metadata_columns[] = {
	TOKEN_COLUMN,
	{.name = "key", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "key"},
	{.name = "value", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "value"},
	{.name = "updated_at", .typid = TIMESTAMPTZOID, .kind = DALP_VALUE_PATH,
		.json_path = "updatedAt"},
	RAW_COLUMN
};

static const DalpColumnDef compliance_columns[] = {
	TOKEN_COLUMN,
	{.name = "module_address", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "module.id"},
	{.name = "type_id", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "typeId"},
	{.name = "parameters", .typid = JSONBOID, .kind = DALP_VALUE_PATH,
		.json_path = "parameters"},
	RAW_COLUMN
};

static const DalpColumnDef approval_columns[] = {
	TOKEN_COLUMN,
	{.name = "id", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "id"},
	{.name = "from_wallet", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "fromWallet"},
	{.name = "to_wallet", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "toWallet"},
	{.name = "amount", .typid = NUMERICOID, .kind = DALP_VALUE_PATH,
		.json_path = "amount"},
	{.name = "amount_exact", .typid = NUMERICOID, .kind = DALP_VALUE_PATH,
		.json_path = "amountExact"},
	{.name = "status", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "status"},
	{.name = "created_at", .typid = TIMESTAMPTZOID, .kind = DALP_VALUE_PATH,
		.json_path = "createdAt"},
	RAW_COLUMN
};

static const DalpColumnDef asset_class_columns[] = {
	{.name = "id", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "id"},
	{.name = "slug", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "slug"},
	{.name = "name", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "name"},
	{.name = "is_system", .typid = BOOLOID, .kind = DALP_VALUE_PATH,
		.json_path = "isSystem"},
	RAW_COLUMN
};

#define HEALTH_SERVICE_COLUMNS \
	{.name = "service_type", .typid = TEXTOID, .kind = DALP_VALUE_PATH, \
		.json_path = "serviceType"}, \
	{.name = "chain_id", .typid = INT8OID, .kind = DALP_VALUE_PATH, \
		.json_path = "chainId"}, \
	{.name = "network_name", .typid = TEXTOID, .kind = DALP_VALUE_PATH, \
		.json_path = "networkName"}, \
	{.name = "status", .typid = TEXTOID, .kind = DALP_VALUE_PATH, \
		.json_path = "status"}, \
	{.name = "block_height", .typid = INT8OID, .kind = DALP_VALUE_PATH, \
		.json_path = "blockHeight"}, \
	{.name = "chain_head_block", .typid = INT8OID, .kind = DALP_VALUE_PATH, \
		.json_path = "chainHeadBlock"}, \
	{.name = "sync_lag", .typid = INT8OID, .kind = DALP_VALUE_PATH, \
		.json_path = "syncLag"}, \
	{.name = "finality_lag_blocks", .typid = INT8OID, \
		.kind = DALP_VALUE_PATH, .json_path = "finalityLagBlocks"}, \
	{.name = "block_age_seconds", .typid = INT8OID, .kind = DALP_VALUE_PATH, \
		.json_path = "blockAgeSeconds"}, \
	{.name = "stall_seconds", .typid = INT8OID, .kind = DALP_VALUE_PATH, \
		.json_path = "stallSeconds"}, \
	{.name = "reindexing", .typid = BOOLOID, .kind = DALP_VALUE_PATH, \
		.json_path = "reindexing"}, \
	{.name = "updated_at", .typid = TIMESTAMPTZOID, .kind = DALP_VALUE_PATH, \
		.json_path = "updatedAt"}

static const DalpColumnDef health_service_columns[] = {
	HEALTH_SERVICE_COLUMNS,
	RAW_COLUMN
};

static const DalpColumnDef health_snapshot_columns[] = {
	{.name = "event_type", .typid = TEXTOID, .kind = DALP_VALUE_PATH,
		.json_path = "eventType"},
	HEALTH_SERVICE_COLUMNS,
	{.name = "created_at", .typid = TIMESTAMPTZOID, .kind = DALP_VALUE_PATH,
		.json_path = "createdAt"},
	RAW_COLUMN
};

#define COLUMNS(a) .columns = a, .ncolumns = lengthof(a)

/*
 * scan_sort is an ascending order where items created while a scan pages
 * through the collection land on its last page, so offset paging neither
 * repeats nor skips them.  A collection whose items can move in its read
 * order (holders by balance) or leave it has a change marker: a resource
 * whose newest item, sorted by the reverse of its scan_sort, changes
 * whenever the collection does; see hold_stream() in scan.c.
 */
static const DalpResourceDef resource_defs[] = {
	{.name = "tokens", .path = "/tokens", .is_collection = true,
		.token_listing = true, .item_path = "/tokens/{key}", .item_key_column = "address",
		.item_404_is_empty = true, .scan_sort = "createdAt", .id_field = "id",
		.marker = "tokens", COLUMNS(token_columns)},
	/* every change of a balance is an event of the token */
	{.name = "holders", .path = "/tokens/{token}/holders",
		.is_collection = true,
		.item_path = "/tokens/{token}/holder-balances?holderAddress={key}",
		.item_key_column = "account", .id_field = "account.id",
		.marker = "events", COLUMNS(holder_columns)},
	{.name = "events", .path = "/tokens/{token}/events",
		.is_collection = true, .scan_sort = "blockTimestamp",
		.id_field = "id", .sort_ties = {"block_number", "tx_index"},
		COLUMNS(event_columns)},
	{.name = "factories", .path = "/system/factories", .is_collection = true,
		.id_field = "id", COLUMNS(factory_columns)},
	{.name = "token_features", .path = "/tokens/{token}/features",
		.is_collection = true, COLUMNS(feature_columns)},
	{.name = "token_metadata", .path = "/tokens/{token}/metadata",
		.is_collection = true, COLUMNS(metadata_columns)},
	{.name = "compliance_modules",
		.path = "/tokens/{token}/compliance-modules", .is_collection = true,
		COLUMNS(compliance_columns)},
	{.name = "transfer_approvals",
		.path = "/tokens/{token}/transfer-approvals", .is_collection = true,
		.id_field = "id", COLUMNS(approval_columns)},
	{.name = "asset_class_definitions",
		.path = "/settings/asset-class-definitions", .is_collection = true,
		.id_field = "id", COLUMNS(asset_class_columns)},
	{.name = "health_services",
		.path = "/blockchain-monitoring/health-metrics/summary",
		.rows_field = "services", COLUMNS(health_service_columns)},
	/* snapshots have no id in the contract: one per service, chain, kind and time */
	{.name = "health_snapshots",
		.path = "/blockchain-monitoring/health-snapshots",
		.is_collection = true,
		.id_field = "createdAt,eventType,serviceType,networkName",
		COLUMNS(health_snapshot_columns)},
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

/* The operator table's row of one DALP_OP_* bit. */
const DalpOperatorDef *
dalp_operator(int bit)
{
	for (int i = 0; i < lengthof(operator_defs); i++)
		if (operator_defs[i].bit == bit)
			return &operator_defs[i];
	elog(ERROR, "DALP operator bit 0x%x has no row in the operator table", bit);
	return NULL;				/* keep compiler quiet */
}

/* Does the operator take an array of values (IN, NOT IN)? */
bool
dalp_operator_is_list(const DalpOperatorDef *op)
{
	return op->value == DALP_OPVAL_LIST || op->value == DALP_OPVAL_WHOLE_LIST;
}

/*
 * The operator a built-in SQL operator is sent as: "column sqlname value",
 * "value sqlname column" when commuted, or "column sqlname ANY/ALL (array)"
 * (use_or: ANY).  *superset: the API keeps more rows than SQL does.
 */
const DalpOperatorDef *
dalp_operator_for_sql(const char *sqlname, bool array, bool use_or,
					  bool commuted, bool *superset)
{
	for (int i = 0; i < lengthof(operator_defs); i++)
	{
		const DalpOperatorDef *o = &operator_defs[i];
		const char *name = commuted ? o->sql_commuted : o->sql;

		if (dalp_operator_is_list(o) != array ||
			(array && o->negated == use_or))
			continue;
		*superset = false;
		if (name && strcmp(name, sqlname) == 0)
			return o;
		*superset = true;
		if (!commuted && o->sql_superset && strcmp(o->sql_superset, sqlname) == 0)
			return o;
	}
	return NULL;
}

/* The operator bounding a range from this end, including the value or not. */
const DalpOperatorDef *
dalp_range_operator(DalpOpBound bound, bool inclusive)
{
	for (int i = 0; i < lengthof(operator_defs); i++)
		if (operator_defs[i].bound == bound &&
			operator_defs[i].inclusive == inclusive)
			return &operator_defs[i];
	elog(ERROR, "the DALP operator table has no range bound %d", (int) bound);
	return NULL;				/* keep compiler quiet */
}

/*
 * The API's name of operator op on column col, or NULL where the column
 * sends it as filter[field]=value.
 */
const char *
dalp_operator_api_name(const DalpColumnDef *col, int op)
{
	for (int i = 0; i < lengthof(operator_defs); i++)
		if (operator_defs[i].spells == op && (col->ops & operator_defs[i].bit))
			return NULL;
	return dalp_operator(op)->api;
}

/* The listing a fan-out reads the tokens from: the resource flagged so. */
const DalpResourceDef *
dalp_token_listing(void)
{
	for (int i = 0; i < dalp_nresources; i++)
		if (resource_defs[i].token_listing)
			return &resource_defs[i];
	elog(ERROR, "the DALP resource catalog has no token listing");
	return NULL;				/* keep compiler quiet */
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
 * The operators of a column's ops as the API's names, in the table's
 * order.  A spelling (DALP_OP_EQ_BARE) is left out: it says how another
 * operator is sent.  A bit with no row in the table is an error, so that
 * the resources test fails rather than the operator going unlisted.
 */
static Datum
op_names_array(const DalpResourceDef *res, const DalpColumnDef *col)
{
	Datum		names[lengthof(operator_defs)];
	int			n = 0;
	int			listed = 0;

	for (int i = 0; i < lengthof(operator_defs); i++)
	{
		const DalpOperatorDef *o = &operator_defs[i];

		listed |= o->bit;
		if ((col->ops & o->bit) && col->filter && o->spells == 0)
			names[n++] = CStringGetTextDatum(o->api);
	}
	if ((col->ops & ~listed) != 0)
		elog(ERROR, "operator bits 0x%x of column \"%s\" of DALP resource \"%s\" have no row in the operator table",
			 col->ops & ~listed, col->name, res->name);
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
			values[7] = op_names_array(res, col);
			values[8] = text_or_null(col->sort, &nulls[8]);
			values[9] = BoolGetDatum(col->facet);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
								 values, nulls);
		}
	}
	return (Datum) 0;
}
