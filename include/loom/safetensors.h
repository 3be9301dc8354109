/* loom/safetensors.h — reading and writing safetensors files.
 *
 * Format: an 8-byte little-endian header length N, N bytes of JSON mapping
 * each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (plus
 * an optional "__metadata__" object of strings), then the raw little-endian
 * data. Files are untrusted: every size, offset, dtype and shape is checked
 * and a malformed file gets a message that says what is wrong. Writes are
 * atomic (temporary file, fsync, rename).
 */
#ifndef LOOM_SAFETENSORS_H
#define LOOM_SAFETENSORS_H

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char *name;
    loom_dtype dtype;  /* F32 or I32 (I64 files are read as I32 when every value fits) */
    loom_shape shape;  /* dimensions may be 0 (a zero-size tensor) */
    void *data;        /* numel × 4 bytes, 64-byte aligned */
} loom_st_tensor;

typedef struct {
    loom_st_tensor *tensors;
    int n, cap;
    char **meta_key, **meta_val;
    int n_meta, cap_meta;
    loom_error err;    /* first error since the last read or write began */
    int32_t *index;    /* private: the name index */
    uint32_t index_cap;
} loom_st;

loom_st *loom_st_new(void);
void loom_st_free(loom_st *f);
/* Reads a file into f, replacing what f held. On failure f is empty and
 * loom_st_error(f) says what is wrong with the file. */
loom_status loom_st_read(loom_st *f, const char *path);
const char *loom_st_error(const loom_st *f);
const loom_st_tensor *loom_st_get(const loom_st *f, const char *name);
const char *loom_st_meta(const loom_st *f, const char *key);
/* Adds a copy of data (replacing a tensor of the same name). The name may
 * not be empty or "__metadata__"; dtype F32 or I32; rank 0..4; dimensions
 * >= 0. LOOM_ERR_ARG (and loom_st_error) otherwise. */
loom_status loom_st_add(loom_st *f, const char *name, loom_dtype dt, loom_shape s, const void *data);
loom_status loom_st_set_meta(loom_st *f, const char *key, const char *value);
/* Numbers in metadata (which holds strings). Reading: decimal digits with an
 * optional minus, in [lo, hi]; hex: 1 to 16 hex digits. False when the key
 * is missing, malformed or out of range — a checksum proves integrity, not
 * that a number is sane. Writing: the decimal form. */
bool loom_st_meta_int(const loom_st *f, const char *key, int64_t lo, int64_t hi, int64_t *out);
bool loom_st_meta_hex(const loom_st *f, const char *key, uint64_t *out);
loom_status loom_st_set_meta_int(loom_st *f, const char *key, int64_t value);
/* Writes atomically; on failure the old file (if any) is untouched and
 * loom_st_error(f) says why. */
loom_status loom_st_write(loom_st *f, const char *path);

#ifdef __cplusplus
}
#endif
#endif
