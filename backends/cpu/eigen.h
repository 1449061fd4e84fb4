// Eigen for the CPU kernels, included one way everywhere: single-threaded (atelier's thread pool is the only
// source of threads), and with g++ 12's false-positive warnings from the AVX-512 intrinsics headers silenced
// (-Wmaybe-uninitialized and -Wuninitialized fire inside avx512fintrin.h through Eigen's ptranspose).
#pragma once

#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop
