#include <torch/library.h>

#include "../emulation.h"
#include "../kernels/gemm_engine.h"
#include "../kernels/linear.h"
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
    for (int64_t f = 0; f < kDotFeatures; ++f) wv[f] = cpu::load_vector(w + f * in + c);
    for (int64_t n = 0; n < kDotRows; ++n) {
      if (n >= rows) break;
      const V xv = cpu::load_vector(x + n * in + c);
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

// Few output features (at most one vector's lanes; LeNet-5's fc3 has 10):
// a row's outputs, or its gradient, fit one vector. Forward broadcasts each
// input element against the transposed weight, kNarrowRows rows at a
// time; backward reads each gradient row once for all three gradients.
// The engine would pad the features to a register block of 32 and spend
// longer setting up its tiles than on the arithmetic (fc3 at batch 256,
// per call with dispatch: forward 15.6 µs there, 11 here; backward 30, 17).
constexpr int64_t kNarrowRows = 8;     // rows per register block
constexpr int64_t kNarrowChunk = 512;  // rows per task; fixed, so sums do not depend on threads

bool narrow_suits(const ConvProblem& p, at::ScalarType dtype) {
  const int64_t lanes = dtype == at::kDouble ? cpu::kLanes<double> : cpu::kLanes<float>;
  return p.k <= lanes && p.n > kDotRows;
}

// The weight (features × in) as [in][kLanes], zero past the features.
template <class T>
std::vector<T> transposed_weight(const T* w, int64_t features, int64_t in) {
  std::vector<T> t(in * cpu::kLanes<T>, T(0));
  for (int64_t f = 0; f < features; ++f)
    for (int64_t c = 0; c < in; ++c) t[c * cpu::kLanes<T> + f] = w[f * in + c];
  return t;
}

// kNarrowRows rows of x (past the last row, the last row again) times
// the transposed weight, plus the bias, activated and stored.
template <class T>
void narrow_rows(const T* x, const T* weight_t, typename cpu::VectorOf<T>::type shift, int64_t n0,
                 int64_t rows, int64_t in, int64_t features, Activation act, T* out) {
  using V = typename cpu::VectorOf<T>::type;
  constexpr int64_t L = cpu::kLanes<T>;
  const T* row[kNarrowRows];
  for (int64_t i = 0; i < kNarrowRows; ++i) row[i] = x + std::min(n0 + i, rows - 1) * in;
  V acc[kNarrowRows];
  for (int64_t i = 0; i < kNarrowRows; ++i) acc[i] = shift;
  for (int64_t c = 0; c < in; ++c) {
    const V wv = cpu::load_first(weight_t + c * L, L);
#pragma GCC unroll 8
    for (int64_t i = 0; i < kNarrowRows; ++i) acc[i] += row[i][c] * wv;
  }
  // Out of the registers by constant indices only: one index known only
  // at run time would keep every accumulator in memory through the loop.
  T results[kNarrowRows][L];
#pragma GCC unroll 8
  for (int64_t i = 0; i < kNarrowRows; ++i) cpu::store_first(results[i], acc[i], L);
  for (int64_t i = 0; i < std::min(kNarrowRows, rows - n0); ++i) {
    cpu::activate_row(results[i], features, act);
    std::copy(results[i], results[i] + features, out + (n0 + i) * features);
  }
}

template <class T>
void linear_narrow(const T* x, const T* w, const T* bias, T* out, const ConvProblem& p) {
  typename cpu::VectorOf<T>::type shift{};
  for (int64_t f = 0; f < p.k; ++f) shift[f] = bias == nullptr ? T(0) : bias[f];
  const std::vector<T> weight_t = transposed_weight(w, p.k, p.c);
  at::parallel_for(0, ceil_div(p.n, kNarrowRows), kNarrowChunk / kNarrowRows, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block)
      narrow_rows(x, weight_t.data(), shift, block * kNarrowRows, p.n, p.c, p.k, p.act, out);
  });
}

// grad_x's rows [n0, n1): each the sum of the weight's rows scaled by the
// lanes of its gradient row g[n]. A block of kInputGradRows rows ×
// kInputGradVectors vectors keeps 16 independent sums: with fewer, each sum
// waits on the latency of its previous FMA. The weight comes with its rows
// padded to whole vectors (`stride`) and 64-byte aligned, so no load
// splits across two cache lines.
constexpr int64_t kInputGradRows = 2, kInputGradVectors = 8;

