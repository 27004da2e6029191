// Width-generic SIMD vectors (GCC / Clang vector extensions) and vectorized exp, expm1, log, log1p, tanh and
// sigmoid for the per-ISA elementwise and optimizer kernels (elementwise_kernel_impl.h).
//
// Vec<T, W>::V is a W-lane vector of T; the translation unit's -m flags decide which instructions it becomes
// (W * sizeof(T) == 64 bytes: AVX-512, 32: AVX2, 16: SSE2; on other CPUs the compiler splits it into scalars).
// Those translation units are compiled with -ffp-contract=off, so `a * b + c` is always two roundings, exactly
// as in the scalar reference code; fused multiply-adds appear only where fma() is written (the polynomials),
// so a value's rounding never depends on how the compiler scheduled a loop, on the lane it sits in or on where
// a thread's chunk starts.
//
// Accuracy (tests/kernels/test_simd_math.py sweeps them against libm): exp, expm1, log, log1p, tanh and
// sigmoid are within 2 ulp of the correctly rounded result in float32 and float64 over their whole range, overflow to inf
// and underflow to 0 like libm, and propagate NaN. The kernels run with denormals flushed (FTZ / DAZ, see
// DenormalsAreZero), so a denormal input counts as 0 and a result below the smallest normal may become 0.
//
// Everything here has internal linkage (an unnamed namespace): the copy compiled with -mavx512f is never merged
// by the linker with the baseline copy of another translation unit. For the same reason this header calls no
// inline function of the C++ standard library (its out-of-line copies could be merged), and no libm function.
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "fastnn/common.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace fastnn::cpu::vmath {
namespace {

template <typename T> struct LaneBits;
template <> struct LaneBits<float> {
  using Int = int32_t;
  static constexpr int kMantissa = 23;
  static constexpr Int kBias = 127;
};
template <> struct LaneBits<double> {
  using Int = int64_t;
  static constexpr int kMantissa = 52;
  static constexpr Int kBias = 1023;
};

// Per-type constants of the elementary functions.
template <typename T> struct MathConst;
template <> struct MathConst<float> {
  static constexpr float kLog2e = 1.44269504088896341f;
  // ln 2 = kLn2Hi + kLn2Lo, kLn2Hi with few significant bits so that k * kLn2Hi is exact (Cephes).
  static constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  static constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  static constexpr float kExpHi = 89.0f;     // exp(89) overflows float: larger inputs give inf
  static constexpr float kExpLo = -104.0f;   // exp(-104) is below the smallest denormal: smaller give 0
  static constexpr float kExpm1Hi = 88.0f;   // above it expm1 is exp
  static constexpr float kExpm1Lo = -18.0f;  // below it expm1 rounds to -1
  static constexpr float kTanhClamp = 10.0f; // tanh(10) rounds to 1 in float
  static constexpr float kMinNormal = 1.17549435e-38f;
  // log: fdlibm's ln 2 split and its minimax coefficients of log(1 + f) (e_logf.c)
  static constexpr float kLogLn2Hi = 6.9313812256e-01f, kLogLn2Lo = 9.0580006145e-06f;
};
template <> struct MathConst<double> {
  static constexpr double kLog2e = 1.4426950408889634074;
  static constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;  // fdlibm
  static constexpr double kRoundMagic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double kExpHi = 710.0;
  static constexpr double kExpLo = -746.0;
  static constexpr double kExpm1Hi = 709.0;
  static constexpr double kExpm1Lo = -40.0;
  static constexpr double kTanhClamp = 20.0;
  static constexpr double kMinNormal = 2.2250738585072014e-308;
  static constexpr double kLogLn2Hi = 6.93147180369123816490e-01, kLogLn2Lo = 1.90821492927058770002e-10;
};

template <typename T, int W>
struct Vec {
  static_assert(W == 1 || W == 2 || W == 4 || W == 8 || W == 16, "lane counts are powers of two up to 16");
  typedef T V __attribute__((vector_size(W * sizeof(T))));
  using Int = typename LaneBits<T>::Int;
  typedef Int I __attribute__((vector_size(W * sizeof(T))));  // lane masks: all ones (true) or zero
  using C = MathConst<T>;
  static constexpr int kWidth = W;

