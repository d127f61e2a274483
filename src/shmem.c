/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		  The cluster-wide state of dalp_fdw: request budgets shared by every
 *		  backend that sends with one API key to one origin, the Retry-After
 *		  holds on them, one activity slot per backend, and per-server
 *		  counters.
 *
 * It exists only with shared_preload_libraries = 'dalp_fdw'.  Loaded any
 * other way, dalp_shared_enabled() is false and every caller keeps what it
 * kept before, per backend: its own token bucket, no shared hold, no
 * activity visible from other sessions, per-session counters only.
 *
 * One block of fixed size, allocated at server start; nothing in it grows,
 * and nothing is ever allocated after start (dalp_shared_size() says how
 * big it is; README gives the figure):
 *
 *   budgets   DALP_BUDGET_SLOTS slots, one per (API key, origin) in use.  A
 *             slot never holds the key: it is named by SHA-256(salt, origin,
 *             key), with a salt drawn at server start.  The budget is the
 *             generic cell rate algorithm in its "virtual scheduling" form,
 *             which needs a single timestamp: the theoretical arrival time
 *             (TAT) of the next request.  A request of a server allowing
 *             R requests a minute costs T = 60 s / R; it may leave at
 *             max(now, TAT - tau), where tau = max(0, 1 s - T) is the burst
 *             a second's worth of budget allows, as the per-backend bucket
 *             does; then TAT = max(that time, TAT) + T.  A backend that must
 *             wait reserves its send time this way and sleeps until then, so
 *             waiters are served in the order they asked (no backend
 *             starves), and http.c lets each backend hold one future
 *             reservation per budget at a time, so that a scan with many
 *             pages in flight queues behind other backends one request at a
 *             time (each backend gets its turn: fair shares).  In any window
 *             of W seconds at most W * R / 60 + R / 60 requests leave.
 *             A 429 with Retry-After sets held_until, which every backend
 *             checks before sending, and moves TAT past it so that the
 *             requests after the hold are paced, not a burst.
 *             A slot whose TAT and hold are more than a second old is
 *             indistinguishable from a new one, so it is reused for another
 *             key: 64 slots serve 64 keys busy at the same moment; beyond
 *             that, requests fall back to their backend's own bucket.
 *   activity  MaxBackends slots, one claimed by each backend on its first
 *             DALP request and given back when it exits.  Only the owner
 *             writes its slot, bracketed by a change counter (odd while it
 *             writes), which readers check as pg_stat_activity's readers
 *             check st_changecount: no lock on the per-row path.
 *   counters  DALP_STATS_SLOTS slots, one per (database, foreign server),
 *             plus one that counts every server that found the table full.
 *             Backends add what they counted since their last flush with
 *             atomic adds (stats.c flushes after each response and at
 *             transaction end); slots are never freed, only zeroed by
 *             dalp_fdw.stats_reset(true).
 *
 * Locks: one LWLock for the budgets (each operation is a few comparisons
 * under it, held for no more than a lookup among 64 slots), one for claiming
 * activity slots and creating counter slots.  No ERROR can be raised while
 * either is held.
 *
 * Exit: a backend gives its activity slot back and its unsent reservation
 * (when it is the last one taken) in a before_shmem_exit callback, so
 * pg_terminate_backend leaves no row and no budget taken.  A backend that
 * dies without running it (kill -9) makes the postmaster reinitialize
 * shared memory, and this block with it: after a crash restart every budget,
 * hold, row and counter starts afresh, and LWLocks are new.
 *
 * Times are CLOCK_MONOTONIC microseconds, the same in every process of the
 * machine, so that a step of the wall clock cannot stall the budget.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include <time.h>

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#define DALP_BUDGET_SLOTS	64
#define DALP_STATS_SLOTS	128
#define DALP_TRANCHE		"dalp_fdw"

/* A budget of one (API key, origin). */
typedef struct DalpBudget
{
	bool		in_use;
	uint8		key[DALP_BUDGET_KEY_LEN];
	int64		tat;			/* theoretical arrival time of the next
								 * request */
	int64		held_until;		/* no request before this (Retry-After) */
} DalpBudget;

