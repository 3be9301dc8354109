/* loom/store.h — parameter values for a graph: allocation, initialisation,
 * binding to plans, safetensors load/save under the parameters' names (for
 * recurrent layers, PyTorch's state_dict names). */
#ifndef LOOM_STORE_H
#define LOOM_STORE_H

#include "loom/graph.h"
#include "loom/runtime.h"
#include "loom/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_store loom_store;

/* One zeroed buffer per parameter of g (every parameter needs a unique
 * name). NULL only when out of memory; a store that could not be made (a
 * failed graph, an unnamed or twice-named parameter) holds nothing and
 * keeps its error for good. Check with loom_store_status(s), which is also
 * LOOM_ERR_NOMEM for NULL. */
loom_store *loom_store_new(const loom_graph *g);
void loom_store_free(loom_store *s);
/* The first error of the last operation (or of making the store); "" if none. */
loom_status loom_store_status(const loom_store *s);
const char *loom_store_error(const loom_store *s);

int loom_store_count(const loom_store *s);
loom_tensor loom_store_tensor(const loom_store *s, int i);
/* Every parameter, in store order (loom_store_count of them): what
 * loom_backward takes to differentiate with respect to all of them. */
const loom_tensor *loom_store_tensors(const loom_store *s);
const char *loom_store_name(const loom_store *s, int i);
/* Elements of parameter i. */
int64_t loom_store_numel(const loom_store *s, int i);
/* The buffer of the parameter named name (NULL if none). */
float *loom_store_data_by_name(const loom_store *s, const char *name);
/* The buffer of parameter t (NULL if t is not a parameter of the store). */
float *loom_store_data(const loom_store *s, loom_tensor t);

/* The first parameter holding NaN or infinite values (how many in *count,
 * the first one's element in *first), or -1 when every value is finite:
 * weights from a run that diverged give meaningless results. */
int loom_store_non_finite(const loom_store *s, int64_t *count, int64_t *first);
/* Fills every parameter with its initialiser (see loom_param_init). */
void loom_store_init(loom_store *s, uint64_t seed);
/* Binds every parameter into the plan. */
loom_status loom_store_bind(const loom_store *s, loom_plan *p);
/* Binds every parameter of g (the graph p was made from) to the buffer
 * of the same name and shape in s: a model of another shape sharing the
 * weights (a one-step decoder, a batch of one), which follow every update
 * of s. LOOM_ERR_ARG with a message in err when a name is missing or
 * shaped differently. */
loom_status loom_store_bind_shared(const loom_store *s, const loom_graph *g, loom_plan *p, loom_error *err);
/* The parameters and their buffers as bindings (what loom_gradcheck and
 * loom_bind_all take): writes up to max into out (out may be NULL to count)
 * and returns how many the store has. */
int loom_store_bindings(const loom_store *s, loom_binding *out, int max);

/* Copies parameters from f by name. Every parameter must be present with
 * its exact shape and dtype F32; with `strict`, f may hold nothing else. */
loom_status loom_store_load(loom_store *s, const loom_st *f, bool strict);
/* Whether f holds every parameter of g, by name, as f32 of its shape:
 * checked before a store is made for a file's model, so that a damaged
 * description cannot ask for gigabytes. LOOM_ERR_SHAPE naming the first
 * parameter that does not fit (the reason in err, which may be NULL). */
loom_status loom_store_fits(const loom_graph *g, const loom_st *f, loom_error *err);
loom_status loom_store_load_file(loom_store *s, const char *path, bool strict);
/* Writes all parameters (atomically). */
loom_status loom_store_save_file(loom_store *s, const char *path);

#ifdef __cplusplus
}
#endif
#endif