  // ---- construction, memory ------------------------------------------------------------------------------
  // x in every lane. (x - 0 is x exactly, -0 and NaN included; written so GCC emits one broadcast, where a
  // lane-by-lane loop became W masked inserts.)
  static FASTNN_ALWAYS_INLINE V splat(T x) { return x - V{}; }
  static FASTNN_ALWAYS_INLINE V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static FASTNN_ALWAYS_INLINE void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
  // Lanes 0 .. n-1 true.
  static FASTNN_ALWAYS_INLINE I lanes_below(int64_t n) {
    I idx;
    for (int i = 0; i < W; ++i) idx[i] = i;
    return idx < static_cast<Int>(n);
  }
  // The first n (0 < n <= W) lanes from p, `fill` in the others; reads nothing beyond p[n - 1]. Masked loads and
  // stores where the ISA has them (a partial memcpy into a vector would stall on store forwarding, per row).
  static FASTNN_ALWAYS_INLINE V load_first(const T* p, int64_t n, T fill) {
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64) {
      if constexpr (sizeof(T) == 4)
        return (V)_mm512_mask_loadu_ps((__m512)splat(fill), static_cast<__mmask16>((1u << n) - 1u), p);
      else
        return (V)_mm512_mask_loadu_pd((__m512d)splat(fill), static_cast<__mmask8>((1u << n) - 1u), p);
    }
#endif
#if defined(__AVX2__)
    if constexpr (sizeof(V) == 32) {
      const I mask = lanes_below(n);
      V v;
      if constexpr (sizeof(T) == 4) v = (V)_mm256_maskload_ps(reinterpret_cast<const float*>(p), (__m256i)mask);
      else v = (V)_mm256_maskload_pd(reinterpret_cast<const double*>(p), (__m256i)mask);
      return select(mask, v, splat(fill));
    }
#endif
#if defined(__SSE2__)
    if constexpr (sizeof(V) == 16) {  // n < W here: 1 double, or 1 to 3 floats
      if constexpr (sizeof(T) == 8) {
        return select(lanes_below(n), (V)_mm_load_sd(reinterpret_cast<const double*>(p)), splat(fill));
      } else {
        const float* f = reinterpret_cast<const float*>(p);
        // Two floats as one 64-bit load: _mm_loadl_epi64 reads through an unaligned type (a float row is only
        // 4-byte aligned; _mm_load_sd through a double* would be a misaligned access, undefined behaviour).
        __m128 v = n >= 2 ? _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i_u*>(f))) : _mm_load_ss(f);
        if (n == 3) v = _mm_movelh_ps(v, _mm_load_ss(f + 2));
        return select(lanes_below(n), (V)v, splat(fill));
      }
    }
#endif
    V v = splat(fill);
    for (int64_t i = 0; i < n; ++i) v[i] = p[i];
    return v;
  }
  static FASTNN_ALWAYS_INLINE void store_first(T* p, V v, int64_t n) {
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64) {
      if constexpr (sizeof(T) == 4) _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), (__m512)v);
      else _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1u), (__m512d)v);
      return;
    }
#endif
#if defined(__AVX2__)
    if constexpr (sizeof(V) == 32) {
      const I mask = lanes_below(n);
      if constexpr (sizeof(T) == 4) _mm256_maskstore_ps(reinterpret_cast<float*>(p), (__m256i)mask, (__m256)v);
      else _mm256_maskstore_pd(reinterpret_cast<double*>(p), (__m256i)mask, (__m256d)v);
      return;
    }
#endif
#if defined(__SSE2__)
    if constexpr (sizeof(V) == 16) {
      if constexpr (sizeof(T) == 8) {
        _mm_store_sd(reinterpret_cast<double*>(p), (__m128d)v);
      } else {
        float* f = reinterpret_cast<float*>(p);
        if (n >= 2) _mm_storel_epi64(reinterpret_cast<__m128i_u*>(f), _mm_castps_si128((__m128)v));  // unaligned-safe
        else _mm_store_ss(f, (__m128)v);
        if (n == 3) _mm_store_ss(f + 2, _mm_movehl_ps((__m128)v, (__m128)v));
      }
      return;
    }
