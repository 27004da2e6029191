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
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "fastnn/common.h"
#include "fastnn/gemm.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"
#include "gemm_kernels.h"
#include "gemm_prepacked.h"

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
      // op(A)[i, p] = a[i * lda + p]: walk the MR rows side by side, writing the panel contiguously.
      const T* rows[32];
      for (int64_t i = 0; i < MR; ++i) rows[i] = a + (ic + ir + std::min(i, mr - 1)) * prm.lda + pc;
      for (int64_t p = 0; p < kc; ++p) {
        T* d = dst + p * MR;
        for (int64_t i = 0; i < mr; ++i) d[i] = rows[i][p];
        for (int64_t i = mr; i < MR; ++i) d[i] = T(0);
      }
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

// Each thread keeps its scratch buffers between calls (at most one A block, one B block and one GEMV block of
// outputs: requests within the kernel set's cache blocks, see CallScratch), so steady-state training does no
// allocation here.
enum ScratchSlot { kPackedA = 0, kPackedB = 1, kVectorX = 2, kVectorY = 3, kSlots = 4 };
template <typename T>
T* thread_scratch(ScratchSlot slot, int64_t elements) {
  static thread_local ScratchBuffer buffers[kSlots];
  return static_cast<T*>(buffers[slot].reserve(sizeof(T) * static_cast<size_t>(elements > 0 ? elements : 1)));
}

// Scratch for one call whose size the shape decides (a strided GEMV vector, a transposed B copied whole for a
// forced direct path): the thread's kept buffer when the request fits in the kernel set's packed B block (the
// largest buffer the packed path keeps), otherwise a buffer of the call's own, freed when it ends. So the
// memory kept between calls stays bounded by the cache blocks, whatever the shapes.
template <typename T>
class CallScratch {
 public:
  CallScratch(const GemmKernelSet<T>& ks, ScratchSlot slot, int64_t elements) {
    const int64_t kept_limit = std::max(ks.kc * round_up(ks.nc, ks.nr), ks.mc * ks.kc);
    if (elements <= kept_limit) data_ = thread_scratch<T>(slot, elements);
    else data_ = static_cast<T*>(own_.reserve(sizeof(T) * static_cast<size_t>(elements)));
  }
  T* data() const { return data_; }

 private:
  ScratchBuffer own_;
  T* data_ = nullptr;
};

// 2*M*N*K below this runs on one thread: waking a second costs more than it saves.
constexpr double kMinParallelFlops = 2.0e5;

// Outputs per GEMV block: a thread computes one block of the output vector into its scratch and merges it into
// C at once, so that scratch stays this small whatever the length (the blocking does not change any output:
// each is summed the same way wherever its block starts).
constexpr int64_t kGemvBlock = 4096;

