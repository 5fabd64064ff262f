#pragma once
// The CUDA implicit-GEMM kernel: one GEMM view of csrc/common/conv2d.h
// (fprop, dgrad or wgrad of one group), as a phased kernel (launch.h) so the
// host launcher runs the same code in the emulation tests.
//
// Tiles: a block of 256 threads computes a 128 × 128 tile of C, stepping
// through the depth 8 at a time; each thread keeps an 8 × 8 block of C in
// registers (64 accumulators) as two 4-row × two 4-column quarters, half a
// tile apart, so a warp's shared-memory reads of its fragments fall in
// distinct banks. 128 × 128 × 8 is the classic FP32 SIMT shape: per depth
// step a thread does 64 FMAs for 16 shared-memory reads; the two stages of A
// and B tiles take 17 KiB of shared memory in float (33 KiB in double), the
// tables below 4.5 KiB more. Where a GEMM's rows leave part of such a tile
// idle, three other tiles (tile_rows_for): 96 × 128 with 6 rows × 8 columns
// a thread (AlexNet's 96 and 192 rows: conv1's filters, conv4's and conv5's
// channels a group, of which 128-row tiles leave a quarter idle), and, for at
// most 64 rows, 64 × 128 and 48 × 128 of 128 threads (LeNet-5's
// convolutions; AlexNet conv2's dgrad, 48 channels a group). ptxas for
// sm_90 (make ptxas-report): launch bounds hold float and the 16-bit types
// to 128 registers per thread, 16 warps per SM, with the 256-thread tiles
// (the 6-row one takes about 116), and to about 160 registers, 12 warps,
// with the 128-thread ones; double takes about 190-250 registers; no spills and no stack
// (make sass-report) — the loops over the register block are unrolled so the
// accumulators stay in registers.
//
// Per depth tile:  load the next A and B tiles from global memory into
// registers (gathered: the implicit im2col) → multiply the current tiles from
// shared memory → store the loaded tiles into the other shared-memory stage →
// barrier. One barrier per tile: a stage is rewritten only after every thread
// has passed the barrier that ends the multiply reading it. The depth
// coordinates of a tile (channel, filter tap or pixel: divisions) are worked
// out once per tile into a shared table, four tiles at a time by one warp,
// not by every thread for every element; where the block's A rows start
// and its B columns' coordinates, once per block. A load is then a
// shared-memory read, a few 32-bit adds and compares (GatherBounds) and one
// 64-bit address, with no branch: about 700 instructions per depth tile of
// 512 FMAs in float, plus about 125 every fourth tile for the warp that
// writes the depth tables (make sass-report), against 1,030 with the 64-bit
// row and column arithmetic redone per load.
//
// Loads (T threads): A along its depth, B along the index the view names
// (kBLoadsAlong: the one that runs along memory; load_cell). Along the
// depth, thread t reads row (or column) t / 8 + (T / 8) i at depth t % 8: a
// warp reads 8 consecutive elements of 4 rows (a filter's weights). Along
// the columns, thread t reads column t % 128 at depth t / 128 + (T / 128) i:
// a warp reads 32 consecutive columns at one depth (pixels: coalesced for
// stride-1 convolutions). They are gathers with padding, so they stay
// scalar loads.
//
// Deep GEMMs with few tiles (wgrad: depth = N·P·Q) split the depth over
// grid.z; each slice writes its partial tile to a float workspace and
// GemmSliceSumKernel adds the slices in order — deterministic, no atomics.
//
// Tensor cores (TF32, FP16/BF16 mma): tensor_core_gemm.h holds their
// mainloop, not yet chosen by run_gemm_view below.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/ScalarType.h>

#include <algorithm>
#include <type_traits>
#include <utility>

#include "../common/conv2d.h"
#include "../common/kernel_table.h"
#include "../common/launch.h"

