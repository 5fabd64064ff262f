#pragma once
// Warp-level instructions for phased kernels (launch.h), on a GPU and in
// the host emulation.
//
// A phase that needs the warp together -- mma, ldmatrix -- is a
// warp phase: block.each_warp(f) calls f(warp) once per warp. On a GPU every
// thread calls f with its own lane's view (DeviceWarp) and the functions
// below are the PTX instructions. On the host, f runs once per warp with all
// 32 lanes' registers (HostWarp), and the functions below gather the lanes'
// registers and execute the instruction by the PTX ISA's layouts
// (tensor_core.h for mma's fragments; ldmatrix's below). Per-lane work in a
// warp phase goes through warp.each_lane(g), g(lane, registers).
//
// cp.async is a thread's own instruction and may sit in any phase; its
// state (AsyncCopies) lives in the thread's registers. On the host, a copy
// fills its destination with poison (all bits set: a NaN in float, float16
// and bfloat16) when issued and writes the data only when a
// cp_async_wait retires its group, so a kernel that reads a stage before
// waiting for it reads NaNs.
#include <cstdint>
#include <cstring>
#if !defined(__CUDA_ARCH__)
#include <deque>
#include <vector>
#endif

#include "macros.h"
#include "tensor_core.h"

namespace cnnfast {

constexpr int kWarpSize = 32;

// ---------------------------------------------------------------- host --

template <class Registers>
class HostWarp {
 public:
  HostWarp(Registers* lanes, int warp) : lanes_(lanes), warp_(warp) {}
  int index() const { return warp_; }
  Registers& lane(int l) { return lanes_[l]; }
  template <class F>
  void each_lane(const F& f) {
    for (int l = 0; l < kWarpSize; ++l) f(l, lanes_[l]);
  }

 private:
  Registers* lanes_;
  int warp_;
};

// D = A·B + C for one warp (mma.sync.aligned, Mma one of tensor_core.h's
// shapes); a(r), b(r) give a lane's operand registers, acc(r) its four
// accumulators, which are C before and D after. The products of TF32 and
// 16-bit operands are exact in float; they are added to C in the order of
// the depth, in float.
template <class Mma, class Registers, class A, class B, class Acc>
void mma_sync(HostWarp<Registers>& warp, const A& a, const B& b, const Acc& acc) {
  float ta[Mma::kM][Mma::kK], tb[Mma::kK][Mma::kN], tc[Mma::kM][Mma::kN];
  constexpr int kPerRegister = Mma::kElementsPerRegister;
  for (int l = 0; l < kWarpSize; ++l) {
    Registers& r = warp.lane(l);
    for (int i = 0; i < Mma::kARegisters * kPerRegister; ++i) {
      const TileCoord at = Mma::a(l, i);
      ta[at.row][at.col] = mma_operand<Mma::kFormat>(a(r)[i / kPerRegister], i % kPerRegister);
    }
    for (int i = 0; i < Mma::kBRegisters * kPerRegister; ++i) {
      const TileCoord at = Mma::b(l, i);
      tb[at.row][at.col] = mma_operand<Mma::kFormat>(b(r)[i / kPerRegister], i % kPerRegister);
    }
    for (int i = 0; i < Mma::kCRegisters; ++i) {
      const TileCoord at = Mma::c(l, i);
      tc[at.row][at.col] = acc(r)[i];
    }
  }
  for (int m = 0; m < Mma::kM; ++m)
    for (int n = 0; n < Mma::kN; ++n)
      for (int k = 0; k < Mma::kK; ++k) tc[m][n] += ta[m][k] * tb[k][n];
  for (int l = 0; l < kWarpSize; ++l)
    for (int i = 0; i < Mma::kCRegisters; ++i) {
      const TileCoord at = Mma::c(l, i);
      acc(warp.lane(l))[i] = tc[at.row][at.col];
    }
}

// ldmatrix.sync.aligned.m8n8.x{Count}.shared.b16 (PTX ISA 9.7.14.5,
// "Warp-level matrix load instruction: ldmatrix"): Count 8 × 8 matrices of
// 16-bit elements, 16 bytes a row; lane l gives row l % 8 of matrix l / 8
// (row(l), a shared-memory address), and register i of lane l receives
// matrix i's row l / 4, its 32-bit word l % 4 (elements 2 (l % 4) and
// 2 (l % 4) + 1).
template <int Count, class Registers, class Row, class Dst>
void ldmatrix(HostWarp<Registers>& warp, const Row& row, const Dst& dst) {
  static_assert(Count == 1 || Count == 2 || Count == 4, "ldmatrix loads 1, 2 or 4 matrices");
  const void* rows[kWarpSize];
  for (int l = 0; l < 8 * Count; ++l) rows[l] = row(l);
  for (int l = 0; l < kWarpSize; ++l)
    for (int i = 0; i < Count; ++i)
      std::memcpy(&dst(warp.lane(l))[i], static_cast<const char*>(rows[8 * i + l / 4]) + 4 * (l % 4), 4);
}

// A thread's cp.async copies not yet retired: on the host, the open group
// and the committed ones, oldest first; on a GPU the hardware keeps them.
#if defined(__CUDA_ARCH__)
struct AsyncCopies {};
#else
class AsyncCopies {
 public:
  struct Copy {
    void* dst;
    unsigned char data[16];
    int bytes;
  };
  void issue(void* dst, const void* src, int bytes, int src_bytes) {
    Copy c{dst, {}, bytes};
    if (src_bytes > 0) std::memcpy(c.data, src, static_cast<size_t>(src_bytes));
    std::memset(dst, 0xFF, static_cast<size_t>(bytes));
    open_.push_back(c);
  }
  void commit() {
    committed_.push_back(std::move(open_));
    open_.clear();
  }
  void wait(int pending) {
    while (static_cast<int>(committed_.size()) > pending) {
      for (const Copy& c : committed_.front()) std::memcpy(c.dst, c.data, static_cast<size_t>(c.bytes));
      committed_.pop_front();
    }
  }

