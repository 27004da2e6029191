// Winograd F(2x2, 3x3) for the forward of 3x3, stride-1, undilated, ungrouped convolutions in NHWC (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2015): each 2x2 block of outputs costs 16 multiplies per
// (input, output) channel pair instead of 36, so the GEMM work is 2.25x smaller than im2col's. conv2d_forward takes
// this path when conv2d_winograd_applies (and so does the stride-1 backward-input, which is a forward convolution
// of dy with flipped weights), and conv2d_backward_weight its adjoint (below); the *_ref twins stay the oracles.
//
// With d a 4x4 input tile (one channel), g the 3x3 kernel (one channel pair) and
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1]
// the 2x2 output tile is A^T [ sum_c (G g G^T) .* (B^T d B) ] A. In matrix form, for each of the 16 positions
// (xi, nu) of the transformed tile: M_k (tiles x F) = V_k (tiles x C) @ U_k (C x F), one GEMM per position.
// The transforms use only additions and halvings (exact in binary floating point up to the additions' rounding),
// which is why F(2x2, 3x3) keeps float32 results within a few ulps of the direct sum; F(4x4, 3x3) would halve the
// GEMM work again but multiplies the rounding error by roughly ten, beyond Keras parity at 1e-5.
//
// Work: output tiles in blocks sized to the L2 (V and M of one block stay there between the input transform, the
// 16 GEMMs and the output transform); blocks run in parallel, each on one thread. Each output element is computed
// by one thread in a fixed order whatever the thread count (the GEMM is bit-identical for every thread count).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fastnn/common.h"
#include "fastnn/conv.h"
#include "fastnn/gemm.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"
#include "conv_winograd_kernels.h"

namespace fastnn::cpu {
namespace {

bool winograd_enabled_at_startup() {
  const char* env = std::getenv("FASTNN_CONV_WINOGRAD");
  return env == nullptr || std::strcmp(env, "0") != 0;
}

std::atomic<bool>& winograd_enabled() {
  static std::atomic<bool> enabled{winograd_enabled_at_startup()};
  return enabled;
}

constexpr int kPositions = 16;  // a 4x4 transformed tile: 16 GEMMs per block

// U[k][c][f] = (G g G^T)[k] for g = w[:, :, c, f], computed in double and rounded once. By input channel and runs of
// 64 output channels, so the 9 kernel rows read and the 16 rows written are contiguous runs (the planes are C*F
// apart, often a multiple of 4 KiB: element by element they shared one cache set).
template <typename T>
void transform_weights(T* u, const T* w, int64_t C, int64_t F) {
  constexpr int64_t kRun = 64;
  const int64_t cf = C * F, runs = ceil_div(F, kRun);
  parallel_for(0, C * runs, std::max<int64_t>(1, 64 / runs), [&](int64_t r0, int64_t r1) {
    double g[9][kRun], t[4][3][kRun];
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / runs, f0 = (r % runs) * kRun, width = std::min(kRun, F - f0);
      for (int tap = 0; tap < 9; ++tap) {
        const T* src = w + tap * cf + c * F + f0;
        for (int64_t j = 0; j < width; ++j) g[tap][j] = static_cast<double>(src[j]);
      }
      for (int col = 0; col < 3; ++col)  // t = G g, column by column of the 3x3 kernel
        for (int64_t j = 0; j < width; ++j) {
          const double g0 = g[col][j], g1 = g[3 + col][j], g2 = g[6 + col][j];
          t[0][col][j] = g0;
          t[1][col][j] = 0.5 * (g0 + g1 + g2);
          t[2][col][j] = 0.5 * (g0 - g1 + g2);
          t[3][col][j] = g2;
        }
      for (int i = 0; i < 4; ++i) {  // U = t G^T
        T* u0 = u + (i * 4 + 0) * cf + c * F + f0;
        T* u1 = u + (i * 4 + 1) * cf + c * F + f0;
        T* u2 = u + (i * 4 + 2) * cf + c * F + f0;
        T* u3 = u + (i * 4 + 3) * cf + c * F + f0;
        for (int64_t j = 0; j < width; ++j) {
          const double a = t[i][0][j], b = t[i][1][j], d = t[i][2][j];
          u0[j] = static_cast<T>(a);
          u1[j] = static_cast<T>(0.5 * (a + b + d));
          u2[j] = static_cast<T>(0.5 * (a - b + d));
          u3[j] = static_cast<T>(d);
        }
      }
    }
  });
}

template <typename T>
const detail::WinogradTransforms<T>& active_transforms();

template <>
const detail::WinogradTransforms<float>& active_transforms<float>() {
  static const detail::WinogradTransforms<float> generic = detail::generic_winograd_f32();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  if (active_simd_path() == SimdPath::kAvx2) {  // built only when active: that file's code needs the ISA
    static const detail::WinogradTransforms<float> avx2 = detail::avx2_winograd_f32();
    return avx2;
  }
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  if (active_simd_path() == SimdPath::kAvx512) {  // built only when active: that file's code needs the ISA
    static const detail::WinogradTransforms<float> avx512 = detail::avx512_winograd_f32();
    return avx512;
  }
#endif
  return generic;
}

template <>
const detail::WinogradTransforms<double>& active_transforms<double>() {
  static const detail::WinogradTransforms<double> generic = detail::generic_winograd_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  if (active_simd_path() == SimdPath::kAvx2) {  // built only when active: that file's code needs the ISA
    static const detail::WinogradTransforms<double> avx2 = detail::avx2_winograd_f64();
    return avx2;
  }
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  if (active_simd_path() == SimdPath::kAvx512) {  // built only when active: that file's code needs the ISA
    static const detail::WinogradTransforms<double> avx512 = detail::avx512_winograd_f64();
    return avx512;
  }
#endif
  return generic;
}

}  // namespace

