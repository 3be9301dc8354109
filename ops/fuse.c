/* The fused-kernel interpreter (the fuse rewrite, passes/rewrite.c): the
 * members of a group of elementwise ops run chunk by chunk, each chunk of
 * every member's value computed before the next chunk is touched, so a
 * value only the group reads lives in a small stack buffer in L1 instead
 * of an arena buffer, and a cell's gate arithmetic is one pass over the
 * data. Each member runs its op's own element rule (loom_op_desc.span) on
 * the same floats as its kernel would: the results are identical. */
#include "ops/op.h"

enum { CHUNK = 256 }; /* floats per member per step: 32 members × 1 KB */

void loom_fused_run(const loom_kargs *k, const loom_fused_op *ops, int n)
{
    int64_t d[4];
    loom_shape_pad4(k->node->shape, d);
    int64_t rows = d[0] * d[1] * d[2], cols = d[3];
    bool flat = true; /* no operand broadcast along rows: one long row */
    for (int j = 0; j < n; j++)
        for (int i = 0; i < ops[j].n_in; i++)
            flat = flat && (ops[j].src[i] >= 0 || ops[j].full[i] ||
                            !(ops[j].st[i][0] | ops[j].st[i][1] | ops[j].st[i][2] | ops[j].st[i][3]));
    if (flat) cols *= rows, rows = 1;
    int64_t per_row = (cols + CHUNK - 1) / CHUNK, u0, u1;
    loom_share(k, rows * per_row, rows * cols * n, &u0, &u1);
    float tmp[LOOM_FUSE_MAX][CHUNK], bcast[2][CHUNK];
    float *val[LOOM_FUSE_MAX];
    for (int64_t u = u0; u < u1; u++) {
        int64_t r = u / per_row, c0 = u % per_row * CHUNK, w = cols - c0 < CHUNK ? cols - c0 : CHUNK;
        int64_t idx[3] = {r / (d[1] * d[2]), r / d[2] % d[1], r % d[2]}, at = r * cols + c0;
        for (int j = 0; j < n; j++) {
            const loom_fused_op *o = &ops[j];
            const float *x[2] = {NULL, NULL};
            for (int i = 0; i < o->n_in; i++) {
                if (o->src[i] >= 0) {
                    x[i] = val[o->src[i]];
                    continue;
                }
                if (o->full[i]) {
                    x[i] = o->ext[i] + at;
                    continue;
                }
                const int64_t *st = o->st[i];
                const float *p = o->ext[i] + (flat ? 0 : idx[0] * st[0] + idx[1] * st[1] + idx[2] * st[2]);
                if (st[3]) { /* a row of its own (a bias row) */
                    x[i] = p + c0;
                    continue;
                }
                for (int64_t e = 0; e < w; e++) bcast[i][e] = *p; /* one value across the row */
                x[i] = bcast[i];
            }
            val[j] = o->out ? o->out + at : tmp[j];
            o->span(x[0], x[1] ? x[1] : x[0], val[j], w, o->attr);
        }
    }
}
