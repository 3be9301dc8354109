/* The loom command: one table of subcommands. */
#include "loom/loom.h"
#include "loom/main.h"
#include "tool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static int cmd_version(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("loom %s (matmul: %s)\n", LOOM_VERSION, loom_blas_enabled() ? "CBLAS" : "portable kernel");
    return 0;
}

static int cmd_help(int argc, char **argv);

static const tool_command commands[] = {
    {"train", cmd_train, "train [options]", train_help, train_opts, &n_train_opts},
    {"generate", cmd_generate, "generate --load CKPT [options]", generate_help, generate_opts, &n_generate_opts},
    {"translate", cmd_translate, "translate --load CKPT [options] [TEXT...]", translate_help, translate_opts, &n_translate_opts},
    {"eval", cmd_eval, "eval --load CKPT [--data FILE] [--beam K] [--baseline N] [--horizons K,...] [--plot FILE]", eval_help,
     eval_opts, &n_eval_opts},
    {"plot", cmd_plot, "plot FILE.csv... -o FILE [options]", plot_help, plot_opts, &n_plot_opts},
    {"stats", cmd_stats, "stats --data FILE [options]", stats_help, stats_opts, &n_stats_opts},
    {"word2vec", cmd_word2vec, "word2vec --data TEXT [options]", word2vec_help, word2vec_opts, &n_word2vec_opts},
    {"embed", cmd_embed, "embed --load CKPT [options]", embed_help, embed_opts, &n_embed_opts},
    {"search-demo", cmd_search_demo, "search-demo [--beam K]", search_demo_help, search_demo_opts, &n_search_demo_opts},
    {"bench", cmd_bench, "bench [options]", bench_help, bench_opts, &n_bench_opts},
    {"gradcheck", cmd_gradcheck, "gradcheck [options]", gradcheck_help, gradcheck_opts, &n_gradcheck_opts},
    {"dot", cmd_dot, "dot -o FILE [options]", dot_help, dot_opts, &n_dot_opts},
    {"inspect", cmd_inspect, "inspect --load CKPT [options]", inspect_help, inspect_opts, &n_inspect_opts},
    {"cell", cmd_cell, "cell [--cell C] [--input I] [--hidden H]", cell_help, cell_opts, &n_cell_opts},
    {"rnn-run", cmd_rnn_run, "rnn-run CASE.safetensors OUT.safetensors", rnn_run_help, rnn_run_opts, &n_rnn_run_opts},
    {"version", cmd_version, "version", "print the version and build configuration\n", NULL, NULL},
    {"help", cmd_help, "help", "print this help\n", NULL, NULL},
};
#define N_COMMANDS (int)(sizeof commands / sizeof *commands)

/* A help text's first lines (up to the first option) describe the command;
 * the option lines follow under the command's own heading. */
static void usage(FILE *f)
{
    fprintf(f, "usage: loom [--cell-lib CELLS.so]... <command> [options]\n\n"
               "--cell-lib registers the cells written in C that a shared object exports\n"
               "(const loom_cell_def *const loom_cell_lib[] = {&cell, ..., NULL}), for --cell\n"
               "and for checkpoints of them; it may stand anywhere on the line.\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) {
        const char *h = commands[i].help, *opts = strstr(h, "\n  -");
        int first = (int)(opts ? opts - h + 1 : (long)strlen(h));
        fprintf(f, "  %s\n", commands[i].synopsis);
        for (const char *l = h; l < h + first;) {
            const char *e = strchr(l, '\n');
            fprintf(f, "      %.*s\n", (int)(e - l), l);
            l = e + 1;
        }
    }
    fprintf(f, "\n");
    tool_model_help(f);
    for (int i = 0; i < N_COMMANDS; i++) {
        const char *opts = strstr(commands[i].help, "\n  -");
        if (commands[i].opts) {
            fprintf(f, "\n%s options:\n", commands[i].name);
            tool_opt_help(f, commands[i].opts, *commands[i].n_opts);
        } else if (opts) {
            fprintf(f, "\n%s options:%s", commands[i].name, opts);
        }
    }
}

static int cmd_help(int argc, char **argv)
{
    (void)argc, (void)argv;
    usage(stdout);
    return 0;
}

/* What a command printed must have reached standard output: a full disk
 * or a closed pipe is a failure (1), not a success. */
static int finish(const char *name, int rc)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
    fprintf(stderr, "loom %s: cannot write to standard output: %s\n", name, strerror(errno ? errno : EIO));
    return rc ? rc : 1;
}

/* --cell-lib PATH, wherever it stands (repeatable): the C cells a shared
 * object exports, registered before the command runs; taken out of argv. */
static int cell_libs(int *argc, char **argv)
{
    int k = 1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--cell-lib")) {
            argv[k++] = argv[i];
            continue;
        }
        if (i + 1 == *argc) return tool_fail("loom", "--cell-lib", "needs the path of a shared object");
        loom_error e = {0};
        if (loom_cell_lib_load(argv[++i], &e) < 0) return tool_fail("loom", "--cell-lib", e.msg);
    }
    *argc = k;
    argv[k] = NULL;
    return 0;
}

__attribute__((visibility("default"))) int loom_main(int argc, char **argv)
{
    /* a file too large for RLIMIT_FSIZE is a write error (EFBIG) that the
     * atomic writers clean up after, not a signal that kills the process
     * and leaves a temporary file */
    signal(SIGXFSZ, SIG_IGN);
    if (argc >= 2 && cell_libs(&argc, argv)) return 2;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (tool_is_help(argv[1])) return cmd_help(0, NULL);
    if (!strcmp(argv[1], "--version")) return cmd_version(0, NULL);
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return finish(argv[1], commands[i].run(argc - 2, argv + 2));
    fprintf(stderr, "loom: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
