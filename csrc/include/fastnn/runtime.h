// Build and CPU facts, and the choice of SIMD code path made at run time from CPUID.
#pragma once

#include <cstdint>
#include <string>

namespace fastnn {

enum class SimdPath { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// True when this CPU and OS can run the AVX2+FMA kernels and the library was built with them.
bool cpu_supports_avx2_fma();
// True when this CPU and OS can run the AVX-512F kernels and the library was built with them.
bool cpu_supports_avx512();
// Whether `path` can run here (compiled in, and supported by this CPU and OS).
bool simd_path_available(SimdPath path);
// The path the kernels currently dispatch to (the best available one unless overridden).
SimdPath active_simd_path();
// Forces a path, e.g. to test the portable kernels on an AVX2 machine. Returns false (and changes
// nothing) when the requested path is not available on this CPU/build.
bool set_simd_path(SimdPath path);
const char* simd_path_name(SimdPath path);

// The data caches the kernels block for, in bytes: L1d and L2 per core, L3 in all (0: none reported).
// Detected once from CPUID (else sysconf, else 32K / 512K / 8M); FASTNN_CACHE=L1,L2[,L3] in the environment
// (sizes with an optional K/M/G suffix, e.g. FASTNN_CACHE=32K,512K,32M for a Zen 3) replaces them at start-up,
// and set_cache_sizes at run time, so that any machine can exercise the blocking another CPU gets.
struct CacheSizes {
  int64_t l1d, l2, l3;
};
CacheSizes cache_sizes();
// Where cache_sizes() came from: "cpuid", "sysconf", "default", "FASTNN_CACHE" or "set_cache_sizes".
const char* cache_source();
CacheSizes detected_cache_sizes();
const char* detected_cache_source();
// Replaces the sizes in effect (false, and nothing changed, when they are implausible: L1d 4 KiB..64 MiB,
// L2 >= L1d); all three 0 restores the start-up sizes.
bool set_cache_sizes(const CacheSizes& sizes);
bool cache_sizes_valid(const CacheSizes& sizes);
// Parses "L1,L2" or "L1,L2,L3" as FASTNN_CACHE takes it; false when malformed or implausible.
bool parse_cache_sizes(const std::string& text, CacheSizes& out);
// cache_sizes().l2: the per-core L2 the kernels size their working sets by.
int64_t l2_cache_bytes();

// The register tile and cache blocks of the GEMM kernel set active now (for float32, or float64 when `f64`):
// tests size their shapes by them so that every blocking edge is crossed on whichever CPU runs them.
struct GemmBlocking {
  int mr, nr;
  int64_t mc, kc, nc;
};
GemmBlocking gemm_blocking(bool f64);
// Whether FASTNN_GEMM_BLOCKS=MC,KC,NC in the environment replaced the blocking derived from the caches.
bool gemm_blocks_overridden();

struct BuildInfo {
  std::string version;
  std::string compiler;
  std::string build_type;
  bool openmp;
  bool cuda;
  bool avx2_kernels_compiled;
  bool avx512_kernels_compiled;
};
BuildInfo build_info();

// glibc's malloc returns every freed buffer above its mmap threshold to the OS and page-faults the next one in: a
// training step that allocates the same tens of megabytes each batch (an LSTM's saved gates, GEMM outputs) spent a
// quarter of its time in page faults. tune_malloc() (called once when the Python module loads) keeps buffers up to
// 64 MB in the heap and trims its free top only above 256 MB, so steady-state steps reuse their memory. It does
// nothing off glibc, when FASTNN_MALLOC_TUNING=0, or when the user set any MALLOC_*_ variable of glibc's own
// (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, MALLOC_ARENA_MAX: their choice wins).
// Returns what was done: "tuned", "off", "user-set" or "unavailable".
const char* tune_malloc();
const char* malloc_tuning();  // tune_malloc()'s result (or "unavailable" before it ran)

}  // namespace fastnn
