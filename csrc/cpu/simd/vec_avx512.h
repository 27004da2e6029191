// 512-bit vectors for the AVX-512F kernels. Include only from translation units compiled with -mavx512f.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace fastnn::cpu::simd {
namespace {  // internal linkage: never merged with another ISA's copy by the linker

struct F32x16 {
  using Scalar = float;
  static constexpr int kWidth = 16;
  __m512 v;

  static F32x16 zero() { return {_mm512_setzero_ps()}; }
  static F32x16 set1(float x) { return {_mm512_set1_ps(x)}; }
  static F32x16 broadcast(const float* p) { return {_mm512_set1_ps(*p)}; }
  static F32x16 load(const float* p) { return {_mm512_load_ps(p)}; }
  static F32x16 loadu(const float* p) { return {_mm512_loadu_ps(p)}; }
  static F32x16 load_first(const float* p, int n) { return {_mm512_maskz_loadu_ps(mask(n), p)}; }
  void storeu(float* p) const { _mm512_storeu_ps(p, v); }
  void store_first(float* p, int n) const { _mm512_mask_storeu_ps(p, mask(n), v); }
  static __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  // (Not _mm512_reduce_add_ps: GCC 12's version trips -Wmaybe-uninitialized inside its own header.)
  float reduce_add() const {
    const __m256 lo = _mm512_castps512_ps256(v);
    const __m256 hi = _mm512_castps512_ps256(_mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
inline F32x16 fmadd(F32x16 a, F32x16 b, F32x16 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline F32x16 mul(F32x16 a, F32x16 b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline F32x16 add(F32x16 a, F32x16 b) { return {_mm512_add_ps(a.v, b.v)}; }
// max(0, x) with x's NaN and -0 kept (MAXPS returns its second operand for NaN and for equal zeros): ReLU as
// `x < 0 ? 0 : x`.
inline F32x16 relu(F32x16 x) { return {_mm512_max_ps(_mm512_setzero_ps(), x.v)}; }

struct F64x8 {
  using Scalar = double;
  static constexpr int kWidth = 8;
  __m512d v;

  static F64x8 zero() { return {_mm512_setzero_pd()}; }
  static F64x8 set1(double x) { return {_mm512_set1_pd(x)}; }
  static F64x8 broadcast(const double* p) { return {_mm512_set1_pd(*p)}; }
  static F64x8 load(const double* p) { return {_mm512_load_pd(p)}; }
  static F64x8 loadu(const double* p) { return {_mm512_loadu_pd(p)}; }
  static F64x8 load_first(const double* p, int n) { return {_mm512_maskz_loadu_pd(mask(n), p)}; }
  void storeu(double* p) const { _mm512_storeu_pd(p, v); }
  void store_first(double* p, int n) const { _mm512_mask_storeu_pd(p, mask(n), v); }
  static __mmask8 mask(int n) { return static_cast<__mmask8>((1u << n) - 1u); }
  double reduce_add() const {
    const __m256d lo = _mm512_castpd512_pd256(v);
    const __m256d hi = _mm512_castpd512_pd256(_mm512_shuffle_f64x2(v, v, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256d s4 = _mm256_add_pd(lo, hi);
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
};
inline F64x8 fmadd(F64x8 a, F64x8 b, F64x8 c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
inline F64x8 mul(F64x8 a, F64x8 b) { return {_mm512_mul_pd(a.v, b.v)}; }
inline F64x8 add(F64x8 a, F64x8 b) { return {_mm512_add_pd(a.v, b.v)}; }
inline F64x8 relu(F64x8 x) { return {_mm512_max_pd(_mm512_setzero_pd(), x.v)}; }

}  // namespace
}  // namespace fastnn::cpu::simd