bool conv2d_winograd_enabled() { return winograd_enabled().load(std::memory_order_relaxed); }

bool set_conv2d_winograd(bool enabled) { return winograd_enabled().exchange(enabled); }

bool conv2d_winograd_applies(const Conv2dShape& s, const Conv2dParams& p) {
  // Below 16 channels on either side the GEMMs are too narrow for the saving to cover the transforms; above 2^20
  // channel pairs the transformed weights (16 per pair, kept per thread between calls) would hold 64 MB or more.
  return conv2d_winograd_enabled() && s.kh == 3 && s.kw == 3 && p.stride_h == 1 && p.stride_w == 1 &&
         p.dilation_h == 1 && p.dilation_w == 1 && p.groups == 1 && s.c >= 16 && s.f >= 16 &&
         s.c * s.f <= (int64_t{1} << 20) && s.oh >= 2 && s.ow >= 2 && s.n > 0;
}

namespace {

// How the output tiles split into blocks (both passes): V (16 x block x C) and M or W (16 x block x F) of one
// block in half the L2, at least 64 rows per GEMM (in whole multiples of 24, the micro-kernels' MR being 6, 8 or
// 12), and at most an eighth of the tiles so a batch splits across threads (shapes and cache sizes only, never the
// thread count). The 16 planes of V and of M / W are written or read together, one row of each per tile: a plane
// stride that is a multiple of 4 KiB would put all 16 streams in one L1 set (more streams than ways), so each plane
// gets one extra cache line.
struct WinogradBlocking {
  int64_t tiles = 0, block = 0, blocks = 0, v_plane = 0, m_plane = 0;

  template <typename T>
  static WinogradBlocking of(const Conv2dShape& s) {
    WinogradBlocking b;
    b.tiles = s.n * ceil_div(s.oh, 2) * ceil_div(s.ow, 2);
    const int64_t tile_bytes = kPositions * (s.c + s.f) * static_cast<int64_t>(sizeof(T));
    int64_t block = std::max<int64_t>(64, l2_cache_bytes() / 2 / tile_bytes);
    block = std::min<int64_t>({block, 512, std::max<int64_t>(48, ceil_div(b.tiles, 8))});
    block -= block % 24;  // 85 rows would run 96 through a 12-row micro-kernel
    b.block = std::max<int64_t>(1, std::min(block, b.tiles));
    b.blocks = ceil_div(b.tiles, b.block);
    const int64_t line = 64 / static_cast<int64_t>(sizeof(T));
    b.v_plane = round_up(b.block * s.c, line) + line;
    b.m_plane = round_up(b.block * s.f, line) + line;
    return b;
  }
};

// Bytes of the weight gradient's per-partition transformed sums (16 x C x F each), the most partitions, and the
// fewest blocks per partition. Each partition's first block writes a fresh 16 x C x F partial and the partials are
// summed at the end, so a partition of one or two blocks moves more partial bytes than its GEMMs use: on the CNN's
// 7x7x64->128 layer (15 blocks) eight partitions spent a third of the backward-weight writing and re-reading 4 MB of
// partials (perf: the final reduction 13%, the pool waiting 21%); two partitions of 7-8 blocks took 0.30 of 1.60 ms
// off (Sapphire Rapids, 2 threads).
constexpr int64_t kPartialBudgetBytes = int64_t{16} << 20;
constexpr int64_t kMaxPartitions = 8;
constexpr int64_t kMinBlocksPerPartition = 4;

// The partition count: at most kMaxPartitions, at least kMinBlocksPerPartition blocks each (but two partitions
// whenever there are two blocks: one partition runs the tile transforms on one thread), within the partials'
// budget, rounded down to a power of two so 1, 2, 4 or 8 threads get equal shares (15 blocks in 3 partitions would
// leave one of two threads idle for a third of the pass). Shapes and cache sizes only, never the thread count.
int64_t weight_partitions(int64_t blocks, int64_t partial_bytes) {
  const int64_t by_blocks = std::max<int64_t>(std::min<int64_t>(2, blocks), blocks / kMinBlocksPerPartition);
  int64_t cap = std::min<int64_t>({kMaxPartitions, std::max<int64_t>(1, by_blocks),
                                   std::max<int64_t>(1, kPartialBudgetBytes / std::max<int64_t>(1, partial_bytes))});
  int64_t partitions = 1;
  while (partitions * 2 <= cap) partitions *= 2;
  return partitions;
}

}  // namespace