 private:
  std::vector<Copy> open_;
  std::deque<std::vector<Copy>> committed_;
};
#endif

// cp.async.{ca,cg}.shared.global [dst], [src], Bytes, src_bytes: copies
// src_bytes (0 to Bytes) and zero-fills the rest of Bytes; src is not read
// when src_bytes is 0. Both addresses aligned to Bytes.
template <int Bytes>
CNNFAST_INLINE void cp_async(AsyncCopies& copies, void* shared_dst, const void* global_src, int src_bytes) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
#if defined(__CUDA_ARCH__)
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(shared_dst));
  if constexpr (Bytes == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(global_src), "r"(src_bytes));
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(dst), "l"(global_src), "n"(Bytes),
                 "r"(src_bytes));
#else
  copies.issue(shared_dst, global_src, Bytes, src_bytes);
#endif
}

CNNFAST_INLINE void cp_async_commit(AsyncCopies& copies) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;\n" ::);
#else
  copies.commit();
#endif
}

// cp.async.wait_group Pending: at most the Pending newest groups still in flight.
template <int Pending>
CNNFAST_INLINE void cp_async_wait(AsyncCopies& copies) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
#else
  copies.wait(Pending);
#endif
}

// --------------------------------------------------------------- device --
#if defined(__CUDACC__)

// One lane's view of its warp in a warp phase.
template <class Registers>
class DeviceWarp {
 public:
  __device__ DeviceWarp(Registers& registers, int thread) : r_(registers), thread_(thread) {}
  __device__ int index() const { return thread_ / kWarpSize; }
  template <class F>
  __device__ void each_lane(const F& f) {
    f(thread_ % kWarpSize, r_);
  }
  __device__ Registers& own() { return r_; }
  __device__ int lane() const { return thread_ % kWarpSize; }

 private:
  Registers& r_;
  int thread_;
};

template <class Mma, class Registers, class A, class B, class Acc>
__device__ void mma_sync(DeviceWarp<Registers>& warp, const A& a, const B& b, const Acc& acc) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const uint32_t* ra = a(warp.own());
  const uint32_t* rb = b(warp.own());
  float* c = acc(warp.own());
  if constexpr (Mma::kFormat == MmaFormat::kTf32)
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
  else if constexpr (Mma::kFormat == MmaFormat::kHalf)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
#else
  __trap();  // tensor-core kernels are chosen for sm_80 and newer only
#endif
}

template <int Count, class Registers, class Row, class Dst>
__device__ void ldmatrix(DeviceWarp<Registers>& warp, const Row& row, const Dst& dst) {
  static_assert(Count == 1 || Count == 2 || Count == 4, "ldmatrix loads 1, 2 or 4 matrices");
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(row(warp.lane())));
  uint32_t* d = dst(warp.own());
  if constexpr (Count == 4)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(address));
  else if constexpr (Count == 2)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(d[0]), "=r"(d[1])
                 : "r"(address));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(d[0]) : "r"(address));
}

#endif  // __CUDACC__

}  // namespace cnnfast
