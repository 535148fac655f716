// OpenBLAS's CBLAS interface and its thread-count controls import as they are.
#pragma once
#include <cblas.h>
