/*-------------------------------------------------------------------------
 *
 * http.c
 *		  HTTP transport of the DALP foreign-data wrapper, over libcurl.
 *
 * All requests of a backend share one libcurl multi handle, which owns the
 * connection cache: connections (with their TLS sessions) and DNS answers
 * outlive a request, a scan and a query.  Idle easy handles are kept per
 * (server, user mapping) for the same reason.  Transfers progress only while
 * dalp_http_start or dalp_http_wait runs; in between, the sockets buffer.
 *
 * The body of a 2xx response goes to the request's sink as it arrives (the
 * caller's json-c parser); other bodies are buffered for the error message.
 *
 * An ERROR must never longjmp through libcurl's frames, so no libcurl
 * callback here raises one: they write into malloc'd memory or the sink and
 * report trouble through flags, and errors are raised between libcurl
 * calls.  A pending cancel stops a transfer at its next chunk, so that
 * parsing a large body never delays it.
 * Every request lives in a small memory context of its own whose reset
 * callback detaches it from libcurl, so neither an ERROR nor a scan that
 * stops early can leave a transfer attached to the multi handle; a
 * transaction abort callback does the same as a safety net.
 *
 * The API key travels only in the X-Api-Key header.  It is never logged,
 * CURLOPT_VERBOSE is never set, and header memory is wiped when freed.
 *
 * Before each attempt leaves, it takes its share of the request budget:
 * with dalp_fdw preloaded, the budget of its (API key, origin) shared by the
 * cluster (shmem.c), where a 429's Retry-After also holds every backend;
 * otherwise (or if shared memory has no slot left) this backend's own token
 * bucket per server.  A backend holds at most one future send time per
 * shared budget, so its other requests queue behind it and other backends
 * get their turns in between.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

#include <time.h>

#include <curl/curl.h>

#include "access/xact.h"
#include "common/pg_prng.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/wait_event.h"

/* Longest sleep between two checks for interrupts. */
#define DALP_POLL_MS			100

/* Backoff between retries never exceeds this, whatever retry_base_ms. */
#define DALP_BACKOFF_CAP_MS		30000

/* Idle easy handles kept for reuse: one scan's worth at most concurrency. */
#define DALP_MAX_IDLE_HANDLES	32

#define DALP_USER_AGENT			"dalp_fdw/1.0"
#define DALP_KEY_HEADER			"X-Api-Key: "

typedef enum DalpRequestState
{
	DALP_REQ_WAITING,			/* not in the multi handle: launched once
								 * not_before has passed and the budget
								 * allows */
	DALP_REQ_RUNNING,			/* transfer in the multi handle */
	DALP_REQ_DONE				/* final outcome known */
} DalpRequestState;

typedef enum DalpRequestOutcome
{
	DALP_OUT_RESPONSE,			/* an HTTP status for the caller to judge */
	DALP_OUT_TRANSPORT,			/* libcurl failed: curl_code, errbuf */
	DALP_OUT_REDIRECT,			/* a 3xx, which is never followed */
	DALP_OUT_TOO_LARGE,			/* body exceeded max_response_bytes */
	DALP_OUT_NO_MEMORY,			/* malloc failed while buffering the body */
	DALP_OUT_INTERRUPTED		/* stopped for a cancel or a timeout */
} DalpRequestOutcome;

struct DalpHttpRequest
{
	MemoryContext cxt;			/* holds this struct; deleted on release */
	MemoryContextCallback cb;	/* detaches the request if cxt goes away */
	bool		owns_resources; /* easy handle, headers and body buffer not
								 * yet given back */
	bool		listed;			/* in dalp_requests */
	dlist_node	node;

	/* what the request needs after dalp_http_start has returned */
	DalpConnConfig conf;		/* the caller's, in cxt; without the key */
	char	   *url;
	char	   *display_path;

	CURL	   *easy;
	uint64		generation;		/* dalp_conn_generation when easy was made */
	struct curl_slist *headers; /* holds the key: wiped when freed */

	DalpRequestState state;
	DalpRequestOutcome outcome;
	int64		not_before;		/* dalp_monotonic_us() */
	DalpWaitKind wait_kind;		/* why it is WAITING */
	DalpBudgetTicket budget;	/* its shared budget, if any */
	bool		budget_local;	/* no shared slot: the backend's bucket */
	bool		rate_wait_counted;	/* this attempt already counted a wait */
	bool		hold_wait_counted;	/* ... a wait for a Retry-After hold */
	int			attempts;
	long		status;
	CURLcode	curl_code;
	int64		bytes;			/* body bytes received, all attempts */
	char		errbuf[CURL_ERROR_SIZE];

	DalpBodySink *sink;			/* takes a 2xx body, or NULL */

	/* written by the libcurl callbacks during an attempt */
	size_t		received;		/* body bytes */
	bool		streaming;		/* the body goes to the sink */
	bool		status_known;	/* streaming was decided */
	DalpBytes	body;			/* a body that is not streamed */
	bool		too_large;
	bool		sink_refused;	/* the sink stopped the transfer */
	bool		interrupted;
	int64		retry_after_ms; /* -1: no usable Retry-After */
};

typedef struct DalpIdleHandle
{
	Oid			serverid;
	Oid			umid;
	uint64		generation;
	CURL	   *easy;
} DalpIdleHandle;

/* Client-side token bucket of one server, when budgets are per backend. */
typedef struct DalpRateBucket
{
	Oid			serverid;		/* hash key */
	double		tokens;
	int64		refilled_at;	/* dalp_monotonic_us() */
} DalpRateBucket;

static bool dalp_http_initialized = false;
static bool dalp_have_http2 = false;

