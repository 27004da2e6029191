// The data cache sizes the kernels block for: read from CPUID (Intel leaf 4, AMD leaf 0x8000001D), else
// from the OS (sysconf), else conservative defaults; FASTNN_CACHE or set_cache_sizes override them.
//
// Why CPUID first: glibc's sysconf answers from its own CPUID tables, which lag new CPUs (on some it reports
// 0 for L1d), and on AMD it reports L3 per CCX only since recent glibc. Under a hypervisor CPUID reports what
// the host passes through, which is what the guest's cores really have for L1 and L2.
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include <unistd.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define FASTNN_HAVE_CPUID 1
#endif

#include "fastnn/runtime.h"

namespace fastnn {
namespace {

constexpr int64_t kKiB = 1024, kMiB = 1024 * 1024;
// What a machine that reports nothing gets: the smallest caches of the x86-64 cores these kernels target
// (Zen 2/3 L1d and L2, a modest L3 share), so the blocking errs towards fitting.
constexpr CacheSizes kDefaultCaches{32 * kKiB, 512 * kKiB, 8 * kMiB};

#if defined(FASTNN_HAVE_CPUID)
// Walks a "deterministic cache parameters" leaf (Intel 4, AMD 0x8000001D: the same layout) and records the
// data/unified caches of levels 1-3. Returns false when the leaf reported nothing.
bool read_cache_leaf(unsigned leaf, CacheSizes& out) {
  bool any = false;
  for (unsigned sub = 0; sub < 16; ++sub) {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    __cpuid_count(leaf, sub, eax, ebx, ecx, edx);
    const unsigned type = eax & 0x1f;  // 0: no more caches, 1: data, 2: instruction, 3: unified
    if (type == 0) break;
    if (type == 2) continue;
    const unsigned level = (eax >> 5) & 0x7;
    const int64_t ways = ((ebx >> 22) & 0x3ff) + 1, partitions = ((ebx >> 12) & 0x3ff) + 1;
    const int64_t line = (ebx & 0xfff) + 1, sets = static_cast<int64_t>(ecx) + 1;
    const int64_t bytes = ways * partitions * line * sets;
    if (level == 1) out.l1d = bytes;
    else if (level == 2) out.l2 = bytes;
    else if (level == 3) out.l3 = bytes;
    any = true;
  }
  return any && out.l1d > 0 && out.l2 > 0;
}

bool cpuid_caches(CacheSizes& out) {
  unsigned max_leaf = 0, ebx = 0, ecx = 0, edx = 0;
  __cpuid(0, max_leaf, ebx, ecx, edx);
  char vendor[13];
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  vendor[12] = '\0';
  CacheSizes found{0, 0, 0};
  if (std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0) {
    unsigned max_ext = 0;
    __cpuid(0x80000000u, max_ext, ebx, ecx, edx);
    unsigned eax1 = 0, ebx1 = 0, ecx1 = 0, edx1 = 0;
    if (max_ext >= 0x80000001u) __cpuid(0x80000001u, eax1, ebx1, ecx1, edx1);
    const bool topology_extensions = (ecx1 >> 22) & 1;
    if (!(max_ext >= 0x8000001Du && topology_extensions && read_cache_leaf(0x8000001Du, found))) return false;
  } else {
    if (!(max_leaf >= 4 && read_cache_leaf(4, found))) return false;
  }
  out = found;
  return true;
}
#endif

bool sysconf_caches(CacheSizes& out) {
  CacheSizes found{0, 0, 0};
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
  found.l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE);
  found.l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  found.l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
  if (found.l1d <= 0 || found.l2 <= 0) return false;
  if (found.l3 < 0) found.l3 = 0;
  out = found;
  return true;
}

struct Detected {
  CacheSizes sizes = kDefaultCaches;
  const char* source = "default";
};

const Detected& detected() {
  static const Detected d = [] {
    Detected r;
#if defined(FASTNN_HAVE_CPUID)
    if (cpuid_caches(r.sizes)) {
      r.source = "cpuid";
      return r;
    }
#endif
    if (sysconf_caches(r.sizes)) r.source = "sysconf";
    return r;
  }();
  return d;
}

// "32K", "512k", "32M", "1048576": a size in bytes with an optional K/M/G suffix; -1 when malformed.
int64_t parse_size(const std::string& text) {
  if (text.empty()) return -1;
  size_t pos = 0;
  int64_t value = 0;
  while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
    if (value > (int64_t{1} << 40)) return -1;
    value = value * 10 + (text[pos] - '0');
    ++pos;
  }
  if (pos == 0) return -1;
  std::string suffix = text.substr(pos);
  for (char& ch : suffix) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (suffix == "" || suffix == "B") return value;
  if (suffix == "K" || suffix == "KB" || suffix == "KIB") return value * kKiB;
  if (suffix == "M" || suffix == "MB" || suffix == "MIB") return value * kMiB;
  if (suffix == "G" || suffix == "GB" || suffix == "GIB") return value * 1024 * kMiB;
  return -1;
}

