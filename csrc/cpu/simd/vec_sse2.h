// 128-bit SSE2 vectors (the x86-64 baseline) for the portable kernels, with a scalar fallback on other
// architectures. Multiply and add are separate: there is no FMA in the baseline ISA.
#pragma once

#include <cstdint>

#if defined(__SSE2__) || defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#define FASTNN_VEC_SSE2 1
#endif

namespace fastnn::cpu::simd {
namespace {  // internal linkage: never merged with another ISA's copy by the linker

#if defined(FASTNN_VEC_SSE2)
struct F32x4 {
  using Scalar = float;
  static constexpr int kWidth = 4;
  __m128 v;
  static F32x4 zero() { return {_mm_setzero_ps()}; }
  static F32x4 set1(float x) { return {_mm_set1_ps(x)}; }
  static F32x4 broadcast(const float* p) { return {_mm_load1_ps(p)}; }
  static F32x4 load(const float* p) { return {_mm_load_ps(p)}; }
  static F32x4 loadu(const float* p) { return {_mm_loadu_ps(p)}; }
  static F32x4 load_first(const float* p, int n) {
    alignas(16) float tmp[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; ++i) tmp[i] = p[i];
    return {_mm_load_ps(tmp)};
  }
  void storeu(float* p) const { _mm_storeu_ps(p, v); }
  void store_first(float* p, int n) const {
    alignas(16) float tmp[4];
    _mm_store_ps(tmp, v);
    for (int i = 0; i < n; ++i) p[i] = tmp[i];
  }
  float reduce_add() const {
    alignas(16) float tmp[4];
    _mm_store_ps(tmp, v);
    return (tmp[0] + tmp[1]) + (tmp[2] + tmp[3]);
  }
};
inline F32x4 fmadd(F32x4 a, F32x4 b, F32x4 c) { return {_mm_add_ps(_mm_mul_ps(a.v, b.v), c.v)}; }
inline F32x4 mul(F32x4 a, F32x4 b) { return {_mm_mul_ps(a.v, b.v)}; }
inline F32x4 add(F32x4 a, F32x4 b) { return {_mm_add_ps(a.v, b.v)}; }
// max(0, x) with x's NaN and -0 kept (MAXPS returns its second operand for NaN and for equal zeros): ReLU as
// `x < 0 ? 0 : x`.
inline F32x4 relu(F32x4 x) { return {_mm_max_ps(_mm_setzero_ps(), x.v)}; }

struct F64x2 {
  using Scalar = double;
  static constexpr int kWidth = 2;
  __m128d v;
  static F64x2 zero() { return {_mm_setzero_pd()}; }
  static F64x2 set1(double x) { return {_mm_set1_pd(x)}; }
  static F64x2 broadcast(const double* p) { return {_mm_load1_pd(p)}; }
  static F64x2 load(const double* p) { return {_mm_load_pd(p)}; }
  static F64x2 loadu(const double* p) { return {_mm_loadu_pd(p)}; }
  static F64x2 load_first(const double* p, int n) { return {n >= 2 ? _mm_loadu_pd(p) : n == 1 ? _mm_load_sd(p) : _mm_setzero_pd()}; }
  void storeu(double* p) const { _mm_storeu_pd(p, v); }
  void store_first(double* p, int n) const {
    if (n >= 2) _mm_storeu_pd(p, v);
    else if (n == 1) _mm_store_sd(p, v);
  }
  double reduce_add() const { return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v))); }
};
inline F64x2 fmadd(F64x2 a, F64x2 b, F64x2 c) { return {_mm_add_pd(_mm_mul_pd(a.v, b.v), c.v)}; }
inline F64x2 mul(F64x2 a, F64x2 b) { return {_mm_mul_pd(a.v, b.v)}; }
inline F64x2 add(F64x2 a, F64x2 b) { return {_mm_add_pd(a.v, b.v)}; }
inline F64x2 relu(F64x2 x) { return {_mm_max_pd(_mm_setzero_pd(), x.v)}; }

using GenericF32 = F32x4;
using GenericF64 = F64x2;
#else
// One-lane "vectors" for CPUs without SSE2.
template <typename T>
struct Scalar1 {
  using Scalar = T;
  static constexpr int kWidth = 1;
  T v;
  static Scalar1 zero() { return {T(0)}; }
  static Scalar1 set1(T x) { return {x}; }
  static Scalar1 broadcast(const T* p) { return {*p}; }
  static Scalar1 load(const T* p) { return {*p}; }
  static Scalar1 loadu(const T* p) { return {*p}; }
  static Scalar1 load_first(const T* p, int n) { return {n > 0 ? *p : T(0)}; }
  void storeu(T* p) const { *p = v; }
  void store_first(T* p, int n) const { if (n > 0) *p = v; }
  T reduce_add() const { return v; }
};
template <typename T> Scalar1<T> fmadd(Scalar1<T> a, Scalar1<T> b, Scalar1<T> c) { return {a.v * b.v + c.v}; }
template <typename T> Scalar1<T> mul(Scalar1<T> a, Scalar1<T> b) { return {a.v * b.v}; }
template <typename T> Scalar1<T> add(Scalar1<T> a, Scalar1<T> b) { return {a.v + b.v}; }
template <typename T> Scalar1<T> relu(Scalar1<T> x) { return {x.v < T(0) ? T(0) : x.v}; }
using GenericF32 = Scalar1<float>;
using GenericF64 = Scalar1<double>;
#endif

}  // namespace
}  // namespace fastnn::cpu::simd
