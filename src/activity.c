/*-------------------------------------------------------------------------
 *
 * activity.c
 *		  What this backend is asking DALP, for the dalp_fdw.activity view.
 *
 * The backend writes its activity slot in shared memory (shmem.c) as it
 * goes: scan.c reports the scans it begins, the pages and rows it reads;
 * http.c the request it waits for, its retries and what the wait is;
 * sync_events and take_snapshot their phases through
 * dalp_fdw.set_phase().  The slot shows a row while the backend uses the
 * API: a foreign scan is open, one of those functions runs, or (planning
 * with use_remote_estimate) a request is awaited.
 *
 * A row's counters (pages, rows, retries) are those of the current
 * statement, or of the current phase inside sync_events and take_snapshot.
 * A scan counts as open until its executor state is freed, which also
 * happens when a (sub)transaction aborts; and the end of a transaction
 * clears everything, so an ERROR cannot leave a stale row.
 *
 * Without shared memory (dalp_fdw not preloaded) nothing here does
 * anything, and the view says so.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#define DALP_ACTIVITY_COLS 14

/* A scan open in this backend, until its query's memory goes away. */
typedef struct OpenScan
{
	MemoryContextCallback cb;
	uint64		generation;
	bool		rows;			/* returns rows (else counts) */
} OpenScan;

static const char *const command_names[] = {
	[DALP_CMD_NONE] = NULL,
	[DALP_CMD_SCAN] = "scan",
	[DALP_CMD_COUNT] = "count",
	[DALP_CMD_ESTIMATE] = "estimate",
	[DALP_CMD_SYNC_EVENTS] = "sync_events",
	[DALP_CMD_TAKE_SNAPSHOT] = "take_snapshot",
};

static const char *const phase_names[] = {
	[DALP_PHASE_NONE] = NULL,
	[DALP_PHASE_HEALTH_CHECK] = "health check",
	[DALP_PHASE_BACKFILL] = "backfill",
	[DALP_PHASE_REPLAY] = "replay",
	[DALP_PHASE_RECONCILE] = "reconcile",
};

static const char *const wait_names[] = {
	[DALP_WAIT_NONE] = NULL,
	[DALP_WAIT_NETWORK] = "network",
	[DALP_WAIT_BACKOFF] = "backoff",
	[DALP_WAIT_RATE_LIMIT] = "rate_limit",
	[DALP_WAIT_RETRY_AFTER] = "retry_after",
};

/* This backend's state; the slot mirrors it. */
static DalpActivitySlot *my_slot = NULL;
static bool callbacks_registered = false;
static uint64 generation = 1;	/* bumped at transaction end */
static int	open_scans = 0;
static int	open_row_scans = 0;
static bool in_request = false;
static DalpCommand function_command = DALP_CMD_NONE;
static int	function_nest_level = 0;

/* Bracket every write to the slot; no ERROR may come in between. */
#define BEGIN_WRITE(slot) \
	do { \
		START_CRIT_SECTION(); \
		(slot)->changecount++; \
		pg_write_barrier(); \
	} while (0)
#define END_WRITE(slot) \
	do { \
		pg_write_barrier(); \
		(slot)->changecount++; \
		Assert(((slot)->changecount & 1) == 0); \
		END_CRIT_SECTION(); \
	} while (0)

static DalpActivitySlot *slot_for_writing(void);
static DalpCommand current_command(void);
static void publish_command(DalpActivitySlot *slot);
static void reset_counters(DalpActivitySlot *slot);
static void scan_closed(void *arg);
static void activity_xact_callback(XactEvent event, void *arg);
static void activity_subxact_callback(SubXactEvent event,
									  SubTransactionId mySubid,
									  SubTransactionId parentSubid,
									  void *arg);
static void forget_all(void);
static int	name_index(const char *const *names, int count, const char *name);
static Datum name_datum(const char *name);

/*
 * The slot, claimed on first use together with the transaction callbacks
 * that clear it; NULL without shared memory.
 */