typedef struct DalpStatsSlot
{
	Oid			dbid;
	Oid			serverid;
	NameData	server;
	pg_atomic_uint64 counters[DALP_STATS_NCOUNTERS];
} DalpStatsSlot;

typedef struct DalpShared
{
	LWLock	   *budget_lock;
	LWLock	   *slot_lock;		/* activity claims, counter slot creation */
	uint8		salt[32];
	TimestampTz stats_since;	/* under slot_lock */
	int			nstats;			/* counter slots in use, under slot_lock */
	DalpBudget	budgets[DALP_BUDGET_SLOTS];
	DalpStatsSlot stats[DALP_STATS_SLOTS + 1];	/* the last: "(other)" */
	int			nactivity;
	DalpActivitySlot activity[FLEXIBLE_ARRAY_MEMBER];
} DalpShared;

static DalpShared *dalp_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static int	my_activity = -1;	/* index of this backend's activity slot */
static bool my_activity_gone = false;	/* given back at exit: not again */

static void shared_request(void);
static void shared_startup(void);
static void shared_exit(int code, Datum arg);
static DalpBudget *find_budget(DalpBudgetTicket *t, int64 now, bool create);
static int64 burst_us(int64 interval_us);

/*
 * Called from _PG_init: with the library preloaded, ask for the block and
 * its locks.  Loaded later, in a running backend, it is too late for that.
 */
void
dalp_shared_register(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shared_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shared_startup;
}

/* Bytes of the block: fixed, but for the activity slots per MaxBackends. */
Size
dalp_shared_size(void)
{
	return add_size(offsetof(DalpShared, activity),
					mul_size(MaxBackends, sizeof(DalpActivitySlot)));
}

static void
shared_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(dalp_shared_size());
	RequestNamedLWLockTranche(DALP_TRANCHE, 2);
}

/*
 * Create the block, or attach to it.  Runs in the postmaster at start and
 * after every crash restart, when shared memory is new: so a fresh block.
 */
static void
shared_startup(void)
{
	bool		found;
	LWLockPadded *locks;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	dalp_shared = ShmemInitStruct("dalp_fdw", dalp_shared_size(), &found);
	if (!found)
	{
		memset(dalp_shared, 0, dalp_shared_size());
		locks = GetNamedLWLockTranche(DALP_TRANCHE);
		dalp_shared->budget_lock = &locks[0].lock;
		dalp_shared->slot_lock = &locks[1].lock;
		if (!pg_strong_random(dalp_shared->salt, sizeof(dalp_shared->salt)))
			ereport(FATAL,
					(errmsg("could not generate a random salt for dalp_fdw's request budgets")));
		dalp_shared->stats_since = GetCurrentTimestamp();
		for (int i = 0; i <= DALP_STATS_SLOTS; i++)
			for (int c = 0; c < DALP_STATS_NCOUNTERS; c++)
				pg_atomic_init_u64(&dalp_shared->stats[i].counters[c], 0);
		namestrcpy(&dalp_shared->stats[DALP_STATS_SLOTS].server, "(other)");
		dalp_shared->nactivity = MaxBackends;
	}
	LWLockRelease(AddinShmemInitLock);
}

bool
dalp_shared_enabled(void)
{
	return dalp_shared != NULL;
}

/* Microseconds of CLOCK_MONOTONIC: comparable across the backends. */
int64
dalp_monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ----------------------------------------------------------------
 * Budgets
 * ----------------------------------------------------------------
 */

/*
 * Name the budget of (origin, API key) in key: SHA-256 over the salt, the
 * origin and the key.  Without the salt, which never leaves shared memory,
 * the name cannot be checked against a guessed key.
 */
