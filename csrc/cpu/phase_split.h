#pragma once
// A convolution of horizontal stride S > 1 (AlexNet's conv1: 11×11, stride
// 4) as one whose B operand runs along memory, for the CPU engine. Its
// input rows are first split into their S phases: phases[n][c][y][φ][j] =
// x[n][c][y][S·j + φ], zero past the row's end, each phase wp = ⌈W / S⌉
// long. Filter column s of output column q reads x[S·q + s − pad], which is
// phase (s − pad) mod S at j = q + ⌊(s − pad) / S⌋: consecutive output
// columns read consecutive elements, so the packing copies runs with masked
// vector moves instead of picking every S-th element (on an AMD EPYC the
// strided packing took a sixth of conv1's forward pass). The split costs
// one pass over the input. The forward only: the backward's GEMMs read the
// input as it is.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <optional>

#include "../common/conv2d.h"
#include "../kernels/conv2d.h"
#include "implicit_gemm.h"

namespace cnnfast {
namespace cpu {

// ⌊a / b⌋ and a mod b in [0, b), for b > 0 and any a.
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

// FpropGemm with B read from the phases: the same A, epilogue and shape,
// and each depth index's phase and shift in its gathered coordinate.
template <class T>
struct PhaseSplitFpropGemm : FpropGemm<T> {
  const T* phases;
  int64_t phase_len;  // wp

  int64_t phase_row() const { return this->p.stride_w * phase_len; }  // one input row's phases
  const T* b_source() const { return phases; }
  GatherBounds b_bounds() const {
    const ConvProblem& p = this->p;
    return {static_cast<int32_t>(p.h), static_cast<int32_t>(phase_len), static_cast<int32_t>(phase_row())};
  }
  acc_type<T> b_at(const GatherCoord& d, const GatherCoord& c) const {
    return gathered_value(phases, b_bounds(), d, c);
  }
  GatherCoord b_depth(int64_t kd) const {
    const ConvProblem& p = this->p;
    const int64_t c = kd / p.filter_taps(), tap = kd % p.filter_taps();
    const int64_t column = tap % p.s - p.pad_w;
    const int64_t channel = this->group * p.c_group() + c;
    return gather_coord(channel * p.h * phase_row() + floor_mod(column, p.stride_w) * phase_len,
                        tap / p.s - p.pad_h, floor_div(column, p.stride_w));
  }
  GatherCoord b_col(int64_t col) const {
    const ConvProblem& p = this->p;
    const int64_t n = col / p.out_plane(), pix = col % p.out_plane();
    return gather_coord(n * p.c * p.h * phase_row(), (pix / p.q) * p.stride_h, pix % p.q);
  }
};

// The phases of every input row (n·c·h rows of w) into dst.
template <class T>
void split_phases(const T* x, int64_t rows, int64_t w, int64_t stride, int64_t phase_len, T* dst) {
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const T* in = x + row * w;
      T* out = dst + row * stride * phase_len;
      for (int64_t phase = 0; phase < stride; ++phase, out += phase_len)
        for (int64_t j = 0; j < phase_len; ++j) {
          const int64_t at = j * stride + phase;
          out[j] = at < w ? in[at] : T(0);
        }
    }
  });
}

// conv2d's forward for stride_w > 1 on the CPU engine.
inline at::Tensor conv2d_forward_phase_split(const at::Tensor& x, const at::Tensor& weight,
                                             const std::optional<at::Tensor>& bias, const ConvProblem& p) {
  const CpuGemmEngine engine(x);
  const int64_t phase_len = ceil_div(p.w, p.stride_w);
  const auto run = [&](auto tag, auto input, auto filter, auto shift, auto out) {
    using T = decltype(tag);
    const at::Tensor phases = at::empty({p.n * p.c * p.h * p.stride_w * phase_len}, x.options());
    split_phases(input, p.n * p.c * p.h, p.w, p.stride_w, phase_len, phases.mutable_data_ptr<T>());
    engine.run(kernels::per_group<PhaseSplitFpropGemm<T>>(p, [&](int64_t group) {
      return PhaseSplitFpropGemm<T>{{input, filter, shift, out, p, group}, phases.const_data_ptr<T>(), phase_len};
    }));
  };
  return kernels::gemm_forward<CpuGemmEngine>(x, weight, bias, kernels::conv2d_output_size(x, p), run);
}

}  // namespace cpu
}  // namespace cnnfast
