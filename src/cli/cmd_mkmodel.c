/* cmd_mkmodel.c — `trit mkmodel`: write a deterministic synthetic model (model/mkmodel.h). */
#include "cli/cli.h"
#include "model/mkmodel.h"
#include "quant/quant.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        "exit codes: 0 written, 1 failed, 2 bad arguments\n");
}

int cmd_mkmodel(int argc, char **argv) {
    trit_mkmodel_params p = {.arch = TRIT_ARCH_LLAMA, .preset = NULL, .type = TRIT_F32, .seed = 1};
    bool have_arch = false, have_type = false;
    enum { O_ARCH = 256, O_PRESET, O_TYPE, O_ACT, O_SEED, O_VOCAB, O_LAYOUT, O_EMBD, O_SCALES };
    static const struct option lo[] = {{"arch", required_argument, 0, O_ARCH},
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
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case O_ARCH: {
            const int a = trit_arch_from_name(optarg);
            if (a < 0) {
                fprintf(stderr,
                        "trit mkmodel: unknown --arch '%s' (llama, bitnet, bitnet-b1.58 or "
                        "bitnet-25)\n",
                        optarg);
                return 2;
            }
            p.arch = (enum trit_arch)a;
            have_arch = true;
            break;
        }
        case O_PRESET:
            if (!trit_mkmodel_preset_get(optarg)) {
                fprintf(stderr,
                        "trit mkmodel: unknown --preset '%s' (tiny, small or bitnet-2b-4t)\n",
                        optarg);
                return 2;
            }
            p.preset = optarg;
            break;
        case O_TYPE: {
            const int t = trit_type_from_name(optarg);
            if (t < 0 || trit_llama_ftype((uint32_t)t) < 0) {
                fprintf(stderr,
                        "trit mkmodel: unsupported --type '%s' (f32, f16, bf16, q8_0, tq1_0, "
                        "tq2_0, i2_s)\n",
                        optarg);
                return 2;
            }
            p.type = (uint32_t)t;
            have_type = true;
            break;
        }
        case O_EMBD: {
            /* any ggml type by name; mkmodel says later if it cannot write it */
            const int t = trit_type_from_name(optarg);
            if (t <= 0) {
                fprintf(stderr, "trit mkmodel: unknown --embd-type '%s'%s\n", optarg,
                        t == 0 ? " (f32 embeddings: use --type f32)" : "");
                return 2;
            }
            p.embd_type = (uint32_t)t;
            break;
        }
        case O_ACT:
            if (!strcmp(optarg, "silu"))
                p.act = TRIT_ACT_SILU;
            else if (!strcmp(optarg, "relu2"))
                p.act = TRIT_ACT_RELU2;
            else {
                fprintf(stderr, "trit mkmodel: unknown --act '%s' (silu or relu2)\n", optarg);
                return 2;
            }
            p.act_set = true;
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 0);
            if (errno || *end || !*optarg || optarg[0] == '-') {
                fprintf(stderr, "trit mkmodel: --seed '%s' is not a non-negative integer\n",
                        optarg);
                return 2;
            }
            p.seed = s;
            break;
        }
        case O_VOCAB:
            p.vocab_path = optarg;
            break;
        case O_LAYOUT:
            if (!trit_mkmodel_layout_known(optarg)) {
                fprintf(stderr, "trit mkmodel: unknown --layout '%s' (bitnet-b1.58-2b-4t)\n",
                        optarg);
                return 2;
            }
            p.layout = optarg;
            break;
        case O_SCALES:
            p.scale_tensors = true;
            break;
        case 'o':
            p.out_path = optarg;
            break;
        default: /* getopt_long printed what was wrong */
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "trit mkmodel: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (p.layout) {
        /* the published file's arch, shapes and weight type unless told otherwise */
        if (have_arch && p.arch != TRIT_ARCH_BITNET_B158) {
            fprintf(stderr, "trit mkmodel: --layout %s is arch bitnet-b1.58\n", p.layout);
            return 2;
        }
        p.arch = TRIT_ARCH_BITNET_B158;
        have_arch = true;
        if (!p.preset) p.preset = "bitnet-2b-4t";
        if (!have_type) p.type = TRIT_I2_S;
        have_type = true;
    }
    if (!p.preset) p.preset = "tiny";
    if (!have_arch || !have_type || !p.out_path) {
        fprintf(stderr, "trit mkmodel: --arch, --type and -o are required (or --layout and -o)\n");
        usage(stderr);
        return 2;
    }
    trit_err err = {0};
    double t0 = trit_now_s();
    if (trit_mkmodel(&p, &err)) {
        fprintf(stderr, "trit mkmodel: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "trit mkmodel: wrote %s (%s%s%s %s %s, seed %llu) in %.1f s\n", p.out_path,
            p.layout ? p.layout : "", p.layout ? " layout, " : "", trit_arch_name(p.arch), p.preset,
            trit_type_get(p.type)->name, (unsigned long long)p.seed, trit_now_s() - t0);
    return 0;
}
