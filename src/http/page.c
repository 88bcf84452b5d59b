/* http/page.c — the pages trit's servers show (the chat page of `trit serve`, the parity
 * dashboard of `trit burnin dashboard` / `trit shadow`): embedded assets served with the
 * headers that keep a page self-contained. See http.h, "pages". */
#include "http/http.h"

#include <string.h>

/* Every asset carries the same policy. The page may load only its own scripts, styles and
 * images, talk only to its own origin, and be framed by nobody: a reply or a prompt that
 * smuggled markup into the DOM could neither run script inline nor send data elsewhere. */
static const char *const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'";

const trit_http_asset *trit_http_asset_find(const trit_http_asset *tab, size_t n, const char *url) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(tab[i].path, url) == 0) return &tab[i];
    return NULL;
}

void trit_http_page_headers(struct MHD_Response *r) {
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, "Cache-Control", "no-store");
}

/* The asset's bytes live in the binary for its whole life, so MHD may send them in place. */
enum MHD_Result trit_http_send_asset(struct MHD_Connection *c, const trit_http_asset *a) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", a->ctype);
    trit_http_page_headers(r);
    return trit_http_queue(c, MHD_HTTP_OK, r);
}
