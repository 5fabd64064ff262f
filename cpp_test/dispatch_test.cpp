// Calls cnnfast's ops through the dispatcher, as a libtorch user would, and
// checks the results by hand: max_pool2d, relu (its mask of a bit per
// element and the gradient through it too), and conv2d and linear on
// the CPU GEMM engine's paths (stride 1, a horizontal stride, LeNet-5's
// direct convolution) against plain loops. The Makefile builds this check
// for the other CPU ISA than the Python extension's (AVX2 where the machine
// has AVX-512), so that CI compiles and runs both.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string_view>
#include <tuple>

#include "runtime.h"

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what);
  if (!ok) ++failures;
}

// conv2d with bias and ReLU by plain loops, in double.
at::Tensor conv2d_by_loops(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t stride_h,
                           int64_t stride_w, int64_t pad_h, int64_t pad_w) {
  const at::Tensor xd = x.to(at::kDouble), weight = w.to(at::kDouble), bd = b.to(at::kDouble);
  const auto xa = xd.accessor<double, 4>();
  const auto wa = weight.accessor<double, 4>();
  const auto ba = bd.accessor<double, 1>();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t k = w.size(0), r = w.size(2), s = w.size(3);
  const int64_t p = (h + 2 * pad_h - r) / stride_h + 1, q = (wd + 2 * pad_w - s) / stride_w + 1;
  at::Tensor out = at::zeros({n, k, p, q}, at::kDouble);
  auto oa = out.accessor<double, 4>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < k; ++o)
      for (int64_t y = 0; y < p; ++y)
        for (int64_t z = 0; z < q; ++z) {
          double sum = ba[o];
          for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t dy = 0; dy < r; ++dy)
              for (int64_t dz = 0; dz < s; ++dz) {
                const int64_t iy = y * stride_h - pad_h + dy, iz = z * stride_w - pad_w + dz;
                if (iy >= 0 && iy < h && iz >= 0 && iz < wd) sum += xa[i][ch][iy][iz] * wa[o][ch][dy][dz];
              }
          oa[i][o][y][z] = std::max(sum, 0.0);
        }
  return out;
}

double max_error(const at::Tensor& got, const at::Tensor& expected) {
  if (got.sizes() != expected.sizes()) return INFINITY;
  return (got.to(at::kDouble) - expected).abs().max().item<double>();
}

// _relu_with_mask's bits (bit i % 8 of byte i / 8: element i passes the
// gradient) and _relu_mask_backward against loops, over whole vector steps
// and a tail, a NaN among them (it passes, as in torch).
void check_relu_mask(at::ScalarType dtype, const char* what) {
  const auto with_mask = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("cnnfast::_relu_with_mask", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&)>();
  const auto mask_backward = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("cnnfast::_relu_mask_backward", "")
                                 .typed<at::Tensor(const at::Tensor&, const at::Tensor&, bool)>();
  const at::Tensor x = at::randn({45}, dtype);
  x[5] = NAN;
  const at::Tensor grad = at::randn({45}, dtype);
  const auto [y, mask] = with_mask.call(x);
  const at::Tensor grad_x = mask_backward.call(grad, mask, false).to(at::kDouble);
  const at::Tensor xd = x.to(at::kDouble), gd = grad.to(at::kDouble), yd = y.to(at::kDouble);
  bool ok = mask.scalar_type() == at::kByte && mask.numel() == 6;
  for (int64_t i = 0; ok && i < 45; ++i) {
    const double v = xd[i].item<double>();
    const bool passes = !(v <= 0);
    const bool bit = (mask[i / 8].item<uint8_t>() >> (i % 8) & 1) != 0;
    const double expected_y = std::isnan(v) ? v : std::max(v, 0.0);
    const bool y_ok = std::isnan(v) ? std::isnan(yd[i].item<double>()) : yd[i].item<double>() == expected_y;
    ok = y_ok && bit == passes && grad_x[i].item<double>() == (passes ? gd[i].item<double>() : 0.0);
  }
  expect(ok, what);
}

using Conv2d = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                          at::IntArrayRef, at::IntArrayRef, int64_t, std::optional<std::string_view>);
using Linear = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                          std::optional<std::string_view>);

