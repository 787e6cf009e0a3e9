#define _GNU_SOURCE
#include "vmm/api_proto.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *line_of(struct json_object *o)
{
	char *out = NULL;
	const char *s = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
	if (s && asprintf(&out, "%s\n", s) < 0)
		out = NULL;
	json_object_put(o);
	return out;
}

char *api_proto_error(const char *msg)
{
	struct json_object *o = json_object_new_object();
	if (o && json_object_object_add(o, "error", json_object_new_string(msg))) {
		json_object_put(o);
		o = NULL;
	}
	return line_of(o);
}

__attribute__((format(printf, 1, 2)))
static char *error_fmt(const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return api_proto_error(msg);
}

/* The request as an object, or NULL with *reply set to the error line. */
static struct json_object *parse(const char *line, size_t len, char **reply)
{
	if (memchr(line, 0, len)) {
		*reply = api_proto_error("not JSON: the line holds a NUL byte");
		return NULL;
	}
	struct json_tokener *tok = json_tokener_new();
	if (!tok) {
		*reply = NULL;
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	/* A bare number ("42") may go on: the end of the line ends it. */
	if (e == json_tokener_continue && len) {
		o = json_tokener_parse_ex(tok, "", 1);
		e = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	if (e == json_tokener_continue) {
		*reply = api_proto_error(len ? "not JSON: the line ends inside a value" : "empty request");
		return NULL;
	}
	if (e != json_tokener_success) {
		*reply = error_fmt("not JSON: %s", json_tokener_error_desc(e));
		return NULL;
	}
	for (; end < len; end++) {
		if (!strchr(" \t\r", line[end])) {
			json_object_put(o);
			*reply = api_proto_error("not JSON: more after the request's object");
			return NULL;
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		*reply = api_proto_error("a request is a JSON object: {\"cmd\":\"NAME\"}");
		return NULL;
	}
	return o;
}

static struct json_object *ok(void)
{
	struct json_object *o = json_object_new_object();
	if (o)
		json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

static void add_state(const struct api_ops *ops, void *ctx, struct json_object *o)
{
	if (o)
		json_object_object_add(o, "state", json_object_new_string(ops->paused(ctx) ? "paused" : "running"));
}

static const char *const commands = "pause, resume, info, stats, stop, snapshot";

static char *run(const struct api_ops *ops, void *ctx, const char *cmd, const int *fds, unsigned n_fds)
{
	char err[200] = "";
	struct json_object *o;
	if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume")) {
		bool pause = cmd[0] == 'p';
		if (ops->paused(ctx) == pause)
			return error_fmt("%s: the VM is %s", cmd, pause ? "paused already" : "not paused");
		if ((pause ? ops->pause : ops->resume)(ctx, err, sizeof(err)))
			return error_fmt("%s: %s", cmd, err);
		o = ok();
		add_state(ops, ctx, o);
	} else if (!strcmp(cmd, "info")) {
		o = ok();
		add_state(ops, ctx, o);
		if (o)
			ops->info(ctx, o);
	} else if (!strcmp(cmd, "stats")) {
		o = ok();
		if (o)
			ops->stats(ctx, o);
	} else if (!strcmp(cmd, "stop")) {
		ops->stop(ctx);
		o = ok();
	} else if (!strcmp(cmd, "snapshot")) {
		if (!ops->paused(ctx))
			return api_proto_error("snapshot: the VM is running (pause it first)");
		if (n_fds != 2)
			return error_fmt("snapshot: the state and memory files must come with the request (2 file "
					 "descriptors, SCM_RIGHTS; %u came): minivmm ctl SOCKET snapshot DIR does that", n_fds);
		o = ok();
		if (!o)
			return NULL;
		if (ops->snapshot(ctx, fds[0], fds[1], o, err, sizeof(err))) {
			json_object_put(o);
			return error_fmt("snapshot: %s", err);
		}
	} else {
		return error_fmt("unknown command '%.64s' (%s)", cmd, commands);
	}
	return line_of(o);
}

char *api_proto_handle(const struct api_ops *ops, void *ctx, const char *line, size_t len, const int *fds,
		       unsigned n_fds)
{
	char *reply = NULL;
	struct json_object *req = parse(line, len, &reply);
	if (!req)
		return reply;
	struct json_object *cmd = NULL;
	json_object_object_foreach(req, key, val) {
		(void)val;
		if (strcmp(key, "cmd")) {
			reply = error_fmt("unknown key '%.64s' (a request is {\"cmd\":\"NAME\"})", key);
			json_object_put(req);
			return reply;
		}
	}
	if (!json_object_object_get_ex(req, "cmd", &cmd) || !json_object_is_type(cmd, json_type_string))
		reply = error_fmt("missing \"cmd\" (a string: %s)", commands);
	else if ((size_t)json_object_get_string_len(cmd) != strlen(json_object_get_string(cmd)))
		reply = api_proto_error("\"cmd\" holds a NUL character");
	else
		reply = run(ops, ctx, json_object_get_string(cmd), fds, n_fds);
	json_object_put(req);
	return reply;
}

bool api_proto_reply_error(const char *line, size_t len, char *msg, size_t msglen)
{
	snprintf(msg, msglen, "the reply is not a JSON object");
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return true;
	struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	json_tokener_free(tok);
	struct json_object *e = NULL;
	bool is_obj = json_object_is_type(o, json_type_object);
	bool err = !is_obj || json_object_object_get_ex(o, "error", &e);
	if (is_obj && e)
		snprintf(msg, msglen, "%s", json_object_get_string(e));
	json_object_put(o);
	return err;
}
