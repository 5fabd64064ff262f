#pragma once
// Direct convolution across images, for layers with few output channels
// (LeNet-5's: 6 and 16). There the implicit GEMM has too few rows to repay
// gathering its B operand; instead each vector lane holds one image:
// kLanes images are interleaved ([image group][channel][row][column][lane],
// zero-padded so no tap needs a bounds test), and every FMA multiplies a
// broadcast weight by one pixel of kLanes images.
//
//   forward:  a register block of KB output channels × PB output pixels
//             (24 accumulators), each tap loading PB vectors and
//             broadcasting KB weights; bias and activation before the store.
//   dgrad:    the forward kernel on the padded gradient with the weights
//             transposed and flipped (stride 1 only); the gradient, times
//             the activation's derivative, is interleaved once for dgrad
//             and wgrad (interleave_gradient).
//   wgrad:    per (4 output channels, input channel, filter row), 4 × 5
//             taps accumulate over every pixel of every image group, then
//             across lanes — always in the same order: deterministic.
// The interleaving and the way back are 16 × 16 transposes in registers.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../common/conv2d.h"
#include "activation_lanes.h"
#include "scratch.h"
#include "transpose.h"
#include "vec_math.h"

namespace cnnfast {
namespace cpu {

// The direct path's scratch buffers (scratch.h).
namespace direct_scratch {
struct ImageInput;   // one image group's input (each thread)
struct ImageResult;  // one image group's output (each thread)
struct ImagePooled;  // that output average-pooled (each thread)
struct ImagesX;      // every image group's input (calling thread)
struct ImagesGrad;   // every image group's gradient (calling thread)
}  // namespace direct_scratch

// Layers whose output channels per group are at most this take the direct path.
constexpr int64_t kDirectMaxChannels = 32;

inline bool direct_conv_suits(const ConvProblem& p, int64_t lanes) {
  return p.k_group() <= kDirectMaxChannels && p.n >= lanes;
}

// An interleaved, zero-padded copy of kLanes images of an (N, C, H, W)
// tensor: [c][rows][cols][lane], each image at (pad_h, pad_w); lanes past
// the batch read 0.
template <class T>
struct ImageGroup {
  T* data;  // channels × rows × cols × kLanes, not owned
  int64_t channels = 0, rows = 0, cols = 0;
  int64_t first_row = 0, last_row = 0;  // rows outside [first_row, last_row) are padding
  int64_t first_col = 0, last_col = 0;  // and columns outside [first_col, last_col)
  static int64_t size(int64_t c, int64_t rows, int64_t cols) { return c * rows * cols * kLanes<T>; }
  ImageGroup(T* storage, int64_t c, int64_t rows_, int64_t cols_)
      : data(storage), channels(c), rows(rows_), cols(cols_) {}
  const T* at(int64_t c, int64_t row, int64_t col) const {
    return data + ((c * rows + row) * cols + col) * kLanes<T>;
  }

  // Images [first, first + kLanes) of src (n images of c × h × w) at
  // (pad_h, pad_w); with `out`, src is a gradient and each element is
  // multiplied by the activation's derivative read off out. Only the
  // padding is zeroed: the columns beside the images, and the rows above
  // and below them when `zero_pad_rows` (direct_row never reads those).
  void load(const T* src, int64_t first, int64_t n, int64_t h, int64_t w, int64_t pad_h,
            int64_t pad_w, const T* out = nullptr, Activation act = Activation::kNone,
            bool zero_pad_rows = true) {
    using V = typename VectorOf<T>::type;
    constexpr int64_t L = kLanes<T>;
    const int64_t images = std::min(L, n - first), image_size = channels * h * w;
    place(h, w, pad_h, pad_w, zero_pad_rows);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < h; ++y) {
        T* dst = data + ((c * rows + y + pad_h) * cols + pad_w) * L;
        const int64_t offset = ((first * channels + c) * h + y) * w;
        // Blocks of kLanes images × kLanes pixels, transposed.
        for (int64_t x0 = 0; x0 < w; x0 += L) {
          const int64_t pixels = std::min(L, w - x0), at = offset + x0;
          V block[L];
          for (int64_t l = 0; l < L; ++l)
            block[l] = l >= images ? V{}
                       : out == nullptr
                           ? load_first(src + at + l * image_size, pixels)
                           : times_derivative<T>(load_first(src + at + l * image_size, pixels),
                                              load_first(out + at + l * image_size, pixels), act);
          transpose_block<T>(block);
          // Vector stores (a memcpy here became one `rep movs`, reading
          // the block back from the stack: slower than the transpose).
          for (int64_t t = 0; t < pixels; ++t) store_first(dst + (x0 + t) * L, block[t], L);
        }
      }
  }

