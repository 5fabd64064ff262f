#pragma once
// Tensor-core number formats and mma fragment maps, host and device.
//
// Formats: TF32 rounding as cvt.rna.tf32.f32 does it (to nearest, ties away
// from zero, to 10 stored mantissa bits), and the float <-> float16 /
// bfloat16 conversions as cvt.rn does them (to nearest, ties to even,
// subnormals kept), bit for bit, so that the emulation rounds exactly as a
// GPU does.
//
// Fragment maps: which element of the MMA's A, B and C tiles register i of
// lane l holds, transcribed from the PTX ISA (section 9.7.14.5, "Matrix
// Fragments for mma.m16n8k8" and "for mma.m16n8k16 with floating point
// type"). Only the host's mma (warp.h) reads them: kernels address their
// operands through ldmatrix (whose own map warp.h transcribes), so a wrong
// map here cannot hide behind the same mistake in a kernel.
#include <cstdint>
#include <cstring>

#include "macros.h"

namespace cnnfast {

CNNFAST_INLINE uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

CNNFAST_INLINE float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// cvt.rna.tf32.f32: the nearest TF32 value, ties away from zero (adding half
// a unit of the 10th mantissa bit to the magnitude, then truncating; a carry
// into the exponent is the correct result, up to infinity). Infinities and
// NaNs pass unchanged.
CNNFAST_INLINE uint32_t tf32_round_bits(uint32_t u) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint32_t rounded;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(rounded) : "f"(__uint_as_float(u)));
  return rounded;
#else
  if ((u & 0x7F800000u) == 0x7F800000u) return u;
  return (u + 0x1000u) & 0xFFFFE000u;
#endif
}
CNNFAST_INLINE float tf32_round(float x) { return bits_float(tf32_round_bits(float_bits(x))); }

// An mma.sync with .tf32 operands reads only their upper 19 bits: a float
// not rounded first is truncated.
CNNFAST_INLINE float tf32_operand(uint32_t u) { return bits_float(u & 0xFFFFE000u); }

// cvt.rn.f16.f32, bit exact.
CNNFAST_INLINE uint16_t float_to_half_bits(float x) {
  uint32_t u = float_bits(x);
  const uint32_t sign = (u >> 16) & 0x8000u;
  u &= 0x7FFFFFFFu;
  if (u >= 0x7F800000u) return static_cast<uint16_t>(sign | (u > 0x7F800000u ? 0x7E00u : 0x7C00u));
  // 65520 = 0x477FF000 is halfway between float16's largest, 65504, and
  // 65536: it and everything above round to infinity.
  if (u >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);
  if (u < 0x38800000u) {
    // Below float16's smallest normal (2^-14): a multiple of 2^-24. Adding
    // 0.5, whose unit in the last place is 2^-24, makes the float adder
    // round to that multiple, ties to even; the sum's low bits are it.
    const float sum = bits_float(u) + 0.5f;
    return static_cast<uint16_t>(sign | (float_bits(sum) - 0x3F000000u));
  }
  // Normal: rebias the exponent (127 - 15 = 112) and round the 13 dropped
  // bits to nearest, ties to even (0xFFF plus the kept mantissa's lowest bit).
  const uint32_t odd = (u >> 13) & 1u;
  u += (static_cast<uint32_t>(15 - 127) << 23) + 0xFFFu + odd;
  return static_cast<uint16_t>(sign | (u >> 13));
}

CNNFAST_INLINE float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t magnitude = h & 0x7FFFu;
  if (magnitude >= 0x7C00u) return bits_float(sign | 0x7F800000u | ((magnitude & 0x3FFu) << 13));
  if (magnitude >= 0x0400u) return bits_float(sign | ((magnitude << 13) + (112u << 23)));
  // Zero or subnormal: magnitude × 2^-24, exact in float.
  return bits_float(sign | float_bits(static_cast<float>(magnitude) * 5.9604644775390625e-8f));
}

