/* cmd_inspect.c — `trit inspect MODEL [--json] [--tensors] [--kv KEY]`: a GGUF file's
 * metadata (arrays summarised), architecture summary, tensor table and totals. */
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "model/model.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_HEAD 5  /* array items shown in summaries */
#define STR_SHOW   96 /* string characters shown in the text listing */

/* --help: every option of inspect_options. */
static void usage(FILE *out) {
    fprintf(out,
            "usage: trit inspect MODEL.gguf [--json] [--tensors] [--kv KEY]\n\n"
            "Prints a GGUF file's metadata (arrays summarised: type, length, first items), the\n"
            "architecture summary for llama/bitnet models (incl. the FFN activation), the tensor\n"
            "table (name, type, dims, bytes, offset) and totals.\n\n"
            "  --json      one JSON object instead of text\n"
            "  --tensors   only the tensor table and totals\n"
            "  --kv KEY    only the value of KEY (strings raw, arrays in full)\n"
            "exit: 0 ok, 1 missing/malformed file or key not found, 2 usage\n");
}

/* ---- JSON values ---- */
static json_t *jstr(gguf_str s) {
    json_t *j = json_stringn_nocheck(s.p, (size_t)s.n);
    return j ? j : json_string("");
}

/* Array item i as JSON (u64 values past int64 as reals). */
static json_t *elem_json(const gguf_kv *kv, uint64_t i) {
    uint32_t t = kv->arr_type;
    if (t == GGUF_T_STRING) return jstr(kv->arr_strs[i]);
    if (t == GGUF_T_BOOL) return json_boolean(kv->arr_data[i]);
    if (t == GGUF_T_F32 || t == GGUF_T_F64) {
        double d = 0;
        gguf_arr_f64(kv, i, &d);
        return json_real(d);
    }
    int64_t v;
    if (gguf_arr_i64(kv, i, &v) == 0) return json_integer(v);
    double d = 0; /* u64 beyond int64 */
    gguf_arr_f64(kv, i, &d);
    return json_real(d);
}

/* Scalar value, or for arrays: {"type": elem, "n": N, "items"|"first": [...]} */
static json_t *kv_json(const gguf_kv *kv, bool full) {
    switch (kv->type) {
    case GGUF_T_U8:
    case GGUF_T_U16:
    case GGUF_T_U32:
    case GGUF_T_U64:
        return kv->v.u64 <= (uint64_t)INT64_MAX ? json_integer((json_int_t)kv->v.u64)
                                                : json_real((double)kv->v.u64);
    case GGUF_T_I8:
    case GGUF_T_I16:
    case GGUF_T_I32:
    case GGUF_T_I64:
        return json_integer(kv->v.i64);
    case GGUF_T_F32:
    case GGUF_T_F64:
        return json_real(kv->v.f64);
    case GGUF_T_BOOL:
        return json_boolean(kv->v.u64);
    case GGUF_T_STRING:
        return jstr(kv->v.str);
    case GGUF_T_ARRAY: {
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string(gguf_vtype_name(kv->arr_type)));
        json_object_set_new(o, "n", json_integer((json_int_t)kv->arr_n));
        json_t *a = json_array();
        uint64_t n = full ? kv->arr_n : TRIT_MIN(kv->arr_n, (uint64_t)ARRAY_HEAD);
        for (uint64_t i = 0; i < n; i++) json_array_append_new(a, elem_json(kv, i));
        json_object_set_new(o, full ? "items" : "first", a);
        return o;
    }
    default:
        return json_null();
    }
}

/* ---- architecture summary ---- */
typedef struct arch_sum {
    char *arch;
    const char *act;  /* NULL for an arch trit does not run */
    const char *src;  /* "default" | "arch" | "file" */
    char why[160];    /* trit_act_explain's phrase, or why there is none */
    char *load_error; /* NULL when trit_model_load accepts the file */
    json_t *fields;   /* ordered key -> value */
} arch_sum;