// Matrix-vector products (M == 1 or N == 1): no packing, no wasted tile lanes. Each block of the output vector
// is computed into scratch by the dot-form or axpy-form kernel, then merged into C with alpha, beta and the
// epilogue.
template <typename T>
void gemv_path(const GemmKernelSet<T>& ks, T* c, const T* a, const T* b, const GemmParams<T>& p) {
  const bool column = p.n == 1;  // C is (M, 1); otherwise (1, N)
  const int64_t len = column ? p.m : p.n, K = p.k;
  // y[o] = sum_q mat(o, q) * x[q], with mat stored along K ("dot") or along the output ("axpy").
  const T* mat = column ? a : b;
  const int64_t ld = column ? p.lda : p.ldb;
  const bool dot_form = column ? !p.trans_a : p.trans_b;
  const T* x_src = column ? b : a;
  const int64_t incx = column ? (p.trans_b ? 1 : p.ldb) : (p.trans_a ? p.lda : 1);

  const T* x = x_src;
  const bool gather_x = incx != 1 && K > 1;
  CallScratch<T> x_copy(ks, kVectorX, gather_x ? K : 0);
  if (gather_x) {
    T* packed = x_copy.data();
    for (int64_t q = 0; q < K; ++q) packed[q] = x_src[q * incx];
    x = packed;
  }
  const double flops = 2.0 * static_cast<double>(len) * static_cast<double>(K);
  // One contiguous block of the output per thread: a GEMV streams its matrix once, so what bounds it is memory
  // bandwidth, and the same thread getting the same rows call after call finds them in its own L2 (a Dense
  // layer's weights at batch 1; 1000x1x1000 on 2 threads: 41 -> 50 GFLOP/s on a Sapphire Rapids).
  const int64_t threads = get_num_threads();
  const int64_t grain = flops < kMinParallelFlops ? len : std::max<int64_t>(64, ceil_div(len, threads));
  // C = A x exactly (alpha 1, beta 0, no epilogue) with contiguous outputs: the kernels write C itself.
  const bool write_c = dot_form && p.alpha == T(1) && p.beta == T(0) && !has_epilogue(p) && (!column || p.ldc == 1);
  parallel_for(0, len, grain, [&](int64_t o0, int64_t o1) {
    if (write_c) {
      if (dot_form) ks.gemv_dot(o1 - o0, K, mat + o0 * ld, ld, x, c + o0);
      else ks.gemv_axpy(o1 - o0, K, mat + o0, ld, x, c + o0);
      return;
    }
    T* y = thread_scratch<T>(kVectorY, std::min(kGemvBlock, o1 - o0));
    for (int64_t b0 = o0; b0 < o1; b0 += kGemvBlock) {
      const int64_t rows = std::min(kGemvBlock, o1 - b0);
      if (dot_form) ks.gemv_dot(rows, K, mat + b0 * ld, ld, x, y);
      else ks.gemv_axpy(rows, K, mat + b0, ld, x, y);
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t o = b0 + i;
        T& out = column ? c[o * p.ldc] : c[o];
        T value = p.alpha * y[i] + (p.beta == T(0) ? T(0) : p.beta * out);
        if (p.bias != nullptr) value += p.bias[column ? 0 : o];
        if (p.activation == Activation::kRelu && value < T(0)) value = T(0);
        out = value;
      }
    }
  });
}

// The direct path: the kernel reads A in place and B by rows, so nothing is packed. For small products
// packing costs as much as the arithmetic, so this wins whenever one operand can stay in cache while the
// other streams past it once:
//   by rows    (row tile outer, column panels inner): B stays in this core's L2 (half of it) across the row
//              tiles;
//   by columns (column panel outer, row tiles inner): when M has few row tiles and B does not fit L2, A
//              (few rows) stays in L2 and each K x NR column panel of B is read from memory once, then
//              from L1/L2 by the other row tiles. Streaming B once per row tile instead lost 2x on
//              64x3136x288 on a Sapphire Rapids (slow L3) and is never needed.
// Threads split whichever loop is outer. A transposed B is first copied to row-major.
enum class DirectOrder { kNone, kByRows, kByColumns };

template <typename T>
DirectOrder direct_order(const GemmKernelSet<T>& ks, const GemmParams<T>& p) {
  const double elem = sizeof(T);
  const double l2 = static_cast<double>(l2_cache_bytes());
  const double b_bytes = static_cast<double>(p.k) * static_cast<double>(p.n) * elem;
  const double a_bytes = static_cast<double>(p.m) * static_cast<double>(p.k) * elem;
  constexpr int64_t kFewRowTiles = 12;
  // By rows, every row tile re-reads all of B from L2, one K x NR panel at a time whose rows lie ldb apart; the
  // packed path re-reads only A's packed MR x K micro-panels (contiguous, fewer bytes per FMA). On a core with a
  // small L2 (<= 1 MiB: the Zen cores) a wide B (rows of 1-2 KiB and more: few rows per 4 KiB page, out of the
  // prefetchers' reach) then costs more than packing, once there are enough rows to amortize it. Measured on a
  // Zen 3 (512 KiB L2, one thread, packed / direct time, B within half of L2: the only case this rule decides):
  // 2048x128x512 0.62, 256x128x512 0.76, 64x128x512 0.81-0.94, 2048x128x256 0.86, 256x64x256 ~1.0, 32x128x512
  // ~1.03; N <= 128 stays direct (2048x288x64: direct 1.5x faster). A Sapphire Rapids (2 MiB L2) ran 64x512x128
  // and 1600x512x128 direct at 1.05-1.25x OpenBLAS: it keeps them.
  const double b_row_bytes = static_cast<double>(p.n) * elem;
  const bool wide_b_streams_slowly =
      l2 <= 1024.0 * 1024.0 && ((b_row_bytes >= 2048.0 && p.m >= 64) || (b_row_bytes >= 1024.0 && p.m >= 512));
  // Half of L2, not all of it: a B that fills L2 is partly evicted by A's rows and C while the row tiles stream
  // it (300x700x600, B 1.7 MB in a 2 MB L2: direct 133, packed 167 GFLOP/s with AVX-512; 101 / 113 with AVX2).
  if (b_bytes <= l2 / 2) return wide_b_streams_slowly ? DirectOrder::kNone : DirectOrder::kByRows;
  // A transposed B is copied whole first, so a large one goes to the packed path, which copies it in
  // cache-sized blocks instead.
  if (p.trans_b) return DirectOrder::kNone;
  if (ceil_div(p.m, ks.mr) <= kFewRowTiles && a_bytes <= l2 / 2) return DirectOrder::kByColumns;
  return DirectOrder::kNone;
}