namespace cnnfast {
namespace kernels {

// A batched view (batches(), for_batch(b)): its GEMMs run in one launch,
// batch b on grid.z (which a view's depth slices take otherwise). A trait,
// not a C++20 concept: torch 2.11 (the GPU machines') builds extensions
// with -std=c++17.
template <class View, class = void>
struct IsBatchedView : std::false_type {};
template <class View>
struct IsBatchedView<View, std::void_t<decltype(std::declval<const View&>().for_batch(int64_t{0}))>>
    : std::true_type {};
template <class View>
constexpr bool BatchedView = IsBatchedView<View>::value;

// A block's tile of C: Rows × Cols, each thread an 8-column × ThreadRows
// block of it in registers, in two halves (quarters) of its rows and of its
// columns, half a tile apart.
template <int Rows, int Cols, int ThreadRows = 8>
struct GemmTile {
  static constexpr int kRows = Rows, kCols = Cols, kDepth = 8;
  static constexpr int kThreadRows = ThreadRows, kThreadCols = 8;
  static constexpr int kThreadsX = kCols / kThreadCols, kThreadsY = kRows / kThreadRows;
  static constexpr int kThreads = kThreadsX * kThreadsY;
  static constexpr int kLoadsA = kRows * kDepth / kThreads;
  static constexpr int kLoadsB = kCols * kDepth / kThreads;
  static_assert(kRows % kThreadRows == 0 && kCols % kThreadCols == 0, "whole register blocks");
  static_assert(kThreads % kDepth == 0 && kThreads % kCols == 0 &&
                    kRows * kDepth % kThreads == 0,
                "the tile loads' thread mapping: whole loads a thread");

  // A warp's 32 threads as 4 rows × 8 columns of the block's thread grid,
  // warps side by side (CUTLASS's SIMT arrangement): a warp's 128-bit
  // fragment reads then touch 4 distinct A quarters (64 bytes) and 8
  // distinct B quarters (128 bytes); as 2 × 16 threads, its B reads
  // touched 16 quarters (256 bytes). Either way a warp issues 4 fragment
  // reads per depth step against 64 FMA instructions (48 with 6 rows), so
  // this trims the shared-memory traffic without, by this count, having
  // been the limit.
  static constexpr int kWarpRows = 4, kWarpCols = 8, kWarpsX = kThreadsX / kWarpCols;
  static_assert(kThreadsX % kWarpCols == 0 && kThreadsY % kWarpRows == 0, "the warp layout");
  static CNNFAST_HD int thread_y(int tid) {
    return (tid / 32 / kWarpsX) * kWarpRows + tid % 32 / kWarpCols;
  }
  static CNNFAST_HD int thread_x(int tid) {
    return (tid / 32 % kWarpsX) * kWarpCols + tid % kWarpCols;
  }
  // Row (column) of a thread's i-th accumulator: two quarters half a tile apart.
  static constexpr int kQuarterRows = kThreadRows / 2;
  static_assert(kThreadRows % 2 == 0 && kQuarterRows <= 4, "a row quarter fits a 4-wide slot");
  static CNNFAST_HD int fragment_row(int ty, int i) {
    return (i / kQuarterRows) * (kRows / 2) + ty * kQuarterRows + i % kQuarterRows;
  }
  static CNNFAST_HD int fragment_col(int tx, int j) { return (j / 4) * (kCols / 2) + tx * 4 + j % 4; }

  // In shared memory each thread's row quarter takes a 16-byte aligned slot
  // of 4, so that it is one vector load whether it holds 4 rows or 3 (then
  // with one unused cell). With 8 rows a thread, a row's slot is the row.
  static constexpr int kSlotHalf = kThreadsY * 4, kSlots = 2 * kSlotHalf;
  static CNNFAST_HD int row_slot(int row) {
    const int half = row / (kRows / 2), within = row % (kRows / 2);
    return half * kSlotHalf + within / kQuarterRows * 4 + within % kQuarterRows;
  }
};
// The tiles, named by their rows (all 128 columns wide); a GEMM takes the one
// that leaves the fewest rows idle (tile_rows_for).
using Tile128 = GemmTile<128, 128>;    // 256 threads, 8 rows each
using Tile96 = GemmTile<96, 128, 6>;   // 256 threads, 6 rows each
using Tile64 = GemmTile<64, 128>;      // 128 threads, 8 rows each
using Tile48 = GemmTile<48, 128, 6>;   // 128 threads, 6 rows each

template <class View, class Tile>
struct ImplicitGemmKernel {
  CNNFAST_KERNEL_NAME(ImplicitGemmKernel);
  using T = typename View::element_type;
  using acc_t = acc_type<T>;

