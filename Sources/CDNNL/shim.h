// oneDNN's C API imports as it is. Debian's build runs its primitives on GNU OpenMP, whose thread count is set
// through omp.h; that header lives in GCC's private include folder, so the two calls are declared here instead.
#pragma once
#include <oneapi/dnnl/dnnl.h>

void omp_set_num_threads(int);
int omp_get_max_threads(void);
