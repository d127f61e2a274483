/*
 * raw_client.c: the practical limit for bench/run.sh.
 *
 * Reads every page of one token's events the way dalp_fdw does (the same
 * request paths, gzip offered, keep-alive, up to N requests in flight with
 * curl multi), parses every page with json-c and sums the "amount" values,
 * and nothing else.  The sum is exact (decimal limbs), so the benchmark can
 * check that dalp_fdw, this client and the PL/Python peer read the same data.
 *
 * usage: raw_client BASE_URL API_KEY TOKEN [-c CONCURRENCY] [-p PAGE_SIZE]
 *                   [-r RUNS] [-n] [-i]
 *   -n  fetch only, do not parse: what the simulator alone can serve
 *   -i  ask for no compression (identity), to measure what gzip costs
 * Prints one line per run:
 *   seconds=S pages=N rows=N amounts=N bytes=N connections=N sum=DIGITS
 *
 * Build: gcc -O2 -o raw_client raw_client.c -lcurl -ljson-c
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#define MAX_CONCURRENCY 64
#define LIMB_BASE 1000000000u
#define NLIMBS 16				/* 144 decimal digits: a million uint256s */

typedef struct Transfer
{
	CURL	   *easy;
	char	   *body;
	size_t		len;
	size_t		cap;
} Transfer;

typedef struct Run
{
	long		pages;
	long		rows;
	long		amounts;
	long		total;			/* meta.total, -1 until the first page */
	uint32_t	sum[NLIMBS];	/* little-endian base 1e9 */
} Run;

static const char *base_url;
static const char *token;
static struct curl_slist *headers;
static int	page_size = 200;
static bool parse = true;
static bool identity = false;

static void
die(const char *msg, const char *detail)
{
	fprintf(stderr, "raw_client: %s%s%s\n", msg, detail ? ": " : "",
			detail ? detail : "");
	exit(1);
}

static size_t
on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	Transfer   *t = arg;
	size_t		n = size * nmemb;

	if (t->len + n + 1 > t->cap)
	{
		size_t		cap = t->cap ? t->cap : 65536;

		while (cap < t->len + n + 1)
			cap *= 2;
		if ((t->body = realloc(t->body, cap)) == NULL)
			die("out of memory", NULL);
		t->cap = cap;
	}
	memcpy(t->body + t->len, data, n);
	t->len += n;
	return n;
}

/* The same path dalp_fdw sends for a page (deparse.c dalp_build_path_text). */
static void
start(CURLM *multi, Transfer *t, long offset)
{
	char		url[1024];

	if (offset > 0)
		snprintf(url, sizeof(url),
				 "%s/api/v2/tokens/%s/events?page%%5Blimit%%5D=%d&page%%5Boffset%%5D=%ld&sort=blockTimestamp",
				 base_url, token, page_size, offset);
	else
		snprintf(url, sizeof(url),
				 "%s/api/v2/tokens/%s/events?page%%5Blimit%%5D=%d&sort=blockTimestamp",
				 base_url, token, page_size);
	t->len = 0;
	curl_easy_setopt(t->easy, CURLOPT_URL, url);
	curl_multi_add_handle(multi, t->easy);
}

/* sum += the decimal digits s (no sign, no point) */
static void
add_decimal(uint32_t *sum, const char *s, size_t len)
{
	uint64_t	carry = 0;
	int			limb = 0;

	while (len > 0 || carry)
	{
		uint32_t	chunk = 0;
		size_t		take = len < 9 ? len : 9;

		if (limb == NLIMBS)
			die("sum overflows", NULL);
		for (size_t i = len - take; i < len; i++)
		{
			if (s[i] < '0' || s[i] > '9')
				die("amount is not a decimal integer", s);
			chunk = chunk * 10 + (uint32_t) (s[i] - '0');
		}
		len -= take;
		carry += (uint64_t) sum[limb] + chunk;
		sum[limb++] = (uint32_t) (carry % LIMB_BASE);
		carry /= LIMB_BASE;
	}
}

static void
print_sum(const uint32_t *sum)
{
	int			top = NLIMBS - 1;

	while (top > 0 && sum[top] == 0)
		top--;
	printf("%" PRIu32, sum[top]);
	while (--top >= 0)
		printf("%09" PRIu32, sum[top]);
}

