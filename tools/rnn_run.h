/* `loom rnn-run`: run a recurrent stack described by a safetensors case file
 * forward and backward, and write its outputs and gradients. */
#ifndef LOOM_TOOLS_RNN_RUN_H
#define LOOM_TOOLS_RNN_RUN_H

#include <stddef.h>

/* 0 on success; 2 for a bad or inconsistent file (message in err); 1 for
 * other failures (out of memory, cannot write). */
int loom_rnn_run(const char *case_path, const char *out_path, char *err, size_t err_len);

#endif
