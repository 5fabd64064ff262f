#pragma once
// A float tanh the compiler can vectorize (no branches, no libm call), for
// the CPU kernel: libm's tanhf is scalar. Within 3 ulp of tanh in float.
#include <cstdint>
#include <cstring>

namespace cnnfast {
namespace cpu {

// e^y - 1 for |y| <= 18, accurate near 0 too: y = n ln2 + r with
// |r| <= ln2/2; e^y - 1 = 2^n (e^r - 1) + (2^n - 1), where e^r - 1 is its
// Taylor polynomial to r^7 (truncation below 6e-9) without the leading 1.
// n is rounded by adding 1.5 * 2^23, not by a float-to-int conversion,
// which would keep GCC from vectorizing the loop.
inline float expm1_bounded(float y) {
  constexpr float kRoundingShift = 12582912.0f;  // 1.5 * 2^23
  const float shifted = y * 1.44269504f + kRoundingShift;
  const float n = shifted - kRoundingShift;
  const float r = (y - n * 0.693145752f) - n * 1.42860677e-6f;  // ln2 split in two
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r * r + r;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);  // n sits in the low mantissa bits
  bits = (bits - 0x4B400000 + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return scale * p + (scale - 1.0f);
}

// tanh x = (e^{2x} - 1) / (e^{2x} + 1), with 2x clamped to +-18 (tanh
// rounds to +-1 beyond |x| = 9). Neither part cancels for any sign of x.
// A NaN fails both comparisons and flows through unchanged; a zero keeps
// its sign, as torch's tanh does (the quotient would give +0 for -0).
inline float tanh_f32(float x) {
  const float y = 2.0f * x;
  const float em = expm1_bounded(y > 18.0f ? 18.0f : (y < -18.0f ? -18.0f : y));
  return x == 0.0f ? x : em / (em + 2.0f);
}

}  // namespace cpu
}  // namespace cnnfast
