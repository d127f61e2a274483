/*-------------------------------------------------------------------------
 *
 * stats.c
 *		  Request statistics of the DALP foreign-data wrapper: per backend,
 *		  and (with dalp_fdw preloaded) per server for the whole cluster.
 *
 * Counters live in a hash table in TopMemoryContext, one entry per foreign
 * server this backend has talked to.  http.c counts the traffic, the scan
 * code pages and rows; dalp_fdw.stats() shows them and
 * dalp_fdw.stats_reset() zeroes them.  Entries are never removed, so a
 * pointer from dalp_stats_for stays valid for the life of the backend.
 *
 * With shared memory, each entry also remembers what it has already added
 * to its server's cluster-wide counters (shmem.c), and dalp_stats_flush
 * adds the difference: after each response, at transaction end and at
 * backend exit.  dalp_fdw.stats(true) shows those counters and
 * dalp_fdw.stats_reset(true) zeroes them.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#define DALP_STATS_COLS 16

/* A backend's counters of one server; the hash key, serverid, comes first. */
typedef struct StatsEntry
{
	DalpServerStats counters;
	DalpServerStats flushed;	/* what the cluster-wide counters have */
	int			shared_slot;	/* their slot, or -1 */
} StatsEntry;

/* One row of dalp_fdw.stats(), gathered before it is sorted. */
typedef struct DalpStatsRow
{
	char	   *database;
	char	   *server_name;
	int64		counters[DALP_STATS_NCOUNTERS];
} DalpStatsRow;

/* The counters of DalpServerStats, in the order of DalpSharedStats. */
static const size_t counter_offsets[] = {
	offsetof(DalpServerStats, requests),
	offsetof(DalpServerStats, pages),
	offsetof(DalpServerStats, rows),
	offsetof(DalpServerStats, bytes),
	offsetof(DalpServerStats, retries),
	offsetof(DalpServerStats, rate_limit_waits),
	offsetof(DalpServerStats, errors),
	offsetof(DalpServerStats, connections_opened),
	offsetof(DalpServerStats, network_wait_us),
	offsetof(DalpServerStats, responses_429),
	offsetof(DalpServerStats, retry_after_waits),
	offsetof(DalpServerStats, budget_wait_us),
};

StaticAssertDecl(lengthof(counter_offsets) == DALP_STATS_NCOUNTERS,
				 "counter_offsets must list every counter");

/* Indexes into counter_offsets, for the output columns. */
enum
{
	C_REQUESTS, C_PAGES, C_ROWS, C_BYTES, C_RETRIES, C_RATE_LIMIT_WAITS,
	C_ERRORS, C_CONNECTIONS, C_NETWORK_WAIT_US, C_RESPONSES_429,
	C_RETRY_AFTER_WAITS, C_BUDGET_WAIT_US
};

#define COUNTER(stats, c) (*(int64 *) ((char *) (stats) + counter_offsets[c]))

static HTAB *dalp_stats = NULL;
static TimestampTz dalp_stats_since = 0;	/* this backend's counting began */

static void stats_xact_callback(XactEvent event, void *arg);
static void stats_exit(int code, Datum arg);
static int	stats_row_cmp(const void *a, const void *b);
static void put_rows(ReturnSetInfo *rsinfo, DalpStatsRow *rows, int nrows,
					 TimestampTz since);

