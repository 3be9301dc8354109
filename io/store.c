/* Parameter store: one buffer per named parameter. */
#define _GNU_SOURCE /* qsort_r */
#include "loom/store.h"
#include "loom/ops.h"
#include "graph/error.h"
#include "loom/random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loom_store {
    const loom_graph *g;
    int n;
    loom_tensor *t;
    float **data;
    int32_t *pos;      /* per graph node (when the store was made): its parameter index, -1 if none */
    int32_t n_graph;
    int *by_name;      /* parameter indices in name order, for lookups by name */
    loom_status made;  /* not LOOM_OK: the store could not be made (permanent) */
    loom_error err;
};

#define store_fail(s, ...) loom_error_set(&(s)->err, __VA_ARGS__)

static int cmp_index_name(const void *a, const void *b, void *store)
{
    const loom_store *s = store;
    return strcmp(loom_tensor_name(s->g, s->t[*(const int *)a]), loom_tensor_name(s->g, s->t[*(const int *)b]));
}

/* The parameter named `name`, or -1 (binary search in name order). */
static int find_name(const loom_store *s, const char *name)
{
    for (int lo = 0, hi = s->n - 1; lo <= hi;) {
        int mid = (lo + hi) / 2, c = strcmp(loom_tensor_name(s->g, s->t[s->by_name[mid]]), name);
        if (!c) return s->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Names in order (the graph keeps them unique). */
static loom_status index_names(loom_store *s)
{
    if (!(s->by_name = malloc(((size_t)s->n + 1) * sizeof *s->by_name)))
        return store_fail(s, LOOM_ERR_NOMEM, "store: out of memory");
    for (int i = 0; i < s->n; i++) s->by_name[i] = i;
    qsort_r(s->by_name, (size_t)s->n, sizeof *s->by_name, cmp_index_name, s);
    return LOOM_OK;
}

/* One zeroed, aligned buffer per named parameter. */
static loom_status collect(loom_store *s, const loom_graph *g)
{
    int32_t N = loom_graph_size(g);
    if (!(s->t = malloc((size_t)N * sizeof *s->t + 1)) || !(s->data = calloc((size_t)N + 1, sizeof *s->data)) ||
        !(s->pos = malloc((size_t)N * sizeof *s->pos + 1)))
        return store_fail(s, LOOM_ERR_NOMEM, "store: out of memory");
    s->n_graph = N;
    for (int32_t i = 0; i < N; i++) {
        loom_tensor t = loom_at(i);
        s->pos[i] = -1;
        if (loom_graph_node(g, t)->tags.role != LOOM_ROLE_PARAM) continue;
        const char *name = loom_tensor_name(g, t);
        if (!name) return store_fail(s, LOOM_ERR_ARG, "store: parameter #%d has no name", i);
        size_t bytes = (size_t)loom_tensor_numel(g, t) * sizeof(float);
        s->data[s->n] = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!s->data[s->n]) return store_fail(s, LOOM_ERR_NOMEM, "store: out of memory for '%s' (%zu bytes)", name, bytes);
        memset(s->data[s->n], 0, bytes);
        s->pos[i] = s->n;
        s->t[s->n++] = t;
    }
    return index_names(s);
}

loom_store *loom_store_new(const loom_graph *g)
{
    loom_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->g = g;
    if (!g || loom_graph_failed(g))
        s->made = store_fail(s, g ? loom_graph_status(g) : LOOM_ERR_ARG, "store: the graph has failed: %s",
                             loom_graph_error(g));
    else
        s->made = collect(s, g);
    if (s->made) { /* keep the error, hold nothing */
        for (int i = 0; s->data && i < s->n; i++) free(s->data[i]);
        free(s->data), free(s->t), free(s->pos), free(s->by_name);
        s->data = NULL, s->t = NULL, s->pos = NULL, s->by_name = NULL, s->n = 0;
    }
    return s;
}

loom_status loom_store_status(const loom_store *s) { return s ? s->err.status : LOOM_ERR_NOMEM; }
const char *loom_store_error(const loom_store *s) { return s ? loom_error_msg(&s->err) : "store: out of memory"; }

/* Starts an operation: a store that could not be made refuses it. */
static loom_status begin(loom_store *s)
{
    if (!s) return LOOM_ERR_ARG;
    if (s->made) return s->made;
    loom_error_clear(&s->err);
    return LOOM_OK;
}

void loom_store_free(loom_store *s)
{
    if (!s) return;
    for (int i = 0; s->data && i < s->n; i++) free(s->data[i]);
    free(s->data);
    free(s->t);
    free(s->pos);
    free(s->by_name);
    free(s);
}

int loom_store_count(const loom_store *s) { return s->n; }
loom_tensor loom_store_tensor(const loom_store *s, int i) { return i >= 0 && i < s->n ? s->t[i] : LOOM_INVALID; }
const loom_tensor *loom_store_tensors(const loom_store *s) { return s->t; }
const char *loom_store_name(const loom_store *s, int i)
{
    return i >= 0 && i < s->n ? loom_tensor_name(s->g, s->t[i]) : NULL;
}

static int find(const loom_store *s, loom_tensor t)
{
    int32_t i = loom_index(t);
    return s && s->pos && i >= 0 && i < s->n_graph ? s->pos[i] : -1;
}

int64_t loom_store_numel(const loom_store *s, int i)
{
    return s && i >= 0 && i < s->n ? loom_tensor_numel(s->g, s->t[i]) : 0;
}

float *loom_store_data_by_name(const loom_store *s, const char *name)
{
    int i = s && s->by_name && name ? find_name(s, name) : -1;
    return i >= 0 ? s->data[i] : NULL;
}

int loom_store_non_finite(const loom_store *s, int64_t *count, int64_t *first)
{
    for (int i = 0; s && i < s->n; i++) {
        int64_t n = loom_store_numel(s, i), bad = 0, at = -1;
        for (int64_t k = 0; k < n; k++)
            if (!isfinite(s->data[i][k]) && !bad++) at = k;
        if (bad) {
            if (count) *count = bad;
            if (first) *first = at;
            return i;
        }
    }
    return -1;
}

float *loom_store_data(const loom_store *s, loom_tensor t)
{
    int i = find(s, t);
    return i >= 0 ? s->data[i] : NULL;
}


void loom_store_init(loom_store *s, uint64_t seed)
{
    uint64_t st = seed;
    for (int i = 0; i < s->n; i++) loom_param_fill(s->g, s->t[i], &st, s->data[i]);
}

int loom_store_bindings(const loom_store *s, loom_binding *out, int max)
{
    for (int i = 0; s && out && i < s->n && i < max; i++) out[i] = (loom_binding){s->t[i], s->data[i]};
    return s ? s->n : 0;
}

loom_status loom_store_bind(const loom_store *s, loom_plan *p)
{
    if (!s || s->made) return s ? s->made : LOOM_ERR_ARG;
    for (int i = 0; i < s->n; i++) {
        loom_status st = loom_bind(p, s->t[i], s->data[i]);
        if (st) return st;
    }
    return LOOM_OK;
}

loom_status loom_store_bind_shared(const loom_store *s, const loom_graph *g, loom_plan *p, loom_error *err)
{
    if (!s || s->made) return s ? s->made : LOOM_ERR_ARG;
    for (int32_t i = 0; i < loom_graph_size(g); i++) {
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        if (nd->tags.role != LOOM_ROLE_PARAM) continue;
        const char *name = loom_tensor_name(g, loom_at(i));
        int k = name ? find_name(s, name) : -1;
        if (k < 0 || !loom_shape_eq(loom_tensor_shape(s->g, s->t[k]), nd->shape)) {
            char a[64], b[64];
            return loom_error_set(err, LOOM_ERR_ARG, "the weights have %s '%s'%s%s%s", k < 0 ? "no" : "a differently shaped",
                                  name ? name : "", k < 0 ? "" : loom_shape_str(loom_tensor_shape(s->g, s->t[k]), a, sizeof a),
                                  k < 0 ? "" : ", the model needs ", k < 0 ? "" : loom_shape_str(nd->shape, b, sizeof b));
        }
        loom_status st = loom_bind(p, loom_at(i), s->data[k]);
        if (st) return loom_error_set(err, st, "%s", loom_plan_error(p));
    }
    return LOOM_OK;
}

static loom_status load(loom_store *s, const loom_st *f, bool strict, const char *where);

loom_status loom_store_load(loom_store *s, const loom_st *f, bool strict)
{
    loom_status st = begin(s);
    return st ? st : load(s, f, strict, "");
}

/* Checks every parameter against f, then copies (nothing changes when a
 * check fails). `where` prefixes messages (the file's path). */
static loom_status load(loom_store *s, const loom_st *f, bool strict, const char *where)
{
    char a[64], b[64];
    for (int i = 0; i < s->n; i++) {
        const char *name = loom_tensor_name(s->g, s->t[i]);
        const loom_st_tensor *t = loom_st_get(f, name);
        loom_shape want = loom_tensor_shape(s->g, s->t[i]);
        /* a well-formed file that does not fit the model: an argument, shape
         * or type error, not a malformed file */
        if (!t)
            return store_fail(s, LOOM_ERR_ARG, "store: load%s: parameter '%s' %s is missing", where, name,
                              loom_shape_str(want, a, sizeof a));
        if (t->dtype != LOOM_F32 || !loom_shape_eq(t->shape, want))
            return store_fail(s, t->dtype != LOOM_F32 ? LOOM_ERR_TYPE : LOOM_ERR_SHAPE,
                              "store: load%s: parameter '%s' is %s %s, expected F32 %s", where, name,
                              t->dtype == LOOM_I32 ? "I32" : "F32", loom_shape_str(t->shape, a, sizeof a),
                              loom_shape_str(want, b, sizeof b));
    }
    for (int k = 0; strict && k < f->n; k++)
        if (find_name(s, f->tensors[k].name) < 0)
            return store_fail(s, LOOM_ERR_ARG, "store: load%s: '%s' is not a parameter of this model", where,
                              f->tensors[k].name);
    /* all checked: copy (nothing changes when a check fails) */
    for (int i = 0; i < s->n; i++)
        memcpy(s->data[i], loom_st_get(f, loom_tensor_name(s->g, s->t[i]))->data,
               (size_t)loom_tensor_numel(s->g, s->t[i]) * sizeof(float));
    return LOOM_OK;
}

loom_status loom_store_load_file(loom_store *s, const char *path, bool strict)
{
    loom_status st = begin(s);
    if (st) return st;
    loom_st *f = loom_st_new();
    if (!f) return store_fail(s, LOOM_ERR_NOMEM, "store: load %s: out of memory", path);
    if ((st = loom_st_read(f, path))) {
        store_fail(s, st, "store: load %s", loom_st_error(f));
    } else {
        char where[512];
        snprintf(where, sizeof where, " %s", path);
        st = load(s, f, strict, where);
    }
    loom_st_free(f);
    return st;
}

loom_status loom_store_save_file(loom_store *s, const char *path)
{
    loom_status st = begin(s);
    if (st) return st;
    loom_st *f = loom_st_new();
    st = f ? LOOM_OK : LOOM_ERR_NOMEM;
    for (int i = 0; !st && i < s->n; i++)
        st = loom_st_add(f, loom_tensor_name(s->g, s->t[i]), LOOM_F32, loom_tensor_shape(s->g, s->t[i]), s->data[i]);
    if (!st) {
        char fp[32];
        snprintf(fp, sizeof fp, "%016llx", (unsigned long long)loom_graph_fingerprint(s->g));
        st = loom_st_set_meta(f, "loom.fingerprint", fp);
    }
    if (st) store_fail(s, st, "store: save %s: out of memory", path);
    else if ((st = loom_st_write(f, path))) store_fail(s, st, "store: save %s", loom_st_error(f));
    loom_st_free(f);
    return st;
}

loom_status loom_store_fits(const loom_graph *g, const loom_st *f, loom_error *err)
{
    loom_error local = {0};
    err = err ? err : &local;
    char buf[64];
    for (int32_t i = 0; i < loom_graph_size(g); i++) {
        const loom_node *n = loom_graph_node(g, loom_at(i));
        if (n->tags.role != LOOM_ROLE_PARAM) continue;
        const char *name = loom_tensor_name(g, loom_at(i));
        const loom_st_tensor *t = loom_st_get(f, name);
        if (!t) return loom_error_set(err, LOOM_ERR_SHAPE, "its weights lack the parameter '%s'", name);
        if (t->dtype != LOOM_F32 || !loom_shape_eq(t->shape, n->shape))
            return loom_error_set(err, LOOM_ERR_SHAPE, "its parameter '%s' is not f32 of shape %s", name,
                                  loom_shape_str(n->shape, buf, sizeof buf));
    }
    return LOOM_OK;
}