static CURLM *dalp_multi = NULL;

/*
 * Bumped whenever a foreign server or user mapping changes: idle handles and
 * the multi handle's connections made under an older generation are dropped.
 */
static uint64 dalp_conn_generation = 1;
static uint64 dalp_multi_generation = 0;

/* Requests started and not yet released; dalp_nactive are not yet done. */
static dlist_head dalp_requests = DLIST_STATIC_INIT(dalp_requests);
static int	dalp_nactive = 0;

/* Requests that have ended so far (see dalp_http_wait_hook). */
static uint64 dalp_nended = 0;

/* Oldest first, so that the cache evicts the least recently used. */
static DalpIdleHandle dalp_idle[DALP_MAX_IDLE_HANDLES];
static int	dalp_nidle = 0;

static HTAB *dalp_rate_buckets = NULL;

static void http_initialize(void);
static void http_invalidate_callback(Datum arg, int cacheid, uint32 hashvalue);
static void http_xact_callback(XactEvent event, void *arg);
static void refresh_connections(void);
static CURLM *get_multi(void);
static CURL *acquire_handle(Oid serverid, Oid umid, uint64 *generation);
static void return_handle(DalpHttpRequest *req);
static void build_headers(DalpHttpRequest *req, const char *api_key);
static void free_headers(struct curl_slist *headers);
static void check_setopt(CURLcode rc, const char *name);
static void configure_handle(DalpHttpRequest *req, const DalpConnConfig *conf);
static size_t write_callback(char *data, size_t size, size_t nmemb,
							 void *userdata);
static size_t header_callback(char *data, size_t size, size_t nitems,
							  void *userdata);
static int64 parse_retry_after(const char *value, size_t len);
static int64 take_token(DalpHttpRequest *req, int64 now);
static int64 interval_us(const DalpHttpRequest *req);
static int64 reserved_by_other(const DalpHttpRequest *req, int64 now);
static int64 budget_wait(DalpHttpRequest *req, int64 now);
static void launch(DalpHttpRequest *req);
static void launch_due(void);
static int64 next_due(void);
static int	http_progress(void);
static bool retryable_transport(CURLcode code);
static bool tls_failure(CURLcode code);
static bool retryable_status(long status);
static int64 backoff_ms(const DalpHttpRequest *req, int retry);
static void account_attempt(DalpHttpRequest *req);
static void finish_attempt(DalpHttpRequest *req, CURLcode code);
static void wait_for_activity(int running);
static void request_detach(DalpHttpRequest *req);
static void request_reset_callback(void *arg);
static void request_release(DalpHttpRequest *req);
static char *url_host(const char *url, bool origin);
static void raise_failure(DalpHttpRequest *req) pg_attribute_noreturn();
static DalpHttpResult *build_result(DalpHttpRequest *req);

/*
 * libcurl's global state, and the callbacks that keep our handles honest.
 * Done once per backend, on first use rather than at load time, so that a
 * backend that never touches a DALP table never initializes libcurl.
 */
static void
http_initialize(void)
{
	CURLcode	rc;
	HASHCTL		ctl;

	if (dalp_http_initialized)
		return;

	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not initialize libcurl: %s",
						curl_easy_strerror(rc))));
	dalp_have_http2 = (curl_version_info(CURLVERSION_NOW)->features &
					   CURL_VERSION_HTTP2) != 0;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(DalpRateBucket);
	ctl.hcxt = TopMemoryContext;
	dalp_rate_buckets = hash_create("dalp_fdw rate limits", 8, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	CacheRegisterSyscacheCallback(FOREIGNSERVEROID,
								  http_invalidate_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID,
								  http_invalidate_callback, (Datum) 0);
	RegisterXactCallback(http_xact_callback, NULL);

	dalp_http_initialized = true;
}

/*
 * A server or user mapping changed (its base_url, TLS settings or key may be
 * different now).  Invalidation can arrive at awkward moments, so only note
 * it here; refresh_connections and return_handle act on it.
 */
static void
http_invalidate_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	dalp_conn_generation++;
}

/*
 * Safety net: whatever the memory contexts do, no transfer outlives a failed
 * transaction.  Subtransaction aborts are left to the memory contexts on
 * purpose: a cursor opened outside a failed subtransaction stays usable, and
 * so must the requests its scan has in flight.
 */
static void
http_xact_callback(XactEvent event, void *arg)
{
	dlist_mutable_iter iter;

	if (event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	dlist_foreach_modify(iter, &dalp_requests)
		request_detach(dlist_container(DalpHttpRequest, node, iter.cur));
}

/*
 * After a server or user mapping changed, drop the idle handles made before,
 * and close the old connections by replacing the multi handle once nothing
 * uses it.
 */
static void
refresh_connections(void)
{
	int			kept = 0;

	if (dalp_multi_generation == dalp_conn_generation)
		return;

	for (int i = 0; i < dalp_nidle; i++)
	{
		if (dalp_idle[i].generation == dalp_conn_generation)
			dalp_idle[kept++] = dalp_idle[i];
		else
			curl_easy_cleanup(dalp_idle[i].easy);
	}
	dalp_nidle = kept;

	if (dalp_nactive == 0)
	{
		if (dalp_multi != NULL)
			curl_multi_cleanup(dalp_multi);
		dalp_multi = NULL;
		dalp_multi_generation = dalp_conn_generation;
	}
}

static CURLM *
get_multi(void)
{
	if (dalp_multi == NULL)
	{
		dalp_multi = curl_multi_init();
		if (dalp_multi == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("Could not create a libcurl multi handle.")));
		/* keep up to 32 idle connections (the most a scan runs at once) */
		curl_multi_setopt(dalp_multi, CURLMOPT_MAXCONNECTS, 32L);
		dalp_multi_generation = dalp_conn_generation;
	}
	return dalp_multi;
}