void check_conv2d(int64_t n, int64_t k, int64_t stride_h, int64_t stride_w, int64_t pad, const char* what) {
  const auto conv2d = c10::Dispatcher::singleton().findSchemaOrThrow("cnnfast::conv2d", "").typed<Conv2d>();
  const at::Tensor x = at::randn({n, 3, 13, 17}), w = at::randn({k, 3, 5, 4}), b = at::randn({k});
  const at::Tensor out = conv2d.call(x, w, b, {stride_h, stride_w}, {pad, pad}, 1, "relu");
  const double error = max_error(out, conv2d_by_loops(x, w, b, stride_h, stride_w, pad, pad));
  std::printf("  %s: max error %.2e\n", what, error);
  expect(error < 1e-4, what);
}

void check_linear() {
  const auto linear = c10::Dispatcher::singleton().findSchemaOrThrow("cnnfast::linear", "").typed<Linear>();
  const at::Tensor x = at::randn({5, 70}), w = at::randn({37, 70}), b = at::randn({37});
  const at::Tensor out = linear.call(x, w, b, std::nullopt);
  const at::Tensor expected = at::zeros({5, 37}, at::kDouble);
  auto ea = expected.accessor<double, 2>();
  const at::Tensor xd = x.to(at::kDouble), wd = w.to(at::kDouble), bd = b.to(at::kDouble);
  const auto xa = xd.accessor<double, 2>();
  const auto wa = wd.accessor<double, 2>();
  const auto ba = bd.accessor<double, 1>();
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t o = 0; o < 37; ++o) {
      ea[i][o] = ba[o];
      for (int64_t f = 0; f < 70; ++f) ea[i][o] += xa[i][f] * wa[o][f];
    }
  const double error = max_error(out, expected);
  std::printf("  linear 70 -> 37: max error %.2e\n", error);
  expect(error < 1e-4, "linear");
}

}  // namespace

int main() {
  std::printf("cnnfast built against torch %s, CPU ISA %s\n", cnnfast::built_torch_version(),
              cnnfast::cpu_isa());
  const auto max_pool2d = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("cnnfast::max_pool2d", "")
                              .typed<at::Tensor(const at::Tensor&, at::IntArrayRef,
                                                at::IntArrayRef, at::IntArrayRef, bool)>();
  // 4×4 input 0..15: 2×2/2 windows take 5, 7, 13, 15.
  const at::Tensor x = at::arange(16, at::kFloat).reshape({1, 1, 4, 4});
  const at::Tensor pooled = max_pool2d.call(x, {2, 2}, {2, 2}, {0, 0}, false);
  const at::Tensor expected = at::tensor({5.f, 7.f, 13.f, 15.f}).reshape({1, 1, 2, 2});
  expect(pooled.sizes() == expected.sizes() && at::equal(pooled, expected), "max_pool2d 2x2/2");

  const auto relu = c10::Dispatcher::singleton()
                        .findSchemaOrThrow("cnnfast::relu", "")
                        .typed<at::Tensor(const at::Tensor&)>();
  const at::Tensor y = relu.call(at::tensor({-1.f, 0.f, 2.f}));
  expect(at::equal(y, at::tensor({0.f, 0.f, 2.f})), "relu");

  check_relu_mask(at::kFloat, "relu's mask and the gradient through it, float");
  check_relu_mask(at::kDouble, "relu's mask and the gradient through it, double");

  bool raised = false;
  try {
    max_pool2d.call(x, {2, 2}, {0, 0}, {0, 0}, false);
  } catch (const c10::Error& error) {
    raised = std::string(error.what()).find("stride") != std::string::npos;
  }
  expect(raised, "stride 0 raises an error naming stride");

  at::manual_seed(0);
  check_conv2d(2, 40, 1, 1, 2, "conv2d, stride 1 (the GEMM engine)");
  check_conv2d(2, 40, 2, 3, 1, "conv2d, stride (2, 3) (the GEMM engine on the input's phases)");
  check_conv2d(17, 6, 1, 1, 0, "conv2d, 17 images, 6 channels (the direct convolution)");
  check_linear();
  return failures == 0 ? 0 : 1;
}
