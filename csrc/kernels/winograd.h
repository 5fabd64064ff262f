#pragma once
// A stride-1 3×3 convolution (forward, or the input gradient) by
// Winograd's F(2×2, 3×3) (csrc/common/winograd.h) on a launcher: three
// elementwise kernels around a batched GEMM on the implicit-GEMM kernel.
//   filter transform   weight → U [groups][16][out][in]
//   input transform    x      → V [groups][16][in][tiles]
//   GEMMs              M[b] = U[b] · V[b], b = group · 16 + ξ, in one launch
//   output transform   M      → out (+ bias, activation)
// A 2×2 output takes 16 multiplications per input channel instead of 36:
// AlexNet's conv3 at 13×13 pads to 14×14, so its GEMMs do 1.94× fewer than
// the direct convolution, and the transforms stream U, V and M once each.
// The workspaces hold acc_t (float for the 16-bit types); a batch whose V
// and M would exceed winograd_workspace_limit_bytes() runs in chunks of
// images (U is transformed once).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/ScalarType.h>

#include <algorithm>

#include "../common/kernel_table.h"
#include "../common/launch.h"
#include "../common/winograd.h"
#include "../runtime.h"
#include "implicit_gemm.h"

namespace cnnfast {
namespace kernels {

// The batched GEMM M[b] (out × tiles) = U[b] (out × in) · V[b] (in × tiles),
// all row-major; batch b of the launch is grid.z (ImplicitGemmKernel).
template <class T>
struct WinogradGemm {
  using element_type = T;
  // B: V's rows (tiles).
  static constexpr Along kBLoadsAlong = Along::kCols;
  const T* u;
  const T* v;
  T* m;
  int64_t out_group, in_group, tiles, gemms;

  CNNFAST_HD int64_t batches() const { return gemms; }
  CNNFAST_HD WinogradGemm for_batch(int64_t b) const {
    WinogradGemm one = *this;
    one.u += b * out_group * in_group;
    one.v += b * in_group * tiles;
    one.m += b * out_group * tiles;
    return one;
  }

  CNNFAST_HD int64_t rows() const { return out_group; }
  CNNFAST_HD int64_t cols() const { return tiles; }
  CNNFAST_HD int64_t depth() const { return in_group; }

  CNNFAST_HD const T* a_rows() const { return u; }
  CNNFAST_HD int64_t a_row_stride() const { return in_group; }
  CNNFAST_HD int64_t a_offset(int64_t kd) const { return kd; }

  CNNFAST_HD GatherCoord b_depth(int64_t kd) const { return gather_coord(kd * tiles, 0, 0); }
  CNNFAST_HD GatherCoord b_col(int64_t col) const { return gather_coord(col, 0, 0); }
  CNNFAST_HD T b_at(const GatherCoord& d, const GatherCoord& c) const { return v[d.offset + c.offset]; }

  CNNFAST_HD void store(int64_t row, int64_t col, T value) const { m[row * tiles + col] = value; }
};

// U[g][ξ][o][i] = G f Gᵀ of the filter of output o and input i of group g.
template <class T, class acc_t>
struct WinogradFilterKernel {
  CNNFAST_KERNEL_NAME(WinogradFilterKernel);
  const T* weight;
  acc_t* u;
  WinogradProblem wp;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    const int64_t pairs = wp.out_group * wp.in_group;
    for_each_plane_cell(t, wp.groups, wp.out_group, wp.in_group, [&](const PlaneCell& cell) {
      const int64_t g = cell.plane, o = cell.row, i = cell.col;
      // Forward: weight[g·out + o][i]; input gradient: weight[g·in + i][o], turned by 180°.
      const T* f = wp.flipped ? weight + ((g * wp.in_group + i) * wp.out_group + o) * 9
                              : weight + ((g * wp.out_group + o) * wp.in_group + i) * 9;
      acc_t taps[9], transformed[kWinogradPoints];
      for (int j = 0; j < 9; ++j) taps[j] = static_cast<acc_t>(f[wp.flipped ? 8 - j : j]);
      winograd_filter_transform(taps, transformed);
      acc_t* first = u + g * kWinogradPoints * pairs + o * wp.in_group + i;
      for (int xi = 0; xi < kWinogradPoints; ++xi) first[xi * pairs] = transformed[xi];
    });
  }
};
CNNFAST_REGISTER_KERNEL(WinogradFilterKernel);

// V[g][ξ][i][tile] = Bᵀ d B of the 4×4 input block of tile (n, row, col) in
// channel g·in + i, zero outside the input.
template <class T, class acc_t>
struct WinogradInputKernel {
  CNNFAST_KERNEL_NAME(WinogradInputKernel);
  const T* x;
  acc_t* v;
  WinogradProblem wp;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    const int64_t channels = wp.in_channels(), tiles = wp.tiles();
    for_each_plane_cell(t, wp.n * channels, wp.tiles_h(), wp.tiles_w(), [&](const PlaneCell& cell) {
      const int64_t n = cell.plane / channels, channel = cell.plane % channels;
      const T* plane = x + cell.plane * wp.h * wp.w;
      const int64_t top = 2 * cell.row - wp.pad_h, left = 2 * cell.col - wp.pad_w;
      acc_t d[kWinogradPoints];
      for (int a = 0; a < kWinogradTile; ++a) {
        const int64_t y = top + a;
        for (int b = 0; b < kWinogradTile; ++b) {
          const int64_t x_ = left + b;
          const bool inside = y >= 0 && y < wp.h && x_ >= 0 && x_ < wp.w;
          d[a * kWinogradTile + b] = inside ? static_cast<acc_t>(plane[y * wp.w + x_]) : acc_t(0);
        }
      }
      winograd_input_transform(d);
      const int64_t g = channel / wp.in_group, i = channel % wp.in_group;
      acc_t* first =
          v + (g * kWinogradPoints * wp.in_group + i) * tiles + wp.tile(n, cell.row, cell.col);
      for (int xi = 0; xi < kWinogradPoints; ++xi) first[xi * wp.in_group * tiles] = d[xi];
    });
  }
};
CNNFAST_REGISTER_KERNEL(WinogradInputKernel);