void
dalp_budget_name(uint8 *key, const char *origin, const char *api_key)
{
	pg_cryptohash_ctx *ctx;
	bool		ok;

	memset(key, 0, DALP_BUDGET_KEY_LEN);
	if (dalp_shared == NULL)
		return;

	ctx = pg_cryptohash_create(PG_SHA256);
	ok = ctx != NULL &&
		pg_cryptohash_init(ctx) == 0 &&
		pg_cryptohash_update(ctx, dalp_shared->salt, sizeof(dalp_shared->salt)) == 0 &&
		pg_cryptohash_update(ctx, (const uint8 *) origin, strlen(origin) + 1) == 0 &&
		(api_key == NULL ||
		 pg_cryptohash_update(ctx, (const uint8 *) api_key, strlen(api_key)) == 0) &&
		pg_cryptohash_final(ctx, key, DALP_BUDGET_KEY_LEN) == 0;
	pg_cryptohash_free(ctx);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute the name of a request budget")));
}

/* A request's ticket for the budget named key, as yet unused. */
void
dalp_budget_ticket_init(DalpBudgetTicket *t, const uint8 *key)
{
	memset(t, 0, sizeof(*t));
	t->slot = -1;
	memcpy(t->key, key, DALP_BUDGET_KEY_LEN);
}

static int64
burst_us(int64 interval_us)
{
	return Max(0, INT64CONST(1000000) - interval_us);
}

/*
 * The budget slot of t's key, found by t->slot or by a search; with create,
 * a free or idle slot is taken for it.  NULL when none is left.  Caller
 * holds budget_lock exclusively.
 */
static DalpBudget *
find_budget(DalpBudgetTicket *t, int64 now, bool create)
{
	DalpBudget *b;
	int			idle = -1;

	if (t->slot >= 0)
	{
		b = &dalp_shared->budgets[t->slot];
		if (b->in_use && memcmp(b->key, t->key, sizeof(t->key)) == 0)
			return b;
	}
	for (int i = 0; i < DALP_BUDGET_SLOTS; i++)
	{
		b = &dalp_shared->budgets[i];
		if (!b->in_use ||
			(b->tat <= now - 1000000 && b->held_until <= now))
		{
			if (idle < 0)
				idle = i;
			if (!b->in_use)
				continue;
		}
		if (memcmp(b->key, t->key, sizeof(t->key)) == 0)
		{
			t->slot = i;
			return b;
		}
	}
	if (!create || idle < 0)
		return NULL;
	b = &dalp_shared->budgets[idle];
	b->in_use = true;
	memcpy(b->key, t->key, sizeof(t->key));
	b->tat = 0;
	b->held_until = 0;
	t->slot = idle;
	return b;
}

/*
 * May a request costing interval_us leave now?  DALP_BUDGET_GO: yes, and
 * its share of the budget is taken.  DALP_BUDGET_RATE or DALP_BUDGET_HOLD:
 * not before *until (a send time reserved in t, or the end of a
 * Retry-After hold).  DALP_BUDGET_LOCAL: no slot is free; use the
 * backend's own bucket.
 */
DalpBudgetVerdict
dalp_budget_take(DalpBudgetTicket *t, int64 now, int64 interval_us,
				 int64 *until)
{
	DalpBudget *b;
	DalpBudgetVerdict verdict;

	LWLockAcquire(dalp_shared->budget_lock, LW_EXCLUSIVE);
	b = find_budget(t, now, true);
	if (b == NULL)
		verdict = DALP_BUDGET_LOCAL;
	else if (b->held_until > now)
	{
		/* a time reserved before the hold is void: ask again after it */
		t->reserved_at = 0;
		*until = b->held_until;
		verdict = DALP_BUDGET_HOLD;
	}
	else if (t->reserved_at != 0)
	{
		*until = t->reserved_at;
		verdict = (t->reserved_at <= now) ? DALP_BUDGET_GO : DALP_BUDGET_RATE;
		if (verdict == DALP_BUDGET_GO)
			t->reserved_at = 0;
	}
	else
	{
		int64		at = Max(now, b->tat - burst_us(interval_us));

		t->tat_before = b->tat;
		b->tat = Max(at, b->tat) + interval_us;
		t->tat_after = b->tat;
		*until = at;
		if (at <= now)
			verdict = DALP_BUDGET_GO;
		else
		{
			t->reserved_at = at;
			verdict = DALP_BUDGET_RATE;
		}
	}
	LWLockRelease(dalp_shared->budget_lock);
	return verdict;
}

