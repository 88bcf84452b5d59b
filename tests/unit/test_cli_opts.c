/* test_cli_opts.c — the cli's shared option value parsers (src/cli/opts.c, cli.h): ranges,
 * junk after the number, overflow, empty values, units of sizes and durations, URLs, files,
 * choices, and the one message shape "trit CMD: --FLAG: WHY (got 'VALUE')". */
#include "cli/cli.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Whole numbers: inside the range, its ends, outside, junk, empty, overflow. */
Test(cli_opts, long_ranges_and_junk, .init = cr_redirect_stderr) {
    long x = 77;
    cr_assert_eq(cli_opt_long("t", "n", "5", 1, 10, &x), 0);
    cr_assert_eq(x, 5);
    cr_assert_eq(cli_opt_long("t", "n", "1", 1, 10, &x), 0);
    cr_assert_eq(cli_opt_long("t", "n", "10", 1, 10, &x), 0);
    cr_assert_eq(x, 10);
    cr_assert_eq(cli_opt_long("t", "n", "-3", -5, 0, &x), 0);
    cr_assert_eq(x, -3);
    const char *bad[] = {"0",
                         "11",
                         "-1",
                         "5x",
                         "5 ",
                         " 5",
                         "",
                         "x",
                         "1.5",
                         "0x5",
                         "99999999999999999999999",
                         "-99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        x = 77;
        cr_assert_eq(cli_opt_long("t", "n", bad[i], 1, 10, &x), -1, "'%s' accepted", bad[i]);
        cr_assert_eq(x, 77, "'%s' changed *out", bad[i]);
    }
    cr_assert_eq(cli_opt_long("t", "n", NULL, 1, 10, &x), -1, "a missing value");
    cr_assert_eq(cli_opt_long("t", "n", "9223372036854775807", 0, LONG_MAX, &x), 0);
    cr_assert_eq(x, LONG_MAX);
    cr_assert_eq(cli_opt_long("t", "n", "9223372036854775808", 0, LONG_MAX, &x), -1);
    int i = 3;
    cr_assert_eq(cli_opt_int("t", "n", "256", 1, 256, &i), 0);
    cr_assert_eq(i, 256);
    cr_assert_eq(cli_opt_int("t", "n", "257", 1, 256, &i), -1);
    cr_assert_eq(i, 256);
}

