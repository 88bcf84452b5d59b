/* cmd_mkmodel.c — `trit mkmodel`: write a deterministic synthetic model (model/mkmodel.h). */
#include "cli/cli.h"
#include "model/mkmodel.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: every option of mkmodel_options. */
static void usage(FILE *out) {
    fprintf(
        out,
        "usage: trit mkmodel --arch ARCH --preset tiny|small|bitnet-2b-4t\n"
        "                    --type f32|f16|bf16|q8_0|tq1_0|tq2_0|i2_s -o OUT.gguf\n"
        "                    [--act silu|relu2] [--seed N] [--vocab VOCAB.gguf]\n"
        "                    [--embd-type TYPE] [--scale-tensors]\n"
        "       trit mkmodel --layout bitnet-b1.58-2b-4t [--preset tiny] [--type i2_s] -o OUT\n\n"
        "Writes a deterministic synthetic model (same arguments -> same bytes) in llama.cpp's\n"
        "GGUF layout, with the tokenizer copied from VOCAB (default: the reference's\n"
        "models/ggml-vocab-llama-bpe.gguf, Llama-3, 128256 tokens).\n\n"
        "  --arch     llama (untied output), bitnet (upstream llama.cpp's BitNet b1.58 graph:\n"
        "             ternary weights, sub-norms, tied embeddings, SiLU), bitnet-b1.58 or\n"
        "             bitnet-25 (bitnet.cpp's: the same graph with a squared-ReLU FFN)\n"
        "  --preset   tiny: 256 embd, 2 layers, 4/2 heads, ff 512; small: 768, 6, 12/4, 2048;\n"
        "             bitnet-2b-4t: 2560, 30, 20/5, 6912, rope theta 500000, ctx 4096\n"
        "  --type     type of the block weights (norms F32; token_embd/output F16, or F32/BF16\n"
        "             for --type f32/bf16); i2_s needs a bitnet arch\n"
        "  --layout   bitnet-b1.58-2b-4t: the structure of bitnet.cpp's published BitNet b1.58\n"
        "             2B-4T ggml-model-i2_s.gguf (its 24 keys, types and order, tensor names,\n"
        "             types and order); implies --arch bitnet-b1.58, default --preset\n"
        "             bitnet-2b-4t and --type i2_s\n"
        "  --embd-type  type of token_embd (and output): e.g. q6_k as bitnet.cpp's --quant-embd\n"
        "  --scale-tensors  add an f32 '<weight>.scale' tensor after each block weight (the\n"
        "             optional per-tensor scales upstream llama.cpp multiplies in; llama/bitnet)\n"
        "  --act      write <arch>.ffn_activation (absent: the arch's rule)\n"
        "  --seed     PRNG seed (default 1)\n"
        "  -o, --output  the file to write\n"
        "exit codes: 0 written, 1 failed, 2 bad arguments\n");
}

/* What the command line asked for: mkmodel's parameters, and whether --arch and --type were
 * given (a --layout supplies both). */
typedef struct mkmodel_args {
    trit_mkmodel_params p;
    bool have_arch, have_type;
} mkmodel_args;

enum { O_ARCH = 256, O_PRESET, O_TYPE, O_ACT, O_SEED, O_VOCAB, O_LAYOUT, O_EMBD, O_SCALES };
static const struct option mkmodel_options[] = {{"arch", required_argument, 0, O_ARCH},
                                                {"preset", required_argument, 0, O_PRESET},
                                                {"type", required_argument, 0, O_TYPE},
                                                {"act", required_argument, 0, O_ACT},
                                                {"seed", required_argument, 0, O_SEED},
                                                {"vocab", required_argument, 0, O_VOCAB},
                                                {"layout", required_argument, 0, O_LAYOUT},
                                                {"embd-type", required_argument, 0, O_EMBD},
                                                {"scale-tensors", no_argument, 0, O_SCALES},
                                                {"output", required_argument, 0, 'o'},
                                                {"help", no_argument, 0, 'h'},
                                                {0, 0, 0, 0}};