  // One image group already interleaved (c × h × w × kLanes, unpadded),
  // placed at (pad_h, pad_w); the padding rows are left as they are
  // (direct_row never reads them).
  void copy_from(const T* group, int64_t h, int64_t w, int64_t pad_h, int64_t pad_w) {
    place(h, w, pad_h, pad_w, false);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < h; ++y) {
        const T* from = group + (c * h + y) * w * kLanes<T>;
        std::copy(from, from + w * kLanes<T>, data + ((c * rows + y + pad_h) * cols + pad_w) * kLanes<T>);
      }
  }

 private:
  // Images of h × w at (pad_h, pad_w): the bounds set, the padding zeroed.
  void place(int64_t h, int64_t w, int64_t pad_h, int64_t pad_w, bool zero_pad_rows) {
    first_row = pad_h;
    last_row = pad_h + h;
    first_col = pad_w;
    last_col = pad_w + w;
    zero_padding(zero_pad_rows);
  }

  void zero_padding(bool pad_rows) {
    if (first_row == 0 && last_row == rows && first_col == 0 && last_col == cols) return;
    const int64_t row_size = cols * kLanes<T>;
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t row = 0; row < rows; ++row) {
        T* line = data + (c * rows + row) * row_size;
        if (row < first_row || row >= last_row) {
          if (pad_rows) std::fill(line, line + row_size, T(0));
          continue;
        }
        std::fill(line, line + first_col * kLanes<T>, T(0));
        std::fill(line + last_col * kLanes<T>, line + row_size, T(0));
      }
  }
};

// One direct convolution: in (N, C, H, W) → out (N, K, P, Q), grouped, with
// bias and activation.
struct DirectConv {
  int64_t n, c, h, w, k, r, s, p, q, pad_h, pad_w, stride_h, stride_w, groups;
  Activation act;
};

// Output row `oh` of channels [k0, k0 + KB) ∩ the group, for one image
// group: dst[k][q][lane], rows q_padded long.
template <class T, int KB, int PB>
void direct_row(const DirectConv& d, const ImageGroup<T>& in, const T* weights, const T* bias,
                int64_t group, int64_t k0, int64_t k_end, int64_t oh, int64_t q_padded,
                T* dst) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  const int64_t c_group = d.c / d.groups;
  // Filter rows that fall in the top or bottom padding add nothing.
  const int64_t r_begin = std::max<int64_t>(0, in.first_row - oh * d.stride_h);
  const int64_t r_end = std::min<int64_t>(d.r, in.last_row - oh * d.stride_h);
  for (int64_t q0 = 0; q0 < q_padded; q0 += PB) {
    // So do filter columns that fall in the left or right padding for every
    // pixel of the block (the padded gradient of dgrad has 4 such columns).
    const int64_t s_begin = std::max<int64_t>(0, in.first_col - (q0 + PB - 1) * d.stride_w);
    const int64_t s_end = std::min<int64_t>(d.s, in.last_col - q0 * d.stride_w);
    V acc[KB][PB] = {};
    for (int64_t c = 0; c < c_group; ++c)
      for (int64_t r = r_begin; r < r_end; ++r) {
        const T* row = in.at(group * c_group + c, oh * d.stride_h + r, 0);
        const T* wv = weights + ((c * d.r + r) * d.s + s_begin) * KB;
        for (int64_t s = s_begin; s < s_end; ++s, wv += KB) {
          V x[PB];
          for (int pb = 0; pb < PB; ++pb)
            x[pb] = load_vector(row + ((q0 + pb) * d.stride_w + s) * L);
          for (int kb = 0; kb < KB; ++kb)
            for (int pb = 0; pb < PB; ++pb) acc[kb][pb] += wv[kb] * x[pb];
        }
      }
    for (int64_t k = k0; k < k_end; ++k)
      for (int pb = 0; pb < PB; ++pb) {
        const V v = activate_lanes<T>(acc[k - k0][pb] + (bias == nullptr ? T(0) : bias[k]), d.act);
        store_vector(dst + ((k * d.p + oh) * q_padded + q0 + pb) * L, v);
      }
  }
}

