// Reductions over (outer, r, inner) (see fastnn/reduce.h): NumPy's summation order, split across threads only
// between independent outputs or along the pairwise recursion tree, so results never depend on the thread count.
#include "fastnn/reduce.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "fastnn/parallel.h"

namespace fastnn::cpu {
namespace {

constexpr int64_t kGrainElements = 1 << 14;  // input elements per parallel chunk
constexpr int64_t kPairwiseBlock = 128;      // NumPy's PW_BLOCKSIZE
constexpr int64_t kMaxColumnBlock = 8192;    // columns summed together down r (inner > 1): an L1 / L2-sized row
constexpr int kLeafDepth = 6;                // a long run splits into up to 2^6 subtrees for the threads
constexpr int64_t kParallelRun = 1 << 16;    // runs at least this long are split along their tree

// NumPy's pairwise_sum (numpy/_core/src/umath/loops_utils.h.src), the same additions in the same order.
template <typename T>
T pairwise_sum(const T* a, int64_t n) {
  if (n < 8) {
    T res = T(-0.0);  // NumPy starts at -0.0 so that a sum of -0.0 stays -0.0
    for (int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= kPairwiseBlock) {
    T r[8];
    for (int k = 0; k < 8; ++k) r[k] = a[k];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int k = 0; k < 8; ++k) r[k] += a[i + k];
    T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

// The subtrees of pairwise_sum's recursion `depth` levels down (or the blocks where it stops splitting), in order.
void pairwise_leaves(int64_t offset, int64_t n, int depth, std::vector<std::pair<int64_t, int64_t>>* leaves) {
  if (depth == 0 || n <= kPairwiseBlock) {
    leaves->emplace_back(offset, n);
    return;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  pairwise_leaves(offset, n2, depth - 1, leaves);
  pairwise_leaves(offset + n2, n - n2, depth - 1, leaves);
}

// Adds the leaves' sums up the same tree: pairwise_sum's result, bit for bit.
template <typename T>
T pairwise_combine(const std::vector<T>& sums, size_t* next, int64_t n, int depth) {
  if (depth == 0 || n <= kPairwiseBlock) return sums[(*next)++];
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  const T left = pairwise_combine(sums, next, n2, depth - 1);
  const T right = pairwise_combine(sums, next, n - n2, depth - 1);
  return left + right;
}

// pairwise_sum of one long run, its subtrees summed in parallel.
template <typename T>
T pairwise_sum_parallel(const T* a, int64_t n) {
  if (n < kParallelRun || get_num_threads() == 1) return pairwise_sum(a, n);
  std::vector<std::pair<int64_t, int64_t>> leaves;
  pairwise_leaves(0, n, kLeafDepth, &leaves);
  std::vector<T> sums(leaves.size());
  parallel_for(0, static_cast<int64_t>(leaves.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t l = b; l < e; ++l) sums[l] = pairwise_sum(a + leaves[l].first, leaves[l].second);
  });
  size_t next = 0;
  return pairwise_combine(sums, &next, n, kLeafDepth);
}

// NumPy's maximum: NaN in either operand wins; a == b gives b.
template <typename T>
FASTNN_ALWAYS_INLINE T maximum(T a, T b) {
  return (a > b || a != a) ? a : b;
}

// Max of a contiguous run (n >= 1): NumPy's maximum folded left (NaN wins, ties give the later element, as NumPy's
// scalar loop: so runs shorter than one step, up to 16 float32 / 8 float64 elements where NumPy loops too, match it
// even in the sign of a zero maximum). Longer runs go through kAcc independent 16-byte vectors of lanes (so that the
// select's latency overlaps), each lane NaN-propagating (a lane holding NaN keeps it: NaN > v is false but
// NaN != NaN is true). GCC / Clang vector extensions: the compiler does not vectorise this select on its own.
template <typename T>
T run_max(const T* a, int64_t n) {
  T res = a[0];
  int64_t i = 0;
#if defined(__GNUC__) || defined(__clang__)
  constexpr int kLanes = static_cast<int>(16 / sizeof(T));
  constexpr int kAcc = 8;
  constexpr int64_t kStep = kLanes * kAcc;
  if (n >= kStep) {
    typedef T Vec __attribute__((vector_size(16)));
    Vec m[kAcc];
    std::memcpy(m, a, sizeof m);
    for (i = kStep; i + kStep <= n; i += kStep) {
      Vec v[kAcc];
      std::memcpy(v, a + i, sizeof v);
      for (int k = 0; k < kAcc; ++k) m[k] = ((m[k] > v[k]) | (m[k] != m[k])) ? m[k] : v[k];
    }
    for (int k = 0; k < kAcc; ++k)
      for (int l = 0; l < kLanes; ++l) res = maximum(res, m[k][l]);
  }
#endif
  for (; i < n; ++i) res = maximum(res, a[i]);
  return res;
}

// Calls rows(o_begin, o_end) over the outputs o of an inner == 1 reduction, or columns(o, j_begin, j_end) over
// blocks of the columns of an inner > 1 one, in parallel chunks of about kGrainElements input elements.
template <typename Rows, typename Columns>
void for_each_output(int64_t outer, int64_t r, int64_t inner, const Rows& rows, const Columns& columns) {
  if (outer <= 0 || inner <= 0) return;  // no outputs
  if (inner == 1) {
    parallel_for(0, outer, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(r, 1)), rows);
    return;
  }
  // Columns are independent, so how they are split changes no result. Whole rows up to kMaxColumnBlock columns,
  // as NumPy walks them: splitting a row between threads (tried: halves of 256 to 4096 columns on 2 threads) streamed
  // slower than one thread reading whole rows, so threads only share independent outputs (outer) and wider rows.
  const int64_t width = std::min(inner, kMaxColumnBlock);
  const int64_t blocks = ceil_div(inner, width);
  const int64_t block_work = std::max<int64_t>(1, r * width);
  parallel_for(0, outer * blocks, std::max<int64_t>(1, kGrainElements / block_work), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / blocks, j0 = (t % blocks) * width;
      columns(o, j0, std::min(inner, j0 + width));
    }
  });
}

template <typename T>
void sum_into(T* out, const T* x, int64_t outer, int64_t r, int64_t inner) {
  if (inner == 1 && outer < 4 && r >= kParallelRun) {  // a few long runs: split each along its tree
    for (int64_t o = 0; o < outer; ++o) out[o] = T(0) + pairwise_sum_parallel(x + o * r, r);
    return;
  }
  for_each_output(
      outer, r, inner,
      [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) out[o] = T(0) + pairwise_sum(x + o * r, r);
      },
      [&](int64_t o, int64_t j0, int64_t j1) {
        T* acc = out + o * inner;
        for (int64_t j = j0; j < j1; ++j) acc[j] = T(0);
        for (int64_t k = 0; k < r; ++k) {
          const T* row = x + (o * r + k) * inner;
          for (int64_t j = j0; j < j1; ++j) acc[j] += row[j];
        }
      });
}

}  // namespace