/* An idle easy handle of this server and user mapping, or a new one. */
static CURL *
acquire_handle(Oid serverid, Oid umid, uint64 *generation)
{
	CURL	   *easy;

	for (int i = dalp_nidle - 1; i >= 0; i--)
	{
		if (dalp_idle[i].serverid == serverid && dalp_idle[i].umid == umid &&
			dalp_idle[i].generation == dalp_conn_generation)
		{
			easy = dalp_idle[i].easy;
			memmove(&dalp_idle[i], &dalp_idle[i + 1],
					(dalp_nidle - i - 1) * sizeof(DalpIdleHandle));
			dalp_nidle--;
			*generation = dalp_conn_generation;
			return easy;
		}
	}

	easy = curl_easy_init();
	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not create a libcurl handle.")));
	*generation = dalp_conn_generation;
	return easy;
}

/*
 * Give the request's easy handle back to the idle cache, reset so that it
 * points to none of the request's memory; or free it if it is stale.
 * Never raises an ERROR: called while cleaning up after one.
 */
static void
return_handle(DalpHttpRequest *req)
{
	CURL	   *easy = req->easy;

	req->easy = NULL;
	if (req->generation != dalp_conn_generation)
	{
		curl_easy_cleanup(easy);
		return;
	}

	/* keeps the handle's TLS session cache, forgets every option */
	curl_easy_reset(easy);
	if (dalp_nidle == DALP_MAX_IDLE_HANDLES)
	{
		curl_easy_cleanup(dalp_idle[0].easy);
		memmove(&dalp_idle[0], &dalp_idle[1],
				(DALP_MAX_IDLE_HANDLES - 1) * sizeof(DalpIdleHandle));
		dalp_nidle--;
	}
	dalp_idle[dalp_nidle].serverid = req->conf.serverid;
	dalp_idle[dalp_nidle].umid = req->conf.umid;
	dalp_idle[dalp_nidle].generation = req->generation;
	dalp_idle[dalp_nidle].easy = easy;
	dalp_nidle++;
}

/*
 * The request headers.  The key line is built in a scratch buffer that is
 * wiped at once; libcurl's copy is wiped by free_headers.  req->headers is
 * set at each step so that an ERROR still leaves everything to free in req.
 */
static void
build_headers(DalpHttpRequest *req, const char *api_key)
{
	struct curl_slist *list;

	list = curl_slist_append(NULL, "Accept: application/json");
	if (list == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	req->headers = list;

	/* without a key the API answers 401, which the caller reports */
	if (api_key != NULL)
	{
		size_t		len = strlen(DALP_KEY_HEADER) + strlen(api_key) + 1;
		char	   *line = palloc(len);

		snprintf(line, len, "%s%s", DALP_KEY_HEADER, api_key);
		list = curl_slist_append(req->headers, line);
		explicit_bzero(line, len);
		pfree(line);
		if (list == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
	}
}

static void
free_headers(struct curl_slist *headers)
{
	for (struct curl_slist *h = headers; h != NULL; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(headers);
}

static void
check_setopt(CURLcode rc, const char *name)
{
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not set libcurl option %s: %s",
						name, curl_easy_strerror(rc))));
}

