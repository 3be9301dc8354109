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
 * name). NULL on failure, with the reason in err. */
loom_store *loom_store_new(const loom_graph *g, char *err, size_t err_len);
void loom_store_free(loom_store *s);

int loom_store_count(const loom_store *s);
loom_tensor loom_store_tensor(const loom_store *s, int i);
const char *loom_store_name(const loom_store *s, int i);
/* The buffer of parameter t (NULL if t is not a parameter of the store). */
float *loom_store_data(const loom_store *s, loom_tensor t);

/* Fills every parameter with its initialiser (see loom_param_init). */
void loom_store_init(loom_store *s, uint64_t seed);
/* Binds every parameter into the plan. */
loom_status loom_store_bind(const loom_store *s, loom_plan *p);

/* Copies parameters from f by name. Every parameter must be present with
 * its exact shape and dtype F32; with `strict`, f may hold nothing else. */
loom_status loom_store_load(loom_store *s, const loom_st *f, bool strict, char *err, size_t err_len);
loom_status loom_store_load_file(loom_store *s, const char *path, bool strict, char *err, size_t err_len);
/* Writes all parameters (atomically). */
loom_status loom_store_save_file(const loom_store *s, const char *path, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
