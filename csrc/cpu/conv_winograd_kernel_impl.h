// Internal to conv_winograd.cpp: the Winograd F(2x2, 3x3) tile transforms, compiled once per ISA
// (conv_winograd_kernel_generic.cpp, _avx2.cpp, _avx512.cpp, like the elementwise kernels) and picked by
// active_simd_path(), so FASTNN_SIMD switches them too. They are additions and subtractions only, built with
// -ffp-contract=off: every ISA gives the same bits, whatever the vector width.
#pragma once

#include <cstdint>
#include <cstring>

#include "conv_winograd_kernels.h"
#include "fastnn/common.h"

namespace fastnn::cpu::detail {
namespace winograd_impl {

// v[k * plane + c] = (B^T d B)[k] for the 4x4 tile whose 16 pixel rows (C channels each; a zero row where the tile
// leaves the image) are d[0..15], row-major.
template <typename T>
inline void transform_input_tile(T* FASTNN_RESTRICT v, int64_t plane, const T* const* d, int64_t C) {
  const T *d0 = d[0], *d1 = d[1], *d2 = d[2], *d3 = d[3], *d4 = d[4], *d5 = d[5], *d6 = d[6], *d7 = d[7];
  const T *d8 = d[8], *d9 = d[9], *d10 = d[10], *d11 = d[11], *d12 = d[12], *d13 = d[13], *d14 = d[14], *d15 = d[15];
#pragma GCC ivdep
  for (int64_t c = 0; c < C; ++c) {
    // t = B^T d (rows): t0 = r0 - r2, t1 = r1 + r2, t2 = r2 - r1, t3 = r1 - r3
    const T t00 = d0[c] - d8[c], t01 = d1[c] - d9[c], t02 = d2[c] - d10[c], t03 = d3[c] - d11[c];
    const T t10 = d4[c] + d8[c], t11 = d5[c] + d9[c], t12 = d6[c] + d10[c], t13 = d7[c] + d11[c];
    const T t20 = d8[c] - d4[c], t21 = d9[c] - d5[c], t22 = d10[c] - d6[c], t23 = d11[c] - d7[c];
    const T t30 = d4[c] - d12[c], t31 = d5[c] - d13[c], t32 = d6[c] - d14[c], t33 = d7[c] - d15[c];
    // V = t B (columns, the same combination)
    v[0 * plane + c] = t00 - t02, v[1 * plane + c] = t01 + t02, v[2 * plane + c] = t02 - t01;
    v[3 * plane + c] = t01 - t03;
    v[4 * plane + c] = t10 - t12, v[5 * plane + c] = t11 + t12, v[6 * plane + c] = t12 - t11;
    v[7 * plane + c] = t11 - t13;
    v[8 * plane + c] = t20 - t22, v[9 * plane + c] = t21 + t22, v[10 * plane + c] = t22 - t21;
    v[11 * plane + c] = t21 - t23;
    v[12 * plane + c] = t30 - t32, v[13 * plane + c] = t31 + t32, v[14 * plane + c] = t32 - t31;
    v[15 * plane + c] = t31 - t33;
  }
}

// The 2x2 output tile A^T m A (+ bias, activation) from m[k * plane + f]; out[i][j] null where the tile's output
// pixel (i, j) lies beyond OH / OW.
template <typename T>
inline void transform_output_tile(T* const out[2][2], const T* FASTNN_RESTRICT m, int64_t plane,
                                  const T* FASTNN_RESTRICT bias,
                                  Activation act, int64_t F, T* FASTNN_RESTRICT scratch) {
  T* y00 = scratch;  // 4 rows of F: the tile's outputs before they are stored (so the loop vectorizes)
  T* y01 = scratch + F;
  T* y10 = scratch + 2 * F;
  T* y11 = scratch + 3 * F;
#pragma GCC ivdep
  for (int64_t f = 0; f < F; ++f) {
    // s = A^T m (rows): s0 = r0 + r1 + r2, s1 = r1 - r2 - r3
    const T s00 = m[0 * plane + f] + m[4 * plane + f] + m[8 * plane + f];
    const T s01 = m[1 * plane + f] + m[5 * plane + f] + m[9 * plane + f];
    const T s02 = m[2 * plane + f] + m[6 * plane + f] + m[10 * plane + f];
    const T s03 = m[3 * plane + f] + m[7 * plane + f] + m[11 * plane + f];
    const T s10 = m[4 * plane + f] - m[8 * plane + f] - m[12 * plane + f];
    const T s11 = m[5 * plane + f] - m[9 * plane + f] - m[13 * plane + f];
    const T s12 = m[6 * plane + f] - m[10 * plane + f] - m[14 * plane + f];
    const T s13 = m[7 * plane + f] - m[11 * plane + f] - m[15 * plane + f];
    const T b = bias[f];
    y00[f] = s00 + s01 + s02 + b;
    y01[f] = s01 - s02 - s03 + b;
    y10[f] = s10 + s11 + s12 + b;
    y11[f] = s11 - s12 - s13 + b;
  }
  const T* rows[2][2] = {{y00, y01}, {y10, y11}};
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      T* dst = out[i][j];
      if (dst == nullptr) continue;
      const T* src = rows[i][j];
      if (act == Activation::kRelu) {
        for (int64_t f = 0; f < F; ++f) dst[f] = src[f] < T(0) ? T(0) : src[f];  // NaN stays NaN, as the GEMM's
      } else {
        std::memcpy(dst, src, sizeof(T) * static_cast<size_t>(F));
      }
    }
}


// Input transform of tiles [t0, t1) into v (plane = the block's tile capacity x C; tile t at row t - t0).
template <typename T>
void input_tiles(T* v, int64_t plane, const T* x, const Conv2dShape& s, const Conv2dParams& p, int64_t t0,
                 int64_t t1, const T* zero_row) {
  const int64_t tiles_w = (s.ow + 1) / 2, per_image = ((s.oh + 1) / 2) * tiles_w;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / per_image, r = t % per_image;
    const int64_t ih0 = 2 * (r / tiles_w) - p.pad_top, iw0 = 2 * (r % tiles_w) - p.pad_left;
    const T* d[16];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const int64_t ih = ih0 + i, iw = iw0 + j;
        d[i * 4 + j] = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w ? x + ((n * s.h + ih) * s.w + iw) * s.c : zero_row;
      }
    transform_input_tile(v + (t - t0) * s.c, plane, d, s.c);
  }
}

