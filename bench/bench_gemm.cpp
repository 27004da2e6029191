// C++ microbenchmark of the GEMM kernels (Google Benchmark). Build with
//   cmake -S . -B build/bench -DFASTNN_BUILD_BENCHMARKS=ON && cmake --build build/bench && build/bench/bench_gemm
// Reports GFLOP/s as the "FLOPS" counter for the fast kernel, per SIMD path, over the shapes.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "fastnn/gemm.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"

namespace {

template <typename T>
void BM_gemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const auto path = static_cast<fastnn::SimdPath>(state.range(3));
  if (!fastnn::set_simd_path(path)) {
    state.SkipWithError("SIMD path not available on this CPU");
    return;
  }
  std::mt19937 rng(42);
  std::normal_distribution<T> dist;
  std::vector<T> a(m * k), b(k * n), c(m * n);
  for (auto& x : a) x = dist(rng);
  for (auto& x : b) x = dist(rng);
  fastnn::GemmParams<T> p;
  p.m = m, p.n = n, p.k = k, p.lda = k, p.ldb = n, p.ldc = n;
  for (auto _ : state) {
    fastnn::cpu::gemm(c.data(), a.data(), b.data(), p);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(fastnn::simd_path_name(path));
}

void shapes(benchmark::internal::Benchmark* b) {
  const std::vector<std::vector<int64_t>> mnk = {
      {256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048},
      {64, 128, 784},  {64, 10, 128},   {6272, 32, 9},      {64, 3136, 288},
      {1600, 512, 128}, {64, 512, 128}, {100, 100, 100},    {1000, 1, 1000}};
  for (int64_t path = 0; path <= 2; ++path)
    for (const auto& s : mnk) b->Args({s[0], s[1], s[2], path});
}

}  // namespace

BENCHMARK(BM_gemm<float>)->Apply(shapes)->UseRealTime();
BENCHMARK(BM_gemm<double>)->Apply(shapes)->UseRealTime();
BENCHMARK_MAIN();
