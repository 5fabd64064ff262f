// A cnnfast elementwise op against torch's, both called from C++ through the
// dispatcher below autograd: the kernels' speed without the Python layer
// (benchmarks/RESULTS.md, issue #2's section). Interleaved rounds, medians.
//
// Build against the torch and the extension of the .venv (from the
// repository root; the CUDA build of torch also needs its nvidia/*/lib on
// LD_LIBRARY_PATH at run time):
//   TORCH=.venv/lib/python3.11/site-packages/torch
//   g++ -O2 -std=c++20 tools/op_timing.cpp -I$TORCH/include \
//     -I$TORCH/include/torch/csrc/api/include -L$TORCH/lib -Wl,-rpath,$TORCH/lib \
//     -Wl,--no-as-needed -ltorch_cpu -lc10 cnnfast/_C*.so -Wl,-rpath,$PWD/cnnfast \
//     $(python3-config --ldflags --embed) -o op_timing
//   ./op_timing ELEMENTS THREADS relu|tanh
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s ELEMENTS THREADS relu|tanh\n", argv[0]);
    return 2;
  }
  const int64_t elements = std::atol(argv[1]);
  at::set_num_threads(std::atoi(argv[2]));
  const std::string name = argv[3];
  const auto ours = c10::Dispatcher::singleton()
                        .findSchemaOrThrow(("cnnfast::" + name).c_str(), "")
                        .typed<at::Tensor(const at::Tensor&)>();
  const auto theirs = [&](const at::Tensor& x) { return name == "relu" ? at::relu(x) : at::tanh(x); };
  const at::Tensor x = at::randn({elements});
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int calls = static_cast<int>(std::max<int64_t>(20, 20000000 / elements));
  std::vector<double> torch_us, cnnfast_us;
  for (int round = 0; round < 31; ++round)
    for (int side = 0; side < 2; ++side) {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < calls; ++i) at::Tensor y = side == 0 ? theirs(x) : ours.call(x);
      const std::chrono::duration<double, std::micro> elapsed = std::chrono::steady_clock::now() - start;
      (side == 0 ? torch_us : cnnfast_us).push_back(elapsed.count() / calls);
    }
  const double torch_median = median(torch_us), cnnfast_median = median(cnnfast_us);
  std::printf("%s, %lld elements, %d threads: torch %.2f us, cnnfast %.2f us, speedup %.3f\n", name.c_str(),
              static_cast<long long>(elements), at::get_num_threads(), torch_median, cnnfast_median,
              torch_median / cnnfast_median);
}