// Weights as [group][block of KB output channels][c][r][s][KB], zero past K.
template <class T>
std::vector<T> pack_direct_weights(const T* weight, const DirectConv& d, int64_t kb) {
  const int64_t c_group = d.c / d.groups, k_group = d.k / d.groups;
  const int64_t blocks = ceil_div(k_group, kb), taps = d.r * d.s;
  std::vector<T> packed(d.groups * blocks * c_group * taps * kb, T(0));
  for (int64_t g = 0; g < d.groups; ++g)
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t i = 0; i < kb && b * kb + i < k_group; ++i) {
        const int64_t k = g * k_group + b * kb + i;
        for (int64_t c = 0; c < c_group; ++c)
          for (int64_t t = 0; t < taps; ++t)
            packed[(((g * blocks + b) * c_group + c) * taps + t) * kb + i] =
                weight[(k * c_group + c) * taps + t];
      }
  return packed;
}

// Rows of kLanes interleaved images (`rows` rows of `cols` pixels,
// `row_stride` pixels apart, each pixel kLanes lanes) back to planes of
// (N, rows, cols) for images [first, first + images): blocks of kLanes
// pixels × kLanes images transposed.
template <class T>
void write_back(const T* src, int64_t rows, int64_t cols, int64_t row_stride, int64_t first,
                int64_t images, T* out) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  const int64_t image_stride = rows * cols;
  for (int64_t row = 0; row < rows; ++row) {
    const T* from = src + row * row_stride * L;
    T* dst = out + first * image_stride + row * cols;
    for (int64_t x0 = 0; x0 < cols; x0 += L) {
      const int64_t pixels = std::min(L, cols - x0);
      V block[L] = {};
      for (int64_t t = 0; t < pixels; ++t) block[t] = load_first(from + (x0 + t) * L, L);
      transpose_block<T>(block);
      for (int64_t l = 0; l < images; ++l) store_first(dst + l * image_stride + x0, block[l], pixels);
    }
  }
}

// Average pooling with windows pool.h × pool.w at stride pool (no padding,
// floor), over interleaved planes (`planes` × p rows × q_padded pixels):
// every lane sums its window in torch's row-major order and divides by
// the window's size. The fused conv2d_avg_pool2d pools here, before the
// write-back, so the full-size map never reaches memory.
struct LanePool {
  int64_t h = 1, w = 1;
  bool pools() const { return h > 1 || w > 1; }
};

template <class T>
void pool_lanes(const T* src, int64_t planes, int64_t p, int64_t q_padded, LanePool pool, T* dst) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  const int64_t p2 = p / pool.h, q2 = q_padded / pool.w;
  const T cells = static_cast<T>(pool.h * pool.w);
  for (int64_t plane = 0; plane < planes; ++plane)
    for (int64_t i = 0; i < p2; ++i)
      for (int64_t j = 0; j < q2; ++j) {
        V sum = {};
        for (int64_t a = 0; a < pool.h; ++a)
          for (int64_t b = 0; b < pool.w; ++b) {
            const V v = load_vector(src + ((plane * p + i * pool.h + a) * q_padded + j * pool.w + b) * L);
            sum += v;
          }
        sum = sum / cells;
        store_vector(dst + ((plane * p2 + i) * q2 + j) * L, sum);
      }
}

