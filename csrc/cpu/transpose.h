#pragma once
// kLanes × kLanes blocks transposed in vector registers: interleaving
// images into lanes and back (direct_conv.h), and packing operands that lie
// contiguous along the GEMM's depth (gemm_packing.h).
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "vec_math.h"

namespace cnnfast {
namespace cpu {

// The shuffle indices of transpose_block: in round r, the lanes of a pair
// of rows (i, i + b), b = kLanes / 2^(r+1), that make the new rows.
template <class T>
struct TransposeMasks {
  using Index = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef Index IndexVector __attribute__((vector_size(kVectorBytes)));
  static constexpr int kRounds = kLanes<T> == 16 ? 4 : kLanes<T> == 8 ? 3 : kLanes<T> == 4 ? 2 : 1;
  IndexVector low[kRounds], high[kRounds];
  TransposeMasks() {
    constexpr int64_t L = kLanes<T>;
    for (int r = 0; r < kRounds; ++r) {
      const int64_t b = L >> (r + 1);
      for (int64_t l = 0; l < L; ++l) {
        low[r][l] = static_cast<Index>((l & b) ? L + l - b : l);
        high[r][l] = static_cast<Index>((l & b) ? L + l : l + b);
      }
    }
  }
};

// Transposes a kLanes × kLanes block held as kLanes vectors: log2(kLanes)
// rounds, each swapping the off-diagonal sub-blocks of a pair of rows with
// two-vector shuffles (vpermt2ps under AVX-512). Interleaving images into
// lanes and back is done 16 × 16 (float) at a time this way.
template <class T>
inline __attribute__((always_inline)) void transpose_block(typename VectorOf<T>::type* rows) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  static const TransposeMasks<T> masks;
  for (int r = 0; r < TransposeMasks<T>::kRounds; ++r) {
    const int64_t b = L >> (r + 1);
    for (int64_t i = 0; i < L; ++i) {
      if (i & b) continue;
      const V a = rows[i], c = rows[i + b];
      rows[i] = __builtin_shuffle(a, c, masks.low[r]);
      rows[i + b] = __builtin_shuffle(a, c, masks.high[r]);
    }
  }
}

// Packing an operand whose rows (A) or columns (B) each lie contiguous
// along the depth — linear's x and weight, a convolution's weight — is a
// transpose: kLanes × kLanes float blocks in registers (16 × 16 with
// AVX-512, 8 × 8 with AVX2), not element-wise strided copies. `lines[i]`
// starts line i (null: a line of zeros); block row u, lane i ends up as
// element kk0 + u of line i.
constexpr int64_t kBlockLanes = kLanes<float>;

inline void transpose_lines(const float* const* lines, int64_t kk0, int64_t depth, VectorOf<float>::type* block) {
  using V = VectorOf<float>::type;
  const uint32_t mask = (1u << std::min(kBlockLanes, depth - kk0)) - 1u;
  for (int64_t i = 0; i < kBlockLanes; ++i) block[i] = lines[i] == nullptr ? V{} : load_lanes(lines[i] + kk0, mask);
  transpose_block<float>(block);
}

}  // namespace cpu
}  // namespace cnnfast
