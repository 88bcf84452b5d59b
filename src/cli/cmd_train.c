/* cmd_train.c — `trit train TRAIN.txt -o MODEL.gguf`: BitNet b1.58 quantization-aware
 * training of a small bitnet-arch model (train/train.h). */
#include "cli/cli.h"
#include "quant/quant.h"
#include "train/train.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit train TRAIN.txt -o MODEL.gguf [--heldout FILE] [--vocab VOCAB.gguf]\n"
            "                  [--vocab-size N] [--embd N] [--layers N] [--heads N] [--ff N]\n"
            "                  [--seq N] [--batch N] [--steps N] [--warmup N] [--lr X]\n"
            "                  [--min-lr-ratio X] [--weight-decay X] [--clip X] [--seed N]\n"
            "                  [--threads N] [--ckpt FILE] [--ckpt-every N] [--eval-every N]\n"
            "                  [--eval-chunks N] [--curve FILE.jsonl] [--type tq2_0|tq1_0|i2_s]\n"
            "                  [--context-length N] [--no-qat]\n\n"
            "Trains a bitnet-arch transformer with BitNet b1.58 quantization-aware training\n"
            "(ternary absmean weights, int8 absmax activations, straight-through estimator),\n"
            "AdamW with warm-up + cosine decay and gradient clipping, and writes a GGUF that\n"
            "llama.cpp and trit load. Without --vocab a byte-level BPE vocabulary is learned\n"
            "from TRAIN.txt first (MODEL.gguf.vocab.gguf). A checkpoint (MODEL.gguf.ckpt by\n"
            "default) is written every --ckpt-every steps; rerunning the same command resumes\n"
            "from it. The loss curve goes to MODEL.gguf.curve.jsonl (+ .svg).\n"
            "Defaults: vocab 2048, embd 256, layers 2, heads 4, ff 512, seq 128, batch 8,\n"
            "steps 1000, warmup 50, lr 3e-3, min-lr-ratio 0.1, weight-decay 0.1, clip 1,\n"
            "seed 1, ckpt-every 100, eval-every 200, eval-chunks 8, type tq2_0.\n"
            "--context-length: the GGUF's context_length (default --seq); larger values let\n"
            "servers take longer prompts (positions past --seq are RoPE extrapolation).\n"
            "--no-qat: plain fp32 training (the export still ternarizes: for experiments).\n"
            "exit codes: 0 trained and written, 1 failed, 2 bad arguments\n");
}

enum {
    O_HELD = 256,
    O_VOCAB,
    O_VSIZE,
    O_EMBD,
    O_LAYERS,
    O_HEADS,
    O_FF,
    O_SEQ,
    O_BATCH,
    O_STEPS,
    O_WARMUP,
    O_LR,
    O_MINLR,
    O_WD,
    O_CLIP,
    O_SEED,
    O_THREADS,
    O_CKPT,
    O_CKPT_EVERY,
    O_EVAL_EVERY,
    O_EVAL_CHUNKS,
    O_CURVE,
    O_TYPE,
    O_NOQAT,
    O_CTXLEN
};

static int parse_float(const char *v, float lo, float hi, float *out) {
    char *end;
    const float f = strtof(v, &end);
    if (end == v || *end || !(f >= lo && f <= hi)) return -1;
    *out = f;
    return 0;
}

