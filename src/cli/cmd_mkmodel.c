/* cmd_mkmodel.c — `trit mkmodel`: write a deterministic synthetic model (model/mkmodel.h). */
#include "cli/cli.h"
#include "model/mkmodel.h"
#include "quant/quant.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: trit mkmodel --arch llama|bitnet --preset tiny|small|bitnet-2b-4t\n"
        "                    --type f32|f16|bf16|q8_0|tq1_0|tq2_0|i2_s -o OUT.gguf\n"
        "                    [--act silu|relu2] [--seed N] [--vocab VOCAB.gguf]\n\n"
        "Writes a deterministic synthetic model (same arguments -> same bytes) in llama.cpp's\n"
        "GGUF layout, with the tokenizer copied from VOCAB (default: the reference's\n"
        "models/ggml-vocab-llama-bpe.gguf, Llama-3, 128256 tokens).\n\n"
        "  --arch     llama (untied output) or bitnet (BitNet b1.58: ternary weights, sub-norms,\n"
        "             tied embeddings)\n"
        "  --preset   tiny: 256 embd, 2 layers, 4/2 heads, ff 512; small: 768, 6, 12/4, 2048;\n"
        "             bitnet-2b-4t: 2560, 30, 20/5, 6912, rope theta 500000, ctx 4096\n"
        "  --type     type of the block weights (norms F32; token_embd/output F16, or F32/BF16\n"
        "             for --type f32/bf16); i2_s needs --arch bitnet\n"
        "  --act      write <arch>.ffn_activation (absent: SiLU, as llama.cpp)\n"
        "  --seed     PRNG seed (default 1)\n"
        "exit codes: 0 written, 1 failed, 2 bad arguments\n");
}

int cmd_mkmodel(int argc, char **argv) {
    trit_mkmodel_params p = {
        .arch = TRIT_ARCH_LLAMA, .preset = "tiny", .type = TRIT_F32, .seed = 1};
    bool have_arch = false, have_type = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "trit mkmodel: '%s' %s\n", a,
                    a[0] == '-' ? "needs a value" : "is not an option");
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--arch")) {
            if (!strcmp(v, "llama"))
                p.arch = TRIT_ARCH_LLAMA;
            else if (!strcmp(v, "bitnet"))
                p.arch = TRIT_ARCH_BITNET;
            else {
                fprintf(stderr, "trit mkmodel: unknown --arch '%s' (llama or bitnet)\n", v);
                return 2;
            }
            have_arch = true;
        } else if (!strcmp(a, "--preset")) {
            if (!trit_mkmodel_preset_get(v)) {
                fprintf(stderr,
                        "trit mkmodel: unknown --preset '%s' (tiny, small or bitnet-2b-4t)\n", v);
                return 2;
            }
            p.preset = v;
        } else if (!strcmp(a, "--type")) {
            int t = trit_type_from_name(v);
            if (t < 0 || trit_llama_ftype((uint32_t)t) < 0) {
                fprintf(stderr,
                        "trit mkmodel: unsupported --type '%s' (f32, f16, bf16, q8_0, tq1_0, "
                        "tq2_0, i2_s)\n",
                        v);
                return 2;
            }
            p.type = (uint32_t)t;
            have_type = true;
        } else if (!strcmp(a, "--act")) {
            if (!strcmp(v, "silu"))
                p.act = TRIT_ACT_SILU;
            else if (!strcmp(v, "relu2"))
                p.act = TRIT_ACT_RELU2;
            else {
                fprintf(stderr, "trit mkmodel: unknown --act '%s' (silu or relu2)\n", v);
                return 2;
            }
            p.act_set = true;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 0);
            if (errno || *end || !*v || v[0] == '-') {
                fprintf(stderr, "trit mkmodel: --seed '%s' is not a non-negative integer\n", v);
                return 2;
            }
            p.seed = s;
        } else if (!strcmp(a, "--vocab")) {
            p.vocab_path = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            p.out_path = v;
        } else {
            fprintf(stderr, "trit mkmodel: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!have_arch || !have_type || !p.out_path) {
        fprintf(stderr, "trit mkmodel: --arch, --type and -o are required\n");
        usage(stderr);
        return 2;
    }
    trit_err err = {0};
    double t0 = trit_now_s();
    if (trit_mkmodel(&p, &err)) {
        fprintf(stderr, "trit mkmodel: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "trit mkmodel: wrote %s (%s %s %s, seed %llu) in %.1f s\n", p.out_path,
            p.arch == TRIT_ARCH_BITNET ? "bitnet" : "llama", p.preset, trit_type_get(p.type)->name,
            (unsigned long long)p.seed, trit_now_s() - t0);
    return 0;
}
