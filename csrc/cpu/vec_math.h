#pragma once
// A float tanh the compiler can vectorize (no branches, no libm call), for
// the CPU kernel: libm's tanhf is scalar. Within 2 ulp of tanh in float.
#include <cstdint>
#include <cstring>

namespace cnnfast {
namespace cpu {

// e^y for 0 <= y <= 18: y = n ln2 + r with |r| <= ln2/2, e^r by its Taylor
// polynomial to r^7 (truncation below 6e-9), 2^n put in the exponent bits.
// n is rounded by adding 1.5 * 2^23, not by a float-to-int conversion, which
// keeps GCC from vectorizing the loop.
inline float exp_small_positive(float y) {
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
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);  // n sits in the low mantissa bits
  bits = (bits - 0x4B400000 + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float tanh_f32(float x) {
  const float a = x < 0.0f ? -x : x;
  // |x| < 0.55: tanh's odd Taylor series to x^15 (next term below 5e-8 relative).
  const float s = a * a;
  float q = -929569.0f / 638512875.0f;
  q = q * s + 21844.0f / 6081075.0f;
  q = q * s - 1382.0f / 155925.0f;
  q = q * s + 62.0f / 2835.0f;
  q = q * s - 17.0f / 315.0f;
  q = q * s + 2.0f / 15.0f;
  q = q * s - 1.0f / 3.0f;
  const float small = a + a * s * q;
  // Larger |x|: 1 - 2 / (e^{2|x|} + 1); tanh rounds to 1 beyond |x| = 9.
  // A NaN fails every comparison and flows through this branch unchanged.
  const float twice = a > 9.0f ? 18.0f : 2.0f * a;
  const float large = 1.0f - 2.0f / (exp_small_positive(twice) + 1.0f);
  const float magnitude = a < 0.55f ? small : large;
  return x < 0.0f ? -magnitude : magnitude;
}

}  // namespace cpu
}  // namespace cnnfast