// out[n][g·out + o] at tile (row, col): act(Aᵀ M A + bias), inside the output.
template <class T, class acc_t>
struct WinogradOutputKernel {
  CNNFAST_KERNEL_NAME(WinogradOutputKernel);
  const acc_t* m;
  const T* bias;  // may be null
  T* out;
  WinogradProblem wp;
  Activation act;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    const int64_t channels = wp.out_channels(), tiles = wp.tiles();
    for_each_plane_cell(t, wp.n * channels, wp.tiles_h(), wp.tiles_w(), [&](const PlaneCell& cell) {
      const int64_t n = cell.plane / channels, channel = cell.plane % channels;
      const int64_t g = channel / wp.out_group, o = channel % wp.out_group;
      const acc_t* first =
          m + (g * kWinogradPoints * wp.out_group + o) * tiles + wp.tile(n, cell.row, cell.col);
      acc_t sums[kWinogradPoints], y[kWinogradOut * kWinogradOut];
      for (int xi = 0; xi < kWinogradPoints; ++xi) sums[xi] = first[xi * wp.out_group * tiles];
      winograd_output_transform(sums, y);
      const acc_t shift = bias != nullptr ? static_cast<acc_t>(bias[channel]) : acc_t(0);
      T* plane = out + cell.plane * wp.p * wp.q;
      for (int a = 0; a < kWinogradOut; ++a) {
        const int64_t row = 2 * cell.row + a;
        for (int b = 0; b < kWinogradOut; ++b) {
          const int64_t col = 2 * cell.col + b;
          if (row < wp.p && col < wp.q)
            plane[row * wp.q + col] = static_cast<T>(activate(y[a * kWinogradOut + b] + shift, act));
        }
      }
    });
  }
};
CNNFAST_REGISTER_KERNEL(WinogradOutputKernel);

// The images a chunk takes so that its workspaces (V and M) stay within
// winograd_workspace_limit_bytes(): at least one.
template <class acc_t>
int64_t winograd_chunk_images(const WinogradProblem& wp) {
  const int64_t per_image =
      wp.gemms() * (wp.in_group + wp.out_group) * wp.tile_plane() * int64_t(sizeof(acc_t));
  return std::max<int64_t>(1, std::min(wp.n, winograd_workspace_limit_bytes() / per_image));
}

template <class Launcher, class T>
void winograd_conv(const Launcher& launcher, const at::TensorOptions& options,
                   const WinogradProblem& wp, const T* input, const T* weight, const T* bias,
                   T* out, Activation act) {
  using acc_t = acc_type<T>;
  if (wp.n == 0) return;
  const auto workspace = [&](int64_t per_gemm) {
    return at::empty({wp.gemms() * per_gemm}, options.dtype(c10::CppTypeToScalarType<acc_t>::value));
  };
  const at::Tensor u = workspace(wp.out_group * wp.in_group);
  launcher.launch(elementwise_launch_shape(wp.groups * wp.out_group * wp.in_group),
                  WinogradFilterKernel<T, acc_t>{weight, u.mutable_data_ptr<acc_t>(), wp});
  WinogradProblem chunk = wp;
  chunk.n = winograd_chunk_images<acc_t>(wp);
  const at::Tensor v = workspace(wp.in_group * chunk.tiles());
  const at::Tensor m = workspace(wp.out_group * chunk.tiles());
  for (int64_t first = 0; first < wp.n; first += chunk.n) {
    chunk.n = std::min(chunk.n, wp.n - first);
    launcher.launch(elementwise_launch_shape(chunk.n * chunk.in_channels() * chunk.tile_plane()),
                    WinogradInputKernel<T, acc_t>{input + first * wp.in_channels() * wp.h * wp.w,
                                                  v.mutable_data_ptr<acc_t>(), chunk});
    run_gemm_view(launcher,
                  WinogradGemm<acc_t>{u.const_data_ptr<acc_t>(), v.const_data_ptr<acc_t>(),
                                      m.mutable_data_ptr<acc_t>(), chunk.out_group, chunk.in_group,
                                      chunk.tiles(), chunk.gemms()},
                  options);
    launcher.launch(elementwise_launch_shape(chunk.n * chunk.out_channels() * chunk.tile_plane()),
                    WinogradOutputKernel<T, acc_t>{m.const_data_ptr<acc_t>(), bias,
                                                   out + first * wp.out_channels() * wp.p * wp.q,
                                                   chunk, act});
  }
}

}  // namespace kernels
}  // namespace cnnfast