#define DALP_SETOPT(easy, option, value) \
	check_setopt(curl_easy_setopt((easy), (option), (value)), #option)

/*
 * Every option of the transfer.  A handle from the idle cache has been reset,
 * so nothing carries over from its previous request.
 */
static void
configure_handle(DalpHttpRequest *req, const DalpConnConfig *conf)
{
	CURL	   *easy = req->easy;

	DALP_SETOPT(easy, CURLOPT_URL, req->url);
	DALP_SETOPT(easy, CURLOPT_HTTPHEADER, req->headers);
	DALP_SETOPT(easy, CURLOPT_USERAGENT, DALP_USER_AGENT);
	/* "" offers every encoding this libcurl can decode; NULL asks for none */
	DALP_SETOPT(easy, CURLOPT_ACCEPT_ENCODING, conf->compression ? "" : NULL);
	if (dalp_have_http2)
		DALP_SETOPT(easy, CURLOPT_HTTP_VERSION,
					(long) CURL_HTTP_VERSION_2TLS);

	/*
	 * Let concurrent requests wait for the first connection to say whether
	 * it multiplexes, so that they share one HTTP/2 connection.  Over TLS,
	 * ALPN says so during the handshake; in cleartext only the first
	 * response would, which would hold back the others for a whole request.
	 */
	if (pg_strncasecmp(req->url, "https://", 8) == 0)
		DALP_SETOPT(easy, CURLOPT_PIPEWAIT, 1L);
	DALP_SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	DALP_SETOPT(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	/* a redirect could carry the key to another origin */
	DALP_SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);
	/* signals belong to PostgreSQL */
	DALP_SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
	DALP_SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS,
				(long) conf->connect_timeout_ms);
	/* also ends a response that stalls halfway */
	DALP_SETOPT(easy, CURLOPT_TIMEOUT_MS, (long) conf->timeout_ms);
	DALP_SETOPT(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	DALP_SETOPT(easy, CURLOPT_SSL_VERIFYPEER, conf->verify_tls ? 1L : 0L);
	DALP_SETOPT(easy, CURLOPT_SSL_VERIFYHOST, conf->verify_tls ? 2L : 0L);
	if (conf->ca_file != NULL)
		DALP_SETOPT(easy, CURLOPT_CAINFO, conf->ca_file);
	DALP_SETOPT(easy, CURLOPT_WRITEFUNCTION, write_callback);
	DALP_SETOPT(easy, CURLOPT_WRITEDATA, (void *) req);
	DALP_SETOPT(easy, CURLOPT_HEADERFUNCTION, header_callback);
	DALP_SETOPT(easy, CURLOPT_HEADERDATA, (void *) req);
	DALP_SETOPT(easy, CURLOPT_ERRORBUFFER, req->errbuf);
	DALP_SETOPT(easy, CURLOPT_PRIVATE, (void *) req);
}

/*
 * Hand body bytes to the sink (2xx) or append them to the malloc'd buffer.
 * Runs inside libcurl: must not palloc or raise an ERROR.  Returning less
 * than was offered aborts the transfer with CURLE_WRITE_ERROR; the flags
 * say why.
 */
static size_t
write_callback(char *data, size_t size, size_t nmemb, void *userdata)
{
	DalpHttpRequest *req = (DalpHttpRequest *) userdata;
	size_t		n = size * nmemb;

	/* dalp_http_wait raises the cancel as soon as libcurl returns */
	if (INTERRUPTS_CAN_BE_PROCESSED() && (QueryCancelPending || ProcDiePending))
	{
		req->interrupted = true;
		return 0;
	}
	if ((uint64) (req->received + n) > (uint64) req->conf.max_response_bytes)
	{
		req->too_large = true;
		return 0;
	}
	req->received += n;
	if (!req->status_known)
	{
		long		status = 0;

		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
		req->streaming = req->sink != NULL && status >= 200 && status < 300;
		req->status_known = true;
	}
	if (req->streaming)
	{
		if (!req->sink->consume(req->sink->arg, data, n))
		{
			req->sink_refused = true;
			return 0;
		}
		return n;
	}
	/* the buffer never needs more than the cap plus a terminator */
	if (!dalp_bytes_append(&req->body, data, n, 16384,
						   (size_t) req->conf.max_response_bytes + 1))
		return 0;
	return n;
}

/*
 * Capture Retry-After.  Runs inside libcurl: must not palloc or raise an
 * ERROR.  A status line starts a new response (an interim 1xx one, say), so
 * it forgets what an earlier response said.
 */
static size_t
header_callback(char *data, size_t size, size_t nitems, void *userdata)
{
	DalpHttpRequest *req = (DalpHttpRequest *) userdata;
	size_t		n = size * nitems;
	static const char name[] = "Retry-After:";

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		req->retry_after_ms = -1;
	else if (n > strlen(name) && pg_strncasecmp(data, name, strlen(name)) == 0)
		req->retry_after_ms = parse_retry_after(data + strlen(name),
												n - strlen(name));
	return n;
}

/*
 * Retry-After is either delay-seconds or an HTTP-date (RFC 9110, 10.2.3).
 * Returns milliseconds, or -1 when the value is neither.
 */
static int64
parse_retry_after(const char *value, size_t len)
{
	char		buf[64];
	char	   *start;
	char	   *end;
	time_t		when;

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, value, len);
	buf[len] = '\0';
	start = buf;
	while (*start == ' ' || *start == '\t')
		start++;
	end = start + strlen(start);
	while (end > start && (end[-1] == '\r' || end[-1] == '\n' ||
						   end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (*start == '\0')
		return -1;

	if (strspn(start, "0123456789") == strlen(start))
	{
		/* longer than any cap anyone would set: clamp, do not overflow */
		if (strlen(start) > 9)
			return INT64CONST(999999999) * 1000;
		return (int64) atol(start) * 1000;
	}

	when = curl_getdate(start, NULL);
	if (when == -1)
		return -1;
	return Max((int64) (when - time(NULL)), 0) * 1000;
}

/*
 * Take a token from the server's bucket.  Returns 0 when one was taken, else
 * the microseconds until one will be there.  The bucket refills continuously
 * at rate_limit_per_minute and holds at most a second's worth (at least one
 * token), so bursts stay short.
 */
static int64
take_token(DalpHttpRequest *req, int64 now)
{
	DalpRateBucket *bucket;
	bool		found;
	double		per_us;
	double		capacity;

	per_us = req->conf.rate_limit_per_minute / 60e6;
	capacity = Max(1.0, req->conf.rate_limit_per_minute / 60.0);
	bucket = hash_search(dalp_rate_buckets, &req->conf.serverid, HASH_ENTER, &found);
	if (!found)
		bucket->tokens = capacity;
	else if (now > bucket->refilled_at)
		bucket->tokens = Min(capacity,
							 bucket->tokens + (now - bucket->refilled_at) * per_us);
	/* also clamps a bucket whose server's rate was lowered */
	bucket->tokens = Min(bucket->tokens, capacity);
	bucket->refilled_at = now;

	if (bucket->tokens >= 1.0)
	{
		bucket->tokens -= 1.0;
		return 0;
	}
	return (int64) ((1.0 - bucket->tokens) / per_us) + 1;
}

/* What one request costs of the budget: 60 s / rate_limit_per_minute. */
static int64
interval_us(const DalpHttpRequest *req)
{
	return INT64CONST(60000000) / req->conf.rate_limit_per_minute;
}

/*
 * The future send time another request of this backend has reserved on
 * req's shared budget, or 0.
 */
static int64
reserved_by_other(const DalpHttpRequest *req, int64 now)
{
	dlist_iter	iter;

	dlist_foreach(iter, &dalp_requests)
	{
		DalpHttpRequest *other = dlist_container(DalpHttpRequest, node, iter.cur);

		if (other != req && other->budget.reserved_at > now &&
			memcmp(other->budget.key, req->budget.key,
				   sizeof(req->budget.key)) == 0)
			return other->budget.reserved_at;
	}
	return 0;
}

/*
 * May the request leave now?  0: yes, and it has taken its share of the
 * budget; else the microseconds to wait, with req->wait_kind saying why.
 */
static int64
budget_wait(DalpHttpRequest *req, int64 now)
{
	int64		wait;

	if (dalp_shared_enabled() && !req->budget_local)
	{
		int64		until = reserved_by_other(req, now);

		req->wait_kind = DALP_WAIT_RATE_LIMIT;
		if (req->budget.reserved_at == 0 && until > now)
			return until - now;
		switch (dalp_budget_take(&req->budget, now, interval_us(req), &until))
		{
			case DALP_BUDGET_GO:
				return 0;
			case DALP_BUDGET_RATE:
				return until - now;
			case DALP_BUDGET_HOLD:
				req->wait_kind = DALP_WAIT_RETRY_AFTER;
				return until - now;
			case DALP_BUDGET_LOCAL:
				req->budget_local = true;
				break;
		}
	}
	wait = take_token(req, now);
	req->wait_kind = DALP_WAIT_RATE_LIMIT;
	return wait;
}

/* Send one attempt of the request. */
static void
launch(DalpHttpRequest *req)
{
	/* may allocate: done before the handle joins the multi handle */
	DalpServerStats *stats = dalp_stats_for(req->conf.serverid);
	CURLMcode	mrc;

	req->received = 0;
	req->status_known = false;
	req->streaming = false;
	req->body.len = 0;
	req->too_large = false;
	req->body.no_memory = false;
	req->sink_refused = false;
	req->interrupted = false;
	req->retry_after_ms = -1;
	req->errbuf[0] = '\0';
	if (req->sink != NULL)
		req->sink->begin(req->sink->arg);

	mrc = curl_multi_add_handle(get_multi(), req->easy);
	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not start DALP request GET %s: %s",
						req->display_path, curl_multi_strerror(mrc))));
	req->state = DALP_REQ_RUNNING;
	req->attempts++;
	req->rate_wait_counted = false;
	req->hold_wait_counted = false;
	stats->requests++;
}