template <typename T>
void conv2d_forward_winograd(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s,
                             const Conv2dParams& p, Activation act) {
  DenormalsAreZero ftz;
  const int64_t C = s.c, F = s.f;
  static thread_local ScratchBuffer u_scratch;
  BoundedScratch u_buffer(u_scratch, sizeof(T) * static_cast<size_t>(kPositions * C * F));
  T* u = static_cast<T*>(u_buffer.get());
  transform_weights(u, w, C, F);
  const WinogradBlocking B = WinogradBlocking::of<T>(s);
  const std::vector<T> zero_row(static_cast<size_t>(std::max(C, F)), T(0));
  const T* bias_row = bias != nullptr ? bias : zero_row.data();
  const detail::WinogradTransforms<T>& transforms = active_transforms<T>();
  parallel_for(0, B.blocks, 1, [&](int64_t b0, int64_t b1) {
    static thread_local ScratchBuffer v_scratch, m_scratch, out_scratch;
    T* v = static_cast<T*>(v_scratch.reserve(sizeof(T) * static_cast<size_t>(kPositions * B.v_plane)));
    T* m = static_cast<T*>(m_scratch.reserve(sizeof(T) * static_cast<size_t>(kPositions * B.m_plane)));
    T* out_rows = static_cast<T*>(out_scratch.reserve(sizeof(T) * static_cast<size_t>(4 * F)));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t t0 = b * B.block, t1 = std::min(B.tiles, t0 + B.block);
      transforms.input_tiles(v, B.v_plane, x, s, p, t0, t1, zero_row.data());
      for (int k = 0; k < kPositions; ++k) {  // M_k (tiles x F) = V_k (tiles x C) @ U_k (C x F)
        GemmParams<T> gp;
        gp.m = t1 - t0;
        gp.n = F;
        gp.k = C;
        gp.lda = C;
        gp.ldb = F;
        gp.ldc = F;
        gemm(m + k * B.m_plane, v + k * B.v_plane, u + k * C * F, gp);
      }
      transforms.output_tiles(y, m, B.m_plane, bias_row, act, s, t0, t1, out_rows);
    }
  });
}

