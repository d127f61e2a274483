/*-------------------------------------------------------------------------
 *
 * counts.c
 *		  Strings with a count each, in the order first seen (DalpCounts).
 *
 * What dedupes the token listing, page ids and IN lists, and counts facet
 * values, in time linear in their number however many there are.  The hash
 * is seeded at random once per backend, so that no server can choose values
 * that all land in one bucket.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "utils/hsearch.h"

static uint64 counts_seed = 0;

static uint32
counts_hash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return (uint32) hash_bytes_extended((const unsigned char *) s, strlen(s),
										counts_seed);
}

static int
counts_match(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(const char *const *) key1, *(const char *const *) key2);
}

/* Add n to the count of value; true when value is new. */
bool
dalp_counts_add(DalpCounts *counts, const char *value, int64 n)
{
	bool		found;
	DalpFacetCount *entry;

	if (counts->hash == NULL)
	{
		HASHCTL		ctl;

		while (counts_seed == 0)
			counts_seed = pg_prng_uint64(&pg_global_prng_state);
		ctl.keysize = sizeof(char *);
		ctl.entrysize = sizeof(DalpFacetCount);
		ctl.hash = counts_hash;
		ctl.match = counts_match;
		ctl.hcxt = CurrentMemoryContext;
		counts->hash = hash_create("dalp_fdw strings", 256, &ctl,
								   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
								   HASH_CONTEXT);
		counts->cxt = CurrentMemoryContext;
	}
	entry = hash_search(counts->hash, &value, HASH_ENTER, &found);

	if (!found)
	{
		MemoryContext old = MemoryContextSwitchTo(counts->cxt);

		/* the key was the caller's pointer: keep a copy of our own */
		entry->value = pstrdup(value);
		entry->count = 0;
		counts->entries = lappend(counts->entries, entry);
		MemoryContextSwitchTo(old);
	}
	entry->count = dalp_add_counts(entry->count, n, "a facet value");
	return !found;
}

bool
dalp_counts_contain(const DalpCounts *counts, const char *value)
{
	return counts->hash != NULL &&
		hash_search(counts->hash, &value, HASH_FIND, NULL) != NULL;
}
