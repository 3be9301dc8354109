/* loom — recurrent neural networks as static dataflow graphs with automatic
 * differentiation. Umbrella header. */
#ifndef LOOM_H
#define LOOM_H

#define LOOM_VERSION "0.1.0"

#include "loom/graph.h"
#include "loom/ops.h"
#include "loom/autodiff.h"
#include "loom/gradcheck.h"
#include "loom/inspect.h"
#include "loom/runtime.h"
#include "loom/rnn.h"
#include "loom/layers.h"
#include "loom/search.h"
#include "loom/seq2seq.h"
#include "loom/safetensors.h"
#include "loom/store.h"
#include "loom/checkpoint.h"
#include "loom/dot.h"
#include "loom/plot.h"
#include "loom/data.h"
#include "loom/ngram.h"
#include "loom/embed.h"
#include "loom/train.h"
#include "loom/trainer.h"
#include "loom/comm.h"
#include "loom/model.h"
#include "loom/generate.h"
#include "loom/bleu.h"
#include "loom/random.h"
#include "loom/main.h"

#endif