// The sizes in effect: read on every GEMM call, so atomics (relaxed: each is a hint for blocking, and a call
// that sees a mix of an old and a new triple during a set_cache_sizes still computes correct results).
std::atomic<int64_t> g_l1d{0}, g_l2{0}, g_l3{0};
std::atomic<const char*> g_source{nullptr};
std::once_flag g_init_once;
CacheSizes g_startup{};  // what the process started with (FASTNN_CACHE or detected): written once, under g_init_once
const char* g_startup_source = nullptr;

void init_from_environment() {
  const Detected& d = detected();
  CacheSizes sizes = d.sizes;
  const char* source = d.source;
  if (const char* env = std::getenv("FASTNN_CACHE")) {
    CacheSizes parsed{};
    if (parse_cache_sizes(env, parsed)) {
      sizes = parsed;
      source = "FASTNN_CACHE";
    }
  }
  g_startup = sizes;
  g_startup_source = source;
  g_l1d.store(sizes.l1d, std::memory_order_relaxed);
  g_l2.store(sizes.l2, std::memory_order_relaxed);
  g_l3.store(sizes.l3, std::memory_order_relaxed);
  g_source.store(source, std::memory_order_relaxed);
}

}  // namespace

bool parse_cache_sizes(const std::string& text, CacheSizes& out) {
  int64_t parts[3] = {0, 0, 0};
  int count = 0;
  size_t start = 0;
  for (;;) {
    if (count == 3) return false;  // a fourth field
    const size_t comma = text.find(',', start);
    parts[count] = parse_size(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (parts[count] < 0) return false;
    ++count;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (count < 2) return false;
  const CacheSizes sizes{parts[0], parts[1], parts[2]};
  if (!cache_sizes_valid(sizes)) return false;
  out = sizes;
  return true;
}

bool cache_sizes_valid(const CacheSizes& s) {
  return s.l1d >= 4 * kKiB && s.l1d <= 64 * kMiB && s.l2 >= s.l1d && s.l2 <= 4096 * kMiB && s.l3 >= 0 &&
         s.l3 <= int64_t{1} << 40;
}

CacheSizes detected_cache_sizes() { return detected().sizes; }
const char* detected_cache_source() { return detected().source; }

CacheSizes cache_sizes() {
  std::call_once(g_init_once, init_from_environment);
  return CacheSizes{g_l1d.load(std::memory_order_relaxed), g_l2.load(std::memory_order_relaxed),
                    g_l3.load(std::memory_order_relaxed)};
}

const char* cache_source() {
  std::call_once(g_init_once, init_from_environment);
  return g_source.load(std::memory_order_relaxed);
}

bool set_cache_sizes(const CacheSizes& sizes) {
  std::call_once(g_init_once, init_from_environment);
  const bool reset = sizes.l1d == 0 && sizes.l2 == 0 && sizes.l3 == 0;
  if (!reset && !cache_sizes_valid(sizes)) return false;
  const CacheSizes use = reset ? g_startup : sizes;
  g_l1d.store(use.l1d, std::memory_order_relaxed);
  g_l2.store(use.l2, std::memory_order_relaxed);
  g_l3.store(use.l3, std::memory_order_relaxed);
  g_source.store(reset ? g_startup_source : "set_cache_sizes", std::memory_order_relaxed);
  return true;
}

int64_t l2_cache_bytes() { return cache_sizes().l2; }

}  // namespace fastnn