/*
 * Launch the waiting requests whose time has come, oldest first, as far as
 * the budget allows; one that may not leave yet waits until it may.
 */
static void
launch_due(void)
{
	int64		now = dalp_monotonic_us();
	dlist_iter	iter;

	dlist_foreach(iter, &dalp_requests)
	{
		DalpHttpRequest *req = dlist_container(DalpHttpRequest, node, iter.cur);
		DalpServerStats *stats;
		int64		wait_us;

		if (req->state != DALP_REQ_WAITING || req->not_before > now)
			continue;
		wait_us = budget_wait(req, now);
		if (wait_us == 0)
		{
			launch(req);
			continue;
		}
		stats = dalp_stats_for(req->conf.serverid);
		if (req->wait_kind == DALP_WAIT_RETRY_AFTER && !req->hold_wait_counted)
		{
			stats->retry_after_waits++;
			req->hold_wait_counted = true;
		}
		else if (req->wait_kind == DALP_WAIT_RATE_LIMIT && !req->rate_wait_counted)
		{
			stats->rate_limit_waits++;
			req->rate_wait_counted = true;
		}
		req->not_before = now + wait_us;
	}
}

/* When the earliest waiting request is due, or 0 if none is waiting. */
static int64
next_due(void)
{
	int64		next = 0;
	dlist_iter	iter;

	dlist_foreach(iter, &dalp_requests)
	{
		DalpHttpRequest *req = dlist_container(DalpHttpRequest, node, iter.cur);

		if (req->state == DALP_REQ_WAITING &&
			(next == 0 || req->not_before < next))
			next = req->not_before;
	}
	return next;
}

/*
 * One step of progress for every request: launch what is due, let libcurl
 * move bytes, and settle the transfers that ended.  Never blocks.  Returns
 * how many transfers are still running.
 */
static int
http_progress(void)
{
	CURLMcode	mrc;
	CURLMsg    *msg;
	int			left;
	int			running = 0;

	launch_due();
	if (dalp_multi == NULL)
		return 0;

	mrc = curl_multi_perform(dalp_multi, &running);
	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("libcurl failed: %s", curl_multi_strerror(mrc))));

	while ((msg = curl_multi_info_read(dalp_multi, &left)) != NULL)
	{
		CURL	   *easy = msg->easy_handle;
		CURLcode	code = msg->data.result;
		char	   *priv;

		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg is invalid once the handle is removed */
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		curl_multi_remove_handle(dalp_multi, easy);
		finish_attempt((DalpHttpRequest *) priv, code);
	}
	return running;
}

/*
 * Transport failures worth another try: the server or the path to it may
 * recover.  A name that does not resolve, a TLS certificate that does not
 * verify and the like will not.
 */
static bool
retryable_transport(CURLcode code)
{
	switch (code)
	{
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
			/* a reset HTTP/2 stream or connection */
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			return true;
		default:
			return false;
	}
}

/* Failures that point at the TLS settings rather than at the network. */
static bool
tls_failure(CURLcode code)
{
	switch (code)
	{
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_ISSUER_ERROR:
			return true;
		default:
			return false;
	}
}

/* Statuses the API contract documents as transient. */
static bool
retryable_status(long status)
{
	return status == 429 || status == 500 || status == 502 ||
		status == 503 || status == 504;
}

/*
 * retry_base_ms * 2^(retry - 1), capped, times a random factor in [0.5, 1)
 * so that clients retrying after the same failure spread out.
 */