/*
 * Give back a send time reserved and not used (a cancelled query, an
 * abandoned page).  Only the last reservation can be: taking back an
 * earlier one would move later ones.  Never raises an ERROR.
 */
void
dalp_budget_release(DalpBudgetTicket *t)
{
	DalpBudget *b;

	if (t->reserved_at == 0 || dalp_shared == NULL)
		return;
	LWLockAcquire(dalp_shared->budget_lock, LW_EXCLUSIVE);
	b = find_budget(t, dalp_monotonic_us(), false);
	if (b != NULL && b->tat == t->tat_after)
		b->tat = t->tat_before;
	LWLockRelease(dalp_shared->budget_lock);
	t->reserved_at = 0;
}

/*
 * A 429 said "Retry-After": no request of this budget leaves before until,
 * and the ones after it are paced from then on rather than sent at once.
 */
void
dalp_budget_hold(DalpBudgetTicket *t, int64 until, int64 interval_us)
{
	DalpBudget *b;

	LWLockAcquire(dalp_shared->budget_lock, LW_EXCLUSIVE);
	b = find_budget(t, dalp_monotonic_us(), true);
	if (b != NULL)
	{
		b->held_until = Max(b->held_until, until);
		b->tat = Max(b->tat, until + burst_us(interval_us));
	}
	LWLockRelease(dalp_shared->budget_lock);
}

/* ----------------------------------------------------------------
 * Activity slots
 * ----------------------------------------------------------------
 */

/*
 * This backend's activity slot, claimed on first use; NULL without shared
 * memory.  The slot is given back when the backend exits.
 */
DalpActivitySlot *
dalp_shared_my_activity(void)
{
	if (dalp_shared == NULL)
		return NULL;
	if (my_activity >= 0)
		return &dalp_shared->activity[my_activity];
	if (my_activity_gone)
		return NULL;

	LWLockAcquire(dalp_shared->slot_lock, LW_EXCLUSIVE);
	for (int i = 0; i < dalp_shared->nactivity; i++)
	{
		if (dalp_shared->activity[i].pid == 0)
		{
			DalpActivitySlot *slot = &dalp_shared->activity[i];

			slot->command = DALP_CMD_NONE;
			slot->pid = MyProcPid;
			my_activity = i;
			break;
		}
	}
	LWLockRelease(dalp_shared->slot_lock);
	if (my_activity < 0)
		return NULL;			/* more backends than MaxBackends: cannot be */
	before_shmem_exit(shared_exit, (Datum) 0);
	return &dalp_shared->activity[my_activity];
}

/*
 * Backend exit (pg_terminate_backend included): give the activity slot
 * back (stats.c flushes the counters from a callback of its own).  An open
 * transaction is aborted after this, by a before_shmem_exit callback
 * registered earlier, while shared memory is still there: that abort gives
 * back unsent reservations (http.c).
 */
static void
shared_exit(int code, Datum arg)
{
	DalpActivitySlot *slot;

	if (dalp_shared == NULL || my_activity < 0)
		return;
	slot = &dalp_shared->activity[my_activity];
	LWLockAcquire(dalp_shared->slot_lock, LW_EXCLUSIVE);
	slot->command = DALP_CMD_NONE;
	slot->pid = 0;
	LWLockRelease(dalp_shared->slot_lock);
	my_activity = -1;
	my_activity_gone = true;
}

/*
 * Copy the activity slots in use into rows (palloc'd), each as its owner
 * last finished writing it.  Returns how many.
 */
