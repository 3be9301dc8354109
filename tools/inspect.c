/* `loom inspect`: a trained model (a language model, or the adding or copy
 * task) on one batch, as a lecture on vanishing gradients looks at it —
 * ‖∂L/∂s_t‖ along t in float32 and float64, each step's Jacobian norm
 * ‖∂s_t/∂s_{t−1}‖₂, the spectra of the recurrent weights, the mean gate
 * activations — printed, and as CSV files for loom plot. Every number is
 * the library's (loom/inspect.h); this file prints and writes them. */
#include "tool.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char inspect_help[] =
    "a trained model on one batch (held-out by default): the gradient norms of its carried\n"
    "states along t (float32 and float64), each step's Jacobian norm, the eigenvalues of its\n"
    "recurrent weights and its mean gate activations; printed, and as CSV for loom plot\n";

typedef struct {
    const char *load, *data, *norms_csv, *jac_csv, *spec_csv, *gates_csv;
    int batch_from, loss;
    long steps, max_seqs;
    bool help;
} inspect_args;

#define I(field) offsetof(inspect_args, field)
const tool_opt inspect_opts[] = {
    {"--load", OPT_PATH, I(load), .arg = "CKPT", .help = "the checkpoint (loom train: a language model, --task adding or copy)"},
    {"--batch-from", OPT_CHOICE, I(batch_from), .choices = (const char *const[]){"held-out", "training", NULL},
     .arg = "held-out|training", .help = "the batch: held-out (default: as loom dot --load), or the first training batch"},
    {"--loss", OPT_CHOICE, I(loss), .choices = (const char *const[]){"model", "last", NULL}, .arg = "model|last",
     .help = "the model's own loss (default) or the last step's alone"},
    {"--data", OPT_PATH, I(data), .arg = "FILE", .help = "a language model: this text in place of its own"},
    {"--seq-len", OPT_INT, I(steps), 1, 100000, .arg = "T", .help = "a language model: the window (default: its training length)"},
    {"--max-seqs", OPT_INT, I(max_seqs), 1, 1 << 20, .arg = "N",
     .help = "Jacobians of the batch's first N sequences, averaged (default 8)"},
    {"--norms-csv", OPT_PATH, I(norms_csv), .arg = "FILE", .help = "t,layer,direction,state,norm,norm64"},
    {"--jacobian-csv", OPT_PATH, I(jac_csv), .arg = "FILE",
     .help = "t,layer,direction,sigma_max,spectral_radius of each step's J = ds_t/ds_t-1\n"
             "(t from 2; s: h, or h and c joined)"},
    {"--spectrum-csv", OPT_PATH, I(spec_csv), .arg = "FILE",
     .help = "layer,direction,parameter,block,k,re,im,modulus: the eigenvalues of each\n"
             "H × H block of each recurrent weight (PyTorch's gate order: LSTM i f g o,\n"
             "GRU r z n), largest modulus first"},
    {"--gates-csv", OPT_PATH, I(gates_csv), .arg = "FILE", .help = "t,layer,direction,gate,mean"},
};
#undef I
const int n_inspect_opts = (int)(sizeof inspect_opts / sizeof *inspect_opts);

typedef struct {
    const loom_probe *p;
    const float *norm;
    const double *norm64, *sigma, *radius;
    const loom_gates *gates;
    const loom_spectrum *spec;
    int n_spec;
} report;

/* The rows of each file, from the library's writers. */
static loom_status norms_rows(const void *ctx, loom_metrics *m)
{
    const report *r = ctx;
    return loom_state_norms_rows(m, r->p->g, &r->p->grid, r->norm, r->norm64, -1);
}
static loom_status jac_rows(const void *ctx, loom_metrics *m)
{
    const report *r = ctx;
    return loom_jacobian_rows(m, &r->p->grid, r->sigma, r->radius);
}
static loom_status gate_rows(const void *ctx, loom_metrics *m)
{
    const report *r = ctx;
    return loom_gate_rows(m, &r->p->grid, r->gates);
}
static loom_status spec_rows(const void *ctx, loom_metrics *m)
{
    const report *r = ctx;
    return loom_spectra_rows(m, r->p->g, r->p->rnn, r->spec, r->n_spec);
}

