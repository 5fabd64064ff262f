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
//             transposed and flipped (stride 1 only).
//   wgrad:    per (output channel, input channel), up to 24 taps accumulate
//             over every pixel of every image group, then across lanes —
//             always in the same order, so the result is deterministic.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../common/conv2d.h"
#include "implicit_gemm.h"

namespace cnnfast {
namespace cpu {

// Layers whose output channels per group are at most this take the direct path.
constexpr int64_t kDirectMaxChannels = 32;

inline bool direct_conv_suits(const ConvProblem& p, int64_t lanes) {
  return p.k_group() <= kDirectMaxChannels && p.n >= lanes;
}

// An interleaved, zero-padded copy of an (N, C, H, W) tensor:
// [group][c][rows][cols][lanes], with the image at (pad_h, pad_w).
template <class T>
struct Interleaved {
  std::vector<T> data;
  int64_t groups = 0, channels = 0, rows = 0, cols = 0;
  T* at(int64_t group, int64_t c, int64_t row, int64_t col) {
    return data.data() + (((group * channels + c) * rows + row) * cols + col) * kLanes<T>;
  }
  const T* at(int64_t group, int64_t c, int64_t row, int64_t col) const {
    return data.data() + (((group * channels + c) * rows + row) * cols + col) * kLanes<T>;
  }
};

template <class T>
Interleaved<T> interleave(const T* src, int64_t n, int64_t c, int64_t h, int64_t w,
                          int64_t pad_h, int64_t pad_w, int64_t rows, int64_t cols) {
  constexpr int64_t L = kLanes<T>;
  Interleaved<T> out;
  out.groups = ceil_div(n, L);
  out.channels = c;
  out.rows = rows;
  out.cols = cols;
  out.data.assign(out.groups * c * rows * cols * L, T(0));
  at::parallel_for(0, out.groups * c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t gc = begin; gc < end; ++gc) {
      const int64_t group = gc / c, channel = gc % c;
      for (int64_t lane = 0; lane < L && group * L + lane < n; ++lane) {
        const T* plane = src + ((group * L + lane) * c + channel) * h * w;
        for (int64_t y = 0; y < h; ++y) {
          T* dst = out.at(group, channel, y + pad_h, pad_w) + lane;
          for (int64_t x = 0; x < w; ++x) dst[x * L] = plane[y * w + x];
        }
      }
    }
  });
  return out;
}

// One direct convolution: in (N, C, H, W) → out (N, K, P, Q), grouped, with
// bias and activation.
struct DirectConv {
  int64_t n, c, h, w, k, r, s, p, q, pad_h, pad_w, stride_h, stride_w, groups;
  Activation act;
};

template <class T, int KB, int PB>
void direct_forward_blocks(const DirectConv& d, const Interleaved<T>& in, const T* packed_w,
                           const T* bias, int64_t row_pitch, std::vector<T>& out) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  const int64_t c_group = d.c / d.groups, k_group = d.k / d.groups;
  const int64_t blocks_per_group = ceil_div(k_group, KB);
  const int64_t q_blocks = ceil_div(d.q, PB);
  const int64_t units = in.groups * d.groups * blocks_per_group * d.p;
  at::parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
    T lanes[L];
    for (int64_t u = begin; u < end; ++u) {
      const int64_t oh = u % d.p, kb_all = (u / d.p) % (d.groups * blocks_per_group);
      const int64_t image_group = u / (d.p * d.groups * blocks_per_group);
      const int64_t group = kb_all / blocks_per_group;
      const int64_t k0 = group * k_group + (kb_all % blocks_per_group) * KB;
      const int64_t k_end = std::min(k0 + KB, (group + 1) * k_group);
      for (int64_t qb = 0; qb < q_blocks; ++qb) {
        V acc[KB][PB] = {};
        for (int64_t c = 0; c < c_group; ++c) {
          const T* weights = packed_w + (kb_all * c_group + c) * d.r * d.s * KB;
          for (int64_t r = 0; r < d.r; ++r) {
            const T* row = in.at(image_group, group * c_group + c, oh * d.stride_h + r, 0);
            for (int64_t s = 0; s < d.s; ++s) {
              V x[PB];
              for (int pb = 0; pb < PB; ++pb)
                std::memcpy(&x[pb], row + ((qb * PB + pb) * d.stride_w + s) * L, sizeof(V));
              const T* wv = weights + (r * d.s + s) * KB;
              for (int kb = 0; kb < KB; ++kb)
                for (int pb = 0; pb < PB; ++pb) acc[kb][pb] += wv[kb] * x[pb];
            }
          }
        }
        for (int64_t k = k0; k < k_end; ++k)
          for (int pb = 0; pb < PB; ++pb) {
            std::memcpy(lanes, &acc[k - k0][pb], sizeof(V));
            const T shift = bias == nullptr ? T(0) : bias[k];
            for (int64_t l = 0; l < L; ++l) lanes[l] += shift;
            activate_row(lanes, L, d.act);
            T* dst = out.data() + (((image_group * d.k + k) * d.p + oh) * row_pitch + qb * PB + pb) * L;
            std::memcpy(dst, lanes, sizeof(lanes));
          }
      }
    }
  });
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

