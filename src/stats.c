/*-------------------------------------------------------------------------
 *
 * stats.c
 *		  Per-backend request statistics of the DALP foreign-data wrapper.
 *
 * Counters live in a hash table in TopMemoryContext, one entry per foreign
 * server this backend has talked to.  http.c counts the traffic, the scan
 * code pages and rows; dalp_fdw.stats() shows them and
 * dalp_fdw.stats_reset() zeroes them.  Entries are never removed, so a
 * pointer from dalp_stats_for stays valid for the life of the backend.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "foreign/foreign.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#define DALP_STATS_COLS 10

/* One row of dalp_fdw.stats(), gathered before it is sorted. */
typedef struct DalpStatsRow
{
	char	   *server_name;
	DalpServerStats counters;
} DalpStatsRow;

static HTAB *dalp_stats = NULL;

static int	stats_row_cmp(const void *a, const void *b);

/* The counters of a server, created zeroed on first use. */
DalpServerStats *
dalp_stats_for(Oid serverid)
{
	DalpServerStats *entry;
	bool		found;

	if (dalp_stats == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(DalpServerStats);
		ctl.hcxt = TopMemoryContext;
		dalp_stats = hash_create("dalp_fdw server statistics", 8, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	entry = hash_search(dalp_stats, &serverid, HASH_ENTER, &found);
	if (!found)
	{
		memset(entry, 0, sizeof(DalpServerStats));
		entry->serverid = serverid;
	}
	return entry;
}

static int
stats_row_cmp(const void *a, const void *b)
{
	return strcmp(((const DalpStatsRow *) a)->server_name,
				  ((const DalpStatsRow *) b)->server_name);
}

/*
 * dalp_fdw.stats(): one row per server this backend used, by server name.
 * Servers dropped since are left out: their name is gone.
 */
PG_FUNCTION_INFO_V1(dalp_fdw_stats);

Datum
dalp_fdw_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DalpStatsRow *rows;
	int			nentries;
	int			nrows = 0;
	HASH_SEQ_STATUS scan;
	DalpServerStats *entry;

	InitMaterializedSRF(fcinfo, 0);
	if (dalp_stats == NULL)
		return (Datum) 0;

	/*
	 * Copy the counters first: looking up server names reads the catalogs,
	 * which is better not done with a hash scan open.
	 */
	nentries = hash_get_num_entries(dalp_stats);
	rows = palloc(Max(nentries, 1) * sizeof(DalpStatsRow));
	hash_seq_init(&scan, dalp_stats);
	while ((entry = hash_seq_search(&scan)) != NULL)
		rows[nrows++].counters = *entry;

	nentries = nrows;
	nrows = 0;
	for (int i = 0; i < nentries; i++)
	{
		ForeignServer *server;

		server = GetForeignServerExtended(rows[i].counters.serverid,
										  FSV_MISSING_OK);
		if (server == NULL)
			continue;
		rows[nrows].counters = rows[i].counters;
		rows[nrows].server_name = server->servername;
		nrows++;
	}
	qsort(rows, nrows, sizeof(DalpStatsRow), stats_row_cmp);

	for (int i = 0; i < nrows; i++)
	{
		const DalpServerStats *c = &rows[i].counters;
		Datum		values[DALP_STATS_COLS];
		bool		nulls[DALP_STATS_COLS] = {0};
		NameData   *name = palloc(sizeof(NameData));

		namestrcpy(name, rows[i].server_name);
		values[0] = NameGetDatum(name);
		values[1] = Int64GetDatum(c->requests);
		values[2] = Int64GetDatum(c->pages);
		values[3] = Int64GetDatum(c->rows);
		values[4] = Int64GetDatum(c->bytes);
		values[5] = Int64GetDatum(c->retries);
		values[6] = Int64GetDatum(c->rate_limit_waits);
		values[7] = Int64GetDatum(c->errors);
		values[8] = Int64GetDatum(c->connections_opened);
		values[9] = Float8GetDatum(c->network_wait_ms);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}

/*
 * dalp_fdw.stats_reset(): zero every counter.  The entries stay, since a scan
 * in progress may hold a pointer to one.
 */
PG_FUNCTION_INFO_V1(dalp_fdw_stats_reset);

Datum
dalp_fdw_stats_reset(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS scan;
	DalpServerStats *entry;

	if (dalp_stats == NULL)
		PG_RETURN_VOID();

	hash_seq_init(&scan, dalp_stats);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		Oid			serverid = entry->serverid;

		memset(entry, 0, sizeof(DalpServerStats));
		entry->serverid = serverid;
	}
	PG_RETURN_VOID();
}
