#pragma once
// Vectors of the widest registers the build targets (GCC vector extensions),
// partial loads and stores, and the activations a whole vector at a time:
// relu, and a float tanh without branches or libm calls (libm's tanhf is
// scalar), within 3 ulp of tanh.
#if defined(__SSE2__)
#include <immintrin.h>
#endif
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace cnnfast {
namespace cpu {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX2__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

template <class T>
constexpr int64_t kLanes = kVectorBytes / sizeof(T);

// Aligned like T, so that a vector may be loaded from any element's address.
// Bytes: the build's widest vectors unless a loop asks for narrower ones.
template <class T, int Bytes = kVectorBytes>
struct VectorOf {
  typedef T type __attribute__((vector_size(Bytes), aligned(sizeof(T))));
  typedef T alias __attribute__((vector_size(Bytes), aligned(sizeof(T)), may_alias));
};

// The vector at p, and v stored at p: one (unaligned) vector move. Not
// memcpy: under AVX2 GCC 12 copied a 32-byte memcpy in 16-byte halves
// through the stack, and the GEMM's microkernel, reading B so, ran at 15%
// of its speed (17 against 115 GFLOP/s on one core of an AMD EPYC).
template <int Bytes = kVectorBytes, class T>
inline __attribute__((always_inline)) typename VectorOf<T, Bytes>::type load_vector(const T* p) {
  return *reinterpret_cast<const typename VectorOf<T, Bytes>::alias*>(p);
}

template <int Bytes = kVectorBytes, class T>
inline __attribute__((always_inline)) void store_vector(T* p, typename VectorOf<T, Bytes>::type v) {
  *reinterpret_cast<typename VectorOf<T, Bytes>::alias*>(p) = v;
}

// Bit l set where lane l of `lanes` (all bits set or none, as a comparison
// gives) is set: one move-mask or test instruction on x86.
template <class Lanes>
inline __attribute__((always_inline)) uint32_t lane_bits(Lanes lanes) {
  constexpr int kBytes = sizeof(Lanes), kLaneBytes = sizeof(lanes[0]);
#if defined(__AVX512F__)
  if constexpr (kBytes == 64 && kLaneBytes == 4)
    return _mm512_test_epi32_mask(reinterpret_cast<__m512i>(lanes), reinterpret_cast<__m512i>(lanes));
  if constexpr (kBytes == 64 && kLaneBytes == 8)
    return _mm512_test_epi64_mask(reinterpret_cast<__m512i>(lanes), reinterpret_cast<__m512i>(lanes));
#endif
#if defined(__AVX__)
  if constexpr (kBytes == 32 && kLaneBytes == 4) return _mm256_movemask_ps(reinterpret_cast<__m256>(lanes));
  if constexpr (kBytes == 32 && kLaneBytes == 8) return _mm256_movemask_pd(reinterpret_cast<__m256d>(lanes));
#endif
#if defined(__SSE2__)
  if constexpr (kBytes == 16 && kLaneBytes == 4) return _mm_movemask_ps(reinterpret_cast<__m128>(lanes));
  if constexpr (kBytes == 16 && kLaneBytes == 8) return _mm_movemask_pd(reinterpret_cast<__m128d>(lanes));
#endif
  uint32_t bits = 0;
  for (int l = 0; l < kBytes / kLaneBytes; ++l) bits |= static_cast<uint32_t>(lanes[l] != 0) << l;
  return bits;
}

// lane_bits' inverse: lane l all bits set where bit l of `bits` is, 0
// where not (a broadcast, an and and a comparison).
template <class Lanes>
inline __attribute__((always_inline)) Lanes bit_lanes(uint32_t bits) {
  using Integer = std::remove_cvref_t<decltype(std::declval<Lanes&>()[0])>;
  Lanes lane_bit{};
  for (int l = 0; l < static_cast<int>(sizeof(Lanes) / sizeof(Integer)); ++l) lane_bit[l] = Integer(1) << l;
  return ((Lanes{} + static_cast<Integer>(bits)) & lane_bit) == lane_bit;
}

// Masked moves: the lanes of `bits` (bit i: lane i) loaded from p, the
// others 0, and stored to p, the others left as they are. Masked-off lanes
// are neither read nor written and never fault, so p may point past either
// end of a tensor. AVX-512 and AVX2 (whose masks are vectors of all-ones
// lanes) have them for float and double; elsewhere they are scalar loops.
// Packing the GEMM's operands and interleaving LeNet-5's images are made of
// them: rows of a few pixels would otherwise each cost a call to memcpy.
constexpr bool kMaskedMoves = kVectorBytes >= 32;

#if defined(__AVX2__) && !defined(__AVX512F__)
template <class T>
inline __attribute__((always_inline)) __m256i lane_mask(uint32_t bits) {
  using V = typename VectorOf<T>::type;
  return reinterpret_cast<__m256i>(bit_lanes<decltype(V{} < V{})>(bits));
}
#endif

template <class T>
inline __attribute__((always_inline)) typename VectorOf<T>::type load_lanes(const T* p, uint32_t bits) {
  using V = typename VectorOf<T>::type;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>)
    return reinterpret_cast<V>(_mm512_maskz_loadu_ps(static_cast<__mmask16>(bits), p));
  if constexpr (std::is_same_v<T, double>)
    return reinterpret_cast<V>(_mm512_maskz_loadu_pd(static_cast<__mmask8>(bits), p));
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) return reinterpret_cast<V>(_mm256_maskload_ps(p, lane_mask<T>(bits)));
  if constexpr (std::is_same_v<T, double>) return reinterpret_cast<V>(_mm256_maskload_pd(p, lane_mask<T>(bits)));
#endif
  V v{};
  for (int64_t i = 0; i < kLanes<T>; ++i)
    if (bits >> i & 1u) v[i] = p[i];
  return v;
}