static void
consume(Run *run, Transfer *t, bool parse_page)
{
	json_tokener *tok;
	json_object *root;
	json_object *data;
	json_object *v;
	size_t		n;

	run->pages++;
	if (!parse_page)
		return;
	tok = json_tokener_new();
	root = json_tokener_parse_ex(tok, t->body, (int) t->len);
	if (root == NULL || json_tokener_get_error(tok) != json_tokener_success)
		die("page is not JSON", NULL);
	json_tokener_free(tok);
	if (!json_object_object_get_ex(root, "data", &data) ||
		!json_object_is_type(data, json_type_array))
		die("page has no data array", NULL);
	n = json_object_array_length(data);
	for (size_t i = 0; i < n; i++)
	{
		json_object *values;

		if (!json_object_object_get_ex(json_object_array_get_idx(data, i),
									   "values", &values))
			continue;
		for (size_t j = 0; j < json_object_array_length(values); j++)
		{
			json_object *e = json_object_array_get_idx(values, j);
			json_object *name;

			if (json_object_object_get_ex(e, "name", &name) &&
				strcmp(json_object_get_string(name), "amount") == 0 &&
				json_object_object_get_ex(e, "value", &v))
			{
				add_decimal(run->sum, json_object_get_string(v),
							(size_t) json_object_get_string_len(v));
				run->amounts++;
				break;
			}
		}
	}
	run->rows += (long) n;
	if (run->total < 0 && json_object_object_get_ex(root, "meta", &v) &&
		json_object_object_get_ex(v, "total", &v))
		run->total = (long) json_object_get_int64(v);
	json_object_put(root);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * One scan: the first page alone (it tells meta.total, as for dalp_fdw),
 * then every other page with up to `concurrency` requests in flight.  A
 * finished transfer is replaced at once and its page parsed after, one page
 * between two looks at the network, so parsing overlaps the requests in
 * flight; finished pages wait in a queue, with buffers of their own.
 */
static void
scan(CURLM *multi, Transfer *xfers, int concurrency)
{
	Run			run = {0};
	Transfer   *idle[2 * MAX_CONCURRENCY];
	Transfer   *queue[2 * MAX_CONCURRENCY];
	int			nidle = 0;
	int			qhead = 0;
	int			qlen = 0;
	int			active = 1;
	long		next_offset = page_size;
	long		bytes = 0;
	long		connects = 0;
	double		t0 = now_s();

	run.total = -1;
	for (int i = 2 * concurrency - 1; i > 0; i--)
		idle[nidle++] = &xfers[i];
	start(multi, &xfers[0], 0);
	while (active > 0 || qlen > 0)
	{
		int			running;
		int			left;
		CURLMsg    *msg;
		Transfer   *t;

		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			long		status = 0;
			curl_off_t	down = 0;
			long		nconn = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
			if (msg->data.result != CURLE_OK)
				die("transfer failed", curl_easy_strerror(msg->data.result));
			curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
			if (status != 200)
				die("HTTP status is not 200", NULL);
			curl_easy_getinfo(t->easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
			curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &nconn);
			bytes += (long) down;
			connects += nconn;
			curl_multi_remove_handle(multi, t->easy);
			active--;
			queue[(qhead + qlen++) % (2 * MAX_CONCURRENCY)] = t;
		}
		/* page one tells the extent; a fetch-only run parses it too */
		if (run.total < 0 && qlen > 0)
		{
			t = queue[qhead];
			qhead = (qhead + 1) % (2 * MAX_CONCURRENCY);
			qlen--;
			consume(&run, t, true);
			idle[nidle++] = t;
		}
		while (active < concurrency && nidle > 0 && next_offset < run.total)
		{
			start(multi, idle[--nidle], next_offset);
			next_offset += page_size;
			active++;
		}
		if (qlen > 0)
		{
			t = queue[qhead];
			qhead = (qhead + 1) % (2 * MAX_CONCURRENCY);
			qlen--;
			consume(&run, t, parse);
			idle[nidle++] = t;
		}
		else if (active > 0)
			curl_multi_poll(multi, NULL, 0, 1000, NULL);
	}
	printf("seconds=%.4f pages=%ld rows=%ld amounts=%ld bytes=%ld connections=%ld sum=",
		   now_s() - t0, run.pages, run.rows, run.amounts, bytes, connects);
	print_sum(run.sum);
	printf("\n");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	int			concurrency = 4;
	int			runs = 1;
	int			opt;
	char		header[512];
	CURLM	   *multi;
	Transfer	xfers[2 * MAX_CONCURRENCY] = {{0}};

	while ((opt = getopt(argc, argv, "c:p:r:ni")) != -1)
	{
		switch (opt)
		{
			case 'c':
				concurrency = atoi(optarg);
				break;
			case 'p':
				page_size = atoi(optarg);
				break;
			case 'r':
				runs = atoi(optarg);
				break;
			case 'n':
				parse = false;
				break;
			case 'i':
				identity = true;
				break;
			default:
				die("usage: raw_client BASE_URL API_KEY TOKEN [-c N] [-p N] [-r N] [-n] [-i]", NULL);
		}
	}
	if (argc - optind != 3 || concurrency < 1 || concurrency > MAX_CONCURRENCY ||
		page_size < 1 || runs < 1)
		die("usage: raw_client BASE_URL API_KEY TOKEN [-c N] [-p N] [-r N] [-n] [-i]", NULL);
	base_url = argv[optind];
	token = argv[optind + 2];
	snprintf(header, sizeof(header), "X-Api-Key: %s", argv[optind + 1]);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	headers = curl_slist_append(NULL, header);
	/*
	 * One multi handle for all runs: its connection cache keeps them alive.
	 * It must hold a connection per transfer, or connections are closed
	 * whenever fewer transfers happen to be running.
	 */
	multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) concurrency);
	for (int i = 0; i < 2 * concurrency; i++)
	{
		Transfer   *t = &xfers[i];

		t->easy = curl_easy_init();
		curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, headers);
		/* as dalp_fdw: offer every encoding libcurl decodes */
		if (!identity)
			curl_easy_setopt(t->easy, CURLOPT_ACCEPT_ENCODING, "");
		curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
		curl_easy_setopt(t->easy, CURLOPT_PRIVATE, (char *) t);
	}
	for (int r = 0; r < runs; r++)
		scan(multi, xfers, concurrency);
	return 0;
}