template <typename T>
void direct_path(const GemmKernelSet<T>& ks, T* c, const T* a, const T* b, const GemmParams<T>& p,
                 DirectOrder order) {
  const int64_t M = p.m, N = p.n, K = p.k, MR = ks.mr, NR = ks.nr;
  const T* bm = b;
  int64_t ldb = p.ldb;
  CallScratch<T> b_copy(ks, kPackedB, p.trans_b ? K * N : 0);
  if (p.trans_b) {
    T* copy = b_copy.data();
    for (int64_t q = 0; q < K; ++q)
      for (int64_t j = 0; j < N; ++j) copy[q * N + j] = b[j * p.ldb + q];
    bm = copy;
    ldb = N;
  }
  const int64_t rs_a = p.trans_a ? 1 : p.lda, cs_a = p.trans_a ? p.lda : 1;
  const bool epilogue = has_epilogue(p);
  const int64_t row_tiles = ceil_div(M, MR), col_panels = ceil_div(N, NR);
  auto tile = [&](int64_t t, int64_t q) {
    const int64_t i0 = t * MR, j0 = q * NR;
    const int mr = static_cast<int>(std::min(MR, M - i0));
    const int nr = static_cast<int>(std::min(NR, N - j0));
    T* ct = c + i0 * p.ldc + j0;
    ks.direct(mr, nr, K, a + i0 * rs_a, rs_a, cs_a, bm + j0, ldb, ct, p.ldc, p.alpha, p.beta);
    if (epilogue) ks.epilogue(ct, p.ldc, mr, nr, p.bias ? p.bias + j0 : nullptr, p.activation == Activation::kRelu);
  };
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const bool serial = flops < kMinParallelFlops;
  // The work is split by tiles, in the order's sequence (a row's panels after each other, or a panel's rows), not
  // by whole rows or panels: a batch-32 Dense layer has 3 row tiles of 2 panels, which split by rows left one of
  // two threads with twice the other's work. Each tile is one kernel call whatever thread runs it (same bits).
  const int64_t tiles = row_tiles * col_panels;
  if (order == DirectOrder::kByColumns) {
    parallel_for(0, tiles, serial ? tiles : 1, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) tile(u % row_tiles, u / row_tiles);
    });
  } else {
    parallel_for(0, tiles, serial ? tiles : 1, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) tile(u / col_panels, u % col_panels);
    });
  }
}

