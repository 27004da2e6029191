// The fast GEMM driver, structured like BLIS / GotoBLAS:
//
//   for jc in N by NC:                 B block (KC x NC) packed once, shared by all threads (L3)
//     for pc in K by KC:
//       pack B[pc:pc+KC, jc:jc+NC] into NR-wide panels            (parallel over panels)
//       for each MC x NC work item:    A block (MC x KC) packed per thread into MR-high panels (L2)
//         for jr in NC by NR:          one B panel (KC x NR) stays in L1
//           for ir in MC by MR:        micro-kernel: MR x NR tile of C in registers
//
// Edge tiles run the same micro-kernel into a small aligned buffer and copy the valid part out, so the
// arithmetic is always the full vector kernel. The fused epilogue (bias, activation) is applied to each
// tile right after its last K block, while the tile is still in L1.
#include <algorithm>
#include <cstring>

#include "fastnn/common.h"
#include "fastnn/gemm.h"
#include "fastnn/parallel.h"
#include "gemm_kernels.h"

namespace fastnn::cpu {
namespace {

using detail::GemmKernelSet;

// Packs rows [ic, ic + mcur) x columns [pc, pc + kc) of op(A) into MR-high panels, zero-padding the
// last panel: panel r holds op(A)[ic + r*MR + i, pc + p] at dst[r*MR*kc + p*MR + i].
template <typename T>
void pack_a_block(T* FASTNN_RESTRICT dst, const T* a, const GemmParams<T>& prm, int64_t ic, int64_t mcur,
                  int64_t pc, int64_t kc, int mr_tile) {
  const int64_t MR = mr_tile;
  for (int64_t ir = 0; ir < mcur; ir += MR) {
    const int64_t mr = std::min<int64_t>(MR, mcur - ir);
    if (!prm.trans_a) {
      // op(A)[i, p] = a[i * lda + p]: read MR rows side by side.
      for (int64_t i = 0; i < mr; ++i) {
        const T* src = a + (ic + ir + i) * prm.lda + pc;
        for (int64_t p = 0; p < kc; ++p) dst[p * MR + i] = src[p];
      }
      for (int64_t i = mr; i < MR; ++i)
        for (int64_t p = 0; p < kc; ++p) dst[p * MR + i] = T(0);
    } else {
      // op(A)[i, p] = a[p * lda + i]: each p gives MR contiguous values.
      for (int64_t p = 0; p < kc; ++p) {
        const T* src = a + (pc + p) * prm.lda + ic + ir;
        T* d = dst + p * MR;
        for (int64_t i = 0; i < mr; ++i) d[i] = src[i];
        for (int64_t i = mr; i < MR; ++i) d[i] = T(0);
      }
    }
    dst += MR * kc;
  }
}

// Packs rows [pc, pc + kc) x columns [jc + panel*NR, ...) of op(B) into one NR-wide panel,
// zero-padding missing columns: dst[p*NR + j] = op(B)[pc + p, j0 + j].
template <typename T>
void pack_b_panel(T* FASTNN_RESTRICT dst, const T* b, const GemmParams<T>& prm, int64_t pc, int64_t kc,
                  int64_t j0, int64_t nr, int nr_tile) {
  const int64_t NR = nr_tile;
  if (!prm.trans_b) {
    // op(B)[p, j] = b[p * ldb + j]: NR contiguous values per p.
    for (int64_t p = 0; p < kc; ++p) {
      const T* src = b + (pc + p) * prm.ldb + j0;
      T* d = dst + p * NR;
      for (int64_t j = 0; j < nr; ++j) d[j] = src[j];
      for (int64_t j = nr; j < NR; ++j) d[j] = T(0);
    }
  } else {
    // op(B)[p, j] = b[j * ldb + p]: read NR rows side by side.
    for (int64_t j = 0; j < nr; ++j) {
      const T* src = b + (j0 + j) * prm.ldb + pc;
      for (int64_t p = 0; p < kc; ++p) dst[p * NR + j] = src[p];
    }
    for (int64_t j = nr; j < NR; ++j)
      for (int64_t p = 0; p < kc; ++p) dst[p * NR + j] = T(0);
  }
}

// C[i, j] = act(C[i, j] + bias[j]) over an m x n tile (the fused epilogue).
template <typename T>
void apply_epilogue(T* c, int64_t ldc, int64_t m, int64_t n, const T* bias, Activation act) {
  for (int64_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    if (bias != nullptr)
      for (int64_t j = 0; j < n; ++j) ci[j] += bias[j];
    if (act == Activation::kRelu)
      for (int64_t j = 0; j < n; ++j) ci[j] = ci[j] < T(0) ? T(0) : ci[j];  // NaN stays NaN
  }
}

template <typename T>
bool has_epilogue(const GemmParams<T>& p) {
  return p.bias != nullptr || p.activation != Activation::kIdentity;
}

// K == 0 or alpha == 0: C = act(beta * C + bias) with no product to form.
template <typename T>
void scale_only(T* c, const GemmParams<T>& p) {
  parallel_for(0, p.m, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, p.n)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T* ci = c + i * p.ldc;
      if (p.beta == T(0)) {
        std::fill(ci, ci + p.n, T(0));
      } else if (p.beta != T(1)) {
        for (int64_t j = 0; j < p.n; ++j) ci[j] *= p.beta;
      }
      apply_epilogue(ci, p.ldc, 1, p.n, p.bias, p.activation);
    }
  });
}

