/* The loom command. */
#include "loom/loom.h"
#include "gradcheck_cmd.h"
#include "rnn_run.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loom <command> [options]\n"
            "\n"
            "commands:\n"
            "  gradcheck   build an unrolled recurrent language-model graph, take its BPTT\n"
            "              gradients and check every one against central differences\n"
            "  rnn-run CASE.safetensors OUT.safetensors\n"
            "              run the recurrent stack a case file describes forward and backward\n"
            "              (L = sum(output * grad_output)) and write outputs and gradients\n"
            "  dot -o FILE [options]\n"
            "              draw the unrolled graph of a recurrent model (and its BPTT graph) as\n"
            "              .dot, .svg, .png or .pdf\n"
            "  version     print the version and build configuration\n"
            "  help        print this help\n"
            "\n"
            "gradcheck options:\n"
            "  --cell C      rnn_tanh, rnn_relu, gru, lstm (default) or mgu (the example user cell)\n"
            "  --layers N    stacked layers (default 1)  --bidirectional\n"
            "  --seq-len T   time steps (default 4)      --batch B    sequences (default 3)\n"
            "  --input I     input features (default 5)  --hidden H   hidden units (default 6)\n"
            "  --vocab V     output classes (default 7)  --seed S     random seed (default 1)\n"
            "\n"
            "dot options (and --cell, --layers, --bidirectional, --seq-len, --batch, --input,\n"
            "--hidden, --seed as above; defaults T=4, B=2, input 3, hidden 4):\n"
            "  --view op|cell        every op, or one box per (step, layer, direction)\n"
            "  --backward            add the gradient (BPTT) graph\n"
            "  --grad-norms          run forward and backward on seeded random data and colour each\n"
            "                        step by the norm of dL/dh_t (log scale)\n"
            "  --loss all|last       per-step losses on every step (default) or the last one only\n"
            "  --truncate K          truncated BPTT: cut the gradient every K steps\n"
            "  --random-truncation   segment lengths drawn at random with mean K\n"
            "  --steps-shown K       draw the first and last K steps, elide the middle\n"
            "  --title TEXT          the picture's title\n"
            "\n"
            "gradcheck:\n"
            "  --eps E       finite-difference step (default 5e-3; 1e-3 for rnn_relu, whose kinks\n"
            "                a larger step may cross)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "gradcheck")) return loom_cmd_gradcheck(argc - 2, argv + 2);
    if (!strcmp(cmd, "dot")) return loom_cmd_dot(argc - 2, argv + 2);
    if (!strcmp(cmd, "rnn-run")) {
        if (argc != 4) {
            fprintf(stderr, "usage: loom rnn-run CASE.safetensors OUT.safetensors\n");
            return 2;
        }
        char err[1024];
        int rc = loom_rnn_run(argv[2], argv[3], err, sizeof err);
        if (rc) fprintf(stderr, "loom rnn-run: %s\n", err);
        return rc;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("loom %s (matmul: %s)\n", LOOM_VERSION, loom_blas_enabled() ? "CBLAS" : "portable kernel");
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "loom: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
