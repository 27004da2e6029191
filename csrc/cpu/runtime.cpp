// Thread count, CPU feature detection, the active SIMD path and build facts.
#include "fastnn/runtime.h"

#include <atomic>
#include <cstdlib>

#include "fastnn/parallel.h"
#include "gemm_kernels.h"

namespace fastnn {
namespace {

// 0 means "not set by the user": follow OpenMP's default (OMP_NUM_THREADS or the core count).
std::atomic<int> g_num_threads{0};

bool detect_avx2_fma() {
#if defined(FASTNN_HAVE_AVX2_KERNELS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the ymm registers (XGETBV).
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

SimdPath best_path() { return cpu_supports_avx2_fma() ? SimdPath::kAvx2 : SimdPath::kGeneric; }

// FASTNN_SIMD=generic in the environment forces the portable kernels (for testing and for
// bisecting a suspected SIMD bug on a user's machine).
SimdPath initial_path() {
  const char* forced = std::getenv("FASTNN_SIMD");
  if (forced != nullptr && std::string(forced) == "generic") return SimdPath::kGeneric;
  return best_path();
}

std::atomic<int>& path_storage() {
  static std::atomic<int> path{static_cast<int>(initial_path())};
  return path;
}

}  // namespace

int get_num_threads() {
#if defined(FASTNN_WITH_OPENMP)
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
#if defined(FASTNN_WITH_OPENMP)
  g_num_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed);
#else
  (void)n;
#endif
}

bool openmp_enabled() {
#if defined(FASTNN_WITH_OPENMP)
  return true;
#else
  return false;
#endif
}

bool cpu_supports_avx2_fma() {
  static const bool supported = detect_avx2_fma();
  return supported;
}

SimdPath active_simd_path() { return static_cast<SimdPath>(path_storage().load(std::memory_order_relaxed)); }

bool set_simd_path(SimdPath path) {
  if (path == SimdPath::kAvx2 && !cpu_supports_avx2_fma()) return false;
  path_storage().store(static_cast<int>(path), std::memory_order_relaxed);
  return true;
}

const char* simd_path_name(SimdPath path) { return path == SimdPath::kAvx2 ? "avx2+fma" : "generic"; }

BuildInfo build_info() {
  BuildInfo info;
  info.version = FASTNN_VERSION;
  info.compiler = FASTNN_COMPILER;
  info.build_type = FASTNN_BUILD_TYPE;
  info.openmp = openmp_enabled();
  info.cuda = false;
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  info.avx2_kernels_compiled = true;
#else
  info.avx2_kernels_compiled = false;
#endif
  return info;
}

namespace cpu::detail {

template <>
const GemmKernelSet<float>& active_kernels<float>() {
  static const GemmKernelSet<float> generic = generic_kernels_f32();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  static const GemmKernelSet<float> avx2 = avx2_kernels_f32();
  if (active_simd_path() == SimdPath::kAvx2) return avx2;
#endif
  return generic;
}

template <>
const GemmKernelSet<double>& active_kernels<double>() {
  static const GemmKernelSet<double> generic = generic_kernels_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  static const GemmKernelSet<double> avx2 = avx2_kernels_f64();
  if (active_simd_path() == SimdPath::kAvx2) return avx2;
#endif
  return generic;
}

}  // namespace cpu::detail
}  // namespace fastnn
