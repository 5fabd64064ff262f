#pragma once
// The register block of the CPU GEMM: a kMR × kNR block of C held in
// vector registers while A and B strips stream through L1. Each depth step
// loads kNV vectors of B and broadcasts kMR values of A: kMR·kNV FMAs
// (AVX-512 float: 12 × 32, 24 of the 32 zmm registers).
#include <cstdint>

#include "vec_math.h"

namespace cnnfast {
namespace cpu {

constexpr int kMR = kVectorBytes == 64 ? 12 : 6;  // rows of the register block
constexpr int kNV = 2;  // vectors per row of the register block

template <class T>
constexpr int64_t kNR = kNV * kLanes<T>;

// c[kMR][kNR] (+)= a[depth][kMR]ᵀ · b[depth][kNR], b's rows b_stride apart.
template <class T>
void microkernel(int64_t depth, const T* __restrict a, const T* __restrict b, int64_t b_stride,
                 T* __restrict c, bool accumulate) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  V acc[kMR][kNV];
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNV; ++j) {
      if (accumulate)
        acc[i][j] = load_vector(c + i * kNR<T> + j * L);
      else
        acc[i][j] = V{};
    }
  // Rows of B read in place are far apart: fetch them kPrefetchRows ahead.
  constexpr int64_t kPrefetchRows = 16;
  const bool far_rows = b_stride != kNR<T>;
  for (int64_t kk = 0; kk < depth; ++kk) {
    if (far_rows && kk + kPrefetchRows < depth)
      for (int64_t line = 0; line < kNR<T> * int64_t(sizeof(T)); line += 64)
        __builtin_prefetch(reinterpret_cast<const char*>(b + (kk + kPrefetchRows) * b_stride) + line);
    V bv[kNV];
    for (int j = 0; j < kNV; ++j) bv[j] = load_vector(b + kk * b_stride + j * L);
    for (int i = 0; i < kMR; ++i) {
      const T ai = a[kk * kMR + i];
      for (int j = 0; j < kNV; ++j) acc[i][j] += ai * bv[j];
    }
  }
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNV; ++j) store_vector(c + i * kNR<T> + j * L, acc[i][j]);
}

}  // namespace cpu
}  // namespace cnnfast
