// The GEMM's cache blocking, derived from the cache sizes in effect (runtime.h: CPUID, FASTNN_CACHE or
// set_cache_sizes) and the active kernel set's register tile, the way BLIS's analytical model does
// (Low et al., "Analytical modeling is enough for high-performance BLIS", TOMS 2016):
//
//   KC: a KC x NR panel of packed B stays in L1 while MC / MR micro-kernels stream A slivers past it, so it
//       may take about half of L1 (the rest holds the A sliver in flight and the C tile); the kernel set
//       says what share (kc_l1_share: the AVX-512 tile streams its panel from L2, see gemm_kernels.h);
//   MC: the MC x KC block of packed A stays in L2 across the NC / NR column panels: a share of L2, leaving
//       room for the B panel passing through and for C;
//   NC: the KC x NC block of packed B stays in L3 (the core's share, capped so that packing B stays a small
//       part of the work and the block is reused across MC blocks).
//
// The resulting table for the CPUs seen so far is in docs/ARCHITECTURE.md. FASTNN_GEMM_BLOCKS=MC,KC,NC replaces
// the result (for tuning on one machine; each value is rounded to the register tile and clamped).
#include <algorithm>
#include <cstdlib>
#include <string>

#include "fastnn/common.h"
#include "fastnn/runtime.h"
#include "gemm_kernels.h"

namespace fastnn::cpu::detail {
namespace {

constexpr double kL2ShareForA = 0.5;
constexpr double kL3ShareForB = 0.25;
constexpr int64_t kMinKc = 64, kMaxKc = 1024;
constexpr int64_t kMaxMc = 1024;
constexpr int64_t kMaxNc = 4096;
// Without an L3 report, the B block is sized as if the core had 4x its L2 in L3 (what the x86-64 server
// parts seen so far have per core, or more).
constexpr int64_t kL3PerL2WhenUnknown = 4;

int64_t round_down(int64_t x, int64_t m) { return x / m * m; }

struct BlockOverride {
  bool set = false;
  int64_t mc = 0, kc = 0, nc = 0;
};

const BlockOverride& block_override() {
  static const BlockOverride o = [] {
    BlockOverride r;
    const char* env = std::getenv("FASTNN_GEMM_BLOCKS");
    if (env == nullptr) return r;
    char* end = nullptr;
    const long long mc = std::strtoll(env, &end, 10);
    if (end == env || *end != ',') return r;
    const char* next = end + 1;
    const long long kc = std::strtoll(next, &end, 10);
    if (end == next || *end != ',') return r;
    next = end + 1;
    const long long nc = std::strtoll(next, &end, 10);
    if (end == next || *end != '\0') return r;
    if (mc < 1 || kc < 1 || nc < 1 || mc > 65536 || kc > 65536 || nc > 65536) return r;
    r.set = true;
    r.mc = mc;
    r.kc = kc;
    r.nc = nc;
    return r;
  }();
  return o;
}

}  // namespace

template <typename T>
void derive_blocking(GemmKernelSet<T>& ks, const CacheSizes& caches) {
  const int64_t MR = ks.mr, NR = ks.nr, elem = sizeof(T);
  int64_t kc = round_down(static_cast<int64_t>(caches.l1d * ks.kc_l1_share) / (NR * elem), 16);
  kc = std::clamp(kc, kMinKc, kMaxKc);
  int64_t mc = round_down(static_cast<int64_t>(caches.l2 * kL2ShareForA) / (kc * elem), MR);
  mc = std::clamp(mc, MR, round_down(kMaxMc, MR));
  const int64_t l3 = caches.l3 > 0 ? caches.l3 : kL3PerL2WhenUnknown * caches.l2;
  int64_t nc = round_down(static_cast<int64_t>(l3 * kL3ShareForB) / (kc * elem), NR);
  nc = std::clamp(nc, 8 * NR, round_down(kMaxNc, NR));
  const BlockOverride& o = block_override();
  if (o.set) {
    mc = std::max(MR, round_down(o.mc, MR));
    kc = o.kc;
    nc = std::max(NR, round_down(o.nc, NR));
  }
  ks.mc = mc;
  ks.kc = kc;
  ks.nc = nc;
}

bool gemm_blocks_overridden() { return block_override().set; }

template <typename T>
GemmKernelSet<T> blocked_kernels() {
  GemmKernelSet<T> ks = active_kernels<T>();
  derive_blocking(ks, cache_sizes());
  return ks;
}

template GemmKernelSet<float> blocked_kernels<float>();
template GemmKernelSet<double> blocked_kernels<double>();

}  // namespace fastnn::cpu::detail
