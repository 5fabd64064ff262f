#pragma once
// Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016): a 2×2 block of a
// 3×3 convolution's output from a 4×4 block of its input with 16
// multiplications instead of 36,
//   Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A,
// so that summed over the input channels the convolution becomes 16
// independent GEMMs (one per element ξ of the 4×4 transformed tile):
//   M[ξ] (K × tiles) = U[ξ] (K × C) · V[ξ] (C × tiles).
// Each 2-D transform is its 1-D transform applied to the columns, then to
// the rows. Shared by the CUDA kernels and their emulation.
#include <cstdint>
#include <utility>

#include "conv2d.h"
#include "macros.h"

namespace cnnfast {

constexpr int kWinogradTile = 4;                                   // input tile side
constexpr int kWinogradOut = 2;                                    // output tile side
constexpr int kWinogradPoints = kWinogradTile * kWinogradTile;     // ξ: 16 GEMMs

// The 1-D transforms of one column (stride `step` apart) in place.
// Bᵀ: the input's.
template <class T>
CNNFAST_INLINE void winograd_input_1d(T* v, int step) {
  const T d0 = v[0], d1 = v[step], d2 = v[2 * step], d3 = v[3 * step];
  v[0] = d0 - d2;
  v[step] = d1 + d2;
  v[2 * step] = d2 - d1;
  v[3 * step] = d1 - d3;
}

// Bᵀ d B of a 4×4 tile, in place (row-major).
template <class T>
CNNFAST_INLINE void winograd_input_transform(T (&d)[kWinogradPoints]) {
  for (int col = 0; col < kWinogradTile; ++col) winograd_input_1d(d + col, kWinogradTile);
  for (int row = 0; row < kWinogradTile; ++row) winograd_input_1d(d + row * kWinogradTile, 1);
}

// G g Gᵀ of a 3×3 filter (row-major) into u (4×4, row-major).
template <class T>
CNNFAST_INLINE void winograd_filter_transform(const T (&g)[9], T (&u)[kWinogradPoints]) {
  const auto expand = [](T g0, T g1, T g2, T* out, int step) {
    out[0] = g0;
    out[step] = T(0.5) * (g0 + g1 + g2);
    out[2 * step] = T(0.5) * (g0 - g1 + g2);
    out[3 * step] = g2;
  };
  T columns[4 * 3];  // G g: 4 rows of 3
  for (int col = 0; col < 3; ++col) expand(g[col], g[3 + col], g[6 + col], columns + col, 3);
  for (int row = 0; row < kWinogradTile; ++row)
    expand(columns[row * 3], columns[row * 3 + 1], columns[row * 3 + 2], u + row * kWinogradTile, 1);
}

// Aᵀ m A of a 4×4 tile (row-major) into y (2×2, row-major).
template <class T>
CNNFAST_INLINE void winograd_output_transform(const T (&m)[kWinogradPoints],
                                              T (&y)[kWinogradOut * kWinogradOut]) {
  T rows[kWinogradOut * kWinogradTile];  // Aᵀ m: 2 rows of 4
  for (int col = 0; col < kWinogradTile; ++col) {
    const T m0 = m[col], m1 = m[4 + col], m2 = m[8 + col], m3 = m[12 + col];
    rows[col] = m0 + m1 + m2;
    rows[4 + col] = m1 - m2 - m3;
  }
  for (int row = 0; row < kWinogradOut; ++row) {
    const T* r = rows + row * kWinogradTile;
    y[row * 2] = r[0] + r[1] + r[2];
    y[row * 2 + 1] = r[1] - r[2] - r[3];
  }
}

// A stride-1 3×3 convolution of `groups` groups as Winograd's GEMMs:
// input n × in_channels × h × w, output n × out_channels × p × q, read at
// (2·tile_row − pad_h + i, 2·tile_col − pad_w + j). The filter of output
// channel o and input channel i of a group is weight[o][i] (forward), or,
// for the input gradient (flipped), weight[i][o] turned by 180°.
struct WinogradProblem {
  int64_t n = 0, groups = 1, in_group = 0, out_group = 0;
  int64_t h = 0, w = 0, p = 0, q = 0, pad_h = 0, pad_w = 0;
  bool flipped = false;

  CNNFAST_HD int64_t in_channels() const { return groups * in_group; }
  CNNFAST_HD int64_t out_channels() const { return groups * out_group; }
  CNNFAST_HD int64_t tiles_h() const { return (p + 1) / 2; }
  CNNFAST_HD int64_t tiles_w() const { return (q + 1) / 2; }
  CNNFAST_HD int64_t tile_plane() const { return tiles_h() * tiles_w(); }
  CNNFAST_HD int64_t tiles() const { return n * tile_plane(); }  // a GEMM's columns
  // The GEMM column of image n's tile (row, col).
  CNNFAST_HD int64_t tile(int64_t image, int64_t row, int64_t col) const {
    return image * tile_plane() + row * tiles_w() + col;
  }
  // GEMMs: one per group and ξ.
  CNNFAST_HD int64_t gemms() const { return groups * kWinogradPoints; }
};

// The forward convolution of p, where Winograd applies: 3×3, stride 1,
// channels enough that the GEMMs, not the transforms, take the time, and
// its GEMMs within one launch's grid (grid.z: 65,535).
constexpr int64_t kWinogradMinChannels = 16;

inline bool winograd_applies(const ConvProblem& p) {
  return p.r == 3 && p.s == 3 && p.stride_h == 1 && p.stride_w == 1 &&
         p.c_group() >= kWinogradMinChannels && p.k_group() >= kWinogradMinChannels &&
         p.groups * kWinogradPoints <= 65535;
}

inline WinogradProblem winograd_forward_problem(const ConvProblem& p) {
  WinogradProblem wp;
  wp.n = p.n;
  wp.groups = p.groups;
  wp.in_group = p.c_group();
  wp.out_group = p.k_group();
  wp.h = p.h;
  wp.w = p.w;
  wp.p = p.p;
  wp.q = p.q;
  wp.pad_h = p.pad_h;
  wp.pad_w = p.pad_w;
  return wp;
}

// The input gradient is the convolution of the output gradient with the
// flipped filter, padded by 2 − pad: where pad > 2 it is not one.
inline bool winograd_applies_to_input_grad(const ConvProblem& p) {
  return winograd_applies(p) && p.pad_h <= 2 && p.pad_w <= 2;
}

// The forward problem with input and output exchanged.
inline WinogradProblem winograd_input_grad_problem(const ConvProblem& p) {
  WinogradProblem wp = winograd_forward_problem(p);
  std::swap(wp.in_group, wp.out_group);
  std::swap(wp.h, wp.p);
  std::swap(wp.w, wp.q);
  wp.pad_h = 2 - p.pad_h;
  wp.pad_w = 2 - p.pad_w;
  wp.flipped = true;
  return wp;
}

}  // namespace cnnfast
