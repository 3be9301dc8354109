/* A plan's oneDNN products: the matmul primitive, over weights packed
 * once per run.
 *
 * A parameter read as B — a recurrent weight, read by every step's product
 * — is reordered into oneDNN's blocked layout at the start of each run, so
 * a step's GEMM reads its weight the way the kernel wants it and copies
 * nothing but its few rows of A. On one Zen 5 core, f32 products of 16–32
 * rows at the benchmark's recurrent shapes run at 205–218 GFLOP/s this way
 * against 140–160 for sgemm's A·Bᵀ and 186–210 for its A·B on a transposed
 * copy.
 *
 * f32 plans send these products here — A·Wᵀ with W a parameter and at
 * most 64 rows (a recurrent step's h·W_hhᵀ) — and every other product to
 * CBLAS (gemm.c): oneDNN's sgemm already reads an untransposed W at these
 * speeds (δ·W_hh going back), so a second copy in that layout would add
 * memory for little. bf16
 * plans send every product here: C = op(A)·op(B) + β·C with A and B
 * rounded to bfloat16 (round to nearest, ties to even) and every product
 * and sum in f32, on a CPU with AVX512_BF16 or AMX (two bf16 multiply-adds
 * per f32 lane per instruction: vdpbf16ps); operands other than packed
 * weights are rounded into per-thread scratch at each call.
 *
 * The primitives made so far are kept, one per product shape. Threads: a
 * plan's team calls products side by side (or the two shares of one
 * product), so lookups take a lock; primitives run with a scratchpad the
 * caller gives (dnnl_scratchpad_mode_user), one per thread, which is what
 * makes one primitive safe to run on two threads at once. */
#include "ops/op.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#ifdef LOOM_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <immintrin.h>

/* f32 → bf16, round to nearest even; a NaN stays a (quiet) NaN. */
static inline uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* n floats to bf16: 32 at a time with vcvtne2ps2bf16 (the same rounding),
 * only ever called once the CPU is known to have AVX512_BF16. */
__attribute__((target("avx512f,avx512bf16"))) static void row_to_bf16(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512((void *)(y + i), (__m512i)v);
    }
    for (; i < n; i++) y[i] = to_bf16(x[i]);
}

/* A product's shape: every field a primitive is made for. */
typedef struct {
    int32_t m, n, k, lda, ldb, ldc; /* as oneDNN reads them: a rounded operand's are its row length; ldb 0 when packed */
    int32_t ta, tb, accumulate, packed;
} shape_key;

typedef struct {
    shape_key key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t amd, wmd, dmd, smd; /* A, B (blocked when packed), C, the scratchpad */
    size_t scratch;                        /* bytes of scratchpad it needs */
} prim_entry;

/* A parameter's packed copy: the B (k × n, op(B)) a product reads at
 * offset `off` of parameter node `root`, in layout wmd. */
typedef struct {
    int32_t root, tb, n, k, ldb;
    int64_t off;
    dnnl_memory_desc_t wmd;
    void *data;
    size_t bytes;
    uint64_t packed_run; /* the run its values are from (~0: none) */
    bool used;           /* a product of the current run read it */
} packed_entry;

typedef struct {
    void *p;
    size_t n;
} scratch_buf;

/* One primitive's memory objects on one thread, made once (a call points
 * them at its data: creating them per call costs as much as a small GEMM). */
typedef struct {
    dnnl_memory_t a, b, d, s;
} mem_set;

typedef struct {
    dnnl_stream_t stream;  /* its own: a stream is not shared between threads */
    scratch_buf a, b, pad; /* A and B rounded, the primitive's scratchpad */
    mem_set *mem;          /* per primitive (its index) */
    int n_mem;
} thread_scratch;

struct loom_mm {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    omp_lock_t lock;
    prim_entry *prims;
    int n_prims, cap_prims;
    packed_entry *packs;
    int n_packs, cap_packs;
    bool bf16;
    dnnl_data_type_t dt; /* of A and B */
    uint64_t run; /* runs begun: what a packed copy's packed_run refers to */
    int slots, level;   /* omp_get_level() outside the plan's team */
    thread_scratch *ts; /* per thread of the team (0: a run without one) */
};

bool loom_bf16_available(void)
{
    static int have = -1;
    if (have < 0) {
        /* oneDNN's own run-time detection (CPUID and the OS's state, AMX's
         * permission included); DNNL_MAX_CPU_ISA in the environment lowers it. */
        dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
        have = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16 && __builtin_cpu_supports("avx512f");
    }
    return have;
}

