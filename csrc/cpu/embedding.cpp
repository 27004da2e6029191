// Embedding gather / scatter-add (fastnn/embedding.h) and their reference twins.
#include "fastnn/embedding.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "fastnn/parallel.h"

namespace fastnn::cpu {
namespace {

// About this many elements per parallel chunk: small tables are copied on the calling thread.
constexpr int64_t kChunkElements = 1 << 15;

int64_t row_grain(int64_t dim) { return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(dim, 1)); }

template <typename I>
inline bool in_range(I v, int64_t num_rows) {
  return v >= 0 && static_cast<int64_t>(v) < num_rows;
}

// Lowers `first` to `pos` (the lowest bad position of all chunks wins, whichever chunk reports first).
void lower_to(std::atomic<int64_t>& first, int64_t pos) {
  int64_t cur = first.load(std::memory_order_relaxed);
  while ((cur < 0 || pos < cur) && !first.compare_exchange_weak(cur, pos, std::memory_order_relaxed)) {
  }
}

// The naive scatter-add: one pass over the positions, each row of d_out added into its table row. Stops at the
// first bad index (the caller reports it; d_table then holds no meaning).
template <typename T, typename I>
int64_t scatter_add_serial(T* d_table, const T* d_out, const I* indices, int64_t n, int64_t num_rows, int64_t dim) {
  std::fill(d_table, d_table + num_rows * dim, T(0));
  for (int64_t i = 0; i < n; ++i) {
    const I v = indices[i];
    if (!in_range(v, num_rows)) return i;
    T* FASTNN_RESTRICT dst = d_table + static_cast<int64_t>(v) * dim;
    const T* FASTNN_RESTRICT src = d_out + i * dim;
    for (int64_t j = 0; j < dim; ++j) dst[j] += src[j];
  }
  return -1;
}

}  // namespace

template <typename T, typename I>
int64_t embedding_gather(T* out, const T* table, const I* indices, int64_t n, int64_t num_rows, int64_t dim) {
  DenormalsAreZero ftz;
  std::atomic<int64_t> first_bad{-1};
  parallel_for(0, n, row_grain(dim), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const I v = indices[i];
      T* dst = out + i * dim;
      if (!in_range(v, num_rows)) {
        lower_to(first_bad, i);
        std::fill(dst, dst + dim, T(0));  // never read outside the table; the result is discarded anyway
        continue;
      }
      if (dim > 0) std::memcpy(dst, table + static_cast<int64_t>(v) * dim, static_cast<size_t>(dim) * sizeof(T));
    }
  });
  return first_bad.load();
}

template <typename T, typename I>
int64_t embedding_gather_ref(T* out, const T* table, const I* indices, int64_t n, int64_t num_rows, int64_t dim) {
  DenormalsAreZero ftz;
  for (int64_t i = 0; i < n; ++i) {
    const I v = indices[i];
    if (!in_range(v, num_rows)) return i;
    for (int64_t j = 0; j < dim; ++j) out[i * dim + j] = table[static_cast<int64_t>(v) * dim + j];
  }
  return -1;
}

template <typename T, typename I>
int64_t embedding_scatter_add(T* d_table, const T* d_out, const I* indices, int64_t n, int64_t num_rows,
                              int64_t dim) {
  DenormalsAreZero ftz;
  // One thread, or too little work to share: the naive loop (its sums are the sorted path's, bit for bit).
  if (get_num_threads() == 1 || (n + num_rows) * std::max<int64_t>(dim, 1) < 2 * kChunkElements)
    return scatter_add_serial(d_table, d_out, indices, n, num_rows, dim);

  // Counting sort of the positions by table row, stable: row v's positions are order[start[v] .. start[v + 1]),
  // increasing. The counting pass is also the bounds check (nothing is written before every index is known good).
  std::vector<int64_t> start(static_cast<size_t>(num_rows) + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    const I v = indices[i];
    if (!in_range(v, num_rows)) return i;
    ++start[static_cast<size_t>(v) + 1];
  }
  for (int64_t v = 0; v < num_rows; ++v) start[v + 1] += start[v];
  std::vector<int64_t> order(static_cast<size_t>(n));
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i) order[next[static_cast<size_t>(indices[i])]++] = i;
  }
  // Each table row summed by one chunk, in index order from +0, as the serial loop adds them.
  const int64_t avg_rows_per_v = std::max<int64_t>(1, n / std::max<int64_t>(num_rows, 1));
  parallel_for(0, num_rows, std::max<int64_t>(1, row_grain(dim) / avg_rows_per_v), [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      T* FASTNN_RESTRICT dst = d_table + v * dim;
      std::fill(dst, dst + dim, T(0));
      for (int64_t k = start[v]; k < start[v + 1]; ++k) {
        const T* FASTNN_RESTRICT src = d_out + order[k] * dim;
        for (int64_t j = 0; j < dim; ++j) dst[j] += src[j];
      }
    }
  });
  return -1;
}

template <typename T, typename I>
int64_t embedding_scatter_add_ref(T* d_table, const T* d_out, const I* indices, int64_t n, int64_t num_rows,
                                  int64_t dim) {
  DenormalsAreZero ftz;
  for (int64_t i = 0; i < n; ++i)  // check first: the reference writes nothing for bad input
    if (!in_range(indices[i], num_rows)) return i;
  for (int64_t k = 0; k < num_rows * dim; ++k) d_table[k] = T(0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < dim; ++j) d_table[static_cast<int64_t>(indices[i]) * dim + j] += d_out[i * dim + j];
  return -1;
}

#define FASTNN_INSTANTIATE_EMBEDDING(T, I)                                                               \
  template int64_t embedding_gather<T, I>(T*, const T*, const I*, int64_t, int64_t, int64_t);            \
  template int64_t embedding_gather_ref<T, I>(T*, const T*, const I*, int64_t, int64_t, int64_t);        \
  template int64_t embedding_scatter_add<T, I>(T*, const T*, const I*, int64_t, int64_t, int64_t);       \
  template int64_t embedding_scatter_add_ref<T, I>(T*, const T*, const I*, int64_t, int64_t, int64_t);
FASTNN_INSTANTIATE_EMBEDDING(float, int32_t)
FASTNN_INSTANTIATE_EMBEDDING(float, int64_t)
FASTNN_INSTANTIATE_EMBEDDING(double, int32_t)
FASTNN_INSTANTIATE_EMBEDDING(double, int64_t)
#undef FASTNN_INSTANTIATE_EMBEDDING

}  // namespace fastnn::cpu
