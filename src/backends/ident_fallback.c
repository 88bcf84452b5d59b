/* backends/ident_fallback.c — TEMPORARY: a weak trit_client_identity (GET /v1/models only)
 * so the http backend links and runs until src/client's implementation (branch ident) is
 * merged; the strong definition there replaces this one, and this file is deleted then. */
#include "client/client.h"

#include <string.h>

/* Only what /v1/models says: the first model id; every other field empty / 0. */
__attribute__((weak)) json_t *trit_client_identity(const char *url, const char *api_key,
                                                   double timeout_s, trit_client_resp *resp) {
    char id[256];
    if (trit_client_model_id(url, api_key, timeout_s, id, sizeof id, resp) != 0) return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "url", json_string(url));
    json_object_set_new(o, "engine", json_string("unknown"));
    json_object_set_new(o, "build", json_string(""));
    json_object_set_new(o, "model", json_string(id));
    json_object_set_new(o, "model_sha256", json_string(""));
    json_object_set_new(o, "model_size", json_integer(0));
    json_object_set_new(o, "n_vocab", json_integer(0));
    json_object_set_new(o, "n_ctx", json_integer(0));
    json_object_set_new(o, "n_ctx_train", json_integer(0));
    json_object_set_new(o, "numerics", json_string(""));
    json_object_set_new(o, "kernels", json_string(""));
    json_object_set_new(o, "threads", json_integer(0));
    json_object_set_new(o, "instance", json_string(""));
    json_object_set_new(o, "system_fingerprint", json_string(""));
    json_object_set_new(o, "reported", json_pack("[s]", "/v1/models"));
    return o;
}