loom_mm *loom_mm_new(bool bf16)
{
    if (bf16 && !loom_bf16_available()) return NULL;
    loom_mm *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) != dnnl_success) {
        free(c);
        return NULL;
    }
    if (dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(c->eng);
        free(c);
        return NULL;
    }
    omp_init_lock(&c->lock);
    c->bf16 = bf16;
    c->dt = bf16 ? dnnl_bf16 : dnnl_f32;
    return c;
}

static void free_slots(loom_mm *c)
{
    for (int i = 0; i < c->slots; i++) {
        thread_scratch *t = &c->ts[i];
        free(t->a.p), free(t->b.p), free(t->pad.p);
        for (int j = 0; j < t->n_mem; j++) {
            dnnl_memory_t m[4] = {t->mem[j].a, t->mem[j].b, t->mem[j].d, t->mem[j].s};
            for (int q = 0; q < 4; q++)
                if (m[q]) dnnl_memory_destroy(m[q]);
        }
        free(t->mem);
        if (t->stream) dnnl_stream_destroy(t->stream);
    }
    free(c->ts);
    c->ts = NULL;
    c->slots = 0;
}

void loom_mm_free(loom_mm *c)
{
    if (!c) return;
    for (int i = 0; i < c->n_prims; i++) dnnl_primitive_destroy(c->prims[i].prim);
    for (int i = 0; i < c->n_packs; i++) free(c->packs[i].data);
    free(c->prims), free(c->packs);
    free_slots(c);
    omp_destroy_lock(&c->lock);
    dnnl_stream_destroy(c->stream);
    dnnl_engine_destroy(c->eng);
    free(c);
}

bool loom_mm_slots(loom_mm *c, int threads)
{
    if (threads <= c->slots) return true;
    free_slots(c);
    if (!(c->ts = calloc((size_t)threads, sizeof *c->ts))) return false;
    c->slots = threads;
    for (int i = 0; i < threads; i++)
        if (dnnl_stream_create(&c->ts[i].stream, c->eng, dnnl_stream_default_flags) != dnnl_success) {
            free_slots(c);
            return false;
        }
    return true;
}

static void *grow(scratch_buf *s, size_t n)
{
    if (n <= s->n) return s->p;
    void *p = aligned_alloc(64, (n + 63) / 64 * 64);
    if (!p) return NULL;
    free(s->p);
    s->p = p, s->n = n;
    return p;
}

/* The memory descriptor of op(X), r × c, for X stored row by row with
 * leading dimension ld: a transposed X is read with its strides swapped. */
static bool plain(dnnl_memory_desc_t *md, int r, int c, int64_t ld, bool t, dnnl_data_type_t dt)
{
    dnnl_dims_t dims = {r, c}, strides = {t ? 1 : ld, t ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides) == dnnl_success;
}

/* The primitive for key (made on first use). Called under the lock. */
static prim_entry *primitive(loom_mm *c, const shape_key *key)
{
    for (int i = 0; i < c->n_prims; i++)
        if (!memcmp(&c->prims[i].key, key, sizeof *key)) return &c->prims[i];
    if (c->n_prims == c->cap_prims) {
        int cap = c->cap_prims ? 2 * c->cap_prims : 16;
        prim_entry *e = realloc(c->prims, (size_t)cap * sizeof *e);
        if (!e) return NULL;
        c->prims = e, c->cap_prims = cap;
    }
    /* A (m × k) and B (k × n) as op() sees them */
    dnnl_memory_desc_t a, b, d;
    bool ok = plain(&a, key->m, key->k, key->lda, key->ta, c->dt) && plain(&d, key->m, key->n, key->ldc, false, dnnl_f32);
    if (key->packed) {
        dnnl_dims_t dims = {key->k, key->n};
        ok = ok && dnnl_memory_desc_init_by_tag(&b, 2, dims, c->dt, dnnl_format_tag_any) == dnnl_success;
    } else {
        ok = ok && plain(&b, key->k, key->n, key->ldb, key->tb, c->dt);
    }
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    prim_entry *e = &c->prims[c->n_prims];
    ok = ok && dnnl_matmul_desc_init(&md, &a, &b, NULL, &d) == dnnl_success &&
         dnnl_primitive_attr_create(&attr) == dnnl_success &&
         dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && key->accumulate) /* C += A·B: the sum post-op adds what C holds */
        ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &md, attr, c->eng, NULL) == dnnl_success &&
         dnnl_primitive_create(&e->prim, pd) == dnnl_success;
    if (ok) {
        e->key = *key;
        e->amd = a, e->dmd = d;
        e->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        e->smd = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        e->scratch = dnnl_memory_desc_get_size(&e->smd);
        c->n_prims++;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return ok ? e : NULL;
}

