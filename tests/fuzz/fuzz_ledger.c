/* fuzz_ledger — libFuzzer target for the ledger's fast line scanner (read only): the input as
 * one line through trit_ledger_parse_line (in an exact-size buffer, so ASan sees any read past
 * the line), then as a whole file through trit_ledger_scan (line splitting, a truncated last
 * line). Parsed strings must lie inside the line, enums in range; a file always scans. */
#include "parity/parity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check_str(const char *s, size_t n, const char *line, size_t len) {
    if (!s) abort();
    if (n == 0) return;
    if (s < line || s + n > line + len) abort();
}

static int on_rec(void *user, const trit_ledger_rec *r, const char *line, size_t len) {
    (void)line, (void)len;
    long *n = user;
    (*n)++;
    if (r->type < TRIT_REC_ROUND || r->type > TRIT_REC_IDENTITY) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *line = malloc(size ? size : 1);
    memcpy(line, data, size);
    trit_ledger_rec r;
    if (trit_ledger_parse_line(line, size, &r) == 0) {
        if (r.type < TRIT_REC_ROUND || r.type > TRIT_REC_IDENTITY) abort();
        check_str(r.prompt_id, r.prompt_id_len, line, size);
        check_str(r.category, r.category_len, line, size);
        if (!r.source) abort();
        if (r.bucket < -1 || r.bucket >= TRIT_BUCKET_N || r.noise_bucket < -1 ||
            r.noise_bucket >= TRIT_BUCKET_N)
            abort();
        if (r.bucket >= 0 && !trit_bucket_name(r.bucket)) abort();
        if (r.prev.p) check_str(r.prev.p, r.prev.n, line, size);
        if (r.text_gen1.p) check_str(r.text_gen1.p, r.text_gen1.n, line, size);
        trit_buf u = {0}; /* the one unescaper, on whatever the fuzzer wrote */
        trit_ledger_unescape(r.text_gen1, &u);
        trit_buf_free(&u);
        trit_ledger_rec_clear(&r);
    }
    free(line);
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/trit-fuzz-ledger-%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    trit_ledger_scan_info info;
    trit_err err = {0};
    long n = 0;
    if (trit_ledger_scan(path, on_rec, &n, true, &info, &err) != 0) abort();
    if (info.records != n || info.last_good_offset < 0 || info.last_good_offset > (long)size)
        abort();
    trit_ledger_chain ch; /* the chain judge never fails on bad input, only reports it */
    if (trit_ledger_verify(path, &ch, &err) != 0 || ch.records != n) abort();
    unlink(path);
    return 0;
}