// Each thread keeps its packing buffers between calls (they only grow, to at most one A block and one
// B block), so steady-state training does no allocation here.
ScratchBuffer& thread_a_buffer() {
  static thread_local ScratchBuffer buffer;
  return buffer;
}
ScratchBuffer& thread_b_buffer() {
  static thread_local ScratchBuffer buffer;
  return buffer;
}

template <typename T>
void gemm_packed(const GemmKernelSet<T>& ks, T* c, const T* a, const T* b, const GemmParams<T>& p) {
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t M = p.m, N = p.n, K = p.k;
  const bool epilogue = has_epilogue(p);

  // Work is split across threads by blocks of rows (each thread packs its own A block); when there are
  // fewer row blocks than threads (small M), the columns of each row block are split as well.
  int64_t threads = get_num_threads();
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (flops < 2.0e5) threads = 1;  // too little work to pay for waking a second thread
  int64_t m_blocks = ceil_div(M, ks.mc);
  if (threads > 1 && M >= threads * 4 * MR) m_blocks = round_up(m_blocks, threads);
  const int64_t mc = round_up(ceil_div(M, m_blocks), MR);
  m_blocks = ceil_div(M, mc);

  T* b_packed = static_cast<T*>(thread_b_buffer().reserve(
      sizeof(T) * static_cast<size_t>(round_up(std::min(N, ks.nc), NR) * std::min(K, ks.kc))));

  for (int64_t jc = 0; jc < N; jc += ks.nc) {
    const int64_t nc = std::min(ks.nc, N - jc);
    const int64_t n_panels = ceil_div(nc, NR);
    const int64_t n_splits = m_blocks >= threads ? 1 : std::min(n_panels, ceil_div(threads, m_blocks));
    for (int64_t pc = 0; pc < K; pc += ks.kc) {
      const int64_t kc = std::min(ks.kc, K - pc);
      const T beta = pc == 0 ? p.beta : T(1);
      const bool last_k_block = pc + kc == K;

      const int64_t pack_grain = threads > 1 ? std::max<int64_t>(1, n_panels / threads) : n_panels;
      parallel_for(0, n_panels, pack_grain, [&](int64_t q0, int64_t q1) {
        for (int64_t q = q0; q < q1; ++q)
          pack_b_panel(b_packed + q * NR * kc, b, p, pc, kc, jc + q * NR, std::min(NR, nc - q * NR),
                       static_cast<int>(NR));
      });

      const int64_t tasks = m_blocks * n_splits;
      parallel_for(0, tasks, threads > 1 ? 1 : tasks, [&](int64_t t0, int64_t t1) {
        T* a_packed = static_cast<T*>(thread_a_buffer().reserve(sizeof(T) * static_cast<size_t>(mc * kc)));
        alignas(64) T edge_tile[16 * 16];  // MR x NR scratch for partial tiles (MR, NR <= 16)
        int64_t packed_block = -1;
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t mb = t / n_splits, split = t % n_splits;
          const int64_t ic = mb * mc;
          const int64_t mcur = std::min(mc, M - ic);
          if (mb != packed_block) {
            pack_a_block(a_packed, a, p, ic, mcur, pc, kc, static_cast<int>(MR));
            packed_block = mb;
          }
          const int64_t q_begin = n_panels * split / n_splits, q_end = n_panels * (split + 1) / n_splits;
          for (int64_t q = q_begin; q < q_end; ++q) {
            const int64_t jr = q * NR;
            const int64_t ncur = std::min(NR, nc - jr);
            const T* bp = b_packed + q * NR * kc;
            for (int64_t ir = 0; ir < mcur; ir += MR) {
              const int64_t mrcur = std::min(MR, mcur - ir);
              const T* ap = a_packed + ir * kc;
              T* ct = c + (ic + ir) * p.ldc + jc + jr;
              if (mrcur == MR && ncur == NR) {
                ks.kernel(kc, ap, bp, ct, p.ldc, p.alpha, beta);
              } else {
                ks.kernel(kc, ap, bp, edge_tile, NR, T(1), T(0));
                for (int64_t i = 0; i < mrcur; ++i) {
                  T* ci = ct + i * p.ldc;
                  const T* ti = edge_tile + i * NR;
                  if (beta == T(0)) {
                    for (int64_t j = 0; j < ncur; ++j) ci[j] = p.alpha * ti[j];
                  } else {
                    for (int64_t j = 0; j < ncur; ++j) ci[j] = p.alpha * ti[j] + beta * ci[j];
                  }
                }
              }
              if (last_k_block && epilogue)
                apply_epilogue(ct, p.ldc, mrcur, ncur, p.bias ? p.bias + jc + jr : nullptr, p.activation);
            }
          }
        }
      });
    }
  }
}

}  // namespace