int cmd_train(int argc, char **argv) {
    trit_train_opts o;
    trit_train_default_opts(&o);
    static const struct option lo[] = {{"heldout", required_argument, 0, O_HELD},
                                       {"vocab", required_argument, 0, O_VOCAB},
                                       {"vocab-size", required_argument, 0, O_VSIZE},
                                       {"embd", required_argument, 0, O_EMBD},
                                       {"layers", required_argument, 0, O_LAYERS},
                                       {"heads", required_argument, 0, O_HEADS},
                                       {"ff", required_argument, 0, O_FF},
                                       {"seq", required_argument, 0, O_SEQ},
                                       {"batch", required_argument, 0, O_BATCH},
                                       {"steps", required_argument, 0, O_STEPS},
                                       {"warmup", required_argument, 0, O_WARMUP},
                                       {"lr", required_argument, 0, O_LR},
                                       {"min-lr-ratio", required_argument, 0, O_MINLR},
                                       {"weight-decay", required_argument, 0, O_WD},
                                       {"clip", required_argument, 0, O_CLIP},
                                       {"seed", required_argument, 0, O_SEED},
                                       {"threads", required_argument, 0, O_THREADS},
                                       {"ckpt", required_argument, 0, O_CKPT},
                                       {"ckpt-every", required_argument, 0, O_CKPT_EVERY},
                                       {"eval-every", required_argument, 0, O_EVAL_EVERY},
                                       {"eval-chunks", required_argument, 0, O_EVAL_CHUNKS},
                                       {"curve", required_argument, 0, O_CURVE},
                                       {"type", required_argument, 0, O_TYPE},
                                       {"no-qat", no_argument, 0, O_NOQAT},
                                       {"context-length", required_argument, 0, O_CTXLEN},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c, li = -1;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", lo, &li)) != -1) {
        const char *a = optarg;
        bool bad = false;
        switch (c) {
        case 'o':
            o.out_path = a;
            break;
        case O_HELD:
            o.heldout_path = a;
            break;
        case O_VOCAB:
            o.vocab_path = a;
            break;
        case O_CKPT:
            o.ckpt_path = a;
            break;
        case O_CURVE:
            o.curve_path = a;
            break;
        case O_VSIZE:
            bad = trit_parse_long(a, 259, 65536, &v) || !(o.vocab_size = (int)v);
            break;
        case O_EMBD:
            bad = trit_parse_long(a, 8, 8192, &v) || !(o.cfg.n_embd = (int)v);
            break;
        case O_LAYERS:
            bad = trit_parse_long(a, 1, 64, &v) || !(o.cfg.n_layer = (int)v);
            break;
        case O_HEADS:
            bad = trit_parse_long(a, 1, 128, &v) || !(o.cfg.n_head = (int)v);
            break;
        case O_FF:
            bad = trit_parse_long(a, 8, 32768, &v) || !(o.cfg.n_ff = (int)v);
            break;
        case O_SEQ:
            bad = trit_parse_long(a, 8, 4096, &v) || !(o.seq = (int)v);
            break;
        case O_BATCH:
            bad = trit_parse_long(a, 1, 4096, &v) || !(o.batch = (int)v);
            break;
        case O_STEPS:
            bad = trit_parse_long(a, 1, 100000000, &o.steps);
            break;
        case O_WARMUP:
            bad = trit_parse_long(a, 0, 100000000, &o.warmup);
            break;
        case O_CKPT_EVERY:
            bad = trit_parse_long(a, 0, 100000000, &o.ckpt_every);
            break;
        case O_EVAL_EVERY:
            bad = trit_parse_long(a, 0, 100000000, &o.eval_every);
            break;
        case O_EVAL_CHUNKS:
            bad = trit_parse_long(a, 0, 1000000, &v);
            o.eval_chunks = (int)v;
            break;
        case O_THREADS:
            bad = trit_parse_long(a, 0, 1024, &v);
            o.threads = (int)v;
            break;
        case O_SEED:
            bad = trit_parse_long(a, 0, 0x7fffffffL, &v);
            o.seed = (uint64_t)v;
            break;
        case O_LR:
            bad = parse_float(a, 1e-7f, 1.0f, &o.lr);
            break;
        case O_MINLR:
            bad = parse_float(a, 0.0f, 1.0f, &o.min_lr_ratio);
            break;
        case O_WD:
            bad = parse_float(a, 0.0f, 10.0f, &o.weight_decay);
            break;
        case O_CLIP:
            bad = parse_float(a, 0.0f, 1e6f, &o.clip);
            break;
        case O_TYPE: {
            const int t = trit_type_from_name(a);
            bad = t != TRIT_TQ2_0 && t != TRIT_TQ1_0 && t != TRIT_I2_S;
            if (!bad) o.wtype = (uint32_t)t;
            break;
        }
        case O_CTXLEN:
            bad = trit_parse_long(a, 0, 1 << 20, &v);
            o.context_length = (int)v;
            break;
        case O_NOQAT:
            o.cfg.qat = false;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) { /* only long options take checked values, so li names it */
            fprintf(stderr, "trit train: bad value for --%s: '%s'\n", li >= 0 ? lo[li].name : "?",
                    a);
            return 2;
        }
    }
    if (optind < argc) o.train_path = argv[optind++];
    if (!o.train_path || optind < argc || !o.out_path) {
        fprintf(stderr, "trit train: needs one TRAIN.txt and -o MODEL.gguf\n");
        usage(stderr);
        return 2;
    }
    if (o.cfg.n_embd % o.cfg.n_head) {
        fprintf(stderr, "trit train: --embd %d is not a multiple of --heads %d\n", o.cfg.n_embd,
                o.cfg.n_head);
        return 2;
    }
    trit_err err = {0};
    if (trit_train_run(&o, &err)) {
        fprintf(stderr, "trit train: %s\n", err.msg);
        return 1;
    }
    return 0;
}
