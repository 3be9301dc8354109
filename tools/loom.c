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
            "  gradcheck [options]   build an unrolled recurrent language-model graph, take its BPTT\n"
            "                        gradients and check every one against central differences\n"
            "  dot -o FILE [options] draw the unrolled graph of a recurrent model (and its BPTT\n"
            "                        graph) as .dot, .svg, .png or .pdf\n"
            "  rnn-run CASE.safetensors OUT.safetensors\n"
            "                        run the recurrent stack a case file describes forward and\n"
            "                        backward (L = sum(output * grad_output)); write outputs and gradients\n"
            "  version               print the version and build configuration\n"
            "  help                  print this help\n"
            "\n"
            "model options (gradcheck and dot):\n"
            "  --cell C              rnn_tanh, rnn_relu, gru, lstm (default) or mgu (the example user cell)\n"
            "  --layers N            stacked layers (default 1)\n"
            "  --bidirectional       a reverse direction too\n"
            "  --seq-len T           time steps (default 4)\n"
            "  --batch B             sequences (gradcheck 3, dot 2)\n"
            "  --input I             input features (gradcheck 5, dot 3)\n"
            "  --hidden H            hidden units (gradcheck 6, dot 4)\n"
            "  --seed S              random seed (default 1)\n"
            "\n"
            "gradcheck options:\n"
            "  --vocab V             output classes (default 7)\n"
            "  --eps E               finite-difference step (default 5e-3; 1e-3 for rnn_relu, whose\n"
            "                        kinks a larger step may cross)\n"
            "\n"
            "dot options:\n"
            "  -o FILE               output; the extension picks the format (- for DOT on stdout)\n"
            "  --view op|cell        every op (default), or one box per (step, layer, direction)\n"
            "  --backward            add the gradient (BPTT) graph\n"
            "  --grad-norms          run forward and backward on seeded random data and colour each\n"
            "                        step by the norm of dL/dh_t (log scale)\n"
            "  --heat-range LO:HI    fixed ends of that colour scale (to compare pictures)\n"
            "  --loss all|last       per-step losses on every step (default) or the last one only\n"
            "  --truncate K          truncated BPTT: cut the gradient every K steps\n"
            "  --random-truncation   segment lengths drawn at random with mean K\n"
            "  --steps-shown K       draw the first and last K steps, elide the middle (default: 12\n"
            "                        past 64 steps in the cell view, 4 past 12 in the op view; 0: all)\n"
            "  --title TEXT          the picture's title\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    for (int a = 2; a < argc; a++)
        if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
            usage(stdout);
            return 0;
        }
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
