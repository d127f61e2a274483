/*-------------------------------------------------------------------------
 *
 * pages.c
 *		  Reading pages of the API over http.c and decode.c, for planning
 *		  (remote estimates) and execution alike: a response's status, a
 *		  request's meta.total, whether a page is its collection's last.
 *
 *-------------------------------------------------------------------------
 */
#include "dalp_fdw.h"

/* Check a response's status; false for a 404 the caller treats as empty. */
bool
dalp_check_response(const DalpConnConfig *conf, DalpHttpResult *res,
					const char *path, bool missing_is_empty)
{
	if (res->status == 404 && missing_is_empty)
		return false;
	/* the path is decoded for an error message only: not for every page */
	if (res->status < 200 || res->status >= 300)
		dalp_raise_for_status(res, dalp_decode_for_display(path), conf->api_key);
	return true;
}

/* meta.total of a request; -1 when the response has none. */
int64
dalp_fetch_total(const DalpConnConfig *conf, const char *path)
{
	DalpJsonParser *parser = dalp_json_parser_create(conf->max_response_bytes,
													 true);
	DalpHttpResult *res = dalp_http_get(conf, path,
										dalp_json_parser_sink(parser));
	DalpPage	page;

	dalp_check_response(conf, res, path, false);
	dalp_page_parse(&page, res, parser, NULL, false,
					dalp_decode_for_display(path));
	dalp_json_parser_free(parser);
	return page.total;
}

/*
 * Is a page, read at offset, the last of its collection?  meta.total says
 * so when present; without it, a short page does.
 */
bool
dalp_page_is_last(const DalpPage *page, int64 offset, int requested)
{
	if (page->nitems == 0)
		return true;
	if (page->total >= 0)
		return offset + page->nitems >= page->total;
	return page->nitems < requested;
}
