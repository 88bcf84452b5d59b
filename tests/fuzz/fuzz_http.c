/* fuzz_http — libFuzzer target for the server's request parser and text rules: arbitrary
 * bytes go through srv_parse_request (completion and chat), /tokenize and /detokenize
 * parsing, UTF-8 repair and the stop-string state machine. Nothing may crash or leak, and a
 * rejected request always carries an HTTP status and a message. */
#include "server/server.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    srv_error e;
    for (int kind = SRV_COMPLETION; kind <= SRV_CHAT; kind++) {
        srv_request r;
        memset(&e, 0, sizeof e);
        if (srv_parse_request(kind, s, size, &r, &e) == 0) {
            srv_text t = {0};
            trit_buf send = {0};
            for (size_t i = 0; i < r.n_msgs; i++)
                srv_text_push(&t, r.msgs[i].content, strlen(r.msgs[i].content), true, r.stop,
                              r.n_stop, &send);
            if (r.prompt)
                srv_text_push(&t, r.prompt, strlen(r.prompt), false, r.stop, r.n_stop, &send);
            srv_text_free(&t);
            trit_buf_free(&send);
            srv_request_free(&r);
        } else {
            if (e.status < 400 || e.status > 599 || !e.message[0]) abort();
            free(srv_error_json(&e));
        }
    }
    srv_tokenize_req q;
    if (srv_parse_tokenize(s, size, &q, &e) == 0) free(q.content);
    int32_t *ids = NULL;
    size_t n = 0;
    if (srv_parse_detokenize(s, size, &ids, &n, &e) == 0) free(ids);
    trit_buf b = {0};
    trit_utf8_repair(s, size, &b);
    if (!trit_utf8_valid(b.p, b.len)) abort();
    trit_buf_free(&b);
    (void)trit_utf8_complete_prefix(s, size);
    return 0;
}