static int64
backoff_ms(const DalpHttpRequest *req, int retry)
{
	double		delay = req->conf.retry_base_ms;

	for (int i = 1; i < retry && delay < DALP_BACKOFF_CAP_MS; i++)
		delay *= 2;
	return (int64) (Min(delay, DALP_BACKOFF_CAP_MS) *
					(0.5 + 0.5 * pg_prng_double(&pg_global_prng_state)));
}

/*
 * Count the traffic of the attempt that just ended, finished or not.  Never
 * raises an ERROR: the server's stats entry exists since the launch.
 */
static void
account_attempt(DalpHttpRequest *req)
{
	DalpServerStats *stats = dalp_stats_for(req->conf.serverid);
	curl_off_t	downloaded = 0;
	long		connects = 0;

	/* body bytes as they came over the wire, before any gzip decoding */
	curl_easy_getinfo(req->easy, CURLINFO_SIZE_DOWNLOAD_T, &downloaded);
	curl_easy_getinfo(req->easy, CURLINFO_NUM_CONNECTS, &connects);
	req->bytes += downloaded;
	stats->bytes += downloaded;
	stats->connections_opened += connects;
}

/*
 * Settle an attempt that libcurl has finished: schedule a retry, or record
 * the final outcome.
 */
static void
finish_attempt(DalpHttpRequest *req, CURLcode code)
{
	DalpServerStats *stats = dalp_stats_for(req->conf.serverid);
	bool		can_retry = req->attempts <= req->conf.max_retries;
	int64		delay_ms = -1;
	int64		now = dalp_monotonic_us();

	account_attempt(req);
	req->curl_code = code;
	req->status = 0;
	if (req->interrupted)
		req->outcome = DALP_OUT_INTERRUPTED;
	else if (req->body.no_memory)
		req->outcome = DALP_OUT_NO_MEMORY;
	else if (req->too_large)
		req->outcome = DALP_OUT_TOO_LARGE;
	/* a body the sink refused is the caller's to judge */
	else if (code != CURLE_OK && !req->sink_refused)
	{
		req->outcome = DALP_OUT_TRANSPORT;
		req->wait_kind = DALP_WAIT_BACKOFF;
		if (can_retry && retryable_transport(code))
			delay_ms = backoff_ms(req, req->attempts);
	}
	else
	{
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &req->status);
		if (req->status >= 300 && req->status < 400)
			req->outcome = DALP_OUT_REDIRECT;
		else
		{
			int64		retry_after_ms = -1;

			req->outcome = DALP_OUT_RESPONSE;
			if (retryable_status(req->status) && req->retry_after_ms >= 0)
				retry_after_ms = Min(req->retry_after_ms,
									 (int64) req->conf.retry_after_max_ms);
			req->wait_kind = retry_after_ms >= 0 ? DALP_WAIT_RETRY_AFTER :
				DALP_WAIT_BACKOFF;
			if (req->status == 429)
			{
				stats->responses_429++;
				/* the API counts the key's requests, not this backend's */
				if (retry_after_ms > 0 && dalp_shared_enabled() &&
					!req->budget_local)
					dalp_budget_hold(&req->budget, now + retry_after_ms * 1000,
									 interval_us(req));
			}
			if (can_retry && retryable_status(req->status))
				delay_ms = retry_after_ms >= 0 ? retry_after_ms :
					backoff_ms(req, req->attempts);
		}
	}

	if (delay_ms >= 0)
	{
		stats->retries++;
		dalp_activity_retry();
		req->state = DALP_REQ_WAITING;
		req->not_before = now + delay_ms * 1000;
	}
	else
	{
		req->state = DALP_REQ_DONE;
		dalp_nactive--;
		dalp_nended++;
		if (req->outcome != DALP_OUT_RESPONSE ||
			req->status < 200 || req->status >= 300)
			stats->errors++;
	}
	dalp_stats_flush();
}

/*
 * Sleep until libcurl has something to do, a request is due, or at most
 * DALP_POLL_MS, so that the caller checks for interrupts often enough.
 */