template <class T>
inline __attribute__((always_inline)) void store_lanes(T* p, typename VectorOf<T>::type v, uint32_t bits) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>)
    return _mm512_mask_storeu_ps(p, static_cast<__mmask16>(bits), reinterpret_cast<__m512>(v));
  if constexpr (std::is_same_v<T, double>)
    return _mm512_mask_storeu_pd(p, static_cast<__mmask8>(bits), reinterpret_cast<__m512d>(v));
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>)
    return _mm256_maskstore_ps(p, lane_mask<T>(bits), reinterpret_cast<__m256>(v));
  if constexpr (std::is_same_v<T, double>)
    return _mm256_maskstore_pd(p, lane_mask<T>(bits), reinterpret_cast<__m256d>(v));
#endif
  for (int64_t i = 0; i < kLanes<T>; ++i)
    if (bits >> i & 1u) p[i] = v[i];
}

// The first n (at most a vector's lanes) elements at p as a vector, the
// other lanes 0; and the first n lanes of v stored at p. Narrower vectors
// than the build's move lane by lane.
template <int Bytes = kVectorBytes, class T>
inline __attribute__((always_inline)) typename VectorOf<T, Bytes>::type load_first(const T* p,
                                                                                 int64_t n) {
  if constexpr (Bytes == kVectorBytes) {
    return load_lanes(p, (1u << n) - 1u);
  } else {
    typename VectorOf<T, Bytes>::type v{};
    for (int64_t i = 0; i < n; ++i) v[i] = p[i];
    return v;
  }
}

template <int Bytes = kVectorBytes, class T>
inline __attribute__((always_inline)) void store_first(T* p, typename VectorOf<T, Bytes>::type v,
                                                       int64_t n) {
  if constexpr (Bytes == kVectorBytes) {
    store_lanes(p, v, (1u << n) - 1u);
  } else {
    for (int64_t i = 0; i < n; ++i) p[i] = v[i];
  }
}

using FloatVector = VectorOf<float>::type;
using DoubleVector = VectorOf<double>::type;
typedef int32_t Int32Vector __attribute__((vector_size(kVectorBytes)));

// max(v, 0) that keeps NaN (a NaN fails the comparison), as torch.relu.
template <class V>
inline __attribute__((always_inline)) V relu_lanes(V v) {
  return v < V{} ? V{} : v;
}

// The activations' gradients from their outputs, lane by lane:
// csrc/common/numeric.h's relu_grad (NaN passes the gradient, as torch's
// threshold_backward) and tanh_grad.
template <class V>
inline __attribute__((always_inline)) V relu_grad_lanes(V grad, V out) {
  return out <= V{} ? V{} : grad;
}

// csrc/common/numeric.h's relu_passes, lane by lane: all bits set where
// relu_grad_lanes passes the gradient, 0 where not.
template <class V>
inline __attribute__((always_inline)) auto relu_passes_lanes(V v) {
  return ~(v <= V{});
}

template <class V>
inline __attribute__((always_inline)) V tanh_grad_lanes(V grad, V out) {
  return grad * (1 - out * out);
}

// e^y - 1 for 0 <= y <= 18, accurate near 0 too: y = n ln2 + r with
// |r| <= ln2/2; e^y - 1 = 2^n (e^r - 1) + (2^n - 1), where e^r - 1 =
// r + r^2 q(r), q a degree-4 polynomial fitted to (e^r - 1 - r) / r^2 for
// the least relative error of e^r - 1 over that range (below 2e-8: a
// Taylor polynomial needs a degree more for as little). n is rounded by
// adding 1.5 * 2^23, which leaves it in the low mantissa bits, from where
// it goes into the exponent of 2^n.
inline __attribute__((always_inline)) FloatVector expm1_bounded(FloatVector y) {
  constexpr float kRoundingShift = 12582912.0f;  // 1.5 * 2^23
  const FloatVector shifted = y * 1.44269504f + kRoundingShift;
  const FloatVector n = shifted - kRoundingShift;
  const FloatVector r = (y - n * 0.693145752f) - n * 1.42860677e-6f;  // ln2 split in two
  FloatVector q = r * 1.388251665e-3f + 8.366547525e-3f;
  q = q * r + 4.166720062e-2f;
  q = q * r + 1.666654348e-1f;
  q = q * r + 4.999999702e-1f;
  const FloatVector p = q * r * r + r;
  const FloatVector scale = (FloatVector)((((Int32Vector)shifted) - 0x4B400000 + 127) << 23);
  return scale * p + (scale - 1.0f);
}

// tanh |x| = (e^{2|x|} - 1) / (e^{2|x|} + 1), with 2|x| capped at 18 (tanh
// rounds to 1 beyond |x| = 9), then x's sign put back: nothing cancels, a
// zero keeps its sign as in torch's tanh, and a NaN passes the cap (the
// comparison fails) and flows through.
inline __attribute__((always_inline)) FloatVector tanh_lanes(FloatVector x) {
  const Int32Vector sign = (Int32Vector)x & INT32_MIN;
  const FloatVector magnitude = (FloatVector)((Int32Vector)x ^ sign);
  const FloatVector cap = FloatVector{} + 18.0f;
  FloatVector y = magnitude + magnitude;
  y = y > cap ? cap : y;
  const FloatVector em = expm1_bounded(y);
  return (FloatVector)((Int32Vector)(em / (em + 2.0f)) | sign);
}

inline DoubleVector tanh_lanes(DoubleVector x) {
  for (int64_t l = 0; l < kLanes<double>; ++l) x[l] = std::tanh(x[l]);
  return x;
}

}  // namespace cpu
}  // namespace cnnfast