/* The options that name a thing (arch, preset, layout, weight types, activation). */
static int mkmodel_name_option(int c, const char *flag, const char *v, mkmodel_args *a) {
    const int arch = c == O_ARCH ? trit_arch_from_name(v) : 0;
    const int type = c == O_TYPE || c == O_EMBD ? trit_type_from_name(v) : 0;
    static const char *const acts[] = {"silu", "relu2"};
    int act;
    switch (c) {
    case O_ARCH:
        if (arch < 0)
            return cli_opt_bad("mkmodel", flag, v,
                               "must be llama, bitnet, bitnet-b1.58 or bitnet-25");
        a->p.arch = (enum trit_arch)arch;
        a->have_arch = true;
        return 0;
    case O_PRESET:
        if (!trit_mkmodel_preset_get(v))
            return cli_opt_bad("mkmodel", flag, v, "must be tiny, small or bitnet-2b-4t");
        a->p.preset = v;
        return 0;
    case O_LAYOUT:
        if (!trit_mkmodel_layout_known(v))
            return cli_opt_bad("mkmodel", flag, v, "must be bitnet-b1.58-2b-4t");
        a->p.layout = v;
        return 0;
    case O_TYPE:
        if (type < 0 || trit_llama_ftype((uint32_t)type) < 0)
            return cli_opt_bad("mkmodel", flag, v,
                               "must be f32, f16, bf16, q8_0, tq1_0, tq2_0 or i2_s");
        a->p.type = (uint32_t)type;
        a->have_type = true;
        return 0;
    case O_EMBD: /* any ggml type by name; mkmodel says later if it cannot write it */
        if (type <= 0)
            return cli_opt_bad("mkmodel", flag, v,
                               type == 0 ? "f32 embeddings: use --type f32"
                                         : "must be a ggml type name (q6_k, f16, ...)");
        a->p.embd_type = (uint32_t)type;
        return 0;
    case O_ACT:
        if (cli_opt_choice("mkmodel", flag, v, acts, 2, &act)) return -1;
        a->p.act = act ? TRIT_ACT_RELU2 : TRIT_ACT_SILU;
        a->p.act_set = true;
        return 0;
    }
    return -1;
}

/* One option's value into a: 0, or -1 after saying why. */
static int mkmodel_option(int c, const char *v, mkmodel_args *a) {
    const char *flag = cli_opt_name(mkmodel_options, c);
    switch (c) {
    case O_SEED:
        return cli_opt_u64("mkmodel", flag, v, &a->p.seed);
    case O_VOCAB:
        a->p.vocab_path = v;
        return 0;
    case O_SCALES:
        a->p.scale_tensors = true;
        return 0;
    case 'o':
        a->p.out_path = v;
        return 0;
    }
    return mkmodel_name_option(c, flag, v, a);
}

/* What a --layout implies (the published file's arch, shapes and weight type unless told
 * otherwise), the default preset, and the required options: 0, or 2 after saying why. */
static int mkmodel_complete(mkmodel_args *a) {
    trit_mkmodel_params *p = &a->p;
    if (p->layout) {
        if (a->have_arch && p->arch != TRIT_ARCH_BITNET_B158) {
            fprintf(stderr, "trit mkmodel: --layout %s is arch bitnet-b1.58\n", p->layout);
            return 2;
        }
        p->arch = TRIT_ARCH_BITNET_B158;
        a->have_arch = true;
        if (!p->preset) p->preset = "bitnet-2b-4t";
        if (!a->have_type) p->type = TRIT_I2_S;
        a->have_type = true;
    }
    if (!p->preset) p->preset = "tiny";
    if (!a->have_arch || !a->have_type || !p->out_path) {
        fprintf(stderr, "trit mkmodel: --arch, --type and -o are required (or --layout and -o)\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr). */
static int parse_mkmodel(int argc, char **argv, mkmodel_args *a) {
    *a =
        (mkmodel_args){.p = {.arch = TRIT_ARCH_LLAMA, .preset = NULL, .type = TRIT_F32, .seed = 1}};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "o:h", mkmodel_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?') { /* getopt_long printed what was wrong */
            usage(stderr);
            return 2;
        }
        if (mkmodel_option(c, optarg, a)) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "trit mkmodel: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return mkmodel_complete(a);
}

/* Write the model (model/mkmodel.c does the work) and say what was written. */
static int run_mkmodel(const trit_mkmodel_params *p) {
    trit_err err = {0};
    double t0 = trit_now_s();
    if (trit_mkmodel(p, &err)) {
        fprintf(stderr, "trit mkmodel: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "trit mkmodel: wrote %s (%s%s%s %s %s, seed %llu) in %.1f s\n", p->out_path,
            p->layout ? p->layout : "", p->layout ? " layout, " : "", trit_arch_name(p->arch),
            p->preset, trit_type_get(p->type)->name, (unsigned long long)p->seed,
            trit_now_s() - t0);
    return 0;
}

/* `trit mkmodel`: the command line into its options, then the run; the exit code (cli.h). */
int cmd_mkmodel(int argc, char **argv) {
    mkmodel_args a;
    int rc = parse_mkmodel(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    return run_mkmodel(&a.p);
}
