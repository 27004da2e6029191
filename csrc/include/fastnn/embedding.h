// Embedding lookup and its gradient: table is (V, D), indices hold n = prod(indices.shape) entries (int32 or int64,
// any shape: the kernels see them flat), out / d_out are (n, D) (the caller's (*indices.shape, D)), the gradient
// d_table is (V, D). Tier 1: pure C++, outputs first, int64_t sizes and index math throughout, templates for
// float / double tables and int32_t / int64_t indices.
//
//   embedding_gather:       out[i, :] = table[indices[i], :]
//   embedding_scatter_add:  d_table[v, :] = sum over the i with indices[i] == v of d_out[i, :], added in increasing
//                           i (index order), starting from +0 (a row no index names is 0). d_table is ASSIGNED.
//
// Bad indices: every entry is checked while it is read (never an out-of-bounds access). Each kernel returns -1 when
// every index lies in [0, V), else the first (lowest) position i whose index does not; the output then holds no
// meaning. The binding turns that into a ValueError naming the function, the value and V.
//
// Threads: the gather splits the n rows (each output row written by one chunk). The scatter-add counts the rows of
// each v (a counting sort of the positions, stable: positions stay in increasing order within a row), then splits
// the V table rows, each summed by one chunk in index order. Results are bit-identical for every thread count and
// to the _ref twins (the naive loops: one pass over i, adding row by row).
#pragma once

#include <cstdint>

namespace fastnn::cpu {

template <typename T, typename I>
int64_t embedding_gather(T* out, const T* table, const I* indices, int64_t n, int64_t num_rows, int64_t dim);
template <typename T, typename I>
int64_t embedding_gather_ref(T* out, const T* table, const I* indices, int64_t n, int64_t num_rows, int64_t dim);

template <typename T, typename I>
int64_t embedding_scatter_add(T* d_table, const T* d_out, const I* indices, int64_t n, int64_t num_rows,
                              int64_t dim);
template <typename T, typename I>
int64_t embedding_scatter_add_ref(T* d_table, const T* d_out, const I* indices, int64_t n, int64_t num_rows,
                                  int64_t dim);

}  // namespace fastnn::cpu
