/* Every subcommand of the loom command for a cell of one's own, written in
 * C: register it, hand over to loom_main. `my_loom train --cell mgu`,
 * `my_loom gradcheck --cell mgu`, ... */
#include "loom/loom.h"
#include "mgu_cell.h"

int main(int argc, char **argv)
{
    loom_cell_register(&mgu_cell);
    return loom_main(argc, argv);
}