/* One scalar "<arch>.<suffix>" key into the summary under label, when the file has it. */
static void arch_field(const gguf_file *f, arch_sum *s, const char *label, const char *suffix) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", s->arch, suffix);
    const gguf_kv *kv = gguf_find(f, key);
    if (kv && kv->type != GGUF_T_ARRAY) json_object_set_new(s->fields, label, kv_json(kv, false));
}

/* Returns false when the file has no general.architecture. */
static bool arch_summary(const gguf_file *f, arch_sum *s) {
    memset(s, 0, sizeof *s);
    s->arch = gguf_get_str(f, "general.architecture");
    if (!s->arch) return false;
    s->fields = json_object();
    arch_field(f, s, "context_length", "context_length");
    arch_field(f, s, "n_embd", "embedding_length");
    arch_field(f, s, "n_layer", "block_count");
    arch_field(f, s, "n_head", "attention.head_count");
    arch_field(f, s, "n_head_kv", "attention.head_count_kv");
    arch_field(f, s, "n_ff", "feed_forward_length");
    arch_field(f, s, "n_rot", "rope.dimension_count");
    arch_field(f, s, "rope_freq_base", "rope.freq_base");
    arch_field(f, s, "rms_eps", "attention.layer_norm_rms_epsilon");
    arch_field(f, s, "vocab_size", "vocab_size");
    if (!json_object_get(s->fields, "vocab_size")) {
        const gguf_kv *tok = gguf_find(f, "tokenizer.ggml.tokens");
        if (tok && tok->type == GGUF_T_ARRAY)
            json_object_set_new(s->fields, "vocab_size", json_integer((json_int_t)tok->arr_n));
    }
    /* the activation and why, by the loader's own rule */
    enum trit_act act;
    enum trit_act_source src;
    trit_err err = {0};
    if (trit_arch_from_name(s->arch) < 0) {
        snprintf(s->why, sizeof s->why, "arch %s is not one trit runs", s->arch);
    } else if (trit_act_resolve(f, s->arch, &act, &src, &err) != 0) {
        snprintf(s->why, sizeof s->why, "%s", err.msg);
    } else {
        s->act = trit_act_name(act);
        s->src = src == TRIT_ACT_SRC_KEY ? "file" : src == TRIT_ACT_SRC_ARCH ? "arch" : "default";
        trit_act_explain(s->arch, act, src, s->why, sizeof s->why);
        json_object_set_new(s->fields, "ffn_activation", json_string(s->act));
        json_object_set_new(s->fields, "ffn_activation_source", json_string(s->src));
    }
    json_object_set_new(s->fields, "ffn_activation_reason", json_string(s->why));
    /* whether trit runs the file, and if not the loader's refusal (names tensor/type/fix) */
    trit_model *m = trit_model_load(gguf_path(f), &err);
    if (m)
        trit_model_free(m);
    else
        s->load_error = xstrdup(err.msg);
    json_object_set_new(s->fields, "trit_runs", json_boolean(m != NULL));
    if (!m) json_object_set_new(s->fields, "trit_refusal", json_string(s->load_error));
    return true;
}

/* What arch_summary allocated. */
static void arch_free(arch_sum *s) {
    free(s->arch);
    free(s->load_error);
    json_decref(s->fields);
}

/* ---- tensors ---- */
static void dims_str(const gguf_tensor *t, char *out, size_t n) {
    size_t k = 0;
    out[0] = 0;
    for (uint32_t d = 0; d < t->n_dims && k < n; d++)
        k += (size_t)snprintf(out + k, n - k, "%s%" PRId64, d ? " x " : "", t->ne[d]);
}

/* A tensor type's ggml name, "?" for types trit does not know. */
static const char *type_name(uint32_t type) {
    const trit_type_info *ti = trit_type_get(type);
    return ti ? ti->name : "?";
}

