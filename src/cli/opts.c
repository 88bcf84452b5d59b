/* cli/opts.c — the option value parsers every command shares (cli.h: cli_opt_*), so that
 * "--threads x" gets the same rule and the same message in every command:
 *     trit CMD: --FLAG: WHY (got 'VALUE') */
#define _XOPEN_SOURCE 700 /* strptime */
#include "base/base.h"
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The one message shape; every parser's failure ends here. */
int cli_opt_bad(const char *cmd, const char *flag, const char *v, const char *why) {
    fprintf(stderr, "trit %s: --%s: %s (got '%s')\n", cmd, flag, why, v ? v : "");
    return -1;
}

/* The range part of a message for real numbers: "in LO..HI", ">= LO", "<= HI" or "". */
static void real_range(double lo, double hi, const char *unit, char *out, size_t n) {
    if (isinf(lo) && isinf(hi))
        snprintf(out, n, "%s", "");
    else if (isinf(hi))
        snprintf(out, n, " >= %g%s", lo, unit);
    else if (isinf(lo))
        snprintf(out, n, " <= %g%s", hi, unit);
    else
        snprintf(out, n, " in %g..%g%s", lo, hi, unit);
}

/* Whole numbers: trit_parse_long's rule ("12x", "" and overflow are refused), and the text
 * starts with the number (strtol would skip leading blanks). */
int cli_opt_long(const char *cmd, const char *flag, const char *v, long lo, long hi, long *out) {
    if (v && !isspace((unsigned char)v[0]) && !trit_parse_long(v, lo, hi, out)) return 0;
    char why[96];
    snprintf(why, sizeof why, "must be an integer in %ld..%ld", lo, hi);
    return cli_opt_bad(cmd, flag, v, why);
}

/* cli_opt_long for int fields. */
int cli_opt_int(const char *cmd, const char *flag, const char *v, int lo, int hi, int *out) {
    long x;
    if (cli_opt_long(cmd, flag, v, lo, hi, &x)) return -1;
    *out = (int)x;
    return 0;
}

/* The full unsigned 64-bit range (strtoull would wrap "-1" to UINT64_MAX: refused here). */
int cli_opt_u64(const char *cmd, const char *flag, const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long x = v && isdigit((unsigned char)v[0]) ? strtoull(v, &end, 10) : 0;
    if (!v || !isdigit((unsigned char)v[0]) || errno || *end)
        return cli_opt_bad(cmd, flag, v, "must be an integer in 0..18446744073709551615");
    *out = (uint64_t)x;
    return 0;
}

/* A decimal real number at the start of v (strtod, without its hex, inf and nan forms);
 * *end points after it. 0, or -1 when v does not start with one. */
static int decimal_prefix(const char *v, double *x, char **end) {
    const char *p = v + (*v == '-' || *v == '+');
    if (!isdigit((unsigned char)p[0]) && !(p[0] == '.' && isdigit((unsigned char)p[1]))) return -1;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) return -1;
    errno = 0;
    *x = strtod(v, end);
    return errno == ERANGE && isinf(*x) ? -1 : 0;
}

/* Real numbers in [lo, hi]; the whole text must be the number. */
int cli_opt_double(const char *cmd, const char *flag, const char *v, double lo, double hi,
                   double *out) {
    double x;
    char *end;
    if (v && !decimal_prefix(v, &x, &end) && !*end && x >= lo && x <= hi) {
        *out = x;
        return 0;
    }
    char range[80], why[96];
    real_range(lo, hi, "", range, sizeof range);
    snprintf(why, sizeof why, "must be a number%s", range);
    return cli_opt_bad(cmd, flag, v, why);
}

/* cli_opt_double for float fields. */
int cli_opt_float(const char *cmd, const char *flag, const char *v, float lo, float hi,
                  float *out) {
    double x;
    if (cli_opt_double(cmd, flag, v, lo, hi, &x)) return -1;
    *out = (float)x;
    return 0;
}

/* The multiplier of a size unit ("", K, KiB, M, MiB, G, GiB in any case); 0 when unknown. */
static uint64_t size_unit(const char *u) {
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {{"", 1},
                 {"k", 1ull << 10},
                 {"kib", 1ull << 10},
                 {"m", 1ull << 20},
                 {"mib", 1ull << 20},
                 {"g", 1ull << 30},
                 {"gib", 1ull << 30}};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(units); i++)
        if (!strcasecmp(u, units[i].name)) return units[i].mult;
    return 0;
}

/* Byte counts: digits, then an optional unit; the product checked for overflow and range. */
int cli_opt_size(const char *cmd, const char *flag, const char *v, size_t lo, size_t hi,
                 size_t *out) {
    char *end = NULL;
    errno = 0;
    const bool digits = v && isdigit((unsigned char)v[0]);
    const unsigned long long x = digits ? strtoull(v, &end, 10) : 0;
    const uint64_t mult = digits && !errno ? size_unit(end) : 0;
    if (mult && x <= SIZE_MAX / mult && x * mult >= lo && x * mult <= hi) {
        *out = (size_t)(x * mult);
        return 0;
    }
    char why[128];
    snprintf(why, sizeof why, "must be a size in %zu..%zu bytes (units K, M, G: 1024s)", lo, hi);
    return cli_opt_bad(cmd, flag, v, why);
}