static void
wait_for_activity(int running)
{
	long		timeout_ms = DALP_POLL_MS;
	int64		next_launch = next_due();

	if (next_launch != 0)
	{
		int64		now = dalp_monotonic_us();
		int64		until_ms = (next_launch - now + 999) / 1000;

		timeout_ms = Min(timeout_ms, Max(until_ms, 0));
	}

	if (running > 0)
	{
		long		curl_ms;
		CURLMcode	mrc;

		if (curl_multi_timeout(dalp_multi, &curl_ms) == CURLM_OK &&
			curl_ms >= 0)
			timeout_ms = Min(timeout_ms, curl_ms);
		/* so that pg_stat_activity shows a wait, as for the latch below */
		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		mrc = curl_multi_poll(dalp_multi, NULL, 0, (int) timeout_ms, NULL);
		pgstat_report_wait_end();
		if (mrc != CURLM_OK)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("libcurl failed: %s", curl_multi_strerror(mrc))));
		/* what WL_EXIT_ON_PM_DEATH does for the latch wait below */
		if (!PostmasterIsAlive())
			proc_exit(1);
	}
	else if (timeout_ms > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Give back everything libcurl and malloc hold for the request.  Leaves the
 * request's memory context alone: this also runs as its reset callback, and
 * from transaction abort.  Never raises an ERROR.
 */
static void
request_detach(DalpHttpRequest *req)
{
	if (!req->owns_resources)
		return;
	req->owns_resources = false;

	if (req->listed)
	{
		dlist_delete(&req->node);
		req->listed = false;
		if (req->state != DALP_REQ_DONE)
			dalp_nactive--;
	}
	/* a send time reserved and now not needed goes back to the budget */
	dalp_budget_release(&req->budget);
	if (req->easy != NULL)
	{
		/* aborts an unfinished transfer; libcurl closes its connection */
		if (req->state == DALP_REQ_RUNNING)
		{
			account_attempt(req);
			curl_multi_remove_handle(dalp_multi, req->easy);
		}
		return_handle(req);
	}
	free_headers(req->headers);
	req->headers = NULL;
	free(req->body.data);
	req->body.data = NULL;
	req->body.cap = 0;
}

static void
request_reset_callback(void *arg)
{
	request_detach((DalpHttpRequest *) arg);
}

static void
request_release(DalpHttpRequest *req)
{
	request_detach(req);
	MemoryContextDelete(req->cxt);
}

/*
 * "host" or "host:port" of a URL, palloc'd; with origin,
 * "scheme://host:port" in lowercase, the port always there.  Not secret,
 * unlike the key, so it may appear in messages.
 */
static char *
url_host(const char *url, bool origin)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *port = NULL;
	char		buf[300];

	if (u != NULL &&
		curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
	{
		if (curl_url_get(u, CURLUPART_PORT, &port,
						 origin ? CURLU_DEFAULT_PORT : 0) != CURLUE_OK)
			snprintf(buf, sizeof(buf), "%s", host);
		else if (origin)
			snprintf(buf, sizeof(buf), "%s://%s:%s", scheme, host, port);
		else
			snprintf(buf, sizeof(buf), "%s:%s", host, port);
	}
	else
		snprintf(buf, sizeof(buf), "(unknown)");
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	if (origin)
		for (char *p = buf; *p; p++)
			*p = pg_tolower((unsigned char) *p);
	return pstrdup(buf);
}

/*
 * Raise the ERROR for a request that ended without an HTTP status to hand
 * back.  What the message needs is copied first, since the request is
 * released before raising: nothing stays attached to libcurl after.
 */
static void
raise_failure(DalpHttpRequest *req)
{
	char	   *display = pstrdup(req->display_path);
	int			attempts = req->attempts;
	long		status = req->status;
	int64		max_bytes = req->conf.max_response_bytes;
	char	   *host = NULL;
	char	   *reason = NULL;
	CURLcode	curl_code = req->curl_code;
	DalpRequestOutcome outcome = req->outcome;

	if (outcome == DALP_OUT_TRANSPORT)
	{
		size_t		len;

		host = url_host(req->url, false);
		reason = pstrdup(req->errbuf[0] != '\0' ? req->errbuf :
						 curl_easy_strerror(req->curl_code));
		len = strlen(reason);
		while (len > 0 && (reason[len - 1] == '\n' || reason[len - 1] == '.'))
			reason[--len] = '\0';
		/* libcurl's message may quote what the server sent */
		reason = dalp_display_text(reason);
	}
	else if (outcome == DALP_OUT_REDIRECT)
	{
		char	   *target = NULL;

		/* the Location header, resolved against the request URL */
		if (curl_easy_getinfo(req->easy, CURLINFO_REDIRECT_URL,
							  &target) == CURLE_OK && target != NULL)
			host = dalp_display_text(url_host(target, false));
	}

	request_release(req);

	switch (outcome)
	{
		case DALP_OUT_TRANSPORT:
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
					 errmsg_plural("could not complete DALP request GET %s after %d attempt",
								   "could not complete DALP request GET %s after %d attempts",
								   attempts, display, attempts),
					 errdetail("The last attempt, to host \"%s\", failed: %s.",
							   host, reason),
					 tls_failure(curl_code) ?
					 errhint("Check the server's ca_file and verify_tls options, and the certificate the host presents.") :
					 errhint("Check the server's base_url option, and its connect_timeout_ms and timeout_ms options if the API is slow to answer.")));
			break;
		case DALP_OUT_REDIRECT:
			if (host != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_ERROR),
						 errmsg("DALP request GET %s was redirected to host \"%s\"",
								display, host),
						 errdetail("The server answered with HTTP status %ld. Redirects are not followed, so that the API key is never sent to another origin.",
								   status),
						 errhint("Set the server's base_url option to the address that serves the API.")));
			else
				ereport(ERROR,
						(errcode(ERRCODE_FDW_ERROR),
						 errmsg("DALP request GET %s was answered with redirect status %ld",
								display, status),
						 errdetail("Redirects are not followed, so that the API key is never sent to another origin."),
						 errhint("Set the server's base_url option to the address that serves the API.")));
			break;
		case DALP_OUT_TOO_LARGE:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("DALP response to GET %s exceeds max_response_bytes (%lld bytes)",
							display, (long long) max_bytes),
					 errhint("Lower the page_size option, or raise max_response_bytes.")));
			break;
		case DALP_OUT_NO_MEMORY:
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("Could not buffer the DALP response to GET %s.",
							   display)));
			break;
		case DALP_OUT_INTERRUPTED:
			CHECK_FOR_INTERRUPTS();
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("DALP request GET %s was interrupted", display)));
			break;
		case DALP_OUT_RESPONSE:
			break;
	}
	elog(ERROR, "unexpected outcome %d of DALP request GET %s",
		 (int) outcome, display);
}

/* The result, palloc'd in the caller's context. */
static DalpHttpResult *
build_result(DalpHttpRequest *req)
{
	DalpHttpResult *res = palloc0(sizeof(DalpHttpResult));
	char	   *content_type = NULL;

	res->status = req->status;
	res->body_len = req->received;
	if (!req->streaming)
	{
		/* may exceed MaxAllocSize when max_response_bytes allows it */
		res->body = MemoryContextAllocHuge(CurrentMemoryContext, req->body.len + 1);
		if (req->body.len > 0)
			memcpy(res->body, req->body.data, req->body.len);
		res->body[req->body.len] = '\0';
	}
	if (curl_easy_getinfo(req->easy, CURLINFO_CONTENT_TYPE,
						  &content_type) == CURLE_OK && content_type != NULL)
		res->content_type = pstrdup(content_type);
	res->attempts = req->attempts;
	res->bytes = req->bytes;
	return res;
}

