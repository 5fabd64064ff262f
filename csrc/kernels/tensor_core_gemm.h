#pragma once
// The tensor-core GEMM: C (M × N) = act(A · Bᵀ + bias) with A (M × K) and
// B (N × K) rows of 16-bit elements or of floats rounded to TF32 -- the
// "NT" shape of linear's forward (x · Wᵀ), which runs on it; the
// convolution views are to come.
//
// A block of four warps (2 × 2) computes a 32 × 32 tile of C; each warp a
// 16 × 16 part, two m16n8 MMAs per depth step (Mma::kK: 8 TF32 or 16 16-bit
// elements, 32 bytes either way). A and B move global → shared in depth
// tiles of 64 bytes a row by cp.async (16 bytes a thread, zero-filled past
// the matrix's rows and its depth), two stages: the next tile is in flight
// while the warps multiply the current one. Shared rows are 80 bytes apart,
// so the eight 16-byte rows an ldmatrix phase reads fall in distinct banks.
// Fragments come from shared memory by ldmatrix.x4 (A: one 16 × 32-byte
// step; B: two 8-column steps), which gives TF32's and the 16-bit formats'
// fragment layouts alike (see load_a/load_b); TF32 operands are then
// rounded (cvt.rna), as the MMA itself would truncate them.
//
// The kernel needs rows 16-byte aligned (lda, ldb multiples of 16 bytes):
// rows_16_byte_aligned pads them where they are not. The epilogue adds the
// bias and applies the activation to the float accumulators, then rounds
// once to Out.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <cstdint>

#include "../common/conv2d.h"
#include "../common/kernel_table.h"
#include "../common/launch.h"
#include "../common/tensor_core.h"
#include "../common/warp.h"

namespace cnnfast {
namespace kernels {

template <class Mma, class Element, class Out>
struct TensorCoreGemmKernel {
  CNNFAST_KERNEL_NAME(TensorCoreGemmKernel);
  static constexpr int kThreads = 128, kMinBlocksPerSM = 4;
  static constexpr int kBlockM = 32, kBlockN = 32;
  static constexpr int kTileBytes = 64, kRowPitch = 80;  // bytes of a depth tile's row, of a shared row
  static constexpr int kTileDepth = kTileBytes / static_cast<int>(sizeof(Element));
  static constexpr int kStepBytes = 32;  // one MMA's depth
  static constexpr int kChunksPerRow = kTileBytes / 16;
  static_assert(Mma::kK * static_cast<int>(sizeof(Element)) == kStepBytes, "an MMA step is 32 bytes of depth");
  static_assert(kBlockM * kChunksPerRow == kThreads && kBlockN * kChunksPerRow == kThreads,
                "one 16-byte copy a thread for each operand's tile");

  struct Shared {
    alignas(16) unsigned char a[2][kBlockM * kRowPitch];
    alignas(16) unsigned char b[2][kBlockN * kRowPitch];
  };
  struct Registers {
    uint32_t a[4];        // A's fragment for one depth step
    uint32_t b[2][2];     // B's, for the warp's two 8-column steps
    float acc[2][4];      // C, one m16n8 tile a column step
    AsyncCopies copies;
  };

  const Element* a;
  const Element* b;
  const Element* bias;  // N values, or null
  Out* c;
  int64_t m, n, k, lda, ldb, ldc;
  Activation act;

  CNNFAST_HD int64_t tiles() const { return (k + kTileDepth - 1) / kTileDepth; }

