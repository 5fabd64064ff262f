#pragma once
// How the CPU GEMM of one view is cut into tiles and depth blocks, sized
// for this CPU's caches and its thread count.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "../common/conv2d.h"
#include "gemm_microkernel.h"

namespace cnnfast {
namespace cpu {

// Depth per packed block: an A strip (kMR × 256 floats, 12 KiB) and a B strip
// (256 × 32 floats, 32 KiB) stay in the 48 KiB L1 while the microkernel runs.
constexpr int64_t kDepthBlock = 256;
// Columns and rows per tile: the packed B block (256 × 384 floats, 384 KiB)
// and the tile of C (at most 384 × 384 floats) stay in L2.
constexpr int64_t kMaxTileCols = 384;
constexpr int64_t kMaxTileRows = 384;

// How a view's GEMM is cut into tiles.
struct TilePlan {
  int64_t groups, rows, cols, depth;
  int64_t row_block, col_block, depth_slice;
  int64_t row_blocks, col_blocks, slices;
  int64_t tiles() const { return groups * row_blocks * col_blocks * slices; }
};

// At least kTilesPerThread tiles per thread where the problem allows, for
// balance: first by cutting columns finer, then rows, then the depth.
template <class T>
TilePlan plan_tiles(int64_t groups, int64_t rows, int64_t cols, int64_t depth) {
  // Two tiles a thread let a thread that finishes early take another;
  // more would shrink tiles below the sizes the caches are planned for.
  constexpr int64_t kTilesPerThread = 2;
  // A slice of the depth costs a partial tile written and summed again: the
  // depth is sliced only when it holds kMinSlicedDepth depth blocks, and
  // each slice keeps at least kMinSliceDepth of them, so that the partial
  // tile's extra pass stays small against the slice's multiplications.
  constexpr int64_t kMinSlicedDepth = 4, kMinSliceDepth = 2;
  const int64_t want = kTilesPerThread * at::get_num_threads();
  TilePlan t{groups, rows, cols, depth, rows, 0, depth, 1, 0, 1};
  int64_t col_blocks = ceil_div(cols, kMaxTileCols);
  if (groups * col_blocks < want) col_blocks = std::min(ceil_div(cols, kNR<T>), ceil_div(want, groups));
  t.col_block = round_up(ceil_div(cols, std::max<int64_t>(col_blocks, 1)), kNR<T>);
  t.col_blocks = ceil_div(cols, t.col_block);
  int64_t row_blocks = ceil_div(rows, kMaxTileRows);
  if (groups * t.col_blocks * row_blocks < want)
    row_blocks = std::min(ceil_div(rows, kMR), ceil_div(want, groups * t.col_blocks));
  t.row_block = round_up(ceil_div(rows, row_blocks), kMR);
  t.row_blocks = ceil_div(rows, t.row_block);
  const int64_t spread = groups * t.row_blocks * t.col_blocks;
  if (spread < want && depth >= kMinSlicedDepth * kDepthBlock) {
    const int64_t slices = std::min(ceil_div(want, spread), depth / (kMinSliceDepth * kDepthBlock));
    t.depth_slice = round_up(ceil_div(depth, slices), kDepthBlock);
    t.slices = ceil_div(depth, t.depth_slice);
  }
  return t;
}

}  // namespace cpu
}  // namespace cnnfast
