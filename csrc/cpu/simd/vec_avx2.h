// 256-bit vectors for the AVX2+FMA kernels. Include only from translation units compiled with -mavx2 -mfma.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace fastnn::cpu::simd {
namespace {  // internal linkage: never merged with another ISA's copy by the linker

alignas(32) constexpr int32_t kMaskTable32[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

struct F32x8 {
  using Scalar = float;
  static constexpr int kWidth = 8;
  __m256 v;

  static F32x8 zero() { return {_mm256_setzero_ps()}; }
  static F32x8 set1(float x) { return {_mm256_set1_ps(x)}; }
  static F32x8 broadcast(const float* p) { return {_mm256_broadcast_ss(p)}; }
  static F32x8 load(const float* p) { return {_mm256_load_ps(p)}; }
  static F32x8 loadu(const float* p) { return {_mm256_loadu_ps(p)}; }
  // The first n (0..8) lanes from p, zeros elsewhere; reads nothing beyond p[n-1].
  static F32x8 load_first(const float* p, int n) { return {_mm256_maskload_ps(p, mask(n))}; }
  void storeu(float* p) const { _mm256_storeu_ps(p, v); }
  void store_first(float* p, int n) const { _mm256_maskstore_ps(p, mask(n), v); }
  static __m256i mask(int n) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable32 + 8 - n)); }
  float reduce_add() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
inline F32x8 fmadd(F32x8 a, F32x8 b, F32x8 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline F32x8 mul(F32x8 a, F32x8 b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline F32x8 add(F32x8 a, F32x8 b) { return {_mm256_add_ps(a.v, b.v)}; }
// max(0, x) with x's NaN and -0 kept (MAXPS returns its second operand for NaN and for equal zeros): ReLU as
// `x < 0 ? 0 : x`.
inline F32x8 relu(F32x8 x) { return {_mm256_max_ps(_mm256_setzero_ps(), x.v)}; }

struct F64x4 {
  using Scalar = double;
  static constexpr int kWidth = 4;
  __m256d v;

  static F64x4 zero() { return {_mm256_setzero_pd()}; }
  static F64x4 set1(double x) { return {_mm256_set1_pd(x)}; }
  static F64x4 broadcast(const double* p) { return {_mm256_broadcast_sd(p)}; }
  static F64x4 load(const double* p) { return {_mm256_load_pd(p)}; }
  static F64x4 loadu(const double* p) { return {_mm256_loadu_pd(p)}; }
  static F64x4 load_first(const double* p, int n) { return {_mm256_maskload_pd(p, mask(n))}; }
  void storeu(double* p) const { _mm256_storeu_pd(p, v); }
  void store_first(double* p, int n) const { _mm256_maskstore_pd(p, mask(n), v); }
  // 64-bit lane masks from the 32-bit table: lane i is set when i < n.
  static __m256i mask(int n) {
    return _mm256_cvtepi32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kMaskTable32 + 8 - n)));
  }
  double reduce_add() const {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
};
inline F64x4 fmadd(F64x4 a, F64x4 b, F64x4 c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
inline F64x4 mul(F64x4 a, F64x4 b) { return {_mm256_mul_pd(a.v, b.v)}; }
inline F64x4 add(F64x4 a, F64x4 b) { return {_mm256_add_pd(a.v, b.v)}; }
inline F64x4 relu(F64x4 x) { return {_mm256_max_pd(_mm256_setzero_pd(), x.v)}; }

}  // namespace
}  // namespace fastnn::cpu::simd
