/* cmd_doctor.c — `trit doctor`: preflight checks, one ✓/✗/! line each, exit 0 when every
 * required item passes. Required: a known compiler, the libraries at run time (PCRE2 with
 * Unicode), the reference llama.cpp (version, commit, llama-server, libllama.so) and a
 * writable cache. Advisory (!): AVX2/AVX-512/VNNI, optional reference tools, node/npm,
 * clang-14 (fuzzing). `trit doctor --url URL` instead asks a running server what it is (its
 * identity: client.h trit_client_identity) and prints it with its digest. */
#include "cli/cli.h"
#include "client/client.h"
#include "reference/reference.h"
#include "server/server.h"
#include "base/base.h"
#include "kernels/kernels.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pcre2.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

typedef struct doc {
    bool color;
    int failed_required, warnings;
} doc;

enum { OK, FAIL, WARN };

/* One check's line: its mark (coloured on a terminal), what was checked, the finding;
 * failures and advisories counted for the summary. */
static void line(doc *d, int status, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void line(doc *d, int status, const char *what, const char *fmt, ...) {
    static const char *const marks[] = {"\u2713", "\u2717", "!"};
    static const char *const colors[] = {"\033[32m", "\033[31m", "\033[33m"};
    if (status == FAIL) d->failed_required++;
    if (status == WARN) d->warnings++;
    printf("  %s%s%s %-18s ", d->color ? colors[status] : "", marks[status],
           d->color ? "\033[0m" : "", what);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* A section's heading. */
static void section(const char *name) {
    printf("%s\n", name);
}

/* The first line of a file, without its newline; false when it cannot be read. */
static bool read_first_line(const char *path, char *out, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(out, (int)n, f) != NULL;
    fclose(f);
    if (ok) out[strcspn(out, "\r\n")] = 0;
    return ok;
}

/* Whether prog is an executable in $PATH (found: where). */
static bool on_path(const char *prog, char *found, size_t n) {
    const char *path = getenv("PATH");
    if (!path) return false;
    char *dup = xstrdup(path), *save = NULL;
    bool ok = false;
    for (char *dir = strtok_r(dup, ":", &save); dir && !ok; dir = strtok_r(NULL, ":", &save)) {
        snprintf(found, n, "%s/%s", *dir ? dir : ".", prog);
        ok = access(found, X_OK) == 0;
    }
    free(dup);
    return ok;
}

/* First line of `cmd` output (stdout), or "" */
static void cmd_output(const char *cmd, char *out, size_t n) {
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (fgets(out, (int)n, p)) out[strcspn(out, "\r\n")] = 0;
    pclose(p);
}

/* build: the compiler trit was built with. */
static void check_compiler(doc *d) {
    char build[96]; /* "<version>+<commit>", as trit serve reports it */
    trit_build_string(build, sizeof build);
#if defined(__clang__)
    line(d, OK, "compiler", "clang %s (built trit %s)", __clang_version__, build);
#elif defined(__GNUC__)
    line(d, OK, "compiler", "gcc %s (built trit %s)", __VERSION__, build);
#else
    line(d, WARN, "compiler", "unknown compiler (%s)", __VERSION__);
#endif
}

/* Whether /proc/cpuinfo's flags hold flag as a whole word. */
static bool cpuinfo_has(const char *flags, const char *flag) {
    size_t n = strlen(flag);
    for (const char *p = flags; (p = strstr(p, flag)); p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0 || p[n] == '\n')) return true;
    return false;
}

/* cpu: the SIMD features the kernels use, and the kernel set chosen. */
static void check_cpu(doc *d) {
    /* /proc/cpuinfo for what the kernel reports; trit_cpu_features() for what kernels see */
    char *flags = NULL;
    trit_buf b = {0};
    if (trit_read_file("/proc/cpuinfo", &b, NULL) == 0) {
        char *p = strstr(b.p, "\nflags");
        if (p) {
            p = strchr(p, ':');
            if (p) flags = xstrndup(p + 1, strcspn(p + 1, "\n"));
        }
    }
    trit_buf_free(&b);
    const char *feat = trit_cpu_features();
    line(d, OK, "cpu", "%d online cores; trit kernels see: %s", trit_cpu_count(),
         feat && *feat ? feat : "(none)");
    static const struct {
        const char *label, *cpuinfo, *builtin;
    } want[] = {{"AVX2", "avx2", "avx2"},
                {"AVX-512F", "avx512f", "avx512f"},
                {"AVX-512 VNNI", "avx512_vnni", "avx512vnni"}};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(want); i++) {
        bool has = flags ? cpuinfo_has(flags, want[i].cpuinfo)
                         : (feat && cpuinfo_has(feat, want[i].builtin));
        if (has)
            line(d, OK, want[i].label, "present");
        else
            line(d, WARN, want[i].label, "absent (slower kernels are used; results are the same)");
    }
    const trit_kernels *k = trit_kernels_best();
    line(d, OK, "kernels", "%s", k && k->name ? k->name : "ref");
    line(d, OK, "numerics", "%s table: bit-identical to the reference's %s%s%s%s",
         trit_numerics_table_get()->name, trit_numerics_table_get()->ref_build,
         trit_numerics_table_get()->partial ? " (partial: " : "",
         trit_numerics_table_get()->partial ? trit_numerics_table_get()->partial : "",
         trit_numerics_table_get()->partial ? ")" : "");
    free(flags);
}