/* Writes parameter data b (op(B) = k × n read with ldb, transposed when
 * tb) into pk's layout: oneDNN's reorder from an f32 view of b. */
static bool pack(loom_mm *c, dnnl_stream_t stream, packed_entry *pk, const float *b)
{
    dnnl_memory_desc_t src;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t ms = NULL, md = NULL;
    bool ok = plain(&src, pk->k, pk->n, pk->ldb, pk->tb, dnnl_f32) &&
              dnnl_reorder_primitive_desc_create(&rpd, &src, c->eng, &pk->wmd, c->eng, NULL) == dnnl_success &&
              dnnl_primitive_create(&r, rpd) == dnnl_success &&
              dnnl_memory_create(&ms, &src, c->eng, (void *)b) == dnnl_success &&
              dnnl_memory_create(&md, &pk->wmd, c->eng, pk->data) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
        ok = dnnl_primitive_execute(r, stream, 2, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success;
    }
    if (ms) dnnl_memory_destroy(ms);
    if (md) dnnl_memory_destroy(md);
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (ok) pk->packed_run = c->run;
    return ok;
}

/* The packed copy of parameter `root` at `off` for a product whose
 * primitive wants layout wmd, packed from b for this run. Under the lock. */
static packed_entry *packed(loom_mm *c, dnnl_stream_t stream, int32_t root, int64_t off, bool tb, int n, int k,
                            int ldb, const dnnl_memory_desc_t *wmd, const float *b)
{
    packed_entry *pk = NULL;
    for (int i = 0; i < c->n_packs && !pk; i++) {
        packed_entry *e = &c->packs[i];
        if (e->root == root && e->off == off && e->tb == tb && e->n == n && e->k == k && e->ldb == ldb &&
            dnnl_memory_desc_equal(&e->wmd, wmd))
            pk = e;
    }
    if (!pk) {
        if (c->n_packs == c->cap_packs) {
            int cap = c->cap_packs ? 2 * c->cap_packs : 8;
            packed_entry *e = realloc(c->packs, (size_t)cap * sizeof *e);
            if (!e) return NULL;
            c->packs = e, c->cap_packs = cap;
        }
        size_t bytes = dnnl_memory_desc_get_size(wmd);
        void *data = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!data) return NULL;
        pk = &c->packs[c->n_packs++];
        *pk = (packed_entry){root, tb, n, k, ldb, off, *wmd, data, bytes, ~0ull, false};
    }
    pk->used = true;
    if (pk->packed_run != c->run && !pack(c, stream, pk, b)) return NULL;
    return pk;
}

void loom_mm_begin_run(loom_mm *c, const float *(*where)(void *ctx, int32_t root), void *ctx)
{
    c->run++;
    c->level = omp_get_level();
    /* the copies the last run read, packed again from the parameters' values
     * now, outside the team (each reorder runs on every thread) */
    for (int i = 0; i < c->n_packs; i++) {
        packed_entry *pk = &c->packs[i];
        if (pk->used && !pack(c, c->stream, pk, where(ctx, pk->root) + pk->off)) pk->packed_run = ~0ull; /* packed again when read */
        pk->used = false;
    }
}

int loom_mm_packed(const loom_mm *c) { return c ? c->n_packs : 0; }

size_t loom_mm_bytes(const loom_mm *c)
{
    size_t s = 0;
    for (int i = 0; c && i < c->n_packs; i++) s += c->packs[i].bytes;
    return s;
}

/* Thread ts's memory objects for primitive e (made on its first call
 * there). Under the lock (e may move when another primitive is added). */
static mem_set *memories(loom_mm *c, thread_scratch *ts, const prim_entry *e)
{
    int idx = (int)(e - c->prims);
    if (idx >= ts->n_mem) {
        int n = c->cap_prims > idx ? c->cap_prims : idx + 1;
        mem_set *m = realloc(ts->mem, (size_t)n * sizeof *m);
        if (!m) return NULL;
        memset(m + ts->n_mem, 0, (size_t)(n - ts->n_mem) * sizeof *m);
        ts->mem = m, ts->n_mem = n;
    }
    mem_set *m = &ts->mem[idx];
    if (!m->a && dnnl_memory_create(&m->a, &e->amd, c->eng, DNNL_MEMORY_NONE)) return NULL;
    if (!m->b && dnnl_memory_create(&m->b, &e->wmd, c->eng, DNNL_MEMORY_NONE)) return NULL;
    if (!m->d && dnnl_memory_create(&m->d, &e->dmd, c->eng, DNNL_MEMORY_NONE)) return NULL;
    if (!m->s && dnnl_memory_create(&m->s, &e->smd, c->eng, DNNL_MEMORY_NONE)) return NULL;
    return m;
}