/* b as "123 B" or "1.50 MiB" (powers of 1024). */
static void human_bytes(double b, char out[32]) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) b /= 1024, i++;
    snprintf(out, 32, i ? "%.2f %s" : "%.0f %s", b, u[i]);
}

typedef struct totals {
    uint64_t bytes, elems;
    uint64_t by_type_n[TRIT_TYPE_COUNT_MAX], by_type_bytes[TRIT_TYPE_COUNT_MAX];
} totals;

/* Bytes and parameters over all tensors, and per tensor type. */
static void compute_totals(const gguf_file *f, totals *t) {
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *x = gguf_tensor_at(f, i);
        t->bytes += x->nbytes;
        t->elems += (uint64_t)(x->ne[0] * x->ne[1] * x->ne[2] * x->ne[3]);
        if (x->type < TRIT_TYPE_COUNT_MAX) {
            t->by_type_n[x->type]++;
            t->by_type_bytes[x->type] += x->nbytes;
        }
    }
}

/* The totals line, then one line per tensor type present. */
static void print_totals(const gguf_file *f, const totals *t) {
    char hb[32];
    human_bytes((double)t->bytes, hb);
    printf("totals: %zu tensors, %" PRIu64 " parameters, %s of tensor data\n", gguf_n_tensors(f),
           t->elems, hb);
    for (uint32_t ty = 0; ty < TRIT_TYPE_COUNT_MAX; ty++) {
        if (!t->by_type_n[ty]) continue;
        human_bytes((double)t->by_type_bytes[ty], hb);
        printf("  %-8s %5" PRIu64 " tensors  %s\n", type_name(ty), t->by_type_n[ty], hb);
    }
}

/* The tensor table: name, type, dims, bytes, offset (names up to 60 columns wide). */
static void print_tensors(const gguf_file *f) {
    size_t w = 4;
    for (size_t i = 0; i < gguf_n_tensors(f); i++)
        w = TRIT_MAX(w, (size_t)gguf_tensor_at(f, i)->name.n);
    w = TRIT_MIN(w, (size_t)60);
    printf("%-*s  %-7s  %-26s  %14s  %14s\n", (int)w, "name", "type", "dims", "bytes", "offset");
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char dims[128];
        dims_str(t, dims, sizeof dims);
        printf("%-*s  %-7s  %-26s  %14zu  %14" PRIu64 "\n", (int)w, t->cname, type_name(t->type),
               dims, t->nbytes, t->offset);
    }
}

/* One metadata line: key, value type, value (long strings cut, arrays summarised). */
static void print_kv_line(const gguf_kv *kv) {
    trit_buf b = {0};
    gguf_kv_format(kv, &b, ARRAY_HEAD);
    const char *type = kv->type == GGUF_T_ARRAY ? "array" : gguf_vtype_name(kv->type);
    if (kv->type == GGUF_T_STRING && b.len > STR_SHOW) {
        printf("  %-44.*s %-6s %.*s... (%" PRIu64 " bytes)\n", (int)kv->key.n, kv->key.p, type,
               STR_SHOW, b.p, kv->v.str.n);
    } else {
        printf("  %-44.*s %-6s %s\n", (int)kv->key.n, kv->key.p, type, b.p);
    }
    trit_buf_free(&b);
}

/* --kv KEY: the value alone */
static int show_key(const gguf_file *f, const char *key, bool json) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) {
        fprintf(stderr, "trit inspect: key '%s' not found in %s\n", key, gguf_path(f));
        return 1;
    }
    if (json) {
        json_t *j = kv_json(kv, true);
        char *s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else if (kv->type == GGUF_T_STRING) {
        if (kv->v.str.n) fwrite(kv->v.str.p, 1, (size_t)kv->v.str.n, stdout); /* "" may be NULL */
        printf("\n");
    } else if (kv->type == GGUF_T_ARRAY) {
        trit_buf b = {0};
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            trit_buf_clear(&b);
            if (kv->arr_type == GGUF_T_STRING) {
                trit_buf_append(&b, kv->arr_strs[i].p, (size_t)kv->arr_strs[i].n);
            } else {
                gguf_arr_format_elem(kv, i, &b);
            }
            printf("%" PRIu64 "\t%s\n", i, b.p ? b.p : "");
        }
        trit_buf_free(&b);
    } else {
        trit_buf b = {0};
        gguf_kv_format(kv, &b, 0);
        printf("%s\n", b.p);
        trit_buf_free(&b);
    }
    return 0;
}