/*
 * Queue a GET of conf->base_url + path and start it; a 2xx body goes to
 * sink (if not NULL), which must outlive the request.  The request belongs
 * to CurrentMemoryContext: if that goes away first, the transfer is
 * abandoned.
 */
DalpHttpRequest *
dalp_http_start(const DalpConnConfig *conf, const char *path,
				DalpBodySink *sink)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	DalpHttpRequest *req;

	http_initialize();
	refresh_connections();

	cxt = AllocSetContextCreate(CurrentMemoryContext, "dalp_fdw request",
								ALLOCSET_SMALL_SIZES);
	req = MemoryContextAllocZero(cxt, sizeof(DalpHttpRequest));
	req->cxt = cxt;
	req->cb.func = request_reset_callback;
	req->cb.arg = req;
	MemoryContextRegisterResetCallback(cxt, &req->cb);
	req->owns_resources = true;

	oldcxt = MemoryContextSwitchTo(cxt);
	req->url = psprintf("%s%s", conf->base_url, path);
	req->display_path = dalp_decode_for_display(path);
	dalp_conn_config_copy(&req->conf, conf);
	if (dalp_shared_enabled())
		dalp_budget_ticket_init(&req->budget, conf->budget_key);
	MemoryContextSwitchTo(oldcxt);

	req->retry_after_ms = -1;
	req->sink = sink;

	req->easy = acquire_handle(conf->serverid, conf->umid, &req->generation);
	build_headers(req, conf->api_key);
	configure_handle(req, conf);

	/* only a fully configured request may be launched */
	req->state = DALP_REQ_WAITING;
	req->not_before = 0;
	dlist_push_tail(&dalp_requests, &req->node);
	req->listed = true;
	dalp_nactive++;

	/* get the connection going while the caller does other work */
	(void) http_progress();
	return req;
}

/*
 * Drive every request in flight until this one is finished, and return its
 * result.  The request is released in all cases.  While it is not finished,
 * hook (if not NULL) is called after every step of progress, saying whether
 * another request has ended since the last call: the caller can send that
 * one's successor at once, and work on the bytes that have arrived.
 */
DalpHttpResult *
dalp_http_wait_hook(DalpHttpRequest *req,
					void (*hook) (void *arg, bool others_ended), void *arg)
{
	DalpHttpResult *res;
	DalpServerStats *stats = dalp_stats_for(req->conf.serverid);
	int64		last = dalp_monotonic_us();
	bool		budget_waiting = false;
	uint64		ended = dalp_nended;

	Assert(req->listed);
	dalp_activity_request(req->conf.server_name, req->display_path);
	for (;;)
	{
		int64		now;
		int			running;

		CHECK_FOR_INTERRUPTS();
		running = http_progress();

		/* counted as we go, so that a cancelled wait is counted too */
		now = dalp_monotonic_us();
		if (budget_waiting)
			stats->budget_wait_us += now - last;
		else
			stats->network_wait_us += now - last;
		last = now;

		if (req->state == DALP_REQ_DONE)
			break;
		if (hook != NULL)
		{
			bool		others_ended = dalp_nended != ended;

			ended = dalp_nended;
			hook(arg, others_ended);
			/* what hook started makes progress before any sleep */
			if (others_ended)
				continue;
		}
		budget_waiting = req->state == DALP_REQ_WAITING &&
			(req->wait_kind == DALP_WAIT_RATE_LIMIT ||
			 req->wait_kind == DALP_WAIT_RETRY_AFTER);
		dalp_activity_wait(req->state == DALP_REQ_RUNNING ?
						   DALP_WAIT_NETWORK : req->wait_kind);
		wait_for_activity(running);
	}
	dalp_activity_wait(DALP_WAIT_NONE);

	if (req->outcome != DALP_OUT_RESPONSE)
		raise_failure(req);
	res = build_result(req);
	request_release(req);
	return res;
}

DalpHttpResult *
dalp_http_wait(DalpHttpRequest *req)
{
	return dalp_http_wait_hook(req, NULL, NULL);
}

/*
 * Let every request make progress without waiting, so that dalp_http_done
 * is up to date.
 */
void
dalp_http_poll(void)
{
	(void) http_progress();
}

/*
 * Has the request ended (its result waiting for dalp_http_wait)?  As of the
 * last time requests made progress: in dalp_http_start, dalp_http_wait or
 * dalp_http_poll.
 */
bool
dalp_http_done(const DalpHttpRequest *req)
{
	return req->state == DALP_REQ_DONE;
}

/*
 * Name conf's request budget (its origin and API key) once, rather than for
 * each of the requests it makes: a URL parse and a SHA-256 for every page
 * cost a scan of 1,000 pages about 10 ms of CPU.
 */
void
dalp_http_name_budget(DalpConnConfig *conf)
{
	if (dalp_shared_enabled())
		dalp_budget_name(conf->budget_key, url_host(conf->base_url, true),
						 conf->api_key);
}

/* Cancel a request whose result is no longer wanted. */
void
dalp_http_abandon(DalpHttpRequest *req)
{
	request_release(req);
}

DalpHttpResult *
dalp_http_get(const DalpConnConfig *conf, const char *path,
			  DalpBodySink *sink)
{
	return dalp_http_wait(dalp_http_start(conf, path, sink));
}
