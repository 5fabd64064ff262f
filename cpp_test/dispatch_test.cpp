// Calls cnnfast::max_pool2d and cnnfast::relu through the dispatcher, as a
// libtorch user would, and checks the results by hand.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cstdio>

#include "runtime.h"

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what);
  if (!ok) ++failures;
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

  bool raised = false;
  try {
    max_pool2d.call(x, {2, 2}, {0, 0}, {0, 0}, false);
  } catch (const c10::Error& error) {
    raised = std::string(error.what()).find("stride") != std::string::npos;
  }
  expect(raised, "stride 0 raises an error naming stride");
  return failures == 0 ? 0 : 1;
}