template <typename T>
void reduce_sum(T* out, const T* x, int64_t outer, int64_t r, int64_t inner) {
  DenormalsAreZero ftz;
  sum_into(out, x, outer, r, inner);
}

template <typename T>
void reduce_sum_ref(T* out, const T* x, int64_t outer, int64_t r, int64_t inner) {
  DenormalsAreZero ftz;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      double s = 0;
      for (int64_t k = 0; k < r; ++k) s += x[(o * r + k) * inner + j];
      out[o * inner + j] = static_cast<T>(s);
    }
}

template <typename T>
void reduce_mean(T* out, const T* x, int64_t outer, int64_t r, int64_t inner) {
  DenormalsAreZero ftz;
  sum_into(out, x, outer, r, inner);
  const double count = static_cast<double>(r);
  const int64_t n = outer * inner;
  parallel_for(0, n, kGrainElements, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = static_cast<T>(static_cast<double>(out[i]) / count);
  });
}

template <typename T>
void reduce_mean_ref(T* out, const T* x, int64_t outer, int64_t r, int64_t inner) {
  DenormalsAreZero ftz;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      double s = 0;
      for (int64_t k = 0; k < r; ++k) s += x[(o * r + k) * inner + j];
      out[o * inner + j] = static_cast<T>(s / static_cast<double>(r));
    }
}

template <typename T>
void reduce_max(T* out, const T* x, int64_t outer, int64_t r, int64_t inner) {
  DenormalsAreZero ftz;
  for_each_output(
      outer, r, inner,
      [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) out[o] = run_max(x + o * r, r);
      },
      [&](int64_t o, int64_t j0, int64_t j1) {
        T* acc = out + o * inner;
        const T* first = x + o * r * inner;
        for (int64_t j = j0; j < j1; ++j) acc[j] = first[j];
        for (int64_t k = 1; k < r; ++k) {
          const T* row = x + (o * r + k) * inner;
          for (int64_t j = j0; j < j1; ++j) acc[j] = maximum(acc[j], row[j]);
        }
      });
}

template <typename T>
void reduce_max_ref(T* out, const T* x, int64_t outer, int64_t r, int64_t inner) {
  DenormalsAreZero ftz;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      T m = x[o * r * inner + j];
      for (int64_t k = 1; k < r; ++k) {
        const T v = x[(o * r + k) * inner + j];
        if (std::isnan(v) || v > m) m = std::isnan(m) ? m : v;
      }
      out[o * inner + j] = m;
    }
}

#define FASTNN_INSTANTIATE(T)                                                   \
  template void reduce_sum<T>(T*, const T*, int64_t, int64_t, int64_t);         \
  template void reduce_sum_ref<T>(T*, const T*, int64_t, int64_t, int64_t);     \
  template void reduce_mean<T>(T*, const T*, int64_t, int64_t, int64_t);        \
  template void reduce_mean_ref<T>(T*, const T*, int64_t, int64_t, int64_t);    \
  template void reduce_max<T>(T*, const T*, int64_t, int64_t, int64_t);         \
  template void reduce_max_ref<T>(T*, const T*, int64_t, int64_t, int64_t);

FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