  // Thread t copies 16 bytes of row t / 4 of both tiles.
  CNNFAST_HD void load_tile(const ThreadIndex& t, int64_t tile, int stage, Shared& sh, Registers& r) const {
    constexpr int64_t kElementBytes = sizeof(Element);
    const int tid = static_cast<int>(t.thread_idx.x);
    const int row = tid / kChunksPerRow, chunk = tid % kChunksPerRow;
    const int64_t depth = tile * kTileDepth + chunk * (16 / kElementBytes);
    const int64_t left = (k - depth) * kElementBytes;
    const int bytes = static_cast<int>(left <= 0 ? 0 : left < 16 ? left : 16);
    const int64_t a_row = t.block_idx.x * kBlockM + row, b_row = t.block_idx.y * kBlockN + row;
    const bool a_in = a_row < m && bytes > 0, b_in = b_row < n && bytes > 0;
    cp_async<16>(r.copies, sh.a[stage] + row * kRowPitch + chunk * 16, a_in ? a + a_row * lda + depth : a,
                 a_in ? bytes : 0);
    cp_async<16>(r.copies, sh.b[stage] + row * kRowPitch + chunk * 16, b_in ? b + b_row * ldb + depth : b,
                 b_in ? bytes : 0);
  }

  // A's 16 × 32-byte step as four 8 × 16-byte matrices, matrix i at rows
  // 8 (i % 2), bytes 16 (i / 2): register i then holds, for TF32, element
  // a_i of the m16n8k8 fragment, and for 16-bit elements, a_2i and a_2i+1 of
  // the m16n8k16 one. B's 8-column steps j are matrices 2j (bytes 0-15) and
  // 2j + 1 (bytes 16-31) of rows 8j..8j+7: b0 and b1 (TF32), or b0..b3.
  template <class Warp>
  CNNFAST_HD void load_fragments(Warp& warp, const Shared& sh, int stage, int step) const {
    const int warp_m = warp.index() / 2, warp_n = warp.index() % 2;
    const unsigned char* as = sh.a[stage] + warp_m * 16 * kRowPitch + step * kStepBytes;
    const unsigned char* bs = sh.b[stage] + warp_n * 16 * kRowPitch + step * kStepBytes;
    ldmatrix<4>(
        warp, [&](int lane) -> const void* { return as + (8 * (lane / 8 % 2) + lane % 8) * kRowPitch + 16 * (lane / 16); },
        [](Registers& r) -> uint32_t* { return r.a; });
    ldmatrix<4>(
        warp, [&](int lane) -> const void* { return bs + (8 * (lane / 16) + lane % 8) * kRowPitch + 16 * (lane / 8 % 2); },
        [](Registers& r) -> uint32_t* { return &r.b[0][0]; });
    if constexpr (Mma::kFormat == MmaFormat::kTf32)
      warp.each_lane([](int, Registers& r) {
        for (uint32_t& v : r.a) v = tf32_round_bits(v);
        for (auto& column : r.b)
          for (uint32_t& v : column) v = tf32_round_bits(v);
      });
  }

  // Lane l's accumulator i of column step j is C's row 8 (i / 2) + l / 4 and
  // column 8 j + 2 (l % 4) + i % 2 of the warp's part.
  template <class Warp>
  CNNFAST_HD void store(Warp& warp, const ThreadIndex& block) const {
    const int64_t row0 = block.block_idx.x * kBlockM + warp.index() / 2 * 16;
    const int64_t col0 = block.block_idx.y * kBlockN + warp.index() % 2 * 16;
    warp.each_lane([&](int lane, Registers& r) {
      for (int j = 0; j < 2; ++j)
        for (int i = 0; i < 4; ++i) {
          const int64_t row = row0 + 8 * (i / 2) + lane / 4, col = col0 + 8 * j + 2 * (lane % 4) + i % 2;
          if (row < m && col < n) {
            const float v = r.acc[j][i] + (bias != nullptr ? static_cast<float>(bias[col]) : 0.0f);
            c[row * ldc + col] = static_cast<Out>(activate(v, act));
          }
        }
    });
  }