static DalpActivitySlot *
slot_for_writing(void)
{
	if (my_slot != NULL)
		return my_slot;
	if (!dalp_shared_enabled())
		return NULL;
	if (!callbacks_registered)
	{
		RegisterXactCallback(activity_xact_callback, NULL);
		RegisterSubXactCallback(activity_subxact_callback, NULL);
		callbacks_registered = true;
	}
	my_slot = dalp_shared_my_activity();
	if (my_slot != NULL)
	{
		BEGIN_WRITE(my_slot);
		my_slot->dbid = MyDatabaseId;
		my_slot->userid = GetSessionUserId();
		my_slot->command = DALP_CMD_NONE;
		END_WRITE(my_slot);
	}
	return my_slot;
}

static DalpCommand
current_command(void)
{
	if (function_command != DALP_CMD_NONE)
		return function_command;
	if (open_row_scans > 0)
		return DALP_CMD_SCAN;
	if (open_scans > 0)
		return DALP_CMD_COUNT;
	if (in_request)
		return DALP_CMD_ESTIMATE;
	return DALP_CMD_NONE;
}

/* Caller is inside BEGIN_WRITE. */
static void
publish_command(DalpActivitySlot *slot)
{
	slot->command = current_command();
	if (slot->command == DALP_CMD_NONE)
	{
		slot->phase = DALP_PHASE_NONE;
		slot->wait = DALP_WAIT_NONE;
	}
}

/* Caller is inside BEGIN_WRITE. */
static void
reset_counters(DalpActivitySlot *slot)
{
	slot->pages_done = 0;
	slot->pages_expected = 0;
	slot->rows = 0;
	slot->retries = 0;
}

/*
 * A foreign scan starts executing (not for a plain EXPLAIN).  It counts as
 * open until query_cxt, its executor state's memory, goes away.
 */
void
dalp_activity_scan_begin(const char *server, bool returns_rows,
						 MemoryContext query_cxt)
{
	DalpActivitySlot *slot = slot_for_writing();
	OpenScan   *scan;
	TimestampTz now;

	if (slot == NULL)
		return;
	scan = MemoryContextAllocZero(query_cxt, sizeof(OpenScan));
	scan->generation = generation;
	scan->rows = returns_rows;
	scan->cb.func = scan_closed;
	scan->cb.arg = scan;
	MemoryContextRegisterResetCallback(query_cxt, &scan->cb);
	now = GetCurrentTimestamp();

	BEGIN_WRITE(slot);
	/* a new statement, outside sync_events and take_snapshot */
	if (slot->command == DALP_CMD_NONE ||
		(open_scans == 0 && function_command == DALP_CMD_NONE))
	{
		reset_counters(slot);
		slot->started = now;
		slot->path[0] = '\0';
	}
	open_scans++;
	if (returns_rows)
		open_row_scans++;
	namestrcpy(&slot->server, server);
	publish_command(slot);
	END_WRITE(slot);
}

static void
scan_closed(void *arg)
{
	OpenScan   *scan = (OpenScan *) arg;

	if (scan->generation != generation || my_slot == NULL)
		return;
	open_scans--;
	if (scan->rows)
		open_row_scans--;
	BEGIN_WRITE(my_slot);
	publish_command(my_slot);
	END_WRITE(my_slot);
}

/* A page arrived; expected_more: pages its meta.total adds to those expected. */
void
dalp_activity_page(int64 expected_more)
{
	if (my_slot == NULL)
		return;
	BEGIN_WRITE(my_slot);
	my_slot->pages_done++;
	my_slot->pages_expected += expected_more;
	END_WRITE(my_slot);
}

void
dalp_activity_row(void)
{
	if (my_slot == NULL)
		return;
	BEGIN_WRITE(my_slot);
	my_slot->rows++;
	END_WRITE(my_slot);
}

void
dalp_activity_retry(void)
{
	if (my_slot == NULL)
		return;
	BEGIN_WRITE(my_slot);
	my_slot->retries++;
	END_WRITE(my_slot);
}