/* The counters of a server, created zeroed on first use. */
DalpServerStats *
dalp_stats_for(Oid serverid)
{
	StatsEntry *entry;
	bool		found;

	if (dalp_stats == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(StatsEntry);
		ctl.hcxt = TopMemoryContext;
		dalp_stats = hash_create("dalp_fdw server statistics", 8, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		dalp_stats_since = GetCurrentTimestamp();
		RegisterXactCallback(stats_xact_callback, NULL);
		before_shmem_exit(stats_exit, (Datum) 0);
	}

	entry = hash_search(dalp_stats, &serverid, HASH_ENTER, &found);
	if (!found)
	{
		memset(entry, 0, sizeof(StatsEntry));
		entry->counters.serverid = serverid;
		/* stays -1 (counted for this backend only) if the lookup fails */
		entry->shared_slot = -1;
		entry->shared_slot =
			dalp_shared_stats_slot(serverid, GetForeignServer(serverid)->servername);
	}
	return &entry->counters;
}

/*
 * Add to the cluster-wide counters what this backend counted since its last
 * flush.  Never raises an ERROR: also runs at abort and at exit.
 */
void
dalp_stats_flush(void)
{
	HASH_SEQ_STATUS scan;
	StatsEntry *entry;

	if (dalp_stats == NULL || !dalp_shared_enabled())
		return;
	hash_seq_init(&scan, dalp_stats);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		int64		deltas[DALP_STATS_NCOUNTERS];

		if (entry->shared_slot < 0)
			continue;
		for (int c = 0; c < DALP_STATS_NCOUNTERS; c++)
			deltas[c] = COUNTER(&entry->counters, c) - COUNTER(&entry->flushed, c);
		dalp_shared_stats_add(entry->shared_slot, deltas);
		entry->flushed = entry->counters;
	}
}

/* The rows of a statement's last page are counted after its last response. */
static void
stats_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
		dalp_stats_flush();
}

/*
 * Backend exit (pg_terminate_backend included), while shared memory is
 * still there: what was counted since the last flush.
 */
static void
stats_exit(int code, Datum arg)
{
	dalp_stats_flush();
}

static int
stats_row_cmp(const void *a, const void *b)
{
	const DalpStatsRow *ra = (const DalpStatsRow *) a;
	const DalpStatsRow *rb = (const DalpStatsRow *) b;
	int			cmp;

	/* "(other)" has no database: last */
	if ((ra->database == NULL) != (rb->database == NULL))
		return ra->database == NULL ? 1 : -1;
	if (ra->database != NULL && (cmp = strcmp(ra->database, rb->database)) != 0)
		return cmp;
	return strcmp(ra->server_name, rb->server_name);
}

static void
put_rows(ReturnSetInfo *rsinfo, DalpStatsRow *rows, int nrows,
		 TimestampTz since)
{
	qsort(rows, nrows, sizeof(DalpStatsRow), stats_row_cmp);
	for (int i = 0; i < nrows; i++)
	{
		const int64 *c = rows[i].counters;
		Datum		values[DALP_STATS_COLS];
		bool		nulls[DALP_STATS_COLS] = {0};
		NameData   *name = palloc(sizeof(NameData));
		NameData   *database = palloc(sizeof(NameData));

		namestrcpy(name, rows[i].server_name);
		values[0] = NameGetDatum(name);
		values[1] = Int64GetDatum(c[C_REQUESTS]);
		values[2] = Int64GetDatum(c[C_PAGES]);
		values[3] = Int64GetDatum(c[C_ROWS]);
		values[4] = Int64GetDatum(c[C_BYTES]);
		values[5] = Int64GetDatum(c[C_RETRIES]);
		values[6] = Int64GetDatum(c[C_RATE_LIMIT_WAITS]);
		values[7] = Int64GetDatum(c[C_ERRORS]);
		values[8] = Int64GetDatum(c[C_CONNECTIONS]);
		values[9] = Float8GetDatum(c[C_NETWORK_WAIT_US] / 1000.0);
		values[10] = Int64GetDatum(c[C_RESPONSES_429]);
		values[11] = Int64GetDatum(c[C_RETRY_AFTER_WAITS]);
		values[12] = Float8GetDatum(c[C_BUDGET_WAIT_US] / 1000.0);
		if (rows[i].database != NULL)
		{
			namestrcpy(database, rows[i].database);
			values[13] = NameGetDatum(database);
		}
		else
			nulls[13] = true;
		values[14] = CStringGetTextDatum(dalp_shared_enabled() ? "cluster" : "backend");
		values[15] = TimestampTzGetDatum(since);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
}

static void
require_shared(const char *what)
{
	if (!dalp_shared_enabled())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s needs dalp_fdw in shared_preload_libraries", what),
				 errdetail("Without it, each backend counts and budgets its requests on its own."),
				 errhint("Add dalp_fdw to shared_preload_libraries and restart the server, or call dalp_fdw.stats() for this session's counters.")));
}

