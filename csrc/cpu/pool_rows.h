#pragma once
// CPU pooling works one output row at a time and vectorizes across the
// row: for each window cell (i, j), one pass over the outputs whose window
// lies inside the input (the interior columns). The few edge columns take
// the scalar per-window functions of csrc/common/pool2d.h.
#include <ATen/Parallel.h>

#include <vector>

#include "../common/pool2d.h"

namespace cnnfast {
namespace cpu {

// Calls f(std::integral_constant<int, S>) with S = the column stride when it
// is 1 or 2 (strided loads the compiler can vectorize well), 0 otherwise
// (read the stride at run time).
template <class F>
void dispatch_column_stride(int64_t stride, const F& f) {
  if (stride == 1)
    f(std::integral_constant<int, 1>{});
  else if (stride == 2)
    f(std::integral_constant<int, 2>{});
  else
    f(std::integral_constant<int, 0>{});
}

// Runs plane_fn(plane, scratch) for every plane, in parallel; each thread
// makes its own scratch once with make_scratch().
template <class MakeScratch, class F>
void for_each_plane(const Pool2dProblem& p, const MakeScratch& make_scratch, const F& plane_fn) {
  at::parallel_for(0, p.planes, 1, [&](int64_t begin, int64_t end) {
    auto scratch = make_scratch();
    for (int64_t plane = begin; plane < end; ++plane) plane_fn(plane, scratch);
  });
}

// For planes that need no scratch.
inline int no_scratch() { return 0; }

inline OutputRange interior_columns(const Pool2dProblem& p) {
  return interior_outputs(p.stride_w, p.pad_w, p.kernel_w, p.in_w, p.out_w);
}

}  // namespace cpu
}  // namespace cnnfast