template <class T, int KB, int PB>
void direct_forward(const DirectConv& d, const T* x, const T* weight, const T* bias, T* out) {
  constexpr int64_t L = kLanes<T>;
  const int64_t q_padded = round_up(d.q, PB);
  // Columns enough for the padded output row's last block of taps.
  const int64_t cols = std::max(d.w + 2 * d.pad_w, (q_padded - 1) * d.stride_w + d.s);
  const Interleaved<T> in = interleave(x, d.n, d.c, d.h, d.w, d.pad_h, d.pad_w,
                                       d.h + 2 * d.pad_h, cols);
  const std::vector<T> packed_w = pack_direct_weights(weight, d, KB);
  std::vector<T> result(in.groups * d.k * d.p * q_padded * L);
  direct_forward_blocks<T, KB, PB>(d, in, packed_w.data(), bias, q_padded, result);
  const int64_t planes = d.n * d.k;
  at::parallel_for(0, planes, 16, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t image = plane / d.k, k = plane % d.k;
      const T* src = result.data() + ((image / L) * d.k + k) * d.p * q_padded * L + image % L;
      T* dst = out + plane * d.p * d.q;
      for (int64_t y = 0; y < d.p; ++y)
        for (int64_t x_ = 0; x_ < d.q; ++x_) dst[y * d.q + x_] = src[(y * q_padded + x_) * L];
    }
  });
}

// The forward with the register block that wastes the fewest channels.
template <class T>
void direct_conv(const DirectConv& d, const T* x, const T* weight, const T* bias, T* out) {
  const int64_t k_group = d.k / d.groups;
  if (round_up(k_group, 6) < round_up(k_group, 8))
    direct_forward<T, 6, 4>(d, x, weight, bias, out);
  else
    direct_forward<T, 8, 3>(d, x, weight, bias, out);
}

// grad_w[k, c, r, s] (and grad_b[k]) from the interleaved gradient and input.
template <class T>
void direct_wgrad(const DirectConv& d, const T* grad, const T* x, T* grad_w, T* grad_b) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  constexpr int64_t kTaps = 24;  // accumulators per pass
  const int64_t c_group = d.c / d.groups, k_group = d.k / d.groups, taps = d.r * d.s;
  const Interleaved<T> in = interleave(x, d.n, d.c, d.h, d.w, d.pad_h, d.pad_w,
                                       d.h + 2 * d.pad_h, d.w + 2 * d.pad_w);
  const Interleaved<T> g = interleave(grad, d.n, d.k, d.p, d.q, 0, 0, d.p, d.q);
  std::vector<int64_t> tap_offset(taps);
  for (int64_t t = 0; t < taps; ++t) tap_offset[t] = ((t / d.s) * in.cols + t % d.s) * L;
  const int64_t passes = ceil_div(taps, kTaps), per_pass = ceil_div(taps, passes);
  if (grad_w != nullptr)
    at::parallel_for(0, d.k * c_group, 1, [&](int64_t begin, int64_t end) {
      for (int64_t kc = begin; kc < end; ++kc) {
        const int64_t k = kc / c_group, c = (k / k_group) * c_group + kc % c_group;
        for (int64_t t0 = 0; t0 < taps; t0 += per_pass) {
          const int64_t count = std::min(per_pass, taps - t0);
          V acc[kTaps] = {};
          for (int64_t image_group = 0; image_group < in.groups; ++image_group)
            for (int64_t oh = 0; oh < d.p; ++oh) {
              const T* g_row = g.at(image_group, k, oh, 0);
              const T* x_row = in.at(image_group, c, oh * d.stride_h, 0);
              for (int64_t ow = 0; ow < d.q; ++ow) {
                V gv;
                std::memcpy(&gv, g_row + ow * L, sizeof(V));
                const T* x_at = x_row + ow * d.stride_w * L;
                for (int64_t t = 0; t < kTaps; ++t) {
                  if (t >= count) break;
                  V xv;
                  std::memcpy(&xv, x_at + tap_offset[t0 + t], sizeof(V));
                  acc[t] += gv * xv;
                }
              }
            }
          for (int64_t t = 0; t < count; ++t) {
            T sum = 0;
            for (int64_t l = 0; l < L; ++l) sum += acc[t][l];
            grad_w[kc * taps + t0 + t] = sum;
          }
        }
      }
    });
  if (grad_b != nullptr)
    at::parallel_for(0, d.k, 1, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        V acc = {};
        for (int64_t image_group = 0; image_group < g.groups; ++image_group) {
          const T* plane = g.at(image_group, k, 0, 0);
          for (int64_t i = 0; i < d.p * d.q; ++i) {
            V v;
            std::memcpy(&v, plane + i * L, sizeof(V));
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