int
dalp_shared_read_activity(DalpActivitySlot **rows)
{
	int			n = 0;

	if (dalp_shared == NULL)
	{
		*rows = NULL;
		return 0;
	}
	*rows = palloc(sizeof(DalpActivitySlot) * dalp_shared->nactivity);
	for (int i = 0; i < dalp_shared->nactivity; i++)
	{
		DalpActivitySlot *slot = &dalp_shared->activity[i];
		DalpActivitySlot *copy = &(*rows)[n];

		for (;;)
		{
			int			before = slot->changecount;

			pg_read_barrier();
			memcpy(copy, slot, sizeof(DalpActivitySlot));
			pg_read_barrier();
			if (before == slot->changecount && (before & 1) == 0)
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (copy->pid != 0 && copy->command != DALP_CMD_NONE)
			n++;
	}
	return n;
}

/* ----------------------------------------------------------------
 * Per-server counters
 * ----------------------------------------------------------------
 */

/*
 * The counter slot of (this database, server), created if need be; the
 * "(other)" slot when the table is full; -1 without shared memory.  The
 * name is refreshed, as the server may have been renamed.
 */
int
dalp_shared_stats_slot(Oid serverid, const char *server_name)
{
	int			slot = -1;

	if (dalp_shared == NULL)
		return -1;
	LWLockAcquire(dalp_shared->slot_lock, LW_EXCLUSIVE);
	for (int i = 0; i < dalp_shared->nstats; i++)
	{
		if (dalp_shared->stats[i].dbid == MyDatabaseId &&
			dalp_shared->stats[i].serverid == serverid)
		{
			slot = i;
			break;
		}
	}
	if (slot < 0 && dalp_shared->nstats < DALP_STATS_SLOTS)
	{
		slot = dalp_shared->nstats++;
		dalp_shared->stats[slot].dbid = MyDatabaseId;
		dalp_shared->stats[slot].serverid = serverid;
	}
	if (slot < 0)
		slot = DALP_STATS_SLOTS;
	else
		namestrcpy(&dalp_shared->stats[slot].server, server_name);
	LWLockRelease(dalp_shared->slot_lock);
	return slot;
}

void
dalp_shared_stats_add(int slot, const int64 *deltas)
{
	for (int c = 0; c < DALP_STATS_NCOUNTERS; c++)
		if (deltas[c] != 0)
			pg_atomic_fetch_add_u64(&dalp_shared->stats[slot].counters[c],
									deltas[c]);
}

/*
 * Copy the counter slots in use (the "(other)" one too, if it counted
 * anything) into rows, palloc'd; *since is when counting began.  Returns
 * how many.
 */
int
dalp_shared_read_stats(DalpSharedStats **rows, TimestampTz *since)
{
	int			n = 0;

	*rows = palloc(sizeof(DalpSharedStats) * (DALP_STATS_SLOTS + 1));
	LWLockAcquire(dalp_shared->slot_lock, LW_SHARED);
	*since = dalp_shared->stats_since;
	for (int i = 0; i <= DALP_STATS_SLOTS; i++)
	{
		DalpStatsSlot *s = &dalp_shared->stats[i];
		DalpSharedStats *row = &(*rows)[n];
		bool		any = false;

		if (i >= dalp_shared->nstats && i < DALP_STATS_SLOTS)
			continue;
		row->dbid = s->dbid;
		row->serverid = s->serverid;
		row->server = s->server;
		for (int c = 0; c < DALP_STATS_NCOUNTERS; c++)
		{
			row->counters[c] = (int64) pg_atomic_read_u64(&s->counters[c]);
			any |= row->counters[c] != 0;
		}
		if (i < DALP_STATS_SLOTS || any)
			n++;
	}
	LWLockRelease(dalp_shared->slot_lock);
	return n;
}

/* Zero every counter slot; they stay, with their servers. */
void
dalp_shared_stats_reset(void)
{
	LWLockAcquire(dalp_shared->slot_lock, LW_EXCLUSIVE);
	for (int i = 0; i <= DALP_STATS_SLOTS; i++)
		for (int c = 0; c < DALP_STATS_NCOUNTERS; c++)
			pg_atomic_write_u64(&dalp_shared->stats[i].counters[c], 0);
	dalp_shared->stats_since = GetCurrentTimestamp();
	LWLockRelease(dalp_shared->slot_lock);
}