template <class T>
void narrow_input_grad(const typename cpu::VectorOf<T>::alias* g, const T* w_padded, int64_t stride,
                       int64_t n0, int64_t n1, int64_t in, int64_t features, T* grad_x) {
  using V = typename cpu::VectorOf<T>::type;
  constexpr int64_t L = cpu::kLanes<T>;
  for (int64_t n = n0; n < n1; n += kInputGradRows)
    for (int64_t c0 = 0; c0 < in; c0 += kInputGradVectors * L) {
      int64_t width[kInputGradVectors];  // 0 past the row: no load, no store
      for (int64_t j = 0; j < kInputGradVectors; ++j) width[j] = std::clamp<int64_t>(in - c0 - j * L, 0, L);
      const int64_t last = std::min(n + 1, n1 - 1);  // an odd last row is taken twice
      V acc[kInputGradRows][kInputGradVectors] = {};
      for (int64_t f = 0; f < features; ++f) {
        const T scale[kInputGradRows] = {g[n][f], g[last][f]};
        for (int64_t j = 0; j < kInputGradVectors; ++j) {
          const V wv = cpu::load_first(w_padded + f * stride + c0 + j * L, width[j] > 0 ? L : 0);
          for (int64_t i = 0; i < kInputGradRows; ++i) acc[i][j] += scale[i] * wv;
        }
      }
      for (int64_t i = 0; i < kInputGradRows; ++i)  // constant indices: sums stay in registers
        for (int64_t j = 0; j < kInputGradVectors; ++j)
          cpu::store_first(grad_x + (n + i) * in + c0 + j * L, acc[i][j], n + i < n1 ? width[j] : 0);
    }
}

// Rows [n0, n1)'s share of grad_w (features × in) and grad_b (one vector
// after it), into sums. Every lane of g[n] is taken (those past the
// features are 0): constant indices keep the accumulators in registers.
// Each block of kSumRows rows is summed apart and then added in, which
// keeps float32's rounding error near torch's (one running sum over 256
// rows had three times its error).
constexpr int64_t kSumRows = 16;

template <class T>
void narrow_weight_grad(const typename cpu::VectorOf<T>::alias* g, const T* x, int64_t n0, int64_t n1,
                        int64_t in, int64_t features, T* sums) {
  using V = typename cpu::VectorOf<T>::type;
  constexpr int64_t L = cpu::kLanes<T>;
  std::fill(sums, sums + features * in + L, T(0));
  for (int64_t c0 = 0; c0 < in; c0 += L) {
    const int64_t width = std::min(L, in - c0);
    for (int64_t b0 = n0; b0 < n1; b0 += kSumRows) {
      V acc[L] = {};
      for (int64_t n = b0; n < std::min(n1, b0 + kSumRows); ++n) {
        const V xv = cpu::load_first(x + n * in + c0, width);
#pragma GCC unroll 16
        for (int64_t f = 0; f < L; ++f) acc[f] += g[n][f] * xv;
      }
#pragma GCC unroll 16
      for (int64_t f = 0; f < L; ++f)
        if (f < features)
          cpu::store_first(sums + f * in + c0, cpu::load_first(sums + f * in + c0, width) + acc[f], width);
    }
  }
  V bias{};
  for (int64_t b0 = n0; b0 < n1; b0 += kSumRows) {
    V block{};
    for (int64_t n = b0; n < std::min(n1, b0 + kSumRows); ++n) block += g[n];
    bias += block;
  }
  cpu::store_first(sums + features * in, bias, L);
}

// The scratch buffer (cpu/scratch.h) of a narrow layer's weight, its rows
// padded to whole vectors.
struct PaddedWeightScratch;

