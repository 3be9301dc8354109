/* libFuzzer target: the pairs reader (data/pairs.c). The first byte picks
 * character or word pairs, the padded length, a minimum frequency, and
 * parallel, labelled or tagged lines; the rest is the tab-separated text. Accepted pairs give ids within their
 * vocabularies, valid lengths within the padded length, vocabularies that
 * survive a round trip, and read again with those vocabularies the same. */
#include "loom/loom.h"

#include <stdlib.h>
#include <string.h>

static void check_side(const loom_pairs *p, int side)
{
    const loom_vocab *v = loom_pairs_vocab(p, side);
    char *s = loom_vocab_to_string(v);
    loom_vocab *back = s ? loom_vocab_from_string(s) : NULL;
    if (s && !back) abort();
    free(s);
    loom_vocab_free(back);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1) return 0;
    unsigned o = data[0];
    loom_pairs_opts opts = {.chars = o & 1, .num_steps = 1 + (int)((o >> 1) & 15), .min_freq = 1 + ((o >> 5) & 1),
                            .valid_frac = (o & 64) ? 0.2 : 0, .seed = o,
                            .kind = (o & 128) ? LOOM_PAIRS_LABELLED + ((o >> 5) & 1) : LOOM_PAIRS_TEXT};
    loom_pairs *p = loom_pairs_new(&opts);
    if (!p) return 0;
    const char *s = (const char *)data + 1;
    if (loom_pairs_parse(p, s, size - 1) == LOOM_OK) {
        int T[2] = {loom_pairs_steps(p, 0), loom_pairs_steps(p, 1)}, V[2];
        for (int k = 0; k < 2; k++) V[k] = loom_vocab_size(loom_pairs_vocab(p, k)), check_side(p, k);
        int32_t src[64], tgt[64], sl, tl;
        for (int valid = 0; valid < 2; valid++)
            for (int64_t i = 0; i < loom_pairs_count(p, valid); i++) {
                if (!loom_pairs_get(p, valid, i, src, &sl, tgt, &tl)) abort();
                if (sl < 1 || sl > T[0] || tl < 1 || tl > T[1]) abort();
                for (int j = 0; j < T[0]; j++)
                    if (src[j] < 0 || src[j] >= V[0]) abort();
                for (int j = 0; j < T[1]; j++)
                    if (tgt[j] < 0 || tgt[j] >= V[1]) abort();
            }
        /* the same text read with the pairs' own vocabularies */
        loom_pairs_opts again = opts;
        again.vocab[0] = loom_pairs_vocab(p, 0), again.vocab[1] = loom_pairs_vocab(p, 1);
        loom_pairs *q = loom_pairs_new(&again);
        if (q && loom_pairs_parse(q, s, size - 1) != LOOM_OK) abort();
        if (q && loom_pairs_count(q, false) + loom_pairs_count(q, true) != loom_pairs_count(p, false) + loom_pairs_count(p, true))
            abort();
        loom_pairs_free(q);
    } else if (!*loom_pairs_error(p)) {
        abort(); /* a refusal says why */
    }
    loom_pairs_free(p);
    return 0;
}