template <typename T>
void gemm(T* c, const T* a, const T* b, const GemmParams<T>& p) {
  if (p.m <= 0 || p.n <= 0) return;
  if (p.k <= 0 || p.alpha == T(0)) {
    scale_only(c, p);
    return;
  }
  gemm_packed(detail::active_kernels<T>(), c, a, b, p);
}

template <typename T>
void gemm_strided_batched(T* c, int64_t stride_c, const T* a, int64_t stride_a, const T* b, int64_t stride_b,
                          int64_t batch, const GemmParams<T>& p) {
  if (batch <= 0) return;
  const double flops = 2.0 * static_cast<double>(p.m) * static_cast<double>(p.n) * static_cast<double>(p.k);
  // Many small products: one product per thread at a time (the inner gemm then runs single-threaded,
  // since parallel_for does not nest). Few large ones: each product uses all threads.
  if (batch >= get_num_threads() && flops < 4.0e6) {
    parallel_for(0, batch, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) gemm(c + i * stride_c, a + i * stride_a, b + i * stride_b, p);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) gemm(c + i * stride_c, a + i * stride_a, b + i * stride_b, p);
  }
}

template void gemm<float>(float*, const float*, const float*, const GemmParams<float>&);
template void gemm<double>(double*, const double*, const double*, const GemmParams<double>&);
template void gemm_strided_batched<float>(float*, int64_t, const float*, int64_t, const float*, int64_t, int64_t,
                                          const GemmParams<float>&);
template void gemm_strided_batched<double>(double*, int64_t, const double*, int64_t, const double*, int64_t,
                                           int64_t, const GemmParams<double>&);

}  // namespace fastnn::cpu
