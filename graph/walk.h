/* Internal: direct reads of the node array and the input pool, for the
 * planner's passes that walk every node and edge (hundreds of thousands
 * for a long unroll). Valid until the graph grows; no checks — callers
 * hold indices of nodes that exist. */
#ifndef LOOM_GRAPH_WALK_H
#define LOOM_GRAPH_WALK_H

#include "loom/graph.h"

typedef struct {
    const loom_node *nodes; /* node index i at nodes[i] */
    const int32_t *pool;    /* input ids (index + 1) */
} loom_walk;

loom_walk loom_graph_walk(const loom_graph *g);

static inline const loom_node *loom_walk_node(loom_walk w, int32_t i) { return &w.nodes[i]; }
/* Index of input j of node i. */
static inline int32_t loom_walk_in(loom_walk w, int32_t i, int j) { return w.pool[w.nodes[i].in_off + j] - 1; }

#endif