/*
 * The backend waits for the answer to a request: display_path is the path
 * already decoded for messages, which never holds the key.
 */
void
dalp_activity_request(const char *server, const char *display_path)
{
	DalpActivitySlot *slot = slot_for_writing();
	int			len;

	if (slot == NULL)
		return;
	len = strlen(display_path);
	if (len >= DALP_ACTIVITY_PATH_LEN)
		len = pg_mbcliplen(display_path, len, DALP_ACTIVITY_PATH_LEN - 1);
	in_request = true;
	BEGIN_WRITE(slot);
	if (slot->command == DALP_CMD_NONE)
	{
		reset_counters(slot);
		slot->started = GetCurrentTimestamp();
	}
	namestrcpy(&slot->server, server);
	memcpy(slot->path, display_path, len);
	slot->path[len] = '\0';
	publish_command(slot);
	END_WRITE(slot);
}

/*
 * What the awaited request is waiting for now; DALP_WAIT_NONE: the wait is
 * over (answered or failed).
 */
void
dalp_activity_wait(DalpWaitKind kind)
{
	if (my_slot == NULL)
		return;
	if (kind == DALP_WAIT_NONE)
		in_request = false;
	else if (my_slot->wait == kind)
		return;
	BEGIN_WRITE(my_slot);
	my_slot->wait = kind;
	my_slot->wait_since = GetCurrentTimestamp();
	publish_command(my_slot);
	END_WRITE(my_slot);
}

/* Nothing of this backend is using the API any more. */
static void
forget_all(void)
{
	generation++;
	open_scans = 0;
	open_row_scans = 0;
	in_request = false;
	function_command = DALP_CMD_NONE;
	if (my_slot == NULL)
		return;
	BEGIN_WRITE(my_slot);
	publish_command(my_slot);
	END_WRITE(my_slot);
}

static void
activity_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			forget_all();
			break;
		default:
			break;
	}
}

/*
 * An ERROR caught by an exception block: the request it interrupted is no
 * longer awaited, and a sync_events or take_snapshot it came out of ended.
 */
static void
activity_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	in_request = false;
	if (function_command != DALP_CMD_NONE &&
		function_nest_level >= GetCurrentTransactionNestLevel())
		function_command = DALP_CMD_NONE;
	if (my_slot == NULL)
		return;
	BEGIN_WRITE(my_slot);
	my_slot->wait = DALP_WAIT_NONE;
	publish_command(my_slot);
	END_WRITE(my_slot);
}

/* A value of type name; palloc'd, as a name Datum must span NAMEDATALEN. */
static Datum
name_datum(const char *name)
{
	NameData   *n = palloc(sizeof(NameData));

	namestrcpy(n, name);
	return NameGetDatum(n);
}

static int
name_index(const char *const *names, int count, const char *name)
{
	for (int i = 1; i < count; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

/*
 * dalp_fdw.set_phase(command, phase): sync_events and take_snapshot say
 * what they are doing.  The outermost command owns the row: take_snapshot's
 * own calls of sync_events change nothing.  A NULL phase ends the command.
 */
PG_FUNCTION_INFO_V1(dalp_fdw_set_phase);

Datum
dalp_fdw_set_phase(PG_FUNCTION_ARGS)
{
	char	   *command_text;
	int			command;
	int			phase = DALP_PHASE_NONE;
	DalpActivitySlot *slot;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("command must not be NULL")));
	command_text = text_to_cstring(PG_GETARG_TEXT_PP(0));
	command = name_index(command_names, lengthof(command_names), command_text);
	if (command != DALP_CMD_SYNC_EVENTS && command != DALP_CMD_TAKE_SNAPSHOT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown command \"%s\"", command_text),
				 errhint("Use sync_events or take_snapshot.")));
	if (!PG_ARGISNULL(1))
	{
		char	   *phase_text = text_to_cstring(PG_GETARG_TEXT_PP(1));

		phase = name_index(phase_names, lengthof(phase_names), phase_text);
		if (phase < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown phase \"%s\"", phase_text),
					 errhint("Use health check, backfill, replay or reconcile, or NULL to end the command.")));
	}

	slot = slot_for_writing();
	if (function_command != DALP_CMD_NONE && function_command != command)
		PG_RETURN_VOID();
	if (phase == DALP_PHASE_NONE)
		function_command = DALP_CMD_NONE;
	else
	{
		if (function_command == DALP_CMD_NONE)
			function_nest_level = GetCurrentTransactionNestLevel();
		function_command = command;
	}
	if (slot == NULL)
		PG_RETURN_VOID();

	BEGIN_WRITE(slot);
	if (phase != DALP_PHASE_NONE && slot->command != function_command)
		slot->started = GetCurrentTimestamp();
	if (phase != slot->phase)
		reset_counters(slot);
	slot->phase = phase;
	publish_command(slot);
	END_WRITE(slot);
	PG_RETURN_VOID();
}