#endif
    for (int64_t i = 0; i < n; ++i) p[i] = v[i];
  }

  // ---- arithmetic --------------------------------------------------------------------------------------
  static FASTNN_ALWAYS_INLINE V select(I mask, V a, V b) { return mask ? a : b; }
  static FASTNN_ALWAYS_INLINE I bits(V v) { return (I)v; }  // a vector cast reinterprets the bits
  static FASTNN_ALWAYS_INLINE V from_bits(I i) { return (V)i; }
  static FASTNN_ALWAYS_INLINE V abs(V v) {
    return from_bits(bits(v) & ~(static_cast<Int>(1) << (sizeof(T) * 8 - 1)));
  }
  // |magnitude| with the sign of `sign`.
  static FASTNN_ALWAYS_INLINE V copysign(V magnitude, V sign) {
    const Int sign_bit = static_cast<Int>(1) << (sizeof(T) * 8 - 1);
    return from_bits((bits(magnitude) & ~sign_bit) | (bits(sign) & sign_bit));
  }
  // a * b + c with one rounding where the ISA has FMA, two otherwise.
  static FASTNN_ALWAYS_INLINE V fma(V a, V b, V c) {
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64) {
      if constexpr (sizeof(T) == 4) return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
      else return (V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
    }
#endif
#if defined(__FMA__)
    if constexpr (sizeof(V) == 32) {
      if constexpr (sizeof(T) == 4) return (V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
      else return (V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
    }
#endif
    return a * b + c;
  }
  // Correctly rounded square root (IEEE), so it matches std::sqrt bit for bit.
  static FASTNN_ALWAYS_INLINE V sqrt(V v) {
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64) {
      if constexpr (sizeof(T) == 4) return (V)_mm512_sqrt_ps((__m512)v);
      else return (V)_mm512_sqrt_pd((__m512d)v);
    }
#endif
#if defined(__AVX__)
    if constexpr (sizeof(V) == 32) {
      if constexpr (sizeof(T) == 4) return (V)_mm256_sqrt_ps((__m256)v);
      else return (V)_mm256_sqrt_pd((__m256d)v);
    }
#endif
#if defined(__SSE2__)
    if constexpr (sizeof(V) == 16) {
      if constexpr (sizeof(T) == 4) return (V)_mm_sqrt_ps((__m128)v);
      else return (V)_mm_sqrt_pd((__m128d)v);
    }
#endif
    for (int i = 0; i < W; ++i) v[i] = sizeof(T) == 4 ? static_cast<T>(sqrtf(static_cast<float>(v[i]))) : static_cast<T>(::sqrt(static_cast<double>(v[i])));
    return v;
  }
  // std::max(a, b) and std::min(a, b) exactly, NaN included: max returns a unless a < b.
  static FASTNN_ALWAYS_INLINE V max_like_std(V a, V b) { return select(a < b, b, a); }
  static FASTNN_ALWAYS_INLINE V min_like_std(V a, V b) { return select(b < a, b, a); }
  static FASTNN_ALWAYS_INLINE bool any(I mask) {
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64) return _mm512_test_epi32_mask((__m512i)mask, (__m512i)mask) != 0;
#endif
#if defined(__AVX__)
    if constexpr (sizeof(V) == 32) return !_mm256_testz_si256((__m256i)mask, (__m256i)mask);
#endif
#if defined(__SSE2__)
    if constexpr (sizeof(V) == 16) return _mm_movemask_epi8((__m128i)mask) != 0;
#endif
    Int acc = 0;
    for (int i = 0; i < W; ++i) acc |= mask[i];
    return acc != 0;
  }

  // ---- horizontal --------------------------------------------------------------------------------------
  // The halves of v, as vectors of W / 2 lanes (lane i of hi is lane W / 2 + i of v).
  using Half = Vec<T, (W > 1 ? W / 2 : 1)>;
  template <size_t Offset, size_t... L>
  static FASTNN_ALWAYS_INLINE typename Half::V lanes(V v, std::index_sequence<L...>) {
    return __builtin_shufflevector(v, v, (L + Offset)...);
  }
  static FASTNN_ALWAYS_INLINE void halves(V v, typename Half::V* lo, typename Half::V* hi) {
    *lo = lanes<0>(v, std::make_index_sequence<W / 2>{});
    *hi = lanes<W / 2>(v, std::make_index_sequence<W / 2>{});
  }
  // Lane sum by halving: lane i + lane i + W/2, then again, ...: the fixed tree of Sum16::total within a vector.
  static FASTNN_ALWAYS_INLINE T sum_lanes(V v) {
    if constexpr (W == 1) {
      return v[0];
    } else {
      typename Half::V lo, hi;
      halves(v, &lo, &hi);
      return Half::sum_lanes(lo + hi);
    }
  }
  static FASTNN_ALWAYS_INLINE T max_lanes(V v) {  // for NaN-free v
    if constexpr (W == 1) {
      return v[0];
    } else {
      typename Half::V lo, hi;
      halves(v, &lo, &hi);
      return Half::max_lanes(hi > lo ? hi : lo);
    }
  }

  // ---- elementary functions -------------------------------------------------------------------------------
  // 2^k for integer-valued lanes k (as the low bits of t = k + kRoundMagic) with k + bias in (0, 2 * bias].
  static FASTNN_ALWAYS_INLINE V pow2_from_rounded(I k) {
    return from_bits((k + LaneBits<T>::kBias) << LaneBits<T>::kMantissa);
  }

  // exp(r) - 1 for |r| <= ln(2) / 2 + a little, as r + r^2 * q(r).
  static FASTNN_ALWAYS_INLINE V expm1_reduced(V r) {
    const V r2 = r * r;
    V q;
    if constexpr (sizeof(T) == 4) {
      // Cephes expf's minimax polynomial: exp(r) = 1 + r + r^2 * q(r), |r| <= 0.5 ln 2.
      q = splat(1.9875691500e-4f);
      q = fma(q, r, splat(1.3981999507e-3f));
      q = fma(q, r, splat(8.3334519073e-3f));
      q = fma(q, r, splat(4.1665795894e-2f));
      q = fma(q, r, splat(1.6666665459e-1f));
      q = fma(q, r, splat(5.0000001201e-1f));
    } else {
      // Taylor series to r^13: the first omitted term is below 5e-18 relative for |r| <= 0.35.
      q = splat(1.0 / 6227020800.0);        // 1/13!
      q = fma(q, r, splat(1.0 / 479001600.0));  // 1/12!
      q = fma(q, r, splat(1.0 / 39916800.0));
      q = fma(q, r, splat(1.0 / 3628800.0));
      q = fma(q, r, splat(1.0 / 362880.0));
      q = fma(q, r, splat(1.0 / 40320.0));
      q = fma(q, r, splat(1.0 / 5040.0));
      q = fma(q, r, splat(1.0 / 720.0));
      q = fma(q, r, splat(1.0 / 120.0));
      q = fma(q, r, splat(1.0 / 24.0));
      q = fma(q, r, splat(1.0 / 6.0));
      q = fma(q, r, splat(0.5));
    }
    return fma(q, r2, r);
  }

  // x = k ln 2 + r, |r| <= ln(2) / 2 (Cody-Waite with a two-part ln 2). Returns r and k (as integer lanes).
  static FASTNN_ALWAYS_INLINE V reduce_ln2(V x, I* k) {
    const V t = fma(x, splat(C::kLog2e), splat(C::kRoundMagic));
    const V kf = t - splat(C::kRoundMagic);
    *k = bits(t) - bits(splat(C::kRoundMagic));
    V r = fma(kf, splat(-C::kLn2Hi), x);
    return fma(kf, splat(-C::kLn2Lo), r);
  }

  static FASTNN_ALWAYS_INLINE V exp(V x) {
    // Clamp (NaN fails both comparisons and stays NaN): beyond the bounds the result is inf or 0 anyway.
    x = select(x > splat(C::kExpHi), splat(C::kExpHi), x);
    x = select(x < splat(C::kExpLo), splat(C::kExpLo), x);
    I k;
    const V r = reduce_ln2(x, &k);
    const V p = expm1_reduced(r) + splat(T(1));
    // 2^k in two factors, so that neither leaves the normal range at the ends (k from -150 to 128 in float).
    const I k1 = k >> 1;
    return (p * pow2_from_rounded(k1)) * pow2_from_rounded(k - k1);
  }

  static FASTNN_ALWAYS_INLINE V expm1(V x) {
    const V xc0 = select(x > splat(C::kExpm1Hi), splat(C::kExpm1Hi), x);
    const V xc = select(xc0 < splat(C::kExpm1Lo), splat(C::kExpm1Lo), xc0);
    I k;
    const V r = reduce_ln2(xc, &k);
    const V pm1 = expm1_reduced(r);
    const V s = pow2_from_rounded(k);
    // 2^k (1 + pm1) - 1 = 2^k pm1 + (2^k - 1): the product is exact, and for k = 0 this is pm1 itself.
    V y = fma(s, pm1, s - splat(T(1)));
    const I big = x > splat(C::kExpm1Hi);
    if (any(big)) y = select(big, exp(x), y);
    return select(x == splat(T(0)), x, y);  // expm1(-0) = -0
  }

  // Natural log (fdlibm's e_log.c / e_logf.c scheme): x = 2^k (1 + f), sqrt(2)/2 <= 1 + f < sqrt(2),
  // log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f). Zero and (flushed) denormals give -inf,
  // negative inputs NaN, inf inf.
  static FASTNN_ALWAYS_INLINE V log(V x) {
    constexpr int kM = LaneBits<T>::kMantissa;
    const Int mantissa_mask = (static_cast<Int>(1) << kM) - 1;
    const I xb = bits(x);
    V m = from_bits((xb & mantissa_mask) | bits(splat(T(1))));  // the significand, in [1, 2)
    const I high = m > splat(static_cast<T>(1.41421356237309504880));
    m = select(high, m * splat(T(0.5)), m);  // now in [sqrt(2)/2, sqrt(2)), x = 2^e m
    const I biased = (xb >> kM) & static_cast<Int>(2 * LaneBits<T>::kBias + 1);
    const I e = biased - LaneBits<T>::kBias + (high & static_cast<Int>(1));
    V kf;
    if constexpr (sizeof(T) == 4) {
      kf = __builtin_convertvector(e, V);
    } else {
      // int64 -> double without AVX-512DQ: place e + 2^20 (positive, small) in the low mantissa bits of 2^52.
      const V two52 = splat(4503599627370496.0);
      kf = from_bits(bits(two52) | (e + static_cast<Int>(1 << 20))) - two52 - splat(static_cast<T>(1 << 20));
    }
    const V f = m - splat(T(1));
    const V s = f / (splat(T(2)) + f);
    const V z = s * s;
    const V w = z * z;
    V r;
    if constexpr (sizeof(T) == 4) {
      const V t1 = w * fma(w, splat(0.24279078841f), splat(0.40000972152f));
      const V t2 = z * fma(w, splat(0.28498786688f), splat(0.66666662693f));
      r = t2 + t1;
    } else {
      const V t1 = w * fma(w, fma(w, splat(1.531383769920937332e-01), splat(2.222219843214978396e-01)),
                           splat(3.999999999940941908e-01));
      const V t2 = z * fma(w, fma(w, fma(w, splat(1.479819860511658591e-01), splat(1.818357216161805012e-01)),
                                  splat(2.857142874366239149e-01)),
                           splat(6.666666666666735130e-01));
      r = t2 + t1;
    }
    const V hfsq = splat(T(0.5)) * f * f;
    V y = kf * splat(C::kLogLn2Hi) - ((hfsq - (s * (hfsq + r) + kf * splat(C::kLogLn2Lo))) - f);
    const T inf = __builtin_huge_val();
    y = select(x < splat(C::kMinNormal), splat(-inf), y);  // 0 and flushed denormals
    y = select(x < splat(T(0)), splat(T(__builtin_nan(""))), y);
    y = select(x == splat(inf), x, y);
    y = select(x != x, x, y);
    return y;
  }

  // log(1 + u) for u >= -1: log(m) with m = 1 + u rounded, corrected by (u - (m - 1)) / m (both exact parts).
  static FASTNN_ALWAYS_INLINE V log1p(V u) {
    const V m = splat(T(1)) + u;
    const V correction = (u - (m - splat(T(1)))) / m;
    const T inf = __builtin_huge_val();
    const I edge = (m == splat(T(0))) | (m == splat(inf));
    return select(u == splat(T(0)), u, log(m) + select(edge, splat(T(0)), correction));  // log1p(-0) = -0
  }

  // tanh(x) = sign(x) e / (e + 2), e = expm1(2 |x|): relative accuracy carried by expm1 down to tiny |x|.
  static FASTNN_ALWAYS_INLINE V tanh(V x) {
    V a = abs(x);
    a = select(a > splat(C::kTanhClamp), splat(C::kTanhClamp), a);
    const V e = expm1(a + a);
    return copysign(e / (e + splat(T(2))), x);
  }

  // The logistic function, evaluated without exp of a large positive number: e = exp(-|x|),
  // sigmoid = 1 / (1 + e) for x >= 0 and e / (1 + e) below (NaN stays NaN).
  static FASTNN_ALWAYS_INLINE V sigmoid(V x) {
    const V e = exp(-abs(x));
    const V numerator = select(x >= splat(T(0)), splat(T(1)), e);
    return numerator / (splat(T(1)) + e);
  }
};

