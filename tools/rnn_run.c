/* `loom rnn-run CASE OUT`: the recurrent stack a case file describes, run
 * forward and backward (tools/rnn_case.c); golden files from PyTorch are
 * such cases. */
#include "tool.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char rnn_run_help[] =
    "run the recurrent stack a case file describes forward and backward\n"
    "(L = sum(output * grad_output)); write outputs and gradients\n";

typedef struct {
    bool finite, help;
    const char *paths[2];
} rr_args;

const tool_opt rnn_run_opts[] = {
    {"--finite", OPT_FLAG, offsetof(rr_args, finite),
     .help = "refuse a case whose inputs or weights hold NaN or infinities\n(by default a warning on stderr)"},
};
const int n_rnn_run_opts = 1;

/* 0: parsed; otherwise the exit status. */
static int parse(rr_args *a, int argc, char **argv)
{
    *a = (rr_args){.finite = false};
    const char **paths = calloc((size_t)argc + 1, sizeof *paths);
    int n_paths = 0;
    if (!paths) return 1;
    int rc = tool_opts_pos("loom rnn-run", rnn_run_opts, n_rnn_run_opts, a, NULL, argc, argv, &a->help, paths, &n_paths);
    for (int k = 0; k < 2 && k < n_paths; k++) a->paths[k] = paths[k];
    free(paths);
    if (rc || a->help) return rc;
    if (n_paths != 2) {
        fprintf(stderr, "usage: loom rnn-run [--finite] CASE.safetensors OUT.safetensors\n");
        return 2;
    }
    return 0;
}

int rnn_run_parse(int argc, char **argv)
{
    rr_args a;
    return parse(&a, argc, argv);
}

int cmd_rnn_run(int argc, char **argv)
{
    rr_args a;
    int rc = parse(&a, argc, argv);
    if (rc) return rc;
    if (a.help) {
        tool_help("rnn-run [--finite] CASE.safetensors OUT.safetensors", rnn_run_help, rnn_run_opts, n_rnn_run_opts, false);
        return 0;
    }
    char err[1024];
    rc = rnn_run(a.paths[0], a.paths[1], a.finite, err, sizeof err);
    if (rc) fprintf(stderr, "loom rnn-run: %s\n", err);
    return rc;
}