/*
 * dalp_fdw.activity_rows(), behind the view dalp_fdw.activity: one row per
 * backend using the API.  As pg_stat_activity does, rows of sessions of
 * other roles show who and where only, unless the reader has the privileges
 * of pg_read_all_stats.
 */
PG_FUNCTION_INFO_V1(dalp_fdw_activity_rows);

Datum
dalp_fdw_activity_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DalpActivitySlot *rows;
	int			nrows;
	bool		read_all;

	InitMaterializedSRF(fcinfo, 0);
	if (!dalp_shared_enabled())
	{
		ereport(NOTICE,
				(errmsg("dalp_fdw is not in shared_preload_libraries, so no backend shares its activity"),
				 errdetail("Each backend has a request budget of its own, and this view stays empty."),
				 errhint("Add dalp_fdw to shared_preload_libraries and restart the server.")));
		return (Datum) 0;
	}
	read_all = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	nrows = dalp_shared_read_activity(&rows);
	for (int i = 0; i < nrows; i++)
	{
		DalpActivitySlot *r = &rows[i];
		Datum		values[DALP_ACTIVITY_COLS];
		bool		nulls[DALP_ACTIVITY_COLS] = {0};
		char	   *datname = get_database_name(r->dbid);
		char	   *usename = GetUserNameFromId(r->userid, true);

		values[0] = Int32GetDatum(r->pid);
		nulls[1] = datname == NULL;
		values[1] = datname ? name_datum(datname) : (Datum) 0;
		nulls[2] = usename == NULL;
		values[2] = usename ? name_datum(usename) : (Datum) 0;
		if (!read_all && !has_privs_of_role(GetUserId(), r->userid))
		{
			for (int c = 3; c < DALP_ACTIVITY_COLS; c++)
				nulls[c] = true;
			nulls[6] = false;
			values[6] = CStringGetTextDatum("<insufficient privilege>");
		}
		else
		{
			values[3] = NameGetDatum(&r->server);
			values[4] = CStringGetTextDatum(command_names[r->command]);
			nulls[5] = r->phase == DALP_PHASE_NONE;
			if (!nulls[5])
				values[5] = CStringGetTextDatum(phase_names[r->phase]);
			nulls[6] = r->path[0] == '\0';
			values[6] = CStringGetTextDatum(r->path);
			values[7] = Int64GetDatum(r->pages_done);
			nulls[8] = r->pages_expected == 0;
			values[8] = Int64GetDatum(r->pages_expected);
			values[9] = Int64GetDatum(r->rows);
			values[10] = Int64GetDatum(r->retries);
			nulls[11] = nulls[12] = r->wait == DALP_WAIT_NONE;
			if (!nulls[11])
				values[11] = CStringGetTextDatum(wait_names[r->wait]);
			values[12] = TimestampTzGetDatum(r->wait_since);
			values[13] = TimestampTzGetDatum(r->started);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
