/* cmd_doctor.c — `trit doctor`: preflight checks, one ✓/✗/! line each, exit 0 when every
 * required item passes. Required: a known compiler, the libraries at run time (PCRE2 with
 * Unicode), the reference llama.cpp (version, commit, llama-server, libllama.so) and a
 * writable cache. Advisory (!): AVX2/AVX-512/VNNI, optional reference tools, node/npm,
 * clang-14 (fuzzing). */
#include "cli/cli.h"
#include "reference/reference.h"
#include "base/base.h"
#include "kernels/kernels.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pcre2.h>
#include <getopt.h>
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

static void section(const char *name) {
    printf("%s\n", name);
}

static bool read_first_line(const char *path, char *out, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(out, (int)n, f) != NULL;
    fclose(f);
    if (ok) out[strcspn(out, "\r\n")] = 0;
    return ok;
}

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

static void check_compiler(doc *d) {
#if defined(__clang__)
    line(d, OK, "compiler", "clang %s (built trit %s)", __clang_version__, TRIT_VERSION);
#elif defined(__GNUC__)
    line(d, OK, "compiler", "gcc %s (built trit %s)", __VERSION__, TRIT_VERSION);
#else
    line(d, WARN, "compiler", "unknown compiler (%s)", __VERSION__);
#endif
}

static bool cpuinfo_has(const char *flags, const char *flag) {
    size_t n = strlen(flag);
    for (const char *p = flags; (p = strstr(p, flag)); p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0 || p[n] == '\n')) return true;
    return false;
}

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

int cmd_doctor(int argc, char **argv) {
    doc d = {.color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR")};
    enum { O_NO_COLOR = 256 };
    static const struct option lo[] = {
        {"no-color", no_argument, 0, O_NO_COLOR}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case O_NO_COLOR:
            d.color = false;
            break;
        case 'h':
            printf("usage: trit doctor [--no-color]\n\n"
                   "Preflight: compiler, CPU features (AVX2, AVX-512, VNNI), library versions,\n"
                   "the reference llama.cpp (version, commit, binaries), a writable cache and\n"
                   "node/npm. \u2713 ok, \u2717 required item missing, ! advisory.\n"
                   "exit: 0 when every required item is \u2713, 1 otherwise, 2 usage\n");
            return 0;
        default:
            return 2; /* getopt named the bad option */
        }
    }
    if (optind < argc) {
        fprintf(stderr, "trit doctor: unexpected argument '%s' (see trit doctor --help)\n",
                argv[optind]);
        return 2;
    }
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
