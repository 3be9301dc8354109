#include "helpers.h"
Test(placeholder, ok) { cr_assert(1); }