/* The seconds in one duration unit ("" and s: 1, ms, m, h, d); 0 when unknown. */
static double duration_unit(const char *u) {
    if (!*u || !strcmp(u, "s")) return 1;
    if (!strcmp(u, "ms")) return 1e-3;
    if (!strcmp(u, "m")) return 60;
    if (!strcmp(u, "h")) return 3600;
    if (!strcmp(u, "d")) return 86400;
    return 0;
}

/* Durations: a decimal number, then an optional unit; the seconds checked against [lo, hi]. */
int cli_opt_duration(const char *cmd, const char *flag, const char *v, double lo, double hi,
                     double *out_s) {
    double x = 0, mult = 0;
    char *end;
    if (v && !decimal_prefix(v, &x, &end)) mult = duration_unit(end);
    if (mult > 0 && x * mult >= lo && x * mult <= hi) {
        *out_s = x * mult;
        return 0;
    }
    char range[80], why[160];
    real_range(lo, hi, " s", range, sizeof range);
    snprintf(why, sizeof why, "must be a duration%s (seconds, or with a unit: 250ms, 30s, 10m, 1h)",
             range);
    return cli_opt_bad(cmd, flag, v, why);
}

/* Timeouts: a duration that must leave some time (0 would give up at once). */
int cli_opt_timeout(const char *cmd, const char *flag, const char *v, double hi, double *out_s) {
    double s = 0;
    if (cli_opt_duration(cmd, flag, v, 0, hi, &s)) return -1;
    if (s <= 0) return cli_opt_bad(cmd, flag, v, "must be more than 0 seconds");
    *out_s = s;
    return 0;
}

/* ISO-8601 in UTC: a date, or a date and time with an optional fraction and 'Z'. 0 and
 * *out, or -1 when v is not one. */
static int iso8601_value(const char *v, double *out) {
    struct tm tm = {0};
    const char *e = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!e) {
        tm = (struct tm){0};
        e = strptime(v, "%Y-%m-%d", &tm);
    }
    if (!e) return -1;
    double frac = 0;
    char *fe;
    if (*e == '.' && !decimal_prefix(e, &frac, &fe)) e = fe;
    if (*e == 'Z') e++;
    if (*e) return -1;
    *out = (double)timegm(&tm) + frac;
    return 0;
}

/* Points in time: ISO-8601, then epoch seconds (a bare number), then an age (a number with
 * a duration unit, counted back from now). */
int cli_time_value(const char *v, double now, double *out) {
    double x, mult;
    char *end;
    if (!v || !*v) return -1;
    if (!iso8601_value(v, out)) return 0;
    if (decimal_prefix(v, &x, &end)) return -1;
    if (!*end) {
        *out = x;
        return 0;
    }
    mult = duration_unit(end);
    if (mult <= 0 || x < 0) return -1;
    *out = now - x * mult;
    return 0;
}

/* Why url is not a usable base URL, or NULL when it is. */
static const char *url_problem(const char *url) {
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) return "must not contain spaces or controls";
    const char *host = !strncmp(url, "http://", 7)    ? url + 7
                       : !strncmp(url, "https://", 8) ? url + 8
                                                      : NULL;
    if (!host) return "must start with http:// or https://";
    const size_t host_len = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":/?#");
    if (host_len == 0 || (host[0] == '[' && host[host_len - 1] != ']')) return "has no host";
    const char *rest = host + host_len;
    if (*rest != ':') return *rest && *rest != '/' ? "has junk after the host" : NULL;
    char port[8] = {0};
    const size_t port_len = strcspn(rest + 1, "/");
    long p;
    if (port_len == 0 || port_len >= sizeof port) return "has a bad port (1..65535)";
    memcpy(port, rest + 1, port_len);
    return trit_parse_long(port, 1, 65535, &p) ? "has a bad port (1..65535)" : NULL;
}

/* Base URLs of servers (chat's --url, shadow's --primary/--candidate). */
int cli_opt_url(const char *cmd, const char *flag, const char *v, const char **out) {
    const char *why = v ? url_problem(v) : "is missing";
    if (why) return cli_opt_bad(cmd, flag, v, why);
    *out = v;
    return 0;
}

/* Files that must exist when the command starts (key files, prompt files). */
int cli_opt_file(const char *cmd, const char *flag, const char *v, const char **out) {
    if (!v || !*v) return cli_opt_bad(cmd, flag, v, "is empty");
    const int fd = open(v, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot open it: %s", strerror(errno));
        return cli_opt_bad(cmd, flag, v, why);
    }
    const bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!regular) return cli_opt_bad(cmd, flag, v, "is not a regular file");
    *out = v;
    return 0;
}

/* Names from a fixed list: exact match, the message lists the names. */
int cli_opt_choice(const char *cmd, const char *flag, const char *v, const char *const *names,
                   int n, int *out) {
    for (int i = 0; v && i < n; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return 0;
        }
    char why[256] = "must be one of";
    for (int i = 0; i < n; i++)
        snprintf(why + strlen(why), sizeof why - strlen(why), "%s %s", i ? "," : "", names[i]);
    return cli_opt_bad(cmd, flag, v, why);
}

/* The long name for getopt_long's result c. */
const char *cli_opt_name(const struct option *table, int c) {
    for (const struct option *o = table; o->name; o++)
        if (!o->flag && o->val == c) return o->name;
    return "?";
}

/* getopt_long plus the hidden --list-options of the help check (cli.h). */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *table) {
    if (optind == 1 && argc > 1 && !strcmp(argv[1], "--list-options")) {
        for (const struct option *o = table; o->name; o++) printf("%s\n", o->name);
        exit(0);
    }
    return getopt_long(argc, argv, shortopts, table, NULL);
}