/* --json: the file's header, metadata, architecture summary, tensors and totals. */
static int emit_json(const gguf_file *f, bool tensors_only) {
    json_t *root = json_object();
    json_object_set_new(root, "path", json_string(gguf_path(f)));
    json_object_set_new(root, "file_size", json_integer((json_int_t)gguf_file_size(f)));
    json_object_set_new(root, "version", json_integer(gguf_version(f)));
    json_object_set_new(root, "alignment", json_integer((json_int_t)gguf_alignment(f)));
    json_object_set_new(root, "n_kv", json_integer((json_int_t)gguf_n_kv(f)));
    json_object_set_new(root, "n_tensors", json_integer((json_int_t)gguf_n_tensors(f)));
    if (!tensors_only) {
        json_t *md = json_object();
        for (size_t i = 0; i < gguf_n_kv(f); i++) {
            const gguf_kv *kv = gguf_kv_at(f, i);
            char *key = xstrndup(kv->key.p, (size_t)kv->key.n);
            json_object_set_new(md, key, kv_json(kv, false));
            free(key);
        }
        json_object_set_new(root, "metadata", md);
        arch_sum s;
        if (arch_summary(f, &s)) {
            json_object_set_new(s.fields, "name", json_string(s.arch));
            json_object_set(root, "architecture", s.fields);
        }
        if (s.arch) arch_free(&s);
    }
    json_t *ts = json_array();
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(t->cname));
        json_object_set_new(o, "type", json_string(type_name(t->type)));
        json_object_set_new(o, "type_id", json_integer(t->type));
        json_t *dims = json_array();
        for (uint32_t d = 0; d < t->n_dims; d++)
            json_array_append_new(dims, json_integer(t->ne[d]));
        json_object_set_new(o, "dims", dims);
        json_object_set_new(o, "bytes", json_integer((json_int_t)t->nbytes));
        json_object_set_new(o, "offset", json_integer((json_int_t)t->offset));
        json_array_append_new(ts, o);
    }
    json_object_set_new(root, "tensors", ts);
    totals tot;
    compute_totals(f, &tot);
    json_t *to = json_object();
    json_object_set_new(to, "bytes", json_integer((json_int_t)tot.bytes));
    json_object_set_new(to, "parameters", json_integer((json_int_t)tot.elems));
    json_t *bt = json_object();
    for (uint32_t ty = 0; ty < TRIT_TYPE_COUNT_MAX; ty++) {
        if (!tot.by_type_n[ty]) continue;
        json_t *e = json_object();
        json_object_set_new(e, "tensors", json_integer((json_int_t)tot.by_type_n[ty]));
        json_object_set_new(e, "bytes", json_integer((json_int_t)tot.by_type_bytes[ty]));
        json_object_set_new(bt, type_name(ty), e);
    }
    json_object_set_new(to, "by_type", bt);
    json_object_set_new(root, "totals", to);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
    json_decref(root);
    return 0;
}

