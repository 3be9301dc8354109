/* libFuzzer target: the loom command's argument parsing. The input is a
 * command line: arguments separated by NUL bytes, the first byte choosing
 * the command. Parsing must never crash, read past argv, or accept
 * nonsense silently: a refusal is exit status 2, an acceptance 0. */
#include "tool.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static bool ready;
    if (!ready) {
        ready = true;
    }
    if (size < 1 || size > 4096) return 0;
    char *buf = malloc(size + 1), *argv[64];
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    int argc = 0;
    for (char *p = buf; p < buf + size - 1 && argc < 64; p += strlen(p) + 1) argv[argc++] = p;
    int rc;
    switch (data[0] % 4) {
    case 0: rc = gradcheck_parse(argc, argv); break;
    case 1: rc = dot_parse(argc, argv); break;
    case 2: rc = rnn_run_parse(argc, argv); break;
    default: rc = train_parse(argc, argv); break;
    }
    if (rc != 0 && rc != 2) abort();
    free(buf);
    return 0;
}
