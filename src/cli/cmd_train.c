/* cmd_train.c — `trit train TRAIN.txt -o MODEL.gguf`: BitNet b1.58 quantization-aware
 * training of a small bitnet-arch model (train/train.h). */
#include "cli/cli.h"
#include "quant/quant.h"
#include "train/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: every option of train_options and its default. */
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

static const struct option train_options[] = {{"heldout", required_argument, 0, O_HELD},
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

/* The model's shape and the optimizer's numbers: 0, or -1 after saying why. 1 when c is not
 * one of them. */
static int train_number_option(int c, const char *flag, const char *v, trit_train_opts *o) {
    switch (c) {
    case O_VSIZE:
        return cli_opt_int("train", flag, v, 259, 65536, &o->vocab_size);
    case O_EMBD:
        return cli_opt_int("train", flag, v, 8, 8192, &o->cfg.n_embd);
    case O_LAYERS:
        return cli_opt_int("train", flag, v, 1, 64, &o->cfg.n_layer);
    case O_HEADS:
        return cli_opt_int("train", flag, v, 1, 128, &o->cfg.n_head);
    case O_FF:
        return cli_opt_int("train", flag, v, 8, 32768, &o->cfg.n_ff);
    case O_SEQ:
        return cli_opt_int("train", flag, v, 8, 4096, &o->seq);
    case O_BATCH:
        return cli_opt_int("train", flag, v, 1, 4096, &o->batch);
    case O_CTXLEN:
        return cli_opt_int("train", flag, v, 0, 1 << 20, &o->context_length);
    case O_LR:
        return cli_opt_float("train", flag, v, 1e-7f, 1.0f, &o->lr);
    case O_MINLR:
        return cli_opt_float("train", flag, v, 0.0f, 1.0f, &o->min_lr_ratio);
    case O_WD:
        return cli_opt_float("train", flag, v, 0.0f, 10.0f, &o->weight_decay);
    case O_CLIP:
        return cli_opt_float("train", flag, v, 0.0f, 1e6f, &o->clip);
    }
    return 1;
}

/* The run's schedule (steps, evaluation, checkpoints, threads, seed): as train_number_option. */
static int train_schedule_option(int c, const char *flag, const char *v, trit_train_opts *o) {
    long seed;
    switch (c) {
    case O_STEPS:
        return cli_opt_long("train", flag, v, 1, 100000000, &o->steps);
    case O_WARMUP:
        return cli_opt_long("train", flag, v, 0, 100000000, &o->warmup);
    case O_CKPT_EVERY:
        return cli_opt_long("train", flag, v, 0, 100000000, &o->ckpt_every);
    case O_EVAL_EVERY:
        return cli_opt_long("train", flag, v, 0, 100000000, &o->eval_every);
    case O_EVAL_CHUNKS:
        return cli_opt_int("train", flag, v, 0, 1000000, &o->eval_chunks);
    case O_THREADS:
        return cli_opt_int("train", flag, v, 0, 1024, &o->threads);
    case O_SEED:
        if (cli_opt_long("train", flag, v, 0, 0x7fffffffL, &seed)) return -1;
        o->seed = (uint64_t)seed;
        return 0;
    }
    return 1;
}

/* One option's value into o: 0, or -1 after saying why. */
static int train_option(int c, const char *v, trit_train_opts *o) {
    const char *flag = cli_opt_name(train_options, c);
    int rc = train_number_option(c, flag, v, o);
    if (rc <= 0) return rc;
    if ((rc = train_schedule_option(c, flag, v, o)) <= 0) return rc;
    switch (c) {
    case 'o':
        o->out_path = v;
        return 0;
    case O_HELD:
        o->heldout_path = v;
        return 0;
    case O_VOCAB:
        o->vocab_path = v;
        return 0;
    case O_CKPT:
        o->ckpt_path = v;
        return 0;
    case O_CURVE:
        o->curve_path = v;
        return 0;
    case O_NOQAT:
        o->cfg.qat = false;
        return 0;
    case O_TYPE: {
        const int t = trit_type_from_name(v);
        if (t != TRIT_TQ2_0 && t != TRIT_TQ1_0 && t != TRIT_I2_S)
            return cli_opt_bad("train", flag, v, "must be tq2_0, tq1_0 or i2_s");
        o->wtype = (uint32_t)t;
        return 0;
    }
    }
    return -1;
}

/* The command line into o: 0 to run, 1 after --help, 2 on a usage error (said on stderr). */
static int parse_train(int argc, char **argv, trit_train_opts *o) {
    trit_train_default_opts(o);
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "o:h", train_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?') { /* getopt_long said what was wrong */
            usage(stderr);
            return 2;
        }
        if (train_option(c, optarg, o)) return 2;
    }
    if (optind < argc) o->train_path = argv[optind++];
    if (!o->train_path || optind < argc || !o->out_path) {
        fprintf(stderr, "trit train: needs one TRAIN.txt and -o MODEL.gguf\n");
        usage(stderr);
        return 2;
    }
    if (o->cfg.n_embd % o->cfg.n_head) {
        fprintf(stderr, "trit train: --embd %d is not a multiple of --heads %d\n", o->cfg.n_embd,
                o->cfg.n_head);
        return 2;
    }
    return 0;
}

/* Train and write the model (train/train.h does the work): 0, or 1 with the reason said. */
static int run_train(const trit_train_opts *o) {
    trit_err err = {0};
    if (trit_train_run(o, &err)) {
        fprintf(stderr, "trit train: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* `trit train`: the command line into its options, then the run; the exit code (cli.h). */
int cmd_train(int argc, char **argv) {
    trit_train_opts o;
    int rc = parse_train(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    return run_train(&o);
}