// Sixteen running sums in a fixed layout: element j of a row goes to sum j % 16, and the sums are combined by a
// fixed halving tree. The order of additions is the same whatever the vector width, so an IEEE-exact sum (of the
// same inputs) is bit-identical on every ISA, and it never depends on the thread count.
template <typename T, int W>
struct Sum16 {
  using M = Vec<T, W>;
  using V = typename M::V;
  static constexpr int kVecs = 16 / W;
  V acc[kVecs];
  FASTNN_ALWAYS_INLINE Sum16() {
    for (int k = 0; k < kVecs; ++k) acc[k] = M::splat(T(0));
  }
  // Adds lane values v into vector slot k (elements 16 q + k W .. 16 q + k W + W - 1).
  FASTNN_ALWAYS_INLINE void add(int k, V v) { acc[k] = acc[k] + v; }
  FASTNN_ALWAYS_INLINE void add_first(int k, V v, int64_t n) { acc[k] = M::select(M::lanes_below(n), acc[k] + v, acc[k]); }
  // Sum j (j < 16) holds lane j % W of acc[j / W]. The tree adds sum i + sum i + h for h = 8, 4, 2, 1: while h >= W
  // that pairs whole vectors (acc[k] + acc[k + h / W]), then it halves within one vector (M::sum_lanes).
  FASTNN_ALWAYS_INLINE T total() const {
    V v[kVecs];
    for (int k = 0; k < kVecs; ++k) v[k] = acc[k];
    for (int n = kVecs; n > 1; n /= 2)
      for (int k = 0; k < n / 2; ++k) v[k] = v[k] + v[k + n / 2];
    return M::sum_lanes(v[0]);
  }
};

// Calls body(k, offset, count) for each vector of a row of n elements in the Sum16 layout: full groups of 16,
// then the partial vectors of the last group (count < W only in the last one).
template <int W, typename Body>
FASTNN_ALWAYS_INLINE void for_each_vector16(int64_t n, const Body& body) {
  constexpr int kVecs = 16 / W;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int k = 0; k < kVecs; ++k) body(k, j + k * W, int64_t{W});
  for (int k = 0; k < kVecs; ++k) {
    const int64_t offset = j + k * W;
    if (offset >= n) break;
    body(k, offset, n - offset < W ? n - offset : int64_t{W});
  }
}

}  // namespace
}  // namespace fastnn::cpu::vmath