// The packed algorithm's inner loops: rows [ic, ic + mcur) of C (their A rows packed in a_packed) against B panels
// [q_begin, q_end) of the KC x NC block starting at column jc (b_packed: its panels, NR x kc each), C = alpha *
// product + beta * C, then the epilogue when this is the last K block. Edge tiles go through an aligned scratch
// tile, so the arithmetic is always the full micro-kernel.
template <typename T>
void multiply_packed_panels(const GemmKernelSet<T>& ks, T* c, const T* a_packed, const T* b_packed,
                            const GemmParams<T>& p, int64_t ic, int64_t mcur, int64_t jc, int64_t nc, int64_t kc,
                            int64_t q_begin, int64_t q_end, T beta, bool apply_epilogue_now) {
  const int64_t MR = ks.mr, NR = ks.nr;
  alignas(64) T edge_tile[16 * 32];  // MR x NR scratch for partial tiles (MR <= 16, NR <= 32)
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
      if (apply_epilogue_now)
        ks.epilogue(ct, p.ldc, static_cast<int>(mrcur), static_cast<int>(ncur), p.bias ? p.bias + jc + jr : nullptr,
                    p.activation == Activation::kRelu);
    }
  }
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
  if (flops < kMinParallelFlops) threads = 1;
  int64_t m_blocks = ceil_div(M, ks.mc);
  if (threads > 1 && M >= threads * 4 * MR) m_blocks = round_up(m_blocks, threads);
  const int64_t mc = round_up(ceil_div(M, m_blocks), MR);
  m_blocks = ceil_div(M, mc);

  T* b_packed = thread_scratch<T>(kPackedB, round_up(std::min(N, ks.nc), NR) * std::min(K, ks.kc));

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
        T* a_packed = thread_scratch<T>(kPackedA, mc * kc);
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
          multiply_packed_panels(ks, c, a_packed, b_packed, p, ic, mcur, jc, nc, kc, q_begin, q_end, beta,
                                 last_k_block && epilogue);
        }
      });
    }
  }
}

}  // namespace

namespace {
std::atomic<int> g_gemm_path{static_cast<int>(GemmPath::kAuto)};
}  // namespace

void set_gemm_path(GemmPath path) { g_gemm_path.store(static_cast<int>(path), std::memory_order_relaxed); }
GemmPath gemm_path() { return static_cast<GemmPath>(g_gemm_path.load(std::memory_order_relaxed)); }

template <typename T>
void gemm(T* c, const T* a, const T* b, const GemmParams<T>& p) {
  DenormalsAreZero ftz;  // every path, the serial parts (GEMV merge, copies) included
  if (p.m <= 0 || p.n <= 0) return;
  const bool vector_shaped = p.m == 1 || p.n == 1;
  const GemmPath path = gemm_path();
  if (path == GemmPath::kGemv && !vector_shaped)
    throw std::invalid_argument("gemm: the forced GEMM path 'gemv' needs M == 1 or N == 1, but op(a) @ op(b) is (" +
                                std::to_string(p.m) + ", " + std::to_string(p.n) +
                                "); set_gemm_path('auto') picks by shape");
  if (p.k <= 0 || p.alpha == T(0)) {
    scale_only(c, p);
    return;
  }
  const GemmKernelSet<T> ks = detail::blocked_kernels<T>();
  switch (path) {
    case GemmPath::kPacked: gemm_packed(ks, c, a, b, p); return;
    case GemmPath::kDirect: {
      const DirectOrder order = direct_order(ks, p);
      direct_path(ks, c, a, b, p, order == DirectOrder::kNone ? DirectOrder::kByRows : order);
      return;
    }
    case GemmPath::kGemv: gemv_path(ks, c, a, b, p); return;
    case GemmPath::kPrepacked: {
      const PackedB<T> packed(b, p.k, p.n, p.ldb, p.trans_b);
      gemm_prepacked(c, a, packed, p);
      return;
    }
    case GemmPath::kAuto: break;
  }
  if (vector_shaped) {
    gemv_path(ks, c, a, b, p);
    return;
  }
  const DirectOrder order = direct_order(ks, p);
  if (order != DirectOrder::kNone) direct_path(ks, c, a, b, p, order);
  else gemm_packed(ks, c, a, b, p);
}