// The three gradients (each null where not wanted). Every gradient row is
// multiplied by act'(out) once, into a vector; grad_w and grad_b are summed
// chunk by chunk of kNarrowChunk rows, the chunks' sums added in order.
template <class T>
void linear_narrow_backward(const T* grad, const T* out, const T* x, const T* w, const ConvProblem& p,
                            T* grad_x, T* grad_w, T* grad_b) {
  using V = typename cpu::VectorOf<T>::type;
  constexpr int64_t L = cpu::kLanes<T>;
  const int64_t rows = p.n, in = p.c, features = p.k;
  const Activation act = p.act;
  // A vector per row, over plain storage (a std::vector of vector types
  // would drop their attributes).
  std::vector<T> g_storage(rows * L);
  auto* g = reinterpret_cast<typename cpu::VectorOf<T>::alias*>(g_storage.data());
  at::parallel_for(0, rows, kNarrowChunk, [&, features, act](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const V gv = cpu::load_first(grad + n * features, features);
      g[n] = out == nullptr ? gv : cpu::times_derivative<T>(gv, cpu::load_first(out + n * features, features), act);
    }
  });
  if (grad_x != nullptr) {
    const int64_t stride = round_up(in, L);
    T* w_padded = cpu::scratch<PaddedWeightScratch, T>(features * stride);
    for (int64_t f = 0; f < features; ++f) {
      std::copy(w + f * in, w + (f + 1) * in, w_padded + f * stride);
      std::fill(w_padded + f * stride + in, w_padded + (f + 1) * stride, T(0));
    }
    at::parallel_for(0, rows, kNarrowChunk, [&](int64_t begin, int64_t end) {
      narrow_input_grad(g, w_padded, stride, begin, end, in, features, grad_x);
    });
  }
  if (grad_w == nullptr && grad_b == nullptr) return;
  const int64_t chunks = ceil_div(rows, kNarrowChunk), sums_size = features * in + L;
  std::vector<T> sums(chunks * sums_size);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk)
      narrow_weight_grad(g, x, chunk * kNarrowChunk, std::min(rows, (chunk + 1) * kNarrowChunk), in,
                         features, sums.data() + chunk * sums_size);
  });
  for (int64_t chunk = 1; chunk < chunks; ++chunk)
    for (int64_t e = 0; e < sums_size; ++e) sums[e] += sums[chunk * sums_size + e];
  if (grad_w != nullptr) std::copy(sums.begin(), sums.begin() + features * in, grad_w);
  if (grad_b != nullptr) std::copy(sums.begin() + features * in, sums.begin() + features * in + features, grad_b);
}

at::Tensor linear_cpu(const at::Tensor& x, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias,
                      std::optional<std::string_view> activation) {
  const ConvProblem p = linear_problem(x, weight, bias, activation, "linear", false);
  const bool narrow = narrow_suits(p, x.scalar_type());
  if (p.n == 0 || (p.n > kDotRows && !narrow))
    return kernels::linear_forward<cpu::CpuGemmEngine>(x, weight, bias, activation);
  const at::Tensor input = x.contiguous(), filter = weight.contiguous();
  const at::Tensor shift = bias.has_value() ? bias->contiguous() : at::Tensor();
  at::Tensor out = at::empty(kernels::linear_output_size(x, p), x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "linear", [&] {
    (narrow ? linear_narrow<scalar_t> : linear_dot<scalar_t>)(
        input.const_data_ptr<scalar_t>(), filter.const_data_ptr<scalar_t>(),
        kernels::data_or_null<scalar_t>(shift), out.mutable_data_ptr<scalar_t>(), p);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, std::optional<std::string_view> activation,
    std::array<bool, 3> output_mask) {
  const char* op = "_linear_backward";
  const ConvProblem p = linear_problem(x, weight, std::nullopt, activation, op, false);
  const bool narrow = narrow_suits(p, x.scalar_type());
  if (!narrow)
    return kernels::linear_backward<cpu::CpuGemmEngine>(grad_output, x, weight, output, activation,
                                                        output_mask);
  check_conv_backward(grad_output, output, x, kernels::linear_output_size(x, p), op);
  const at::Tensor input = x.contiguous(), filter = weight.contiguous(), grad = grad_output.contiguous();
  const at::Tensor saved_output = p.act == Activation::kNone ? at::Tensor() : output.contiguous();
  kernels::Gradients grads = kernels::allocate_gradients(p, x, weight, output_mask);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "linear_backward", [&] {
    linear_narrow_backward(grad.const_data_ptr<scalar_t>(), kernels::data_or_null<scalar_t>(saved_output),
                           input.const_data_ptr<scalar_t>(), filter.const_data_ptr<scalar_t>(), p,
                           output_mask[0] ? grads.grad_x.mutable_data_ptr<scalar_t>() : nullptr,
                           output_mask[1] ? grads.grad_w.mutable_data_ptr<scalar_t>() : nullptr,
                           output_mask[2] ? grads.grad_b.mutable_data_ptr<scalar_t>() : nullptr);
  });
  return {grads.grad_x, grads.grad_w, grads.grad_b};
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("linear", cpu_or_emulated<&linear_cpu, &kernels::linear_forward<kernels::TiledGemmEngine<HostLauncher>>>());
  m.impl("_linear_backward", cpu_or_emulated<&linear_backward_cpu, &kernels::linear_backward<kernels::TiledGemmEngine<HostLauncher>>>());
}

}  // namespace cnnfast
