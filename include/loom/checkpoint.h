/* loom/checkpoint.h — checkpoints: safetensors files whose whole payload is
 * checksummed.
 *
 * A checkpoint is an ordinary safetensors file (so its weights load in
 * PyTorch under their names) with one more metadata entry,
 * "loom.checksum": the xxh3-64 of every tensor (name, dtype, shape, data)
 * and every other metadata entry, in name order. Writing is atomic
 * (temporary file, fsync, rename, fsync of the directory); reading refuses a
 * file whose checksum is missing or does not match (truncated, corrupted,
 * edited), saying so.
 */
#ifndef LOOM_CHECKPOINT_H
#define LOOM_CHECKPOINT_H

#include "loom/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sets f's checksum and writes it (errors in loom_st_error(f)). */
loom_status loom_checkpoint_write(loom_st *f, const char *path);
/* Whether a checkpoint can be written at path (its directory exists and
 * takes a new file; path is not a directory): checked before a long run, not
 * after it. The reason in err otherwise. */
loom_status loom_checkpoint_writable(const char *path, loom_error *err);
/* Reads and verifies (LOOM_ERR_FORMAT with the reason on a bad checksum). */
loom_status loom_checkpoint_read(loom_st *f, const char *path);
/* The checksum f's content has now, as 16 hex digits. */
void loom_checkpoint_checksum(const loom_st *f, char out[17]);

#ifdef __cplusplus
}
#endif
#endif