  // 16 resident warps per SM in float with the 256-thread tiles: unbounded,
  // ptxas took 145-165 registers, which left one 256-thread block of 8 warps
  // per SM, too few to hide the shared-memory and FMA latencies (Nsight
  // Compute on an H200: 27-40% of issue slots used). The 128-thread tiles'
  // threads load twice as much of B a tile; at 128 registers the 64-row
  // tile's wgrad spilled, so they take 12 warps (three blocks, about 160
  // registers). Three blocks also fit AlexNet conv2's dgrad (729 blocks a
  // group) in two fuller waves on 132 SMs than four would (1.84 waves
  // instead of 1.38). Since the loads read their rows and columns from
  // shared tables, the 64-row tile would fit 128 registers without
  // spilling; whether 16 warps then run it faster has not been measured.
  // Double's accumulators need 8 warps' worth.
  static constexpr int kThreads = Tile::kThreads;
  // Depth tables: written kTablesAtOnce tiles at a time (write_depth_tables)
  // into a ring of twice as many.
  static constexpr int kTablesAtOnce = 4, kTableTiles = 2 * kTablesAtOnce;
  static_assert(kTablesAtOnce * Tile::kDepth <= 32, "one warp writes the depth tables");
  static constexpr int kWarpsPerSM = sizeof(acc_t) == 4 ? (kThreads == 128 ? 12 : 16) : 8;
  static constexpr int kMinBlocksPerSM = kWarpsPerSM * 32 / kThreads;

  View view;
  int64_t depth_slice;  // depth per grid.z slice
  acc_t* partial;       // [slices][rows][cols] partial sums, or null: store directly

  struct Shared {
    // 16-byte aligned, so that each row slot (4-column quarter) of a
    // thread's fragment is one vector load. Both are padded: a warp's stores
    // of loads along the depth (4 rows or columns × 8 depths) then spread
    // over the banks (two-way at most with 6 rows a thread, whose slots skip
    // a cell).
    alignas(16) acc_t a[2][Tile::kDepth][Tile::kSlots + 4];
    alignas(16) acc_t b[2][Tile::kDepth][Tile::kCols + 4];
    // Where this block's A rows start, rows past the last clamped to the
    // last: worked out once, where each tile's loads would otherwise redo
    // the 64-bit row arithmetic (ptxas rematerializes it rather than hold
    // four row pointers per thread in registers).
    const T* a_row[Tile::kRows];
    // The coordinates of its B columns, for the same reason. Past the last
    // column a thread reads the last one instead: the values only reach
    // accumulators of columns the epilogue skips, and the loads need no
    // predicate.
    alignas(16) GatherCoord b_col[Tile::kCols];
    // Depth coordinates of the next kTableTiles tiles (a ring: tile t's in
    // slot t % kTableTiles).
    int64_t a_offset[kTableTiles][Tile::kDepth];
    alignas(16) GatherCoord b_depth[kTableTiles][Tile::kDepth];  // one 128-bit load each
  };

  struct Registers {
    acc_t acc[Tile::kThreadRows][Tile::kThreadCols];
    acc_t next_a[Tile::kLoadsA], next_b[Tile::kLoadsB];
  };

  // The block's tile of C and its depth slice, at most kMaxSliceDepth deep:
  // the tile loop's counters are 32-bit.
  struct Span {
    int64_t row0, col0, kd_begin;
    int32_t depth, tiles;
  };
  CNNFAST_HD Span span(const ThreadIndex& t) const {
    Span s;
    s.row0 = t.block_idx.y * Tile::kRows;
    s.col0 = t.block_idx.x * Tile::kCols;
    const int64_t slice = BatchedView<View> ? 0 : t.block_idx.z;
    s.kd_begin = min_of(view.depth(), slice * depth_slice);
    s.depth = static_cast<int32_t>(min_of(view.depth(), s.kd_begin + depth_slice) - s.kd_begin);
    s.tiles = (s.depth + Tile::kDepth - 1) / Tile::kDepth;
    return s;
  }

