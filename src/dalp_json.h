/*-------------------------------------------------------------------------
 *
 * dalp_json.h
 *		  json-c documents of DALP responses, between json.c (which parses
 *		  them) and decode.c (which reads them).  No other file sees json-c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DALP_JSON_H
#define DALP_JSON_H

#include "dalp_fdw.h"

/*
 * PostgreSQL has a SQL function json_object() (fmgrprotos.h), json-c a type
 * of that name: the prototypes come first, once (their header is guarded),
 * and json-c's type is renamed here.  It is opaque, so the library's ABI is
 * the same.
 */
#include "utils/fmgrprotos.h"
#define json_object dalp_json_object
#include <json-c/json.h>

/* Containers nest at most this deep; DALP's items nest four levels. */
#define DALP_JSON_MAX_DEPTH 64

extern json_object *dalp_json_parser_finish(DalpJsonParser *parser,
											const DalpHttpResult *res,
											const char *display_path);
extern json_object *dalp_json_parse_buffer(const char *body, size_t len);
extern char *dalp_json_number_text(json_object *number);

#endif							/* DALP_JSON_H */