/* Seeds: the whole unsigned range, no sign, no wrap-around of "-1". */
Test(cli_opts, u64, .init = cr_redirect_stderr) {
    uint64_t s = 9;
    cr_assert_eq(cli_opt_u64("t", "seed", "18446744073709551615", &s), 0);
    cr_assert_eq(s, UINT64_MAX);
    cr_assert_eq(cli_opt_u64("t", "seed", "0", &s), 0);
    cr_assert_eq(s, 0);
    const char *bad[] = {"-1", "+1", "", "1x", "18446744073709551616", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(cli_opt_u64("t", "seed", bad[i], &s), -1, "'%s' accepted", bad[i]);
    cr_assert_eq(s, 0);
}

/* Real numbers: decimal forms only, the whole text, inclusive ranges, no nan/inf/hex. */
Test(cli_opts, doubles, .init = cr_redirect_stderr) {
    double d = 0;
    cr_assert_eq(cli_opt_double("t", "x", "1.5", 0, 2, &d), 0);
    cr_assert_float_eq(d, 1.5, 0);
    cr_assert_eq(cli_opt_double("t", "x", "3e-3", 1e-7, 1, &d), 0);
    cr_assert_float_eq(d, 3e-3, 0);
    cr_assert_eq(cli_opt_double("t", "x", ".5", 0, 1, &d), 0);
    cr_assert_eq(cli_opt_double("t", "x", "-2", -INFINITY, INFINITY, &d), 0);
    cr_assert_float_eq(d, -2, 0);
    cr_assert_eq(cli_opt_double("t", "x", "2", 0, 2, &d), 0, "the top of the range is in");
    const char *bad[] = {"2.01", "-0.1", "1.5x", "", "x", "nan", "inf", "0x1p1", "1e999", ". 5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        d = 42;
        cr_assert_eq(cli_opt_double("t", "x", bad[i], 0, 2, &d), -1, "'%s' accepted", bad[i]);
        cr_assert_float_eq(d, 42, 0);
    }
    cr_assert_eq(cli_opt_double("t", "x", "nan", -INFINITY, INFINITY, &d), -1);
    cr_assert_eq(cli_opt_double("t", "x", "1e999", -INFINITY, INFINITY, &d), -1, "overflow");
    float f = 0;
    cr_assert_eq(cli_opt_float("t", "lr", "3e-3", 1e-7f, 1.0f, &f), 0);
    cr_assert_float_eq(f, 3e-3f, 1e-9);
    cr_assert_eq(cli_opt_float("t", "lr", "2", 1e-7f, 1.0f, &f), -1);
}

/* Sizes: bare bytes, K/M/G (and KiB/MiB/GiB, any case) as powers of 1024, range, overflow. */
Test(cli_opts, sizes, .init = cr_redirect_stderr) {
    size_t b = 0;
    struct {
        const char *v;
        uint64_t want;
    } good[] = {{"65536", 65536},   {"64K", 65536},       {"64k", 65536},
                {"64KiB", 65536},   {"16M", 16ull << 20}, {"16MiB", 16ull << 20},
                {"1G", 1ull << 30}, {"1gib", 1ull << 30}, {"0", 0}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cr_assert_eq(cli_opt_size("t", "max-body", good[i].v, 0, 1ull << 40, &b), 0, "%s",
                     good[i].v);
        cr_assert_eq(b, good[i].want, "%s -> %llu", good[i].v, (unsigned long long)b);
    }
    const char *bad[] = {"",
                         "K",
                         "1.5M",
                         "-1",
                         "1 K",
                         "1KB",
                         "1T",
                         "12x",
                         "2G",
                         "64 ",
                         "+64",
                         "99999999999999999999",
                         "17179869184G"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        b = 5;
        cr_assert_eq(cli_opt_size("t", "max-body", bad[i], 0, 1ull << 30, &b), -1, "'%s' accepted",
                     bad[i]);
        cr_assert_eq(b, 5);
    }
    cr_assert_eq(cli_opt_size("t", "max-body", "63", 64, 1ull << 30, &b), -1, "below the range");
    cr_assert_eq(cli_opt_size("t", "max-body", "1G", 64, 1ull << 30, &b), 0, "top of the range");
}

/* Durations: bare seconds, ms/s/m/h, fractions, range; unknown units and junk refused. */
Test(cli_opts, durations, .init = cr_redirect_stderr) {
    double s = 0;
    struct {
        const char *v;
        double want;
    } good[] = {{"600", 600}, {"1.5", 1.5}, {"250ms", 0.25}, {"30s", 30},
                {"10m", 600}, {"1h", 3600}, {"0", 0},        {"1d", 86400}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cr_assert_eq(cli_opt_duration("t", "timeout", good[i].v, 0, 86400, &s), 0, "%s", good[i].v);
        cr_assert_float_eq(s, good[i].want, 1e-12, "%s -> %g", good[i].v, s);
    }
    const char *bad[] = {"", "s", "10x", "10 s", "10S", "-1", "25h", "nan", "inf", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s = 7;
        cr_assert_eq(cli_opt_duration("t", "timeout", bad[i], 0, 86400, &s), -1, "'%s' accepted",
                     bad[i]);
        cr_assert_float_eq(s, 7, 0);
    }
    cr_assert_eq(cli_opt_duration("t", "timeout", "0", 1e-3, 86400, &s), -1, "below the range");
}

/* Timeouts: durations above 0 up to the limit; 0 and anything past the limit refused. */
Test(cli_opts, timeouts, .init = cr_redirect_stderr) {
    double s = 5;
    cr_assert_eq(cli_opt_timeout("t", "timeout", "0.001", 60, &s), 0);
    cr_assert_float_eq(s, 0.001, 1e-15);
    cr_assert_eq(cli_opt_timeout("t", "timeout", "1m", 60, &s), 0, "the limit is in");
    cr_assert_float_eq(s, 60, 0);
    const char *bad[] = {"0", "0ms", "-1", "61", "2m", "", "x", "inf"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s = 7;
        cr_assert_eq(cli_opt_timeout("t", "timeout", bad[i], 60, &s), -1, "'%s' accepted", bad[i]);
        cr_assert_float_eq(s, 7, 0);
    }
}

/* Points in time: ISO-8601 dates and times (fraction, 'Z'), epoch seconds, ages before now;
 * junk refused and *out left alone. */
Test(cli_opts, times) {
    const double now = 1765000000; /* 2025-12-06T05:46:40Z */
    struct {
        const char *v;
        double want;
    } good[] = {{"2026-12-07", 1796601600},
                {"2026-12-07T18:30:00", 1796668200},
                {"2026-12-07T18:30:00Z", 1796668200},
                {"2026-12-07T18:30:00.25Z", 1796668200.25},
                {"1765000000", 1765000000},
                {"12.5", 12.5},
                {"2h", now - 7200},
                {"30m", now - 1800},
                {"1d", now - 86400},
                {"90s", now - 90},
                {"0h", now}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        double t = 0;
        cr_assert_eq(cli_time_value(good[i].v, now, &t), 0, "'%s' refused", good[i].v);
        cr_assert_float_eq(t, good[i].want, 1e-6, "%s -> %.3f", good[i].v, t);
    }
    const char *bad[] = {"",    "x",           "2h ago",     "-2h",
                         "2y",  "2026-12-07x", "2026-13-45", "2026-12-07T18:30:00+01",
                         "nan", "0x10",        "inf",        "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double t = 42;
        cr_assert_eq(cli_time_value(bad[i], now, &t), -1, "'%s' accepted", bad[i]);
        cr_assert_float_eq(t, 42, 0, "'%s' changed *out", bad[i]);
    }
    cr_assert_eq(cli_time_value(NULL, now, &(double){0}), -1, "a missing value");
}

/* URLs: scheme, host, port, path; spaces and junk refused. */
Test(cli_opts, urls, .init = cr_redirect_stderr) {
    const char *u = NULL;
    const char *good[] = {"http://127.0.0.1:8180", "https://example.com", "http://h/v1",
                          "http://[::1]:8080/x", "http://localhost:1"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cr_assert_eq(cli_opt_url("t", "url", good[i], &u), 0, "%s", good[i]);
        cr_assert_eq(u, good[i]);
    }
    const char *bad[] = {"",           "127.0.0.1:8180",    "ftp://h",        "http://",
                         "http://:80", "http://h:0",        "http://h:65536", "http://h:x",
                         "http://h x", "http://[::1:80",    "http://h?q",     "http://h:80?q",
                         "http://h:",  "http://h:123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        u = NULL;
        cr_assert_eq(cli_opt_url("t", "url", bad[i], &u), -1, "'%s' accepted", bad[i]);
        cr_assert_null(u);
    }
}

/* Files: a readable regular file is taken; a missing one, a directory and "" are not. */
Test(cli_opts, files, .init = cr_redirect_stderr) {
    char path[] = "/tmp/test_cli_opts.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    const char *f = NULL;
    cr_assert_eq(cli_opt_file("t", "file", path, &f), 0);
    cr_assert_eq(f, path);
    f = NULL;
    cr_assert_eq(cli_opt_file("t", "file", "/nonexistent/x", &f), -1);
    cr_assert_eq(cli_opt_file("t", "file", "/tmp", &f), -1, "a directory");
    cr_assert_eq(cli_opt_file("t", "file", "", &f), -1);
    cr_assert_null(f);
    unlink(path);
}

/* Choices: exact names only; the index comes back. */
Test(cli_opts, choices, .init = cr_redirect_stderr) {
    static const char *const names[] = {"text", "json"};
    int k = -1;
    cr_assert_eq(cli_opt_choice("t", "format", "json", names, 2, &k), 0);
    cr_assert_eq(k, 1);
    cr_assert_eq(cli_opt_choice("t", "format", "JSON", names, 2, &k), -1);
    cr_assert_eq(cli_opt_choice("t", "format", "", names, 2, &k), -1);
    cr_assert_eq(k, 1);
}

/* The message shape, on stderr, for each kind of parser. */
Test(cli_opts, message_shape, .init = cr_redirect_stderr) {
    long x;
    double d;
    size_t b;
    const char *s;
    static const char *const names[] = {"exact", "fast"};
    int k;
    cli_opt_long("bench", "parallel", "0", 1, 256, &x);
    cli_opt_double("train", "lr", "big", 1e-7, 1, &d);
    cli_opt_size("serve", "max-body", "1T", 64, 1024, &b);
    cli_opt_duration("shadow", "timeout", "5y", 0, 60, &d);
    cli_opt_url("chat", "url", "localhost", &s);
    cli_opt_choice("run", "numerics", "turbo", names, 2, &k);
    cli_opt_bad("trace capture", "points", "", "is empty");
    fflush(stderr);
    cr_assert_stderr_eq_str(
        "trit bench: --parallel: must be an integer in 1..256 (got '0')\n"
        "trit train: --lr: must be a number in 1e-07..1 (got 'big')\n"
        "trit serve: --max-body: must be a size in 64..1024 bytes (units K, M, G: 1024s) "
        "(got '1T')\n"
        "trit shadow: --timeout: must be a duration in 0..60 s (seconds, or with a unit: 250ms, "
        "30s, 10m, 1h) (got '5y')\n"
        "trit chat: --url: must start with http:// or https:// (got 'localhost')\n"
        "trit run: --numerics: must be one of exact, fast (got 'turbo')\n"
        "trit trace capture: --points: is empty (got '')\n");
}

/* The long name of an option, for the parsers' messages. */
Test(cli_opts, option_names) {
    static const struct option table[] = {
        {"threads", required_argument, 0, 't'}, {"json", no_argument, 0, 300}, {0, 0, 0, 0}};
    cr_assert_str_eq(cli_opt_name(table, 't'), "threads");
    cr_assert_str_eq(cli_opt_name(table, 300), "json");
    cr_assert_str_eq(cli_opt_name(table, 'x'), "?");
}