  // The first warp's 32 threads write the depth coordinates of tiles
  // first .. first + kTablesAtOnce - 1, one element each, into their slots.
  // The divisions this takes (channel, filter tap or pixel of a depth index)
  // cost about 100 instructions; the warp that does them reaches the tile's
  // barrier that much later, so it does so for four tiles at once, every
  // fourth tile, not for one tile every tile.
  CNNFAST_HD void write_depth_tables(const ThreadIndex& t, const Span& s, int32_t first,
                                     Shared& sh) const {
    const int32_t i = static_cast<int32_t>(t.thread_idx.x);
    if (i >= kTablesAtOnce * Tile::kDepth) return;
    const int32_t tile = first + i / Tile::kDepth, k = i % Tile::kDepth;
    // Up to tile s.tiles, which the last tile loads as its "next".
    if (tile > s.tiles || s.depth == 0) return;
    // Past the slice's end, the last element's coordinates: the loads of
    // the last tile then read valid addresses, unconditionally, and drop
    // the values (load_tile).
    const int64_t kd = s.kd_begin + min_of(tile * Tile::kDepth + k, s.depth - 1);
    sh.a_offset[tile % kTableTiles][k] = view.a_offset(kd);
    sh.b_depth[tile % kTableTiles][k] = view.b_depth(kd);
  }

  // A thread's i-th load of an operand: which row or column of the tile
  // (index) at which depth (k). Written apart from i so that nvcc sees
  // which part does not depend on it: as quotient and remainder of element
  // tid + T i, the 128-row tile's Winograd and linear input-gradient loops
  // spilled (37 local accesses).
  struct LoadCell {
    int index, k;
  };
  template <Along kAlong>
  static CNNFAST_HD LoadCell load_cell(int tid, int i) {
    constexpr int kThreads = Tile::kThreads, kDepth = Tile::kDepth, kCols = Tile::kCols;
    if constexpr (kAlong == Along::kDepth) return {tid / kDepth + i * (kThreads / kDepth), tid % kDepth};
    return {tid % kCols, tid / kCols + i * (kThreads / kCols)};
  }
  static CNNFAST_HD LoadCell a_cell(int tid, int i) { return load_cell<Along::kDepth>(tid, i); }
  static CNNFAST_HD LoadCell b_cell(int tid, int i) { return load_cell<View::kBLoadsAlong>(tid, i); }

  CNNFAST_HD void load_tile(const ThreadIndex& t, const Span& s, int32_t tile, const Shared& sh,
                            Registers& r) const {
    const int slot = static_cast<int>(tile % kTableTiles);
    const int tid = static_cast<int>(t.thread_idx.x);
    // Depth rows of this tile inside the slice (all but the last tile: all).
    const int32_t depth_left = min_of<int32_t>(Tile::kDepth, s.depth - tile * Tile::kDepth);
    for (int i = 0; i < Tile::kLoadsA; ++i) {
      const LoadCell cell = a_cell(tid, i);
      const acc_t a = static_cast<acc_t>(sh.a_row[cell.index][sh.a_offset[slot][cell.k]]);
      r.next_a[i] = cell.k < depth_left ? a : acc_t(0);
    }
    for (int i = 0; i < Tile::kLoadsB; ++i) {
      const LoadCell cell = b_cell(tid, i);
      const acc_t b = view.b_at(sh.b_depth[slot][cell.k], sh.b_col[cell.index]);
      r.next_b[i] = cell.k < depth_left ? b : acc_t(0);
    }
  }

