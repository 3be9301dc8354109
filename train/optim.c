/* Optimisers, schedules and clipping, as torch.optim computes them. */
#include "loom/train.h"
#include "loom/runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Elements above which an update splits its loop across threads. */
#define PAR_MIN 65536

struct loom_optim {
    loom_optim_opts o;
    int n;
    float **p;
    int64_t *size;
    float **m, **v; /* SGD: m is the momentum buffer; Adam: the moments */
    int64_t steps;
};

void loom_optim_free(loom_optim *o)
{
    if (!o) return;
    for (int i = 0; i < o->n; i++) {
        if (o->m) free(o->m[i]);
        if (o->v) free(o->v[i]);
    }
    free(o->p), free(o->size), free(o->m), free(o->v), free(o);
}

loom_optim *loom_optim_new(const loom_optim_opts *opts, float *const *params, const int64_t *sizes, int n,
                           loom_error *err)
{
    const char *why = NULL;
    if (!opts || n < 0 || (n && (!params || !sizes))) why = "optimiser: no options or parameters";
    else if (!(opts->lr >= 0) || !isfinite(opts->lr)) why = "optimiser: the learning rate must be a finite number >= 0";
    else if (!(opts->momentum >= 0) || !(opts->weight_decay >= 0)) why = "optimiser: momentum and weight decay must be >= 0";
    else if (opts->nesterov && (opts->momentum <= 0 || opts->dampening != 0))
        why = "optimiser: Nesterov momentum needs momentum > 0 and dampening 0";
    else if (opts->kind != LOOM_OPT_SGD && ((opts->beta1 && !(opts->beta1 > 0 && opts->beta1 < 1)) ||
                                            (opts->beta2 && !(opts->beta2 > 0 && opts->beta2 < 1)) || opts->eps < 0))
        why = "optimiser: betas must be in (0, 1) and eps >= 0";
    else if (opts->kind < LOOM_OPT_SGD || opts->kind > LOOM_OPT_ADAMW) why = "optimiser: unknown kind";
    if (why) return loom_error_set(err, LOOM_ERR_ARG, "%s", why), NULL;
    loom_optim *o = calloc(1, sizeof *o);
    if (!o) goto nomem;
    o->o = *opts;
    if (o->o.kind != LOOM_OPT_SGD) {
        if (!o->o.beta1) o->o.beta1 = 0.9f;
        if (!o->o.beta2) o->o.beta2 = 0.999f;
        if (!o->o.eps) o->o.eps = 1e-8f;
    }
    o->n = n;
    bool moments = o->o.kind != LOOM_OPT_SGD || o->o.momentum > 0;
    o->p = malloc(((size_t)n + 1) * sizeof *o->p);
    o->size = malloc(((size_t)n + 1) * sizeof *o->size);
    o->m = moments ? calloc((size_t)n + 1, sizeof *o->m) : NULL;
    o->v = o->o.kind != LOOM_OPT_SGD ? calloc((size_t)n + 1, sizeof *o->v) : NULL;
    if (!o->p || !o->size || (moments && !o->m) || (o->o.kind != LOOM_OPT_SGD && !o->v)) goto nomem;
    for (int i = 0; i < n; i++) {
        o->p[i] = params[i], o->size[i] = sizes[i];
        if (o->m && !(o->m[i] = calloc((size_t)sizes[i] + 1, sizeof(float)))) goto nomem;
        if (o->v && !(o->v[i] = calloc((size_t)sizes[i] + 1, sizeof(float)))) goto nomem;
    }
    return o;
nomem:
    loom_error_set(err, LOOM_ERR_NOMEM, "optimiser: out of memory");
    loom_optim_free(o);
    return NULL;
}

loom_optim *loom_optim_for_store(const loom_optim_opts *opts, loom_store *s, loom_error *err)
{
    int n = loom_store_count(s);
    float **p = malloc(((size_t)n + 1) * sizeof *p);
    int64_t *sz = malloc(((size_t)n + 1) * sizeof *sz);
    loom_optim *o = NULL;
    if (p && sz) {
        for (int i = 0; i < n; i++) {
            loom_tensor t = loom_store_tensor(s, i);
            p[i] = loom_store_data(s, t);
            sz[i] = loom_store_numel(s, i);
        }
        o = loom_optim_new(opts, p, sz, n, err);
    } else {
        loom_error_set(err, LOOM_ERR_NOMEM, "optimiser: out of memory");
    }
    free(p), free(sz);
    return o;
}

int64_t loom_optim_steps(const loom_optim *o) { return o->steps; }
void loom_optim_set_steps(loom_optim *o, int64_t steps) { o->steps = steps; }

void loom_optim_state(loom_optim *o, int i, float **m, float **v)
{
    *m = o->m && i >= 0 && i < o->n ? o->m[i] : NULL;
    *v = o->v && i >= 0 && i < o->n ? o->v[i] : NULL;
}