template <typename T>
void gemm_strided_batched(T* c, int64_t stride_c, const T* a, int64_t stride_a, const T* b, int64_t stride_b,
                          int64_t batch, const GemmParams<T>& p) {
  DenormalsAreZero ftz;
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

template <typename T>
PackedB<T>::PackedB(const T* b, int64_t k, int64_t n, int64_t ldb, bool trans_b)
    : ks_(detail::blocked_kernels<T>()), k_(std::max<int64_t>(k, 0)), n_(std::max<int64_t>(n, 0)) {
  const int64_t NR = ks_.nr;
  const int64_t j_blocks = ceil_div(n_, ks_.nc);
  k_blocks_ = ceil_div(k_, ks_.kc);
  offsets_.resize(static_cast<size_t>(std::max<int64_t>(1, j_blocks * k_blocks_)), 0);
  int64_t total = 0;
  for (int64_t jb = 0; jb < j_blocks; ++jb) {
    const int64_t nc = std::min(ks_.nc, n_ - jb * ks_.nc);
    for (int64_t pb = 0; pb < k_blocks_; ++pb) {
      offsets_[static_cast<size_t>(jb * k_blocks_ + pb)] = total;
      total += round_up(nc, NR) * std::min(ks_.kc, k_ - pb * ks_.kc);
    }
  }
  data_ = static_cast<T*>(storage_.reserve(sizeof(T) * static_cast<size_t>(std::max<int64_t>(total, 1))));
  GemmParams<T> shape;
  shape.k = k_;
  shape.n = n_;
  shape.ldb = ldb;
  shape.trans_b = trans_b;
  for (int64_t jb = 0; jb < j_blocks; ++jb) {
    const int64_t jc = jb * ks_.nc, nc = std::min(ks_.nc, n_ - jc);
    for (int64_t pb = 0; pb < k_blocks_; ++pb) {
      const int64_t pc = pb * ks_.kc, kc = std::min(ks_.kc, k_ - pc);
      T* dst = data_ + offsets_[static_cast<size_t>(jb * k_blocks_ + pb)];
      for (int64_t q = 0; q < ceil_div(nc, NR); ++q)
        pack_b_panel(dst + q * NR * kc, b, shape, pc, kc, jc + q * NR, std::min(NR, nc - q * NR),
                     static_cast<int>(NR));
    }
  }
}

template <typename T>
void gemm_prepacked(T* c, const T* a, const PackedB<T>& b, const GemmParams<T>& p) {
  if (p.k != b.k() || p.n != b.n())
    throw std::invalid_argument("gemm_prepacked: the product is (" + std::to_string(p.m) + " x " +
                                std::to_string(p.k) + ") @ (" + std::to_string(p.k) + " x " + std::to_string(p.n) +
                                ") but B was packed as " + std::to_string(b.k()) + " x " + std::to_string(b.n()));
  DenormalsAreZero ftz;
  if (p.m <= 0 || p.n <= 0) return;
  if (p.k <= 0 || p.alpha == T(0)) {
    scale_only(c, p);
    return;
  }
  const GemmKernelSet<T>& ks = b.kernels();
  const int64_t MR = ks.mr, M = p.m, N = p.n, K = p.k;
  const bool epilogue = has_epilogue(p);
  const int64_t mc = std::min(round_up(M, MR), std::max<int64_t>(MR, ks.mc / MR * MR));
  T* a_packed = thread_scratch<T>(kPackedA, mc * std::min(K, ks.kc));
  for (int64_t jc = 0, jb = 0; jc < N; jc += ks.nc, ++jb) {
    const int64_t nc = std::min(ks.nc, N - jc);
    for (int64_t pc = 0, pb = 0; pc < K; pc += ks.kc, ++pb) {
      const int64_t kc = std::min(ks.kc, K - pc);
      const T beta = pc == 0 ? p.beta : T(1);
      for (int64_t ic = 0; ic < M; ic += mc) {
        const int64_t mcur = std::min(mc, M - ic);
        pack_a_block(a_packed, a, p, ic, mcur, pc, kc, static_cast<int>(MR));
        multiply_packed_panels(ks, c, a_packed, b.block(jb, pb), p, ic, mcur, jc, nc, kc, 0, ceil_div(nc, ks.nr),
                               beta, pc + kc == K && epilogue);
      }
    }
  }
}

template class PackedB<float>;
template class PackedB<double>;
template void gemm_prepacked<float>(float*, const float*, const PackedB<float>&, const GemmParams<float>&);
template void gemm_prepacked<double>(double*, const double*, const PackedB<double>&, const GemmParams<double>&);
template void gemm<float>(float*, const float*, const float*, const GemmParams<float>&);
template void gemm<double>(double*, const double*, const double*, const GemmParams<double>&);
template void gemm_strided_batched<float>(float*, int64_t, const float*, int64_t, const float*, int64_t, int64_t,
                                          const GemmParams<float>&);
template void gemm_strided_batched<double>(double*, int64_t, const double*, int64_t, const double*, int64_t,
                                           int64_t, const GemmParams<double>&);

}  // namespace fastnn::cpu