/* ‖v‖ over the first or last step's states of the last layer's forward direction. */
int cmd_inspect(int argc, char **argv)
{
    static const char cmd[] = "loom inspect";
    inspect_args a = {.max_seqs = 8};
    int rc = tool_opts(cmd, inspect_opts, n_inspect_opts, &a, NULL, argc, argv, &a.help);
    if (rc) return rc;
    if (a.help) {
        tool_help("inspect --load CKPT [options]", inspect_help, inspect_opts, n_inspect_opts, false);
        return 0;
    }
    if (!a.load) return tool_fail(cmd, "--load CKPT is required", NULL);
    tool_file outs[] = {{"--norms-csv", a.norms_csv}, {"--jacobian-csv", a.jac_csv}, {"--spectrum-csv", a.spec_csv},
                        {"--gates-csv", a.gates_csv}};
    if (!tool_outputs_ok(cmd, outs, 4, (tool_file[]){{"--load", a.load}, {"--data", a.data}}, 2)) return 2;
    loom_probe p;
    loom_error err = {0};
    loom_status st = loom_probe_open(&p, a.load,
                                     &(loom_probe_opts){.from = (loom_batch_from)a.batch_from, .text = a.data,
                                                        .steps = (int)a.steps, .last_step = a.loss == 1},
                                     &err);
    if (st) return st == LOOM_ERR_NOMEM ? tool_fail_st(cmd, st, a.load, err.msg) : tool_fail(cmd, a.load, err.msg);
    const loom_state_grid *g = &p.grid;
    size_t n = loom_state_count(g), nx = (size_t)g->steps * g->layers * g->dirs;
    float *norm = malloc(n * sizeof *norm);
    double *norm64 = malloc(n * sizeof *norm64), *sigma = malloc(nx * sizeof *sigma), *radius = malloc(nx * sizeof *radius);
    loom_gates gates = {0};
    loom_spectrum *spec = NULL;
    int n_spec = 0;
    rc = 1;
    if (!norm || !norm64 || !sigma || !radius) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        goto done;
    }
    if ((st = loom_state_grad_norms(p.g, p.loss, g, p.binds, p.n_binds, norm, norm64)) ||
        (st = loom_state_jacobian_norms(p.g, p.rnn, g, p.binds, p.n_binds, (int)a.max_seqs, sigma, radius)) ||
        (st = loom_gate_means(p.g, g, p.binds, p.n_binds, &gates)) ||
        (st = loom_rnn_spectra(p.g, p.rnn, p.binds, p.n_binds, &spec, &n_spec))) {
        rc = tool_fail_st(cmd, st, a.load, loom_graph_failed(p.g) ? loom_graph_error(p.g)
                                           : st == LOOM_ERR_VALUE ? "eigenvalues: the QR iteration did not converge"
                                                                  : "out of memory");
        goto done;
    }
    char kind[64] = "language model";
    if (p.model.kind != LOOM_MODEL_LM) snprintf(kind, sizeof kind, "%s task", loom_model_kind_name(p.model.kind));
    const loom_rnn_opts *o = &p.rnn->o;
    int T = g->steps, L = g->layers;
    printf("%s, %s, %d layer%s, hidden %d, T = %d, %s batch, %s loss\n", kind, o->cell->name, L, L > 1 ? "s" : "",
           o->hidden_size, T, a.batch_from ? "a training" : "the held-out", a.loss ? "the last step's" : "the model's own");
    /* the lesson's number: how much of the gradient reaches the first step */
    loom_gradient_summary sum;
    loom_gradient_summarize(g, norm, norm64, sigma, radius, &sum);
    printf("gradient: ||dL/dh_1|| = %.3e%s, ||dL/dh_T|| = %.3e: ratio %.3e", sum.first,
           sum.first_underflows ? " (0 in float32: it underflows)" : "", sum.last, sum.ratio);
    if (!isnan(sum.factor)) printf(", a factor %.3f a step", sum.factor);
    printf("\n");
    if (sum.jacobians)
        printf("Jacobians J_t = ds_t/ds_t-1 (top layer, forward): ||J_t||_2 from %.3f to %.3f (geometric mean %.3f; their "
               "product %.3e bounds the ratio above); spectral radius, geometric mean %.3f\n",
               sum.sigma_min, sum.sigma_max, sum.sigma_mean, sum.sigma_product, sum.radius_mean);
    printf("recurrent weights, eigenvalues:");
    for (int i = 0; i < n_spec; i++) { /* per weight, each block's spectral radius */
        const loom_spectrum *e = &spec[i];
        if (!e->block) printf("\n  %s: spectral radius", loom_tensor_name(p.g, p.rnn->param[e->layer][e->dir][e->param]));
        printf(" %.3f", hypot(e->re[0], e->im[0]));
        if (i + 1 == n_spec || !spec[i + 1].block) printf("%s", e->block ? " (one per gate block)" : "");
    }
    printf("\n");
    if (gates.n) {
        printf("gates, mean over steps and units (top layer, forward):");
        for (int k = 0; k < gates.n; k++) {
            double s = 0;
            int c = 0;
            for (int t = 0; t < T; t++) {
                double v = gates.mean[(((size_t)t * L + L - 1) * g->dirs) * LOOM_MAX_GATES + k];
                if (!isnan(v)) s += v, c++;
            }
            printf(" %s %.3f", gates.name[k], c ? s / c : NAN);
        }
        printf("\n");
    }
    report r = {&p, norm, norm64, sigma, radius, &gates, spec, n_spec};
    if ((rc = tool_write_rows(cmd, a.norms_csv, LOOM_STATE_NORMS_COLUMNS, norms_rows, &r)) ||
        (rc = tool_write_rows(cmd, a.jac_csv, LOOM_JACOBIAN_COLUMNS, jac_rows, &r)) ||
        (rc = tool_write_rows(cmd, a.gates_csv, LOOM_GATE_COLUMNS, gate_rows, &r)))
        goto done;
    rc = tool_write_rows(cmd, a.spec_csv, LOOM_SPECTRUM_COLUMNS, spec_rows, &r);
done:
    free(norm), free(norm64), free(sigma), free(radius);
    loom_gates_free(&gates);
    loom_spectra_free(spec, n_spec);
    loom_probe_close(&p);
    return rc;
}