// dW = sum over tiles of G^T [(A e A^T) .* (B^T d B)] G: per block, the input transform (as the forward), the
// transform of the dy tiles, and 16 GEMMs S_k (C x F) += V_k^T (C x tiles) @ W_k (tiles x F); the sums S are kept
// per partition of the blocks (a fixed split from the shapes), added in partition order in double, and the
// 3x3 taps G^T S G (halvings and additions) are formed once at the end.
template <typename T>
void conv2d_backward_weight_winograd(T* dw, T* db, const T* x, const T* dy, const Conv2dShape& s,
                                     const Conv2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t C = s.c, F = s.f, cf = C * F;
  const WinogradBlocking B = WinogradBlocking::of<T>(s);
  const int64_t partitions =
      weight_partitions(B.blocks, kPositions * cf * static_cast<int64_t>(sizeof(T)));
  static thread_local ScratchBuffer partial_scratch;
  BoundedScratch partial_buffer(partial_scratch, sizeof(T) * static_cast<size_t>(partitions * kPositions * cf));
  T* partial = static_cast<T*>(partial_buffer.get());
  const std::vector<T> zero_row(static_cast<size_t>(std::max(C, F)), T(0));
  const detail::WinogradTransforms<T>& transforms = active_transforms<T>();
  if (db != nullptr) conv_bias_grad_add(db, dy, s.n * s.oh * s.ow, F);
  parallel_for(0, partitions, 1, [&](int64_t q0, int64_t q1) {
    static thread_local ScratchBuffer v_scratch, w_scratch;
    T* v = static_cast<T*>(v_scratch.reserve(sizeof(T) * static_cast<size_t>(kPositions * B.v_plane)));
    T* wt = static_cast<T*>(w_scratch.reserve(sizeof(T) * static_cast<size_t>(kPositions * B.m_plane)));
    for (int64_t q = q0; q < q1; ++q) {
      T* sums = partial + q * kPositions * cf;
      const int64_t first = q * B.blocks / partitions, last = (q + 1) * B.blocks / partitions;
      for (int64_t b = first; b < last; ++b) {
        const int64_t t0 = b * B.block, t1 = std::min(B.tiles, t0 + B.block);
        transforms.input_tiles(v, B.v_plane, x, s, p, t0, t1, zero_row.data());
        transforms.gradient_tiles(wt, B.m_plane, dy, s, t0, t1, zero_row.data());
        for (int k = 0; k < kPositions; ++k) {
          GemmParams<T> gp;
          gp.m = C;
          gp.n = F;
          gp.k = t1 - t0;
          gp.trans_a = true;
          gp.lda = C;
          gp.ldb = F;
          gp.ldc = F;
          gp.beta = b == first ? T(0) : T(1);  // the partition's first block assigns its sums
          gemm(sums + k * cf, v + k * B.v_plane, wt + k * B.m_plane, gp);
        }
      }
    }
  });
  // dw[kh, kw, c, f] += (G^T S G)[kh][kw] with G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1], S summed over partitions
  // in partition order, in double. By chunks of channel pairs, each of the partitions x 16 partial rows read
  // contiguously: walking all of them element by element would be 128 streams cf apart, a multiple of 4 KiB, all
  // in one cache set (3x slower on the 7x7 layer).
  constexpr int64_t kChunk = 128;
  parallel_for(0, ceil_div(cf, kChunk), 1, [&](int64_t c0, int64_t c1) {
    double S[kPositions][kChunk];
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t i0 = chunk * kChunk, width = std::min(kChunk, cf - i0);
      for (int k = 0; k < kPositions; ++k) std::fill(S[k], S[k] + width, 0.0);
      for (int64_t q = 0; q < partitions; ++q)
        for (int k = 0; k < kPositions; ++k) {
          const T* row = partial + (q * kPositions + k) * cf + i0;
          for (int64_t j = 0; j < width; ++j) S[k][j] += static_cast<double>(row[j]);
        }
      for (int64_t j = 0; j < width; ++j) {
        double t[3][4];  // t = G^T S
        for (int c4 = 0; c4 < 4; ++c4) {
          const double s0 = S[c4][j], s1 = S[4 + c4][j], s2 = S[8 + c4][j], s3 = S[12 + c4][j];
          t[0][c4] = s0 + 0.5 * (s1 + s2);
          t[1][c4] = 0.5 * (s1 - s2);
          t[2][c4] = 0.5 * (s1 + s2) + s3;
        }
        for (int r = 0; r < 3; ++r) {  // (t G)[r]
          const double taps[3] = {t[r][0] + 0.5 * (t[r][1] + t[r][2]), 0.5 * (t[r][1] - t[r][2]),
                                  0.5 * (t[r][1] + t[r][2]) + t[r][3]};
          for (int c3 = 0; c3 < 3; ++c3) {
            T& out = dw[(r * 3 + c3) * cf + i0 + j];
            out = static_cast<T>(static_cast<double>(out) + taps[c3]);
          }
        }
      }
    }
  });
}

template void conv2d_backward_weight_winograd<float>(float*, float*, const float*, const float*, const Conv2dShape&,
                                                     const Conv2dParams&);
template void conv2d_backward_weight_winograd<double>(double*, double*, const double*, const double*,
                                                      const Conv2dShape&, const Conv2dParams&);

template void conv2d_forward_winograd<float>(float*, const float*, const float*, const float*, const Conv2dShape&,
                                             const Conv2dParams&, Activation);
template void conv2d_forward_winograd<double>(double*, const double*, const double*, const double*,
                                              const Conv2dShape&, const Conv2dParams&, Activation);

}  // namespace fastnn::cpu
