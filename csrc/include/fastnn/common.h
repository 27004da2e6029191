// Shared definitions of the fastnn kernel library (tier 1: pure C++, never includes Python headers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__GNUC__) || defined(__clang__)
#define FASTNN_RESTRICT __restrict__
#define FASTNN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FASTNN_RESTRICT
#define FASTNN_ALWAYS_INLINE inline
#endif

namespace fastnn {

// Cache-line aligned scratch memory that only grows. Kernels keep one per thread (thread_local) so
// that repeated calls never page-fault on freshly mmapped packing buffers.
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { std::free(data_); }

  // Returns at least `bytes` bytes aligned to 64; the contents are unspecified.
  void* reserve(std::size_t bytes) {
    if (bytes > capacity_) {
      std::free(data_);
      std::size_t rounded = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, rounded);
      if (data_ == nullptr) {
        capacity_ = 0;
        throw std::bad_alloc();
      }
      capacity_ = rounded;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// The most a thread keeps between calls in a thread_local ScratchBuffer (BoundedScratch). Training steps reuse what
// they kept (no page faults on fresh multi-megabyte buffers); a larger request gets its own buffer, freed with the
// call, so one huge call (a 2^30-wide image) does not pin gigabytes for the rest of the process.
constexpr std::size_t kKeptScratchBytes = std::size_t(64) << 20;

// `bytes` of scratch: from `kept` (the caller's thread_local buffer) up to kKeptScratchBytes, else its own.
class BoundedScratch {
 public:
  BoundedScratch(ScratchBuffer& kept, std::size_t bytes)
      : data_(bytes <= kKeptScratchBytes ? kept.reserve(bytes) : own_.reserve(bytes)) {}
  void* get() const { return data_; }

 private:
  ScratchBuffer own_;  // declared before data_: initialised first
  void* data_;
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

}  // namespace fastnn