  CNNFAST_HD void store_tile(const ThreadIndex& t, int stage, const Registers& r,
                             Shared& sh) const {
    const int tid = static_cast<int>(t.thread_idx.x);
    for (int i = 0; i < Tile::kLoadsA; ++i) {
      const LoadCell cell = a_cell(tid, i);
      sh.a[stage][cell.k][Tile::row_slot(cell.index)] = r.next_a[i];
    }
    for (int i = 0; i < Tile::kLoadsB; ++i) {
      const LoadCell cell = b_cell(tid, i);
      sh.b[stage][cell.k][cell.index] = r.next_b[i];
    }
  }

  CNNFAST_HD void multiply(const ThreadIndex& t, int stage, const Shared& sh,
                           Registers& r) const {
    const int ty = Tile::thread_y(static_cast<int>(t.thread_idx.x));
    const int tx = Tile::thread_x(static_cast<int>(t.thread_idx.x));
    CNNFAST_UNROLL
    for (int k = 0; k < Tile::kDepth; ++k) {
      // Both row slots whole (4 wide: one vector load each), of which the
      // thread's rows are the first kQuarterRows.
      acc_t a[2][4], b[Tile::kThreadCols];
      CNNFAST_UNROLL
      for (int q = 0; q < 2; ++q)
        CNNFAST_UNROLL
        for (int e = 0; e < 4; ++e) a[q][e] = sh.a[stage][k][q * Tile::kSlotHalf + ty * 4 + e];
      CNNFAST_UNROLL
      for (int j = 0; j < Tile::kThreadCols; ++j) b[j] = sh.b[stage][k][Tile::fragment_col(tx, j)];
      CNNFAST_UNROLL
      for (int i = 0; i < Tile::kThreadRows; ++i)
        CNNFAST_UNROLL
        for (int j = 0; j < Tile::kThreadCols; ++j)
          r.acc[i][j] += a[i / Tile::kQuarterRows][i % Tile::kQuarterRows] * b[j];
    }
  }

  CNNFAST_HD void epilogue(const ThreadIndex& t, const Span& s, const Registers& r) const {
    const int ty = Tile::thread_y(static_cast<int>(t.thread_idx.x));
    const int tx = Tile::thread_x(static_cast<int>(t.thread_idx.x));
    const int64_t rows = view.rows(), cols = view.cols();
    CNNFAST_UNROLL
    for (int j = 0; j < Tile::kThreadCols; ++j) {
      const int64_t col = s.col0 + Tile::fragment_col(tx, j);
      CNNFAST_UNROLL
      for (int i = 0; i < Tile::kThreadRows; ++i) {
        const int64_t m = s.row0 + Tile::fragment_row(ty, i);
        const acc_t value = r.acc[i][j];
        if (col >= cols || m >= rows) continue;
        if (partial != nullptr)
          partial[(t.block_idx.z * rows + m) * cols + col] = value;
        else
          view.store(m, col, value);
      }
    }
  }

  template <class Block>
  CNNFAST_HD void operator()(Block& block, Shared& sh) const {
    if constexpr (BatchedView<View>) {
      ImplicitGemmKernel batch = *this;
      batch.view = view.for_batch(block.index().block_idx.z);
      batch.run(block, sh);
    } else {
      run(block, sh);
    }
  }