/* Rounds the r × cols matrix x (row stride ld) into a contiguous y. */
static void round_rows(const float *x, int64_t ld, int r, int cols, uint16_t *y)
{
    for (int i = 0; i < r; i++) row_to_bf16(x + (int64_t)i * ld, y + (int64_t)i * cols, cols);
}

bool loom_mm_runs(const loom_mm *c, bool ta, bool tb, int m, int32_t b_param)
{
    return c && (c->bf16 || (b_param >= 0 && !ta && tb && m <= 64));
}

bool loom_gemm_mm(loom_mm *c, bool ta, bool tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                  int32_t b_param, int64_t b_off, float beta, float *cm, int ldc)
{
    if (m <= 0 || n <= 0) return true;
    /* a team member uses its thread's scratch; a run without a team (one
     * thread, alone, or a plan run inside the caller's own parallel region)
     * the first */
    int slot = omp_get_level() > c->level ? omp_get_thread_num() : 0;
    if (slot >= c->slots || (beta != 0.0f && beta != 1.0f)) return false;
    if (k <= 0) { /* an empty sum: C = β·C */
        for (int i = 0; beta == 0.0f && i < m; i++) memset(cm + (int64_t)i * ldc, 0, (size_t)n * sizeof *cm);
        return true;
    }
    /* stored shapes of A and B; in bf16 each is rounded into a contiguous
     * copy (its ld: its row length) */
    int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    bool packs = b_param >= 0;
    shape_key key = {m, n, k, c->bf16 ? ac : lda, packs ? 0 : c->bf16 ? bc : ldb, ldc, ta, tb, beta != 0.0f, packs};
    thread_scratch *ts = &c->ts[slot];
    omp_set_lock(&c->lock);
    prim_entry *e = primitive(c, &key);
    packed_entry *pk = e && packs ? packed(c, ts->stream, b_param, b_off, tb, n, k, ldb, &e->wmd, b) : NULL;
    mem_set *mem = e && (!packs || pk) ? memories(c, ts, e) : NULL;
    dnnl_primitive_t prim = e ? e->prim : NULL;
    size_t pad_bytes = e ? e->scratch : 0;
    const void *ad = a, *bd = pk ? pk->data : b;
    omp_unset_lock(&c->lock);
    void *pad = mem ? grow(&ts->pad, pad_bytes ? pad_bytes : 1) : NULL;
    if (!pad) return false;
    if (c->bf16) {
        uint16_t *ab = grow(&ts->a, (size_t)ar * ac * sizeof *ab), *bb = NULL;
        if (!ab) return false;
        round_rows(a, lda, ar, ac, ab);
        ad = ab;
        if (!packs) {
            if (!(bb = grow(&ts->b, (size_t)br * bc * sizeof *bb))) return false;
            round_rows(b, ldb, br, bc, bb);
            bd = bb;
        }
    }
    if (dnnl_memory_set_data_handle(mem->a, (void *)ad) || dnnl_memory_set_data_handle(mem->b, (void *)bd) ||
        dnnl_memory_set_data_handle(mem->d, cm) || dnnl_memory_set_data_handle(mem->s, pad))
        return false;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mem->a}, {DNNL_ARG_WEIGHTS, mem->b}, {DNNL_ARG_DST, mem->d},
                               {DNNL_ARG_SCRATCHPAD, mem->s}};
    return dnnl_primitive_execute(prim, ts->stream, 4, args) == dnnl_success;
}

#else /* no oneDNN */

bool loom_bf16_available(void) { return false; }
loom_mm *loom_mm_new(bool bf16) { (void)bf16; return NULL; }
void loom_mm_free(loom_mm *c) { (void)c; }
bool loom_mm_slots(loom_mm *c, int threads) { (void)c, (void)threads; return false; }
void loom_mm_begin_run(loom_mm *c, const float *(*where)(void *ctx, int32_t root), void *ctx)
{
    (void)c, (void)where, (void)ctx;
}
size_t loom_mm_bytes(const loom_mm *c) { (void)c; return 0; }
int loom_mm_packed(const loom_mm *c) { (void)c; return 0; }
bool loom_mm_runs(const loom_mm *c, bool ta, bool tb, int m, int32_t b_param) { (void)c, (void)ta, (void)tb, (void)m, (void)b_param; return false; }
bool loom_gemm_mm(loom_mm *c, bool ta, bool tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                  int32_t b_param, int64_t b_off, float beta, float *cm, int ldc)
{
    (void)c, (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb, (void)b_param,
        (void)b_off, (void)beta, (void)cm, (void)ldc;
    return false;
}
#endif
