#pragma once
// CNNFAST_HD marks code that nvcc compiles for both host and device; the
// plain C++ compiler sees ordinary inline functions. This is what lets the
// CPU kernels, the CUDA kernels and the CUDA emulation share one arithmetic.
#if defined(__CUDACC__)
#define CNNFAST_HD __host__ __device__
#else
#define CNNFAST_HD
#endif
#define CNNFAST_INLINE CNNFAST_HD inline

// Full unrolling for nvcc where a loop indexes a register array (left
// rolled, the array would live in local memory); the host compiler decides
// for itself.
#if defined(__CUDACC__)
#define CNNFAST_UNROLL _Pragma("unroll")
#else
#define CNNFAST_UNROLL
#endif
