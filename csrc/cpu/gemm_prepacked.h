// op(B) packed once into the packed GEMM's panels, then multiplied by many different A: a recurrence's weights,
// read by every one of its steps (rnn.cpp). gemm() repacks B on every call, or, for the small products of a
// recurrence step, reads it by rows ldb apart (a 128 x 512 float kernel: rows 2 KiB apart, out of the prefetchers'
// reach); packing it once saves both.
//
// The product runs on the calling thread (the recurrence runs one block of rows per thread). Each element of C is
// one fused-multiply-add chain over K in order, split at the kernel set's KC like gemm()'s packed path: for
// K <= KC the bits of gemm()'s packed and direct paths, and in every case independent of M and of the other rows
// of A (gemm() itself switches to its GEMV kernels at M == 1).
#pragma once

#include <cstdint>
#include <vector>

#include "fastnn/common.h"
#include "fastnn/gemm.h"
#include "gemm_kernels.h"

namespace fastnn::cpu {

template <typename T>
class PackedB {
 public:
  // op(B) (K x N): b stored (K, N) with row stride ldb, or (N, K) when trans_b. Uses the kernel set (SIMD path,
  // cache blocking) active now, which the products then use too.
  PackedB(const T* b, int64_t k, int64_t n, int64_t ldb, bool trans_b);
  PackedB(const PackedB&) = delete;
  PackedB& operator=(const PackedB&) = delete;

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  const detail::GemmKernelSet<T>& kernels() const { return ks_; }
  // The panels of the block (columns [jb * NC, ...), rows [pb * KC, ...)) of op(B).
  const T* block(int64_t jb, int64_t pb) const { return data_ + offsets_[jb * k_blocks_ + pb]; }

 private:
  detail::GemmKernelSet<T> ks_;
  int64_t k_ = 0, n_ = 0, k_blocks_ = 0;
  std::vector<int64_t> offsets_;
  ScratchBuffer storage_;
  T* data_ = nullptr;
};

// C = act(alpha * op(A) @ op(B) + beta * C + bias) for p.m rows; p.k and p.n must be b's (std::invalid_argument
// otherwise), p.trans_b and p.ldb are ignored (b holds op(B)). On the calling thread.
template <typename T>
void gemm_prepacked(T* c, const T* a, const PackedB<T>& b, const GemmParams<T>& p);

}  // namespace fastnn::cpu