static void sgd(const loom_optim *o, int i, const float *grad, float lr)
{
    const loom_optim_opts *c = &o->o;
    float *p = o->p[i], *buf = o->m ? o->m[i] : NULL, wd = c->weight_decay, mu = c->momentum, damp = c->dampening;
    #pragma omp parallel for simd if (parallel: o->size[i] > PAR_MIN && !loom_runs_alone())
    for (int64_t k = 0; k < o->size[i]; k++) {
        float g = grad[k];
        if (wd != 0) g = g + wd * p[k];
        if (mu != 0) {
            buf[k] = o->steps == 0 ? g : mu * buf[k] + (1 - damp) * g;
            g = c->nesterov ? g + mu * buf[k] : buf[k];
        }
        p[k] = p[k] - lr * g;
    }
}

static void adam(const loom_optim *o, int i, const float *grad, float lr)
{
    const loom_optim_opts *c = &o->o;
    float *p = o->p[i], *m = o->m[i], *v = o->v[i], b1 = c->beta1, b2 = c->beta2, wd = c->weight_decay;
    double t = (double)(o->steps + 1);
    float bc1 = (float)(1 - pow(b1, t)), bc2_sqrt = (float)sqrt(1 - pow(b2, t)), step = lr / bc1;
    #pragma omp parallel for simd if (parallel: o->size[i] > PAR_MIN && !loom_runs_alone())
    for (int64_t k = 0; k < o->size[i]; k++) {
        float g = grad[k];
        if (c->kind == LOOM_OPT_ADAMW) p[k] = p[k] * (1 - lr * wd);
        else if (wd != 0) g = g + wd * p[k];
        m[k] = m[k] * b1 + (1 - b1) * g;          /* m.mul_(β1).add_(g, alpha=1−β1) */
        v[k] = v[k] * b2 + (1 - b2) * g * g;      /* v.mul_(β2).addcmul_(g, g, value=1−β2) */
        float denom = sqrtf(v[k]) / bc2_sqrt + c->eps;
        p[k] = p[k] - step * (m[k] / denom);
    }
}

void loom_optim_step(loom_optim *o, const float *const *grads, float lr)
{
    for (int i = 0; i < o->n; i++) {
        if (o->o.kind == LOOM_OPT_SGD) sgd(o, i, grads[i], lr);
        else adam(o, i, grads[i], lr);
    }
    o->steps++;
}

/* Σ x² in double, block by block (each block a vector loop), the blocks'
 * sums added in order: the same result at any thread count. */
static double sum_squares(const float *x, int64_t n)
{
    enum { BLOCK = 4096 };
    int64_t blocks = (n + BLOCK - 1) / BLOCK;
    double total = 0;
    #pragma omp parallel for ordered schedule(static) if (n > PAR_MIN && !loom_runs_alone())
    for (int64_t b = 0; b < blocks; b++) {
        int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
        double s = 0;
        #pragma omp simd reduction(+ : s)
        for (int64_t k = lo; k < hi; k++) s += (double)x[k] * x[k];
        #pragma omp ordered
        total += s;
    }
    return total;
}

double loom_clip_grad_norm(float *const *grads, const int64_t *sizes, int n, double max_norm)
{
    /* PyTorch: the norm of the per-tensor norms */
    double total = 0;
    for (int i = 0; i < n; i++) total += sum_squares(grads[i], sizes[i]);
    double norm = sqrt(total);
    double coef = max_norm / (norm + 1e-6);
    if (isfinite(norm) && coef < 1)
        for (int i = 0; i < n; i++) {
            float *g = grads[i];
            #pragma omp parallel for simd if (parallel: sizes[i] > PAR_MIN && !loom_runs_alone())
            for (int64_t k = 0; k < sizes[i]; k++) g[k] = (float)(g[k] * coef);
        }
    return norm;
}

void loom_clip_grad_value(float *const *grads, const int64_t *sizes, int n, float c)
{
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < sizes[i]; k++) grads[i][k] = grads[i][k] > c ? c : grads[i][k] < -c ? -c : grads[i][k];
}

float loom_schedule_lr(const loom_schedule *s, float lr, int64_t step)
{
    double r = lr;
    if (s) {
        switch (s->kind) {
        case LOOM_SCHED_STEP: r = lr * pow(s->gamma, (double)(s->step_size > 0 ? step / s->step_size : 0)); break;
        case LOOM_SCHED_EXP: r = lr * pow(s->gamma, (double)step); break;
        case LOOM_SCHED_COSINE:
            if (s->total > 0)
                r = s->min_lr + (lr - s->min_lr) * (1 + cos(M_PI * (double)step / (double)s->total)) / 2; /* past T_max it rises again, as PyTorch's */
            break;
        case LOOM_SCHED_LINEAR:
            r = s->total > 0 && step < s->total ? lr + (s->min_lr - lr) * (double)step / (double)s->total : s->min_lr;
            break;
        default: break;
        }
        if (s->warmup > 0 && step < s->warmup) r *= (double)(step + 1) / (double)s->warmup;
    }
    return (float)r;
}
