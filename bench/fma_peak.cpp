// Measures this core's peak fused-multiply-add throughput (fp32 GFLOP/s on one thread), so GEMM speed can
// be quoted as a fraction of the hardware's limit measured in the same run.
//
// Many independent accumulator chains hide the FMA latency; nothing is loaded from memory. Prints one line
// per ISA the CPU supports: "avx2 <GFLOP/s>" and, where present, "avx512 <GFLOP/s>".
#include <immintrin.h>

#include <chrono>
#include <cstdio>

namespace {

constexpr long kIterations = 200'000'000 / 16;

__attribute__((target("avx2,fma"))) double avx2_peak() {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  const auto start = std::chrono::steady_clock::now();
  for (long it = 0; it < kIterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  float sink[8];
  __m256 total = acc[0];
  for (int i = 1; i < 12; ++i) total = _mm256_add_ps(total, acc[i]);
  _mm256_storeu_ps(sink, total);
  if (sink[0] == 12345.0f) std::puts("");  // keep the loop alive
  return 2.0 * 8 * 12 * static_cast<double>(kIterations) / seconds / 1e9;
}

__attribute__((target("avx512f"))) double avx512_peak() {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  const auto start = std::chrono::steady_clock::now();
  for (long it = 0; it < kIterations; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  __m512 total = acc[0];
  for (int i = 1; i < 16; ++i) total = _mm512_add_ps(total, acc[i]);
  if (_mm512_reduce_add_ps(total) == 12345.0f) std::puts("");
  return 2.0 * 16 * 16 * static_cast<double>(kIterations) / seconds / 1e9;
}

}  // namespace

int main() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    double best = 0;
    for (int r = 0; r < 3; ++r) { const double g = avx2_peak(); best = g > best ? g : best; }
    std::printf("avx2 %.1f\n", best);
  }
  if (__builtin_cpu_supports("avx512f")) {
    double best = 0;
    for (int r = 0; r < 3; ++r) { const double g = avx512_peak(); best = g > best ? g : best; }
    std::printf("avx512 %.1f\n", best);
  }
  return 0;
}