/* libraries: the versions found at run time (PCRE2 must have Unicode). */
static void check_libs(doc *d) {
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    line(d, cv ? OK : FAIL, "libcurl", "%s", cv ? cv->version : "curl_version_info failed");
    line(d, OK, "jansson", "%s (built against %s)", jansson_version_str(), JANSSON_VERSION);
    char pv[64] = "";
    uint32_t uni = 0;
    pcre2_config(PCRE2_CONFIG_VERSION, pv);
    pcre2_config(PCRE2_CONFIG_UNICODE, &uni);
    line(d, uni ? OK : FAIL, "pcre2", "%s%s", pv,
         uni ? " (Unicode support)" : " WITHOUT Unicode support (tokenizer needs it)");
    const char *mv = MHD_get_version();
    line(d, mv ? OK : FAIL, "libmicrohttpd", "%s", mv ? mv : "unknown");
    unsigned xv = XXH_versionNumber();
    line(d, OK, "xxhash", "%u.%u.%u", xv / 10000, xv / 100 % 100, xv % 100);
}

/* reference llama.cpp: version, commit, binaries and libllama.so. */
static void check_reference(doc *d) {
    const char *dir = trit_ref_dir();
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        line(d, FAIL, "reference dir", "%s missing (run scripts/setup)", dir);
        return;
    }
    line(d, OK, "reference dir", "%s", dir);
    char path[4200], v[256];
    snprintf(path, sizeof path, "%s/version", dir);
    if (!read_first_line(path, v, sizeof v))
        line(d, FAIL, "reference version", "%s missing", path);
    else if (strcmp(v, TRIT_NLC_VERSION))
        line(d, FAIL, "reference version", "node-llama-cpp %s, but trit pins %s", v,
             TRIT_NLC_VERSION);
    else
        line(d, OK, "reference version", "node-llama-cpp %s", v);
    snprintf(path, sizeof path, "%s/commit", dir);
    if (!read_first_line(path, v, sizeof v) || strlen(v) < 7)
        line(d, FAIL, "reference commit", "%s missing or empty", path);
    else
        line(d, OK, "reference commit", "llama.cpp %s", v);
    static const struct {
        const char *name;
        bool required;
    } bins[] = {{"llama-server", true},    {"libllama.so", true},     {"llama-perplexity", false},
                {"llama-quantize", false}, {"llama-tokenize", false}, {"llama-bench", false}};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(bins); i++) {
        char *p = trit_ref_path(bins[i].name);
        if (p)
            line(d, OK, bins[i].name, "%s", p);
        else
            line(d, bins[i].required ? FAIL : WARN, bins[i].name, "missing from %s/build/bin", dir);
        free(p);
    }
}