  template <class Block>
  CNNFAST_HD void run(Block& block, Shared& sh) const {
    const Span s = span(block.index());
    block.each_thread([&](const ThreadIndex& t, Registers& r) {
      CNNFAST_UNROLL
      for (int i = 0; i < Tile::kThreadRows; ++i)
        CNNFAST_UNROLL
        for (int j = 0; j < Tile::kThreadCols; ++j) r.acc[i][j] = acc_t(0);
      if (t.thread_idx.x < Tile::kCols)
        sh.b_col[t.thread_idx.x] = view.b_col(min_of(s.col0 + t.thread_idx.x, view.cols() - 1));
      if (t.thread_idx.x < Tile::kRows)
        sh.a_row[t.thread_idx.x] =
            view.a_rows() + min_of(s.row0 + t.thread_idx.x, view.rows() - 1) * view.a_row_stride();
      write_depth_tables(t, s, 0, sh);
    });
    block.barrier();
    if (s.tiles > 0) {
      block.each_thread([&](const ThreadIndex& t, Registers& r) { load_tile(t, s, 0, sh, r); });
      block.each_thread([&](const ThreadIndex& t, Registers& r) { store_tile(t, 0, r, sh); });
      block.barrier();
    }
    // The next tile's loads, the multiply and the stores of what they loaded
    // form one branch-free stretch, so the loads' latency hides behind the
    // multiply. Under `if (more)`, as they were, nvcc sank the loads past
    // 480 of the multiply's 512 FMAs to the stores that use them (SASS), and
    // each warp then waited for them at every tile. The last tile loads tile
    // s.tiles — the slice's last element again (write_depth_tables) — and
    // stores it to the stage no one reads after.
    for (int32_t tile = 0; tile < s.tiles; ++tile) {
      const int stage = static_cast<int>(tile % 2);
      block.each_thread(
          [&](const ThreadIndex& t, Registers& r) { load_tile(t, s, tile + 1, sh, r); });
      block.each_thread([&](const ThreadIndex& t, Registers& r) { multiply(t, stage, sh, r); });
      // Tiles tile + 4 .. tile + 7 take the slots of tiles tile - 4 ..
      // tile - 1, whose loads are done; tile + 1's table was written four
      // tiles ago at the latest.
      block.each_thread([&](const ThreadIndex& t, Registers& r) {
        store_tile(t, 1 - stage, r, sh);
        if (tile % kTablesAtOnce == 0) write_depth_tables(t, s, tile + kTablesAtOnce, sh);
      });
      block.barrier();
    }
    block.each_thread([&](const ThreadIndex& t, Registers& r) { epilogue(t, s, r); });
  }
};
CNNFAST_REGISTER_KERNEL(ImplicitGemmKernel);

// The slices of a split-depth GEMM added in order, then the epilogue.
template <class View>
struct GemmSliceSumKernel {
  CNNFAST_KERNEL_NAME(GemmSliceSumKernel);
  using acc_t = acc_type<typename View::element_type>;
  View view;
  const acc_t* partial;
  int64_t slices;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    const int64_t size = view.rows() * view.cols();
    for (int64_t i = grid_first(t); i < size; i += grid_step(t)) {
      acc_t sum = partial[i];
      for (int64_t z = 1; z < slices; ++z) sum += partial[z * size + i];
      view.store(i / view.cols(), i % view.cols(), sum);
    }
  }
};
CNNFAST_REGISTER_KERNEL(GemmSliceSumKernel);

// The deepest a block's depth slice may be: the kernel counts it in 32 bits.
constexpr int64_t kMaxSliceDepth = int64_t(1) << 30;

// Depth slices for a GEMM: enough blocks to fill a large GPU twice over
// (fixed, not read from the device, so results do not depend on the GPU),
// with at least 32 depth tiles per slice, and at most kMaxSliceDepth deep.
template <class Tile>
int64_t gemm_depth_slices(int64_t tiles, int64_t depth) {
  constexpr int64_t kTargetBlocks = 264, kMinTilesPerSlice = 32;
  const int64_t most = std::max<int64_t>(1, depth / (kMinTilesPerSlice * Tile::kDepth));
  const int64_t filling = std::min(most, std::max<int64_t>(1, kTargetBlocks / std::max<int64_t>(tiles, 1)));
  return std::max(filling, ceil_div(depth, kMaxSliceDepth));
}

// A GEMM on grid.x × grid.y tiles, its depth split over grid.z where that
// fills the GPU better (gemm_depth_slices).
template <class Tile, class Launcher, class View>
void run_gemm_view_in_slices(const Launcher& launcher, const View& view,
                             const at::TensorOptions& options, LaunchShape shape) {
  using acc_t = acc_type<typename View::element_type>;
  using Kernel = ImplicitGemmKernel<View, Tile>;
  const int64_t rows = view.rows(), cols = view.cols(), depth = view.depth();
  const int64_t slices = gemm_depth_slices<Tile>(shape.grid.x * shape.grid.y, depth);
  const int64_t slice = ceil_div(depth, slices);
  shape.grid.z = slices;
  if (slices == 1) {
    launcher.launch_blocks(shape, Kernel{view, std::max<int64_t>(depth, 1), nullptr});
    return;
  }
  const at::Tensor partial = at::empty({slices * rows * cols},
                                       options.dtype(c10::CppTypeToScalarType<acc_t>::value));
  acc_t* ws = partial.mutable_data_ptr<acc_t>();
  launcher.launch_blocks(shape, Kernel{view, slice, ws});
  launcher.launch(elementwise_launch_shape(rows * cols), GemmSliceSumKernel<View>{view, ws, slices});
}

template <class Tile, class Launcher, class View>
void run_gemm_view_in_tiles(const Launcher& launcher, const View& view,
                            const at::TensorOptions& options) {
  const int64_t rows = view.rows(), cols = view.cols();
  LaunchShape shape;
  shape.block.x = Tile::kThreads;
  shape.grid.x = ceil_div(cols, Tile::kCols);
  shape.grid.y = ceil_div(rows, Tile::kRows);
  TORCH_CHECK(shape.grid.y <= 65535, "cnnfast: a GEMM with ", rows,
              " rows exceeds the CUDA grid's limit");
  if constexpr (BatchedView<View>) {
    const int64_t depth = view.depth();
    shape.grid.z = view.batches();
    TORCH_CHECK(shape.grid.z <= 65535, "cnnfast: ", shape.grid.z,
                " GEMMs in one launch exceed the CUDA grid's limit");
    TORCH_CHECK(depth <= kMaxSliceDepth, "cnnfast: a batched GEMM of depth ", depth,
                " exceeds 2^30");
    launcher.launch_blocks(shape,
                           ImplicitGemmKernel<View, Tile>{view, std::max<int64_t>(depth, 1), nullptr});
  } else {
    run_gemm_view_in_slices<Tile>(launcher, view, options, shape);
  }
}

// The rows of the tile that leaves a GEMM's rows least idle: of the 128-
// and 96-row tiles (256 threads) the one whose row tiles cover fewer rows,
// of the 64- and 48-row ones (128 threads) for at most 64 rows likewise; on
// a tie the one of 8 rows a thread (64 FMAs per 4 fragment reads, against
// 48). AlexNet's 96 and 192 rows (conv1's filters; conv4's and conv5's
// channels a group) and 48 (conv2's channels a group, its dgrad) leave a
// quarter of a 128- or 64-row tile idle.
constexpr int tile_rows_for(int64_t rows) {
  const auto covered = [rows](int64_t tile_rows) { return (rows + tile_rows - 1) / tile_rows * tile_rows; };
  if (rows <= Tile64::kRows) return covered(Tile48::kRows) < covered(Tile64::kRows) ? 48 : 64;
  return covered(Tile96::kRows) < covered(Tile128::kRows) ? 96 : 128;
}
// AlexNet's row counts (channels or filters a group, at any batch).
static_assert(tile_rows_for(48) == 48 && tile_rows_for(96) == 96 && tile_rows_for(128) == 128 &&
                  tile_rows_for(192) == 96 && tile_rows_for(256) == 128 && tile_rows_for(384) == 128,
              "the tiles AlexNet's GEMMs take");

template <class Launcher, class View>
void run_gemm_view(const Launcher& launcher, const View& view, const at::TensorOptions& options) {
  if (view.rows() == 0 || view.cols() == 0) return;
  switch (tile_rows_for(view.rows())) {
    case 48:
      return run_gemm_view_in_tiles<Tile48>(launcher, view, options);
    case 64:
      return run_gemm_view_in_tiles<Tile64>(launcher, view, options);
    case 96:
      return run_gemm_view_in_tiles<Tile96>(launcher, view, options);
    default:
      return run_gemm_view_in_tiles<Tile128>(launcher, view, options);
  }
}

}  // namespace kernels
}  // namespace cnnfast
