/*-------------------------------------------------------------------------
 *
 * import.c
 *		  IMPORT FOREIGN SCHEMA v2: one foreign table per catalog resource.
 *
 * The statements are generated from the catalog, so the imported tables
 * always carry exactly the columns the decoder knows.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "nodes/parsenodes.h"
#include "utils/builtins.h"

/* Is the table listed in LIMIT TO / EXCEPT? */
static bool
table_listed(ImportForeignSchemaStmt *stmt, const char *name)
{
	ListCell   *lc;

	foreach(lc, stmt->table_list)
		if (strcmp(((RangeVar *) lfirst(lc))->relname, name) == 0)
			return true;
	return false;
}

/*
 * ImportForeignSchema
 *		Return the CREATE FOREIGN TABLE commands of the catalog's resources,
 *		as LIMIT TO/EXCEPT select them.
 */
List *
dalp_import_foreign_schema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	ForeignServer *server = GetForeignServer(serverOid);
	List	   *commands = NIL;

	if (strcmp(stmt->remote_schema, "v2") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_SCHEMA_NOT_FOUND),
				 errmsg("DALP has no remote schema \"%s\"", stmt->remote_schema),
				 errhint("Use IMPORT FOREIGN SCHEMA v2 FROM SERVER %s INTO ...;",
						 quote_identifier(server->servername))));

	for (int i = 0; i < dalp_nresources; i++)
	{
		const DalpResourceDef *res = dalp_resource_at(i);
		StringInfoData buf;

		if (stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO &&
			!table_listed(stmt, res->name))
			continue;
		if (stmt->list_type == FDW_IMPORT_SCHEMA_EXCEPT &&
			table_listed(stmt, res->name))
			continue;

		initStringInfo(&buf);
		appendStringInfo(&buf, "CREATE FOREIGN TABLE %s (\n",
						 quote_identifier(res->name));
		for (int c = 0; c < res->ncolumns; c++)
			appendStringInfo(&buf, "  %s %s%s\n",
							 quote_identifier(res->columns[c].name),
							 format_type_be(res->columns[c].typid),
							 c + 1 < res->ncolumns ? "," : "");
		appendStringInfo(&buf, ") SERVER %s OPTIONS (resource %s)",
						 quote_identifier(server->servername),
						 quote_literal_cstr(res->name));
		commands = lappend(commands, buf.data);
	}
	return commands;
}