// Image group by image group, each thread keeping its group's interleaved
// input and result in L2: interleave, convolve, (pool,) write back to
// (N, K, P, Q), or (N, K, P / pool.h, Q / pool.w) when pooling.
template <class T, int KB, int PB>
void direct_forward(const DirectConv& d, const T* x, const T* weight, const T* bias, T* out, LanePool pool,
                    bool x_interleaved) {
  constexpr int64_t L = kLanes<T>;
  const int64_t k_group = d.k / d.groups, blocks = ceil_div(k_group, KB);
  const int64_t q_padded = round_up(d.q, PB);
  const int64_t p2 = d.p / pool.h, q2 = d.q / pool.w;
  // Columns enough for the padded output row's last block of taps.
  const int64_t cols = std::max(d.w + 2 * d.pad_w, (q_padded - 1) * d.stride_w + d.s);
  const std::vector<T> packed_w = pack_direct_weights(weight, d, KB);
  const int64_t weights_per_block = (d.c / d.groups) * d.r * d.s * KB;
  at::parallel_for(0, ceil_div(d.n, L), 1, [&](int64_t begin, int64_t end) {
    const int64_t rows = d.h + 2 * d.pad_h;
    ImageGroup<T> in(scratch<direct_scratch::ImageInput, T>(ImageGroup<T>::size(d.c, rows, cols)), d.c, rows, cols);
    T* result = scratch<direct_scratch::ImageResult, T>(d.k * d.p * q_padded * L);
    T* pooled = pool.pools() ? scratch<direct_scratch::ImagePooled, T>(d.k * p2 * (q_padded / pool.w) * L) : nullptr;
    for (int64_t image_group = begin; image_group < end; ++image_group) {
      const int64_t first = image_group * L, images = std::min(L, d.n - first);
      if (x_interleaved)
        in.copy_from(x + image_group * ImageGroup<T>::size(d.c, d.h, d.w), d.h, d.w, d.pad_h, d.pad_w);
      else
        in.load(x, first, d.n, d.h, d.w, d.pad_h, d.pad_w, nullptr, Activation::kNone, /*zero_pad_rows=*/false);
      for (int64_t block = 0; block < d.groups * blocks; ++block) {
        const int64_t group = block / blocks, k0 = group * k_group + (block % blocks) * KB;
        const int64_t k_end = std::min(k0 + KB, (group + 1) * k_group);
        for (int64_t oh = 0; oh < d.p; ++oh)
          direct_row<T, KB, PB>(d, in, packed_w.data() + block * weights_per_block, bias, group,
                                k0, k_end, oh, q_padded, result);
      }
      if (pool.pools()) {
        pool_lanes(result, d.k, d.p, q_padded, pool, pooled);
        write_back(pooled, d.k * p2, q2, q_padded / pool.w, first, images, out);
      } else {
        write_back(result, d.k * d.p, d.q, q_padded, first, images, out);
      }
    }
  });
}

// The forward with the register block (output channels × pixels) that
// costs least: padded outputs, weighted up for each extra block of output
// channels, which streams the input window through L1 again. Measured on
// one core for LeNet-5's conv2 (ms, forward / input gradient): 6×4
// 2.01 / 2.06, 8×3 1.61 / 2.57, 4×5 1.63 / 3.07, 3×7 2.79 / 2.68; and on
// two cores, forward: 8×3 0.71–0.78, 8×2 0.59–0.66 (10 output columns need
// no padding at 2). The model picks 8×2 for conv2 and 6×4 for conv1 and
// conv2's input gradient.
template <class T>
void direct_conv(const DirectConv& d, const T* x, const T* weight, const T* bias, T* out,
                 LanePool pool = {}, bool x_interleaved = false) {
  const int64_t k_group = d.k / d.groups;
  const auto cost = [&](int64_t kb, int64_t pb) {
    const int64_t blocks = ceil_div(k_group, kb);
    return round_up(k_group, kb) * round_up(d.q, pb) * (3 + blocks);
  };
  const int64_t best = std::min({cost(6, 4), cost(8, 3), cost(8, 2), cost(4, 5), cost(3, 7)});
  if (cost(6, 4) == best)
    direct_forward<T, 6, 4>(d, x, weight, bias, out, pool, x_interleaved);
  else if (cost(8, 3) == best)
    direct_forward<T, 8, 3>(d, x, weight, bias, out, pool, x_interleaved);
  else if (cost(8, 2) == best)
    direct_forward<T, 8, 2>(d, x, weight, bias, out, pool, x_interleaved);
  else if (cost(4, 5) == best)
    direct_forward<T, 4, 5>(d, x, weight, bias, out, pool, x_interleaved);
  else
    direct_forward<T, 3, 7>(d, x, weight, bias, out, pool, x_interleaved);
}