// Output transform of tiles [t0, t1) from m (plane = the block's tile capacity x F) into y, + bias, activation.
template <typename T>
void output_tiles(T* y, const T* m, int64_t plane, const T* bias, Activation act, const Conv2dShape& s, int64_t t0,
                  int64_t t1, T* scratch) {
  const int64_t tiles_w = (s.ow + 1) / 2, per_image = ((s.oh + 1) / 2) * tiles_w;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / per_image, r = t % per_image;
    const int64_t oh0 = 2 * (r / tiles_w), ow0 = 2 * (r % tiles_w);
    T* out[2][2];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        out[i][j] = oh0 + i < s.oh && ow0 + j < s.ow ? y + ((n * s.oh + oh0 + i) * s.ow + ow0 + j) * s.f : nullptr;
    transform_output_tile(out, m + (t - t0) * s.f, plane, bias, act, s.f, scratch);
  }
}

// The weight gradient's transform of output-gradient tiles [t0, t1): w[k * plane + (t - t0) * F + f] = (A e A^T)[k]
// for the tile's 2x2 block e of dy (zeros beyond OH / OW), A = [1 0; 1 1; 1 -1; 0 -1] (the transpose of the
// forward's A^T: dW = G^T [(A e A^T) .* (B^T d B)] G is the forward's bilinear form read the other way).
template <typename T>
void gradient_tiles(T* w, int64_t plane, const T* dy, const Conv2dShape& s, int64_t t0, int64_t t1,
                    const T* zero_row) {
  const int64_t tiles_w = (s.ow + 1) / 2, per_image = ((s.oh + 1) / 2) * tiles_w, F = s.f;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / per_image, r = t % per_image;
    const int64_t oh0 = 2 * (r / tiles_w), ow0 = 2 * (r % tiles_w);
    const T* e[2][2];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        e[i][j] = oh0 + i < s.oh && ow0 + j < s.ow ? dy + ((n * s.oh + oh0 + i) * s.ow + ow0 + j) * F : zero_row;
    const T *e00 = e[0][0], *e01 = e[0][1], *e10 = e[1][0], *e11 = e[1][1];
    T* FASTNN_RESTRICT out = w + (t - t0) * F;
#pragma GCC ivdep
    for (int64_t f = 0; f < F; ++f) {
      // rows: u0 = e0, u1 = e0 + e1, u2 = e0 - e1, u3 = -e1 (each a pair over the tile's two columns)
      const T u00 = e00[f], u01 = e01[f];
      const T u10 = e00[f] + e10[f], u11 = e01[f] + e11[f];
      const T u20 = e00[f] - e10[f], u21 = e01[f] - e11[f];
      const T u30 = -e10[f], u31 = -e11[f];
      // columns, the same combination
      out[0 * plane + f] = u00, out[1 * plane + f] = u00 + u01, out[2 * plane + f] = u00 - u01;
      out[3 * plane + f] = -u01;
      out[4 * plane + f] = u10, out[5 * plane + f] = u10 + u11, out[6 * plane + f] = u10 - u11;
      out[7 * plane + f] = -u11;
      out[8 * plane + f] = u20, out[9 * plane + f] = u20 + u21, out[10 * plane + f] = u20 - u21;
      out[11 * plane + f] = -u21;
      out[12 * plane + f] = u30, out[13 * plane + f] = u30 + u31, out[14 * plane + f] = u30 - u31;
      out[15 * plane + f] = -u31;
    }
  }
}

}  // namespace winograd_impl

template <typename T>
WinogradTransforms<T> make_winograd_transforms(const char* name) {
  return {name, &winograd_impl::input_tiles<T>, &winograd_impl::output_tiles<T>, &winograd_impl::gradient_tiles<T>};
}

}  // namespace fastnn::cpu::detail
