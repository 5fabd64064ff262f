#include <torch/library.h>

#include "../emulate/emulate.h"
#include "../kernels/linear.h"
#include "../runtime.h"
#include "implicit_gemm.h"

namespace cnnfast {
namespace {

// Batches up to this size take the dot-product kernel below.
constexpr int64_t kDotRows = 8;
constexpr int64_t kDotFeatures = 3;  // output features per register block

// A small batch makes linear a matrix-vector product bound by reading the
// weight: each weight row streams through once, dotted with every input row
// (L1/L2-resident), kDotFeatures rows × kDotRows inputs in 24 vector
// accumulators, summed across lanes at the end.
template <class T>
void dot_rows(const T* x, const T* w, int64_t rows, int64_t in, T* sums /*[kDotFeatures][kDotRows]*/) {
  using V = typename cpu::VectorOf<T>::type;
  constexpr int64_t L = cpu::kLanes<T>;
  V acc[kDotFeatures][kDotRows] = {};
  int64_t c = 0;
  for (; c + L <= in; c += L) {
    V wv[kDotFeatures];
    for (int64_t f = 0; f < kDotFeatures; ++f) std::memcpy(&wv[f], w + f * in + c, sizeof(V));
    for (int64_t n = 0; n < kDotRows; ++n) {
      if (n >= rows) break;
      V xv;
      std::memcpy(&xv, x + n * in + c, sizeof(V));
      for (int64_t f = 0; f < kDotFeatures; ++f) acc[f][n] += wv[f] * xv;
    }
  }
  for (int64_t f = 0; f < kDotFeatures; ++f)
    for (int64_t n = 0; n < rows; ++n) {
      T sum = 0;
      for (int64_t l = 0; l < L; ++l) sum += acc[f][n][l];
      for (int64_t t = c; t < in; ++t) sum += w[f * in + t] * x[n * in + t];
      sums[f * kDotRows + n] = sum;
    }
}

template <class T>
void linear_dot(const T* x, const T* w, const T* bias, T* out, const ConvProblem& p) {
  const int64_t rows = p.n, in = p.c, features = p.k;
  const int64_t blocks = ceil_div(features, kDotFeatures);
  at::parallel_for(0, blocks, 16, [&](int64_t begin, int64_t end) {
    T sums[kDotFeatures * kDotRows];
    std::vector<T> padded_w(kDotFeatures * in, T(0));
    for (int64_t b = begin; b < end; ++b) {
      const int64_t f0 = b * kDotFeatures, count = std::min(kDotFeatures, features - f0);
      const T* rows_of_w = w + f0 * in;
      if (count < kDotFeatures) {  // the last block reads zero rows past the weight
        std::copy(rows_of_w, rows_of_w + count * in, padded_w.begin());
        rows_of_w = padded_w.data();
      }
      dot_rows(x, rows_of_w, rows, in, sums);
      for (int64_t f = 0; f < count; ++f)
        for (int64_t n = 0; n < rows; ++n) {
          T v = sums[f * kDotRows + n] + (bias == nullptr ? T(0) : bias[f0 + f]);
          cpu::activate_row(&v, 1, p.act);
          out[n * features + f0 + f] = v;
        }
    }
  });
}

at::Tensor linear_cpu(const at::Tensor& x, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias,
                      std::optional<std::string_view> activation) {
  if (emulating_cuda()) return emulate::linear_forward(x, weight, bias, activation);
  const ConvProblem p = linear_problem(x, weight, bias, activation, "linear", false);
  if (p.n > kDotRows || p.n == 0)
    return kernels::linear_forward<cpu::CpuGemmEngine>(x, weight, bias, activation);
  const at::Tensor input = x.contiguous(), filter = weight.contiguous();
  const at::Tensor shift = bias.has_value() ? bias->contiguous() : at::Tensor();
  at::Tensor out = at::empty(kernels::linear_output_size(x, p), x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "linear", [&] {
    linear_dot(input.const_data_ptr<scalar_t>(), filter.const_data_ptr<scalar_t>(),
               kernels::data_or_null<scalar_t>(shift), out.mutable_data_ptr<scalar_t>(), p);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, std::optional<std::string_view> activation,
    std::array<bool, 3> output_mask) {
  if (emulating_cuda())
    return emulate::linear_backward(grad_output, x, weight, output, activation, output_mask);
  return kernels::linear_backward<cpu::CpuGemmEngine>(grad_output, x, weight, output, activation,
                                                      output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("linear", &linear_cpu);
  m.impl("_linear_backward", &linear_backward_cpu);
}

}  // namespace cnnfast