/*
 * dalp_fdw.stats(cluster): with false, one row per server this backend
 * used; with true, one row per server any backend used since server start
 * or dalp_fdw.stats_reset(true).  By database and server name.  Servers
 * dropped since are left out of the backend's rows: their name is gone.
 * The "budget" column says whether request budgets are per backend or
 * shared by the cluster.
 */
PG_FUNCTION_INFO_V1(dalp_fdw_stats);

Datum
dalp_fdw_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		cluster = PG_GETARG_BOOL(0);
	DalpStatsRow *rows;
	int			nrows = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (cluster)
	{
		DalpSharedStats *shared;
		TimestampTz since;
		int			n;

		require_shared("dalp_fdw.stats(true)");
		/* this backend's latest counts too */
		dalp_stats_flush();
		n = dalp_shared_read_stats(&shared, &since);
		rows = palloc(Max(n, 1) * sizeof(DalpStatsRow));
		for (int i = 0; i < n; i++)
		{
			rows[i].database = OidIsValid(shared[i].dbid) ?
				get_database_name(shared[i].dbid) : NULL;
			rows[i].server_name = NameStr(shared[i].server);
			memcpy(rows[i].counters, shared[i].counters,
				   sizeof(rows[i].counters));
			/* a database dropped since: its counters go with it */
			if (rows[i].database != NULL || !OidIsValid(shared[i].dbid))
				rows[nrows++] = rows[i];
		}
		put_rows(rsinfo, rows, nrows, since);
		return (Datum) 0;
	}

	if (dalp_stats == NULL)
		return (Datum) 0;

	{
		HASH_SEQ_STATUS scan;
		StatsEntry *entry;
		DalpServerStats *copies;
		int			ncopies = 0;
		char	   *database = get_database_name(MyDatabaseId);

		/*
		 * Copy the counters first: looking up server names reads the
		 * catalogs, which is better not done with a hash scan open.
		 */
		copies = palloc(Max(hash_get_num_entries(dalp_stats), 1) *
						sizeof(DalpServerStats));
		hash_seq_init(&scan, dalp_stats);
		while ((entry = hash_seq_search(&scan)) != NULL)
			copies[ncopies++] = entry->counters;

		rows = palloc(Max(ncopies, 1) * sizeof(DalpStatsRow));
		for (int i = 0; i < ncopies; i++)
		{
			ForeignServer *server;

			server = GetForeignServerExtended(copies[i].serverid,
											  FSV_MISSING_OK);
			if (server == NULL)
				continue;
			rows[nrows].database = database;
			rows[nrows].server_name = server->servername;
			for (int c = 0; c < DALP_STATS_NCOUNTERS; c++)
				rows[nrows].counters[c] = COUNTER(&copies[i], c);
			nrows++;
		}
		put_rows(rsinfo, rows, nrows, dalp_stats_since);
	}
	return (Datum) 0;
}

/*
 * dalp_fdw.stats_reset(cluster): zero this backend's counters, or with
 * true the cluster-wide ones.  The backend's entries stay, since a scan in
 * progress may hold a pointer to one; what they counted before is added to
 * the cluster-wide counters first.
 */
PG_FUNCTION_INFO_V1(dalp_fdw_stats_reset);

Datum
dalp_fdw_stats_reset(PG_FUNCTION_ARGS)
{
	bool		cluster = PG_GETARG_BOOL(0);
	HASH_SEQ_STATUS scan;
	StatsEntry *entry;

	if (cluster)
	{
		require_shared("dalp_fdw.stats_reset(true)");
		dalp_stats_flush();
		dalp_shared_stats_reset();
		PG_RETURN_VOID();
	}

	if (dalp_stats == NULL)
		PG_RETURN_VOID();

	dalp_stats_flush();
	hash_seq_init(&scan, dalp_stats);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		Oid			serverid = entry->counters.serverid;

		memset(&entry->counters, 0, sizeof(DalpServerStats));
		entry->counters.serverid = serverid;
		entry->flushed = entry->counters;
	}
	dalp_stats_since = GetCurrentTimestamp();
	PG_RETURN_VOID();
}