// One image group's share of grad_w for output channels [k0, k0 + count)
// (count <= KB), input channel c, filter row r and taps [s0, s0 + taps)
// (taps <= SB): KB × SB vector accumulators, carried between image groups
// in `sums`.
template <class T, int KB, int SB>
void direct_wgrad_block(const DirectConv& d, const ImageGroup<T>& in, const ImageGroup<T>& grad,
                        int64_t k0, int64_t count, int64_t c, int64_t r, int64_t s0,
                        int64_t taps, T* sums /* KB × SB vectors */) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  V acc[KB][SB];
  for (int kb = 0; kb < KB; ++kb)
    for (int sb = 0; sb < SB; ++sb) acc[kb][sb] = load_vector(sums + (kb * SB + sb) * L);
  // The taps' and channels' rows are fixed before the pixel loop (missing
  // ones repeat the first), and each gradient vector is loaded just before
  // its FMAs: 20 accumulators, 5 inputs and 1 gradient stay in registers.
  const int64_t step = d.stride_w * L;
  for (int64_t oh = 0; oh < d.p; ++oh) {
    const T* x_row = in.at(c, oh * d.stride_h + r, s0);
    const T* x_taps[SB];
    for (int sb = 0; sb < SB; ++sb) x_taps[sb] = x_row + (sb < taps ? sb : 0) * L;
    const T* g_rows[KB];
    for (int kb = 0; kb < KB; ++kb) g_rows[kb] = grad.at(k0 + (kb < count ? kb : 0), oh, 0);
    for (int64_t ow = 0; ow < d.q; ++ow) {
      V x[SB];
      for (int sb = 0; sb < SB; ++sb) x[sb] = load_vector(x_taps[sb] + ow * step);
      for (int kb = 0; kb < KB; ++kb) {
        const V g = load_vector(g_rows[kb] + ow * L);
        for (int sb = 0; sb < SB; ++sb) acc[kb][sb] += g * x[sb];
      }
    }
  }
  for (int kb = 0; kb < KB; ++kb)
    for (int sb = 0; sb < SB; ++sb) store_vector(sums + (kb * SB + sb) * L, acc[kb][sb]);
}

// Every image group of the gradient (N, K, P, Q), multiplied by the
// activation's derivative read off `out` (when set), interleaved: groups
// of K × P × Q × kLanes one after the other, in the calling thread's
// scratch. dgrad (direct_conv with x_interleaved) and wgrad both read it,
// so the gradient and the output are read and transposed once.
template <class T>
const T* interleave_gradient(const DirectConv& d, const T* grad, const T* out) {
  const int64_t image_groups = ceil_div(d.n, kLanes<T>), size = ImageGroup<T>::size(d.k, d.p, d.q);
  T* groups = scratch<direct_scratch::ImagesGrad, T>(image_groups * size);
  at::parallel_for(0, image_groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      ImageGroup<T>(groups + i * size, d.k, d.p, d.q).load(grad, i * kLanes<T>, d.n, d.p, d.q, 0, 0, out, d.act);
  });
  return groups;
}