  template <class Block>
  CNNFAST_HD void operator()(Block& block, Shared& sh) const {
    const int64_t count = tiles();
    block.each_thread([&](const ThreadIndex& t, Registers& r) {
      for (auto& column : r.acc)
        for (float& v : column) v = 0.0f;
      load_tile(t, 0, 0, sh, r);
      cp_async_commit(r.copies);
    });
    for (int64_t tile = 0; tile < count; ++tile) {
      const int stage = static_cast<int>(tile % 2);
      // The next tile goes into the other stage, last read before the
      // previous barrier; then this one's group (all but the newest) lands.
      block.each_thread([&](const ThreadIndex& t, Registers& r) {
        if (tile + 1 < count) load_tile(t, tile + 1, 1 - stage, sh, r);
        cp_async_commit(r.copies);
        cp_async_wait<1>(r.copies);
      });
      block.barrier();
      block.each_warp([&](auto& warp) {
        for (int step = 0; step < kTileBytes / kStepBytes; ++step) {
          load_fragments(warp, sh, stage, step);
          for (int j = 0; j < 2; ++j)
            mma_sync<Mma>(
                warp, [](Registers& r) -> const uint32_t* { return r.a; },
                [j](Registers& r) -> const uint32_t* { return r.b[j]; },
                [j](Registers& r) -> float* { return r.acc[j]; });
        }
      });
      block.barrier();
    }
    block.each_warp([&](auto& warp) { store(warp, block.index()); });
  }

  // The rows' tiles on grid.x (up to 2^31 - 1 of them), the columns' on
  // grid.y (up to 65,535: 2 million output features).
  static LaunchShape launch_shape(int64_t m, int64_t n) {
    TORCH_CHECK((n + kBlockN - 1) / kBlockN <= 65535, "the tensor-core GEMM takes at most 2,097,120 columns");
    LaunchShape shape;
    shape.block.x = kThreads;
    shape.grid.x = (m + kBlockM - 1) / kBlockM;
    shape.grid.y = (n + kBlockN - 1) / kBlockN;
    return shape;
  }
};
CNNFAST_REGISTER_KERNEL(TensorCoreGemmKernel);

// x (2-D) with rows a multiple of 16 bytes apart from a 16-byte boundary,
// zero-padded into a copy where they are not.
inline at::Tensor rows_16_byte_aligned(const at::Tensor& x) {
  const int64_t per_16_bytes = 16 / static_cast<int64_t>(x.element_size());
  if (x.is_contiguous() && x.size(1) % per_16_bytes == 0 && reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0)
    return x;
  at::Tensor padded = at::zeros({x.size(0), round_up(x.size(1), per_16_bytes)}, x.options());
  padded.narrow(1, 0, x.size(1)).copy_(x);
  return padded;
}

// f(Mma{}, Element{}) for the MMA of dtype t: m16n8k8 TF32 for float32,
// m16n8k16 for float16 and bfloat16.
template <class F>
auto dispatch_mma(at::ScalarType t, const char* op, const F& f) {
  switch (t) {
    case at::kFloat:
      return f(MmaM16N8K8Tf32{}, float{});
    case at::kHalf:
      return f(MmaM16N8K16Half{}, c10::Half{});
    case at::kBFloat16:
      return f(MmaM16N8K16BFloat16{}, c10::BFloat16{});
    default:
      TORCH_CHECK(false, op, ": tensor cores take float32 (TF32), float16 or bfloat16, not ", t);
  }
}

// out (M × N, contiguous, Out) = act(a · bᵀ + bias) for a (M × K), b (N × K).
template <class Mma, class Element, class Out, class Launcher>
void tensor_core_gemm(const Launcher& launcher, const at::Tensor& a, const at::Tensor& b,
                      const std::optional<at::Tensor>& bias, Activation act, at::Tensor& out) {
  const at::Tensor ap = rows_16_byte_aligned(a), bp = rows_16_byte_aligned(b);
  const at::Tensor shift = bias.has_value() ? bias->contiguous() : at::Tensor();
  TensorCoreGemmKernel<Mma, Element, Out> kernel{
      ap.const_data_ptr<Element>(), bp.const_data_ptr<Element>(),
      shift.defined() ? shift.const_data_ptr<Element>() : nullptr, out.mutable_data_ptr<Out>(),
      a.size(0), b.size(0), a.size(1), ap.size(1), bp.size(1), out.size(-1), act};
  launcher.launch_blocks(kernel.launch_shape(a.size(0), b.size(0)), kernel);
}

}  // namespace kernels
}  // namespace cnnfast