/* environment: a writable cache directory. */
static void check_cache(doc *d) {
    const char *cache = getenv("TRIT_CACHE");
    const char *home = getenv("HOME");
    char dir[4096];
    if (cache && *cache)
        snprintf(dir, sizeof dir, "%s", cache);
    else
        snprintf(dir, sizeof dir, "%s/.cache/trit", home ? home : "/root");
    /* mkdir -p */
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0755);
            *p = '/';
        }
    mkdir(dir, 0755);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.doctor-probe", dir);
    trit_err err = {0};
    if (trit_write_file_atomic(probe, "ok", 2, &err) == 0) {
        unlink(probe);
        line(d, OK, "cache dir", "%s (writable)", dir);
    } else {
        line(d, FAIL, "cache dir", "%s not writable: %s", dir, err.msg);
    }
}

/* environment: the optional tools (node/npm build the reference, clang-14 fuzzes). */
static void check_tools(doc *d) {
    static const struct {
        const char *prog, *why, *version_cmd;
    } tools[] = {
        {"node", "builds the reference (scripts/reference)", "node --version 2>/dev/null"},
        {"npm", "fetches node-llama-cpp (scripts/reference)", "npm --version 2>/dev/null"},
        {"clang-14", "libFuzzer targets (make fuzz)", "clang-14 --version 2>/dev/null"},
    };
    for (size_t i = 0; i < TRIT_ARRAY_LEN(tools); i++) {
        char found[4200], v[256];
        if (on_path(tools[i].prog, found, sizeof found)) {
            cmd_output(tools[i].version_cmd, v, sizeof v);
            line(d, OK, tools[i].prog, "%s %s", found, v);
        } else {
            line(d, WARN, tools[i].prog, "not found (%s)", tools[i].why);
        }
    }
}

/* `trit doctor --url URL`: the server's identity, one field a line (or the JSON object with
 * --json), then its digest. Exit 0 when the server answered /props or /v1/models, 1 when
 * not. */
