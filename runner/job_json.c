/* The server's job lines: what a scheduler sends and gets back. Bytes that
 * may be anything (stdin, files, output) are base64 strings. */
#define _GNU_SOURCE
#include "job_json.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

#define JOB_MAX_ARGS 65536
#define JOB_MAX_FILES 1024

/* A JSON string as a C string: refused if it holds a NUL. */
static const char *plain_string(struct json_object *o, const char *field, char *err, size_t errlen)
{
	if (!json_object_is_type(o, json_type_string)) {
		snprintf(err, errlen, "\"%s\" must be a string", field);
		return NULL;
	}
	const char *s = json_object_get_string(o);
	if (strlen(s) != (size_t)json_object_get_string_len(o)) {
		snprintf(err, errlen, "\"%s\" holds a NUL character", field);
		return NULL;
	}
	return s;
}

static uint8_t *decode_b64(struct json_object *o, const char *field, size_t *len, char *err, size_t errlen)
{
	if (!json_object_is_type(o, json_type_string)) {
		snprintf(err, errlen, "\"%s\" must be a base64 string", field);
		return NULL;
	}
	size_t in_len = (size_t)json_object_get_string_len(o);
	uint8_t *buf = malloc(in_len / 4 * 3 + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	long long n = base64_decode(json_object_get_string(o), in_len, buf);
	if (n < 0) {
		free(buf);
		snprintf(err, errlen, "\"%s\" is not base64", field);
		return NULL;
	}
	*len = (size_t)n;
	return buf;
}

static int get_uint(struct json_object *top, const char *field, unsigned min, unsigned max, unsigned *v,
		    char *err, size_t errlen)
{
	struct json_object *o;
	if (!json_object_object_get_ex(top, field, &o))
		return 0;
	int64_t x = json_object_get_int64(o);
	if (!json_object_is_type(o, json_type_int) || x < min || x > max) {
		snprintf(err, errlen, "\"%s\" must be an integer from %u to %u", field, min, max);
		return -1;
	}
	*v = (unsigned)x;
	return 0;
}

static int parse_argv(struct json_object *top, struct job_request *req, char *err, size_t errlen)
{
	struct json_object *o;
	if (json_object_object_get_ex(top, "cmd", &o)) {
		const char *cmd = plain_string(o, "cmd", err, errlen);
		if (!cmd)
			return -1;
		req->argv = calloc(4, sizeof(char *));
		if (!req->argv)
			goto oom;
		req->argv[0] = strdup("/bin/sh");
		req->argv[1] = strdup("-c");
		req->argv[2] = strdup(cmd);
		if (!req->argv[0] || !req->argv[1] || !req->argv[2])
			goto oom;
		return 0;
	}
	if (!json_object_object_get_ex(top, "argv", &o) || !json_object_is_type(o, json_type_array) ||
	    json_object_array_length(o) == 0) {
		snprintf(err, errlen, "a job needs \"argv\" (a nonempty array of strings) or \"cmd\" (a string)");
		return -1;
	}
	size_t n = json_object_array_length(o);
	if (n > JOB_MAX_ARGS) {
		snprintf(err, errlen, "\"argv\" has %zu strings (at most %d)", n, JOB_MAX_ARGS);
		return -1;
	}
	req->argv = calloc(n + 1, sizeof(char *));
	if (!req->argv)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		const char *s = plain_string(json_object_array_get_idx(o, i), "argv", err, errlen);
		if (!s)
			return -1;
		if (!(req->argv[i] = strdup(s)))
			goto oom;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static int parse_env(struct json_object *top, struct job_request *req, char *err, size_t errlen)
{
	struct json_object *o;
	if (!json_object_object_get_ex(top, "env", &o))
		return 0;
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "\"env\" must be an object of strings");
		return -1;
	}
	size_t n = (size_t)json_object_object_length(o), i = 0;
	if (n > JOB_MAX_ARGS) {
		snprintf(err, errlen, "\"env\" has %zu variables (at most %d)", n, JOB_MAX_ARGS);
		return -1;
	}
	req->env = calloc(n + 1, sizeof(char *));
	if (!req->env)
		goto oom;
	json_object_object_foreach(o, name, val)
	{
		const char *v = plain_string(val, "env", err, errlen);
		if (!v)
			return -1;
		if (!name[0] || strchr(name, '=')) {
			snprintf(err, errlen, "\"env\": '%s' is no variable name", name);
			return -1;
		}
		if (asprintf(&req->env[i++], "%s=%s", name, v) < 0) {
			req->env[i - 1] = NULL;
			goto oom;
		}
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static int parse_files(struct json_object *top, struct job_request *req, char *err, size_t errlen)
{
	struct json_object *o;
	if (!json_object_object_get_ex(top, "files", &o))
		return 0;
	size_t n = json_object_is_type(o, json_type_array) ? json_object_array_length(o) : 0;
	if (!json_object_is_type(o, json_type_array) || n > JOB_MAX_FILES) {
		snprintf(err, errlen, "\"files\" must be an array of at most %d objects", JOB_MAX_FILES);
		return -1;
	}
	req->files = calloc(n + 1, sizeof(*req->files));
	if (!req->files) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *f = json_object_array_get_idx(o, i), *path, *data;
		struct job_file *jf = &req->files[i];
		if (!json_object_is_type(f, json_type_object) || !json_object_object_get_ex(f, "path", &path) ||
		    !json_object_object_get_ex(f, "data", &data)) {
			snprintf(err, errlen, "\"files\"[%zu] must be {\"path\":..., \"data\":BASE64[, \"mode\":N]}", i);
			return -1;
		}
		const char *p = plain_string(path, "files.path", err, errlen);
		if (!p)
			return -1;
		if (p[0] != '/') {
			snprintf(err, errlen, "\"files\"[%zu]: path %s is not absolute", i, p);
			return -1;
		}
		unsigned mode = 0644;
		if (get_uint(f, "mode", 0, 07777, &mode, err, errlen) < 0)
			return -1;
		size_t len;
		uint8_t *buf = decode_b64(data, "files.data", &len, err, errlen);
		if (!buf)
			return -1;
		req->n_files++;
		jf->guest_path = strdup(p);
		jf->mode = mode;
		jf->data = (struct job_source){ .mem = buf, .mem_len = len, .fd = -1 };
		jf->size = len;
		if (!jf->guest_path) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

int job_request_parse(const char *line, size_t len, const struct job_spec *defaults, struct job_request *req,
		      char *err, size_t errlen)
{
	memset(req, 0, sizeof(*req));
	req->spec = *defaults;
	struct json_tokener *tok = json_tokener_new_ex(64);
	if (!tok) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	struct json_object *top = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	int rc = -1;
	if (!top || jerr != json_tokener_success || used != len) {
		snprintf(err, errlen, "not one JSON object: %s",
			 jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "text after it");
		goto out;
	}
	if (!json_object_is_type(top, json_type_object)) {
		snprintf(err, errlen, "a job must be a JSON object");
		goto out;
	}
	struct json_object *o;
	if (json_object_object_get_ex(top, "id", &o))
		req->id = json_object_get(o);
	if (parse_argv(top, req, err, errlen) < 0 || parse_env(top, req, err, errlen) < 0 ||
	    parse_files(top, req, err, errlen) < 0)
		goto out;
	if (json_object_object_get_ex(top, "cwd", &o)) {
		const char *cwd = plain_string(o, "cwd", err, errlen);
		if (!cwd || !(req->cwd = strdup(cwd)))
			goto out;
	}
	if (json_object_object_get_ex(top, "stdin", &o)) {
		size_t n;
		if (!(req->stdin_buf = decode_b64(o, "stdin", &n, err, errlen)))
			goto out;
		req->spec.stdin_src = (struct job_source){ .mem = req->stdin_buf, .mem_len = n, .fd = -1 };
	}
	unsigned max_out_mib = (unsigned)(defaults->max_output >> 20);
	if (get_uint(top, "timeout", 0, 7 * 24 * 3600, &req->spec.timeout_s, err, errlen) < 0 ||
	    get_uint(top, "mem", 64, 1024 * 1024, &req->spec.mem_mib, err, errlen) < 0 ||
	    get_uint(top, "cpus", 1, 255, &req->spec.cpus, err, errlen) < 0 ||
	    get_uint(top, "max_output_mib", 1, 1024, &max_out_mib, err, errlen) < 0)
		goto out;
	req->spec.max_output = (uint64_t)max_out_mib << 20;
	if (json_object_object_get_ex(top, "cold", &o)) {
		if (!json_object_is_type(o, json_type_boolean)) {
			snprintf(err, errlen, "\"cold\" must be true or false");
			goto out;
		}
		req->spec.cold = json_object_get_boolean(o);
	}
	json_object_object_foreach(top, key, val)
	{
		(void)val;
		static const char *known[] = { "id",	  "argv", "cmd", "env",	    "cwd",	     "files",
					       "stdin",	  "timeout", "mem", "cpus", "max_output_mib", "cold" };
		bool ok = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok |= !strcmp(key, known[i]);
		if (!ok) {
			snprintf(err, errlen, "unknown field \"%s\"", key);
			goto out;
		}
	}
	req->spec.argv = req->argv;
	req->spec.env = req->env;
	req->spec.cwd = req->cwd;
	req->spec.files = req->files;
	req->spec.n_files = req->n_files;
	rc = 0;
out:
	json_object_put(top);
	return rc;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void job_request_free(struct job_request *req)
{
	free_strv(req->argv);
	free_strv(req->env);
	free(req->cwd);
	free(req->stdin_buf);
	for (size_t i = 0; req->files && i < req->n_files; i++) {
		free(req->files[i].guest_path);
		free((void *)req->files[i].data.mem);
	}
	free(req->files);
	json_object_put(req->id);
	memset(req, 0, sizeof(*req));
}

static int add_b64(struct json_object *o, const char *key, const uint8_t *buf, size_t len)
{
	char *s = malloc(base64_encoded_len(len) + 1);
	if (!s)
		return -1;
	base64_encode(buf, len, s);
	struct json_object *v = json_object_new_string_len(s, (int)base64_encoded_len(len));
	free(s);
	if (!v)
		return -1;
	json_object_object_add(o, key, v);
	return 0;
}

static char *finish_line(struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *line = NULL;
	if (s && asprintf(&line, "%s\n", s) < 0)
		line = NULL;
	json_object_put(o);
	return line;
}

char *job_result_line(struct json_object *id, const struct job_result *res, const uint8_t *out, size_t out_len,
		      const uint8_t *err, size_t err_len)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	json_object_object_add(o, "outcome", json_object_new_string(job_outcome_name(res->outcome)));
	if (res->outcome == JOB_OK)
		json_object_object_add(o, res->signaled ? "signal" : "status", json_object_new_int(res->code));
	else
		json_object_object_add(o, "error", json_object_new_string(res->error));
	if (add_b64(o, "stdout", out, out_len) < 0 || add_b64(o, "stderr", err, err_len) < 0) {
		json_object_put(o);
		return NULL;
	}
	json_object_object_add(o, "ms", json_object_new_int64((int64_t)res->ms_total));
	json_object_object_add(o, "ms_ready", json_object_new_int64((int64_t)res->ms_ready));
	return finish_line(o);
}

char *job_error_line(struct json_object *id, const char *msg)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	json_object_object_add(o, "outcome", json_object_new_string("error"));
	json_object_object_add(o, "error", json_object_new_string(msg));
	return finish_line(o);
}