// cvt.rn.bf16.f32, bit exact: the upper half, rounded to nearest, ties to
// even; NaN stays a quiet NaN.
CNNFAST_INLINE uint16_t float_to_bfloat16_bits(float x) {
  const uint32_t u = float_bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

CNNFAST_INLINE float bfloat16_bits_to_float(uint16_t b) {
  return bits_float(static_cast<uint32_t>(b) << 16);
}

// Where a fragment's element sits in its tile.
struct TileCoord {
  int row, col;
};

// The operand formats of an MMA: how a 32-bit register holds its elements.
enum class MmaFormat { kTf32, kHalf, kBFloat16 };

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 (PTX ISA 9.7.14.5,
// "Matrix Fragments for mma.m16n8k8", .tf32): one element a register.
struct MmaM16N8K8Tf32 {
  static constexpr MmaFormat kFormat = MmaFormat::kTf32;
  static constexpr int kM = 16, kN = 8, kK = 8;
  static constexpr int kElementsPerRegister = 1;
  static constexpr int kARegisters = 4, kBRegisters = 2, kCRegisters = 4;
  // groupID = lane / 4, threadID_in_group = lane % 4.
  // A (16 × 8): row groupID (+8 for a1, a3), column threadID_in_group (+4 for a2, a3).
  static CNNFAST_HD TileCoord a(int lane, int i) { return {lane / 4 + 8 * (i % 2), lane % 4 + 4 * (i / 2)}; }
  // B (8 × 8, k × n): row threadID_in_group (+4 for b1), column groupID.
  static CNNFAST_HD TileCoord b(int lane, int i) { return {lane % 4 + 4 * i, lane / 4}; }
  // C, D (16 × 8): row groupID (+8 for c2, c3), column 2 threadID_in_group + i % 2.
  static CNNFAST_HD TileCoord c(int lane, int i) { return {lane / 4 + 8 * (i / 2), 2 * (lane % 4) + i % 2}; }
};

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 (PTX ISA
// 9.7.14.5, "Matrix Fragments for mma.m16n8k16 with floating point type"):
// two elements a register, the lower-numbered in the low half.
template <MmaFormat Format>
struct MmaM16N8K16 {
  static_assert(Format == MmaFormat::kHalf || Format == MmaFormat::kBFloat16, "16-bit operands");
  static constexpr MmaFormat kFormat = Format;
  static constexpr int kM = 16, kN = 8, kK = 16;
  static constexpr int kElementsPerRegister = 2;
  static constexpr int kARegisters = 4, kBRegisters = 2, kCRegisters = 4;
  // A (16 × 16), elements a0..a7: row groupID for a0, a1, a4, a5 (+8 for the
  // others), column 2 threadID_in_group + i % 2 (+8 for a4..a7).
  static CNNFAST_HD TileCoord a(int lane, int i) {
    return {lane / 4 + 8 * ((i / 2) % 2), 2 * (lane % 4) + i % 2 + 8 * (i / 4)};
  }
  // B (16 × 8, k × n), elements b0..b3: row 2 threadID_in_group + i % 2
  // (+8 for b2, b3), column groupID.
  static CNNFAST_HD TileCoord b(int lane, int i) { return {2 * (lane % 4) + i % 2 + 8 * (i / 2), lane / 4}; }
  static CNNFAST_HD TileCoord c(int lane, int i) { return {lane / 4 + 8 * (i / 2), 2 * (lane % 4) + i % 2}; }
};

using MmaM16N8K16Half = MmaM16N8K16<MmaFormat::kHalf>;
using MmaM16N8K16BFloat16 = MmaM16N8K16<MmaFormat::kBFloat16>;

// Element e (0 or 1) of a register as the float the MMA multiplies.
template <MmaFormat Format>
CNNFAST_INLINE float mma_operand(uint32_t reg, int e) {
  if constexpr (Format == MmaFormat::kTf32) {
    return tf32_operand(reg);
  } else {
    const uint16_t half = static_cast<uint16_t>(e == 0 ? reg & 0xFFFFu : reg >> 16);
    return Format == MmaFormat::kHalf ? half_bits_to_float(half) : bfloat16_bits_to_float(half);
  }
}

}  // namespace cnnfast