static int show_identity(const char *url, const char *api_key, double timeout_s, bool as_json) {
    trit_client_resp r;
    json_t *id = trit_client_identity(url, api_key, timeout_s, &r);
    if (!id) {
        fprintf(stderr, "trit doctor: %s (%s)\n", r.msg, trit_client_errkind_name(r.kind));
        trit_client_resp_free(&r);
        return 1;
    }
    trit_client_resp_free(&r);
    char digest[17];
    trit_identity_digest(id, digest);
    if (as_json) {
        json_object_set_new(id, "digest", json_string(digest));
        char *s = json_dumps(id, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(id);
        return 0;
    }
    const char *key;
    json_t *v;
    json_object_foreach(id, key, v) {
        if (json_is_string(v)) {
            printf("%-19s %s\n", key, *json_string_value(v) ? json_string_value(v) : "-");
        } else if (json_is_integer(v)) {
            if (json_integer_value(v))
                printf("%-19s %lld\n", key, (long long)json_integer_value(v));
            else
                printf("%-19s -\n", key);
        } else if (json_is_array(v)) {
            printf("%-19s", key);
            for (size_t i = 0; i < json_array_size(v); i++)
                printf(" %s", json_string_value(json_array_get(v, i)));
            printf("\n");
        }
    }
    printf("%-19s %s\n", "digest", digest);
    json_decref(id);
    return 0;
}

/* --help: both forms, every option of doctor_options, the exit codes. */
static void doctor_usage(FILE *f) {
    fprintf(f, "usage: trit doctor [--no-color]\n"
               "       trit doctor --url URL [--api-key-file F] [--timeout S] [--json]\n\n"
               "Preflight: compiler, CPU features (AVX2, AVX-512, VNNI), library versions,\n"
               "the reference llama.cpp (version, commit, binaries), a writable cache and\n"
               "node/npm. \u2713 ok, \u2717 required item missing, ! advisory.\n"
               "exit: 0 when every required item is \u2713, 1 otherwise, 2 usage\n\n"
               "With --url: what the server at URL says it is (GET /props and /v1/models:\n"
               "engine, build, model path, sha256 and size, n_vocab, n_ctx, numerics,\n"
               "kernels, threads, instance, system_fingerprint) and the identity's digest\n"
               "(docs/parity.md, Identity); --json prints the identity object.\n"
               "  --api-key-file F   send 'Authorization: Bearer KEY' with the key in file F\n"
               "                     (default $TRIT_API_KEY)\n"
               "  --api-key KEY      the same from the command line (visible in ps: avoid)\n"
               "  --timeout S        seconds per request (default 10)\n"
               "exit: 0 when the server answered, 1 when it did not, 2 usage\n");
}

/* What the command line asked for: the preflight's colour, or a server to identify. */
typedef struct doctor_args {
    bool color, as_json;
    const char *url, *key_file;
    char *key_arg; /* --api-key's argv string (trit_api_key_take_arg wipes it) */
    double timeout_s;
} doctor_args;

enum { O_NO_COLOR = 256, O_URL, O_KEY, O_KEYFILE, O_TIMEOUT, O_JSON };
static const struct option doctor_options[] = {{"no-color", no_argument, 0, O_NO_COLOR},
                                               {"url", required_argument, 0, O_URL},
                                               {"api-key", required_argument, 0, O_KEY},
                                               {"api-key-file", required_argument, 0, O_KEYFILE},
                                               {"timeout", required_argument, 0, O_TIMEOUT},
                                               {"json", no_argument, 0, O_JSON},
                                               {"help", no_argument, 0, 'h'},
                                               {0, 0, 0, 0}};

/* One option into a: 0, or -1 (a bad value said on stderr; getopt named a bad option). */
static int doctor_option(int c, char *v, doctor_args *a) {
    switch (c) {
    case O_NO_COLOR:
        a->color = false;
        return 0;
    case O_URL:
        a->url = v;
        return 0;
    case O_KEY:
        a->key_arg = v;
        return 0;
    case O_KEYFILE:
        a->key_file = v;
        return 0;
    case O_TIMEOUT:
        return cli_opt_timeout("doctor", "timeout", v, INFINITY, &a->timeout_s);
    case O_JSON:
        a->as_json = true;
        return 0;
    }
    return -1;
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr).
 * Colour by default only on a terminal, and not with $NO_COLOR. */
static int parse_doctor(int argc, char **argv, doctor_args *a) {
    *a = (doctor_args){.color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR"), .timeout_s = 10};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "h", doctor_options)) != -1) {
        if (c == 'h') {
            doctor_usage(stdout);
            return 1;
        }
        if (doctor_option(c, optarg, a)) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "trit doctor: unexpected argument '%s' (see trit doctor --help)\n",
                argv[optind]);
        return 2;
    }
    if (!a->url && (a->key_arg || a->key_file || a->as_json)) {
        fprintf(stderr, "trit doctor: --api-key, --api-key-file and --json need --url\n");
        return 2;
    }
    return 0;
}

/* --url: the key (argument, file or $TRIT_API_KEY; unreadable: 2), then the identity. */
static int run_identity(const doctor_args *a) {
    char *api_key = NULL;
    trit_err err = {0};
    if (a->key_arg) {
        api_key = trit_api_key_take_arg(a->key_arg);
    } else if (trit_api_key_load(a->key_file, "TRIT_API_KEY", &api_key, &err)) {
        fprintf(stderr, "trit doctor: %s\n", err.msg);
        return 2;
    }
    int rc = show_identity(a->url, api_key, a->timeout_s, a->as_json);
    free(api_key);
    return rc;
}

/* The preflight: each section's checks, then the summary; 1 when a required item failed. */
static int run_preflight(bool color) {
    doc d = {.color = color};
    printf("trit %s doctor\n", TRIT_VERSION);
    section("build");
    check_compiler(&d);
    section("cpu");
    check_cpu(&d);
    section("libraries");
    check_libs(&d);
    section("reference llama.cpp");
    check_reference(&d);
    section("environment");
    check_cache(&d);
    check_tools(&d);
    if (d.failed_required)
        printf("\n%d required item%s failed, %d advisory\n", d.failed_required,
               d.failed_required == 1 ? "" : "s", d.warnings);
    else
        printf("\nall required items ok (%d advisory)\n", d.warnings);
    return d.failed_required ? 1 : 0;
}

/* `trit doctor`: the command line into its options, then the identity or the preflight. */
int cmd_doctor(int argc, char **argv) {
    doctor_args a;
    int rc = parse_doctor(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    return a.url ? run_identity(&a) : run_preflight(a.color);
}
