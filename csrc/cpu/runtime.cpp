// Thread count, CPU feature detection, the active SIMD path and build facts.
#include "fastnn/runtime.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

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

bool detect_avx512() {
#if defined(FASTNN_HAVE_AVX512_KERNELS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // Like the AVX2 check, this also requires the OS to save the zmm and mask registers.
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

SimdPath best_path() {
  if (cpu_supports_avx512()) return SimdPath::kAvx512;
  if (cpu_supports_avx2_fma()) return SimdPath::kAvx2;
  return SimdPath::kGeneric;
}

// FASTNN_SIMD=generic|avx2 in the environment caps the kernels at that path (for testing, benchmarking
// one ISA against another, and bisecting a suspected SIMD bug on a user's machine).
SimdPath initial_path() {
  const char* forced = std::getenv("FASTNN_SIMD");
  const SimdPath best = best_path();
  if (forced == nullptr) return best;
  const std::string name(forced);
  if (name == "generic") return SimdPath::kGeneric;
  if ((name == "avx2" || name == "avx2+fma") && best != SimdPath::kGeneric) return SimdPath::kAvx2;
  return best;
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
  g_num_threads.store(n < 1 ? 1 : (n > kMaxThreads ? kMaxThreads : n), std::memory_order_relaxed);
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

bool cpu_supports_avx512() {
  static const bool supported = detect_avx512();
  return supported;
}

bool simd_path_available(SimdPath path) {
  switch (path) {
    case SimdPath::kGeneric: return true;
    case SimdPath::kAvx2: return cpu_supports_avx2_fma();
    case SimdPath::kAvx512: return cpu_supports_avx512();
  }
  return false;
}

bool set_simd_path(SimdPath path) {
  if (!simd_path_available(path)) return false;
  path_storage().store(static_cast<int>(path), std::memory_order_relaxed);
  return true;
}

const char* simd_path_name(SimdPath path) {
  switch (path) {
    case SimdPath::kAvx512: return "avx512";
    case SimdPath::kAvx2: return "avx2+fma";
    case SimdPath::kGeneric: break;
  }
  return "generic";
}

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
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  info.avx512_kernels_compiled = true;
#else
  info.avx512_kernels_compiled = false;
#endif
  return info;
}

namespace cpu::detail {

template <>
const GemmKernelSet<float>& active_kernels<float>() {
  static const GemmKernelSet<float> generic = generic_kernels_f32();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  if (active_simd_path() == SimdPath::kAvx2) {  // built only when active: that file's code needs the ISA
    static const GemmKernelSet<float> avx2 = avx2_kernels_f32();
    return avx2;
  }
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  if (active_simd_path() == SimdPath::kAvx512) {  // built only when active: that file's code needs the ISA
    static const GemmKernelSet<float> avx512 = avx512_kernels_f32();
    return avx512;
  }
#endif
  return generic;
}

template <>
const GemmKernelSet<double>& active_kernels<double>() {
  static const GemmKernelSet<double> generic = generic_kernels_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  if (active_simd_path() == SimdPath::kAvx2) {  // built only when active: that file's code needs the ISA
    static const GemmKernelSet<double> avx2 = avx2_kernels_f64();
    return avx2;
  }
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  if (active_simd_path() == SimdPath::kAvx512) {  // built only when active: that file's code needs the ISA
    static const GemmKernelSet<double> avx512 = avx512_kernels_f64();
    return avx512;
  }
#endif
  return generic;
}

}  // namespace cpu::detail
namespace {
template <typename T>
GemmBlocking blocking_of(const cpu::detail::GemmKernelSet<T>& ks) {
  return GemmBlocking{ks.mr, ks.nr, ks.mc, ks.kc, ks.nc};
}
}  // namespace

bool gemm_blocks_overridden() { return cpu::detail::gemm_blocks_overridden(); }

GemmBlocking gemm_blocking(bool f64) {
  return f64 ? blocking_of(cpu::detail::blocked_kernels<double>()) : blocking_of(cpu::detail::blocked_kernels<float>());
}

namespace {
const char* g_malloc_tuning = "unavailable";
}  // namespace

const char* tune_malloc() {
#if defined(__GLIBC__)
  const char* opt = std::getenv("FASTNN_MALLOC_TUNING");
  if (opt != nullptr && std::string(opt) == "0") return g_malloc_tuning = "off";
  for (const char* var : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX",
                          "GLIBC_TUNABLES"})
    if (std::getenv(var) != nullptr) return g_malloc_tuning = "user-set";
  const bool ok = mallopt(M_MMAP_THRESHOLD, 64 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
  return g_malloc_tuning = ok ? "tuned" : "unavailable";
#else
  return g_malloc_tuning;
#endif
}

const char* malloc_tuning() { return g_malloc_tuning; }

}  // namespace fastnn