/* The text listing: header line, metadata, architecture summary, tensor table, totals. */
static int emit_text(const gguf_file *f, bool tensors_only) {
    char hb[32];
    human_bytes((double)gguf_file_size(f), hb);
    printf("file: %s (%s, %zu bytes), GGUF v%u, alignment %zu, %zu KVs, %zu tensors\n",
           gguf_path(f), hb, gguf_file_size(f), gguf_version(f), gguf_alignment(f), gguf_n_kv(f),
           gguf_n_tensors(f));
    if (!tensors_only) {
        printf("\nmetadata:\n");
        for (size_t i = 0; i < gguf_n_kv(f); i++) print_kv_line(gguf_kv_at(f, i));
        arch_sum s;
        if (arch_summary(f, &s)) {
            printf("\narchitecture: %s\n", s.arch);
            const char *k;
            json_t *v;
            json_object_foreach(s.fields, k, v) {
                if (!strcmp(k, "ffn_activation_source") || !strcmp(k, "trit_refusal")) continue;
                if (!strcmp(k, "ffn_activation_reason")) {
                    if (!s.act) printf("  %-16s ? (%s)\n", "ffn_activation", s.why);
                    continue;
                }
                if (!strcmp(k, "ffn_activation")) {
                    /* no key and no arch rule: say it is llama.cpp's default, then why */
                    bool dflt = !strcmp(s.src, "default");
                    if (dflt)
                        printf("  %-16s %s (default: llama.cpp behaviour): %s\n", k, s.act, s.why);
                    else
                        printf("  %-16s %s (%s)\n", k, s.act, s.why);
                    continue;
                }
                if (!strcmp(k, "trit_runs")) {
                    printf("  %-16s %s%s\n", k, s.load_error ? "no: " : "yes",
                           s.load_error ? s.load_error : "");
                    continue;
                }
                if (json_is_real(v)) {
                    printf("  %-16s %.9g\n", k, json_real_value(v));
                    continue;
                }
                char *vs = json_dumps(v, JSON_ENCODE_ANY);
                printf("  %-16s %s\n", k, vs);
                free(vs);
            }
        }
        if (s.arch) arch_free(&s);
    }
    if (gguf_n_tensors(f)) {
        printf("\ntensors:\n");
        print_tensors(f);
    }
    totals tot;
    compute_totals(f, &tot);
    printf("\n");
    print_totals(f, &tot);
    return 0;
}

/* What the command line asked for. */
typedef struct inspect_args {
    const char *path, *key;
    bool json, tensors_only;
} inspect_args;

enum { O_JSON = 256, O_TENSORS, O_KV };
static const struct option inspect_options[] = {{"json", no_argument, 0, O_JSON},
                                                {"tensors", no_argument, 0, O_TENSORS},
                                                {"kv", required_argument, 0, O_KV},
                                                {"help", no_argument, 0, 'h'},
                                                {0, 0, 0, 0}};

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr). */
static int parse_inspect(int argc, char **argv, inspect_args *a) {
    *a = (inspect_args){0};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "h", inspect_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?') { /* getopt_long named the bad option */
            usage(stderr);
            return 2;
        }
        a->json |= c == O_JSON;
        a->tensors_only |= c == O_TENSORS;
        if (c == O_KV) a->key = optarg;
    }
    if (optind < argc) a->path = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "trit inspect: more than one MODEL given ('%s', '%s')\n", a->path,
                argv[optind]);
        return 2;
    }
    if (!a->path) {
        fprintf(stderr, "trit inspect: missing MODEL argument\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Open the file and print what was asked: one key, JSON, or the text listing. */
static int run_inspect(const inspect_args *a) {
    trit_err err = {0};
    gguf_file *f = gguf_open(a->path, &err);
    if (!f) {
        fprintf(stderr, "trit inspect: %s\n", err.msg);
        return 1;
    }
    int rc = a->key    ? show_key(f, a->key, a->json)
             : a->json ? emit_json(f, a->tensors_only)
                       : emit_text(f, a->tensors_only);
    gguf_close(f);
    return rc;
}

/* `trit inspect`: the command line into its options, then the run; the exit code (cli.h). */
int cmd_inspect(int argc, char **argv) {
    inspect_args a;
    int rc = parse_inspect(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    return run_inspect(&a);
}