// grad_w[k, c, r, s] and grad_b[k] (either may be null) from the
// interleaved gradient (interleave_gradient) and the input.
template <class T>
void direct_wgrad(const DirectConv& d, const T* grad_groups, const T* x, T* grad_w, T* grad_b) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  constexpr int KB = 4, SB = 5;  // 20 accumulators; 9 loads per 20 FMAs
  const int64_t c_group = d.c / d.groups, k_group = d.k / d.groups;
  const int64_t image_groups = ceil_div(d.n, L);
  const int64_t rows = d.h + 2 * d.pad_h, cols = d.w + 2 * d.pad_w;
  const int64_t x_size = ImageGroup<T>::size(d.c, rows, cols);
  const int64_t g_size = ImageGroup<T>::size(d.k, d.p, d.q);
  T* x_groups = scratch<direct_scratch::ImagesX, T>(image_groups * x_size);
  std::vector<ImageGroup<T>> in, g;
  for (int64_t i = 0; i < image_groups; ++i) {
    in.emplace_back(x_groups + i * x_size, d.c, rows, cols);
    g.emplace_back(const_cast<T*>(grad_groups) + i * g_size, d.k, d.p, d.q);  // read only
  }
  at::parallel_for(0, image_groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) in[i].load(x, i * L, d.n, d.h, d.w, d.pad_h, d.pad_w);
  });
  // Units: (group, block of KB output channels, input channel, filter row, block of SB taps).
  const int64_t k_blocks = ceil_div(k_group, KB), s_blocks = ceil_div(d.s, SB);
  const int64_t units = d.groups * k_blocks * c_group * d.r * s_blocks;
  struct Unit {
    int64_t k0, count, c, r, s0, taps;
  };
  const auto unit_at = [&](int64_t u) {
    const int64_t sb = u % s_blocks, r = (u / s_blocks) % d.r;
    const int64_t c = (u / (s_blocks * d.r)) % c_group;
    const int64_t kb = (u / (s_blocks * d.r * c_group)) % k_blocks;
    const int64_t group = u / (s_blocks * d.r * c_group * k_blocks);
    const int64_t k0 = group * k_group + kb * KB;
    return Unit{k0, std::min<int64_t>(KB, (group + 1) * k_group - k0), group * c_group + c, r,
                sb * SB, std::min<int64_t>(SB, d.s - sb * SB)};
  };
  // Each thread takes its units through the image groups in order (one
  // group's data stays in L2 while every unit reads it), then sums lanes.
  if (grad_w != nullptr)
    at::parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
      std::vector<T> sums((end - begin) * KB * SB * L, T(0));
      for (int64_t image_group = 0; image_group < image_groups; ++image_group)
        for (int64_t u = begin; u < end; ++u) {
          const Unit unit = unit_at(u);
          direct_wgrad_block<T, KB, SB>(d, in[image_group], g[image_group], unit.k0, unit.count,
                                        unit.c, unit.r, unit.s0, unit.taps,
                                        sums.data() + (u - begin) * KB * SB * L);
        }
      for (int64_t u = begin; u < end; ++u) {
        const Unit unit = unit_at(u);
        const int64_t c_local = unit.c % c_group;
        for (int64_t kb = 0; kb < unit.count; ++kb)
          for (int64_t sb = 0; sb < unit.taps; ++sb) {
            const T* lanes = sums.data() + ((u - begin) * KB * SB + kb * SB + sb) * L;
            T sum = 0;
            for (int64_t l = 0; l < L; ++l) sum += lanes[l];
            grad_w[(((unit.k0 + kb) * c_group + c_local) * d.r + unit.r) * d.s + unit.s0 + sb] = sum;
          }
      }
    });
  if (grad_b != nullptr)
    at::parallel_for(0, d.k, 1, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        V acc = {};
        for (int64_t image_group = 0; image_group < image_groups; ++image_group) {
          const T* plane = g[image_group].at(k, 0, 0);
          for (int64_t i = 0; i < d.p * d.q; ++i) {
            const V v = load_vector(plane + i * L);
            acc += v;
          }
        }
        T sum = 0;
        for (int64_t l = 0; l < L; ++l) sum += acc[l];
        grad_b[k] = sum;
      }
    });
}

}  // namespace cpu
}  // namespace cnnfast
