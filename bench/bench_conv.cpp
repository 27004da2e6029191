// C++ microbenchmarks of the convolution stack's kernels (Google Benchmark), float32, on the shapes of the
// end-to-end issue's benchmark CNN (batch 64: conv 28x28x1->32, 14x14x32->64, 7x7x64->128, all 3x3 "same", a 2x2
// max pool after each) and ResNet (batch 32: conv 32x32x3->64 and 32x32x64->64 3x3 "same", BatchNormalization on
// 32x32x64, global average pooling). Build and run with
//   cmake -S . -B build/bench -DFASTNN_BUILD_BENCHMARKS=ON && cmake --build build/bench && build/bench/bench_conv
// Counters: FLOPS (2 * multiply-adds: GFLOP/s) for the convolutions, bytes_per_second (every array read or written
// once) and items_per_second (input elements) for pooling and batch normalization. The thread count is fastnn's
// (OMP_NUM_THREADS); compare with `python bench/bench_layers.py`, which times the same shapes per layer against
// PyTorch.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "fastnn/batchnorm.h"
#include "fastnn/conv.h"
#include "fastnn/pool.h"

namespace {

using fastnn::Conv2dParams;
using fastnn::Conv2dShape;

std::vector<float> random_vector(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// -- convolutions --------------------------------------------------------------------------------------------------

struct ConvCase {
  const char* name;
  int64_t n, h, w, c, f;
};
// 3x3, stride 1, "same" padding (one row / column on each side), no groups.
const std::vector<ConvCase> kConvCases = {
    {"cnn 28x28x1->32", 64, 28, 28, 1, 32},    {"cnn 14x14x32->64", 64, 14, 14, 32, 64},
    {"cnn 7x7x64->128", 64, 7, 7, 64, 128},    {"resnet 32x32x3->64", 32, 32, 32, 3, 64},
    {"resnet 32x32x64->64", 32, 32, 32, 64, 64},
};

Conv2dShape conv_shape(const ConvCase& k) {
  Conv2dShape s;
  s.n = k.n, s.h = k.h, s.w = k.w, s.c = k.c, s.kh = 3, s.kw = 3, s.f = k.f, s.oh = k.h, s.ow = k.w;
  return s;
}

Conv2dParams same_3x3() {
  Conv2dParams p;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
  return p;
}

enum class ConvPass { kForward, kBackwardInput, kBackwardWeight };

template <ConvPass pass>
void BM_conv2d(benchmark::State& state) {
  const ConvCase& k = kConvCases[static_cast<size_t>(state.range(0))];
  const Conv2dShape s = conv_shape(k);
  const Conv2dParams p = same_3x3();
  const std::vector<float> x = random_vector(s.n * s.h * s.w * s.c, 1), w = random_vector(9 * s.c * s.f, 2),
                           bias = random_vector(s.f, 3), dy = random_vector(s.n * s.oh * s.ow * s.f, 4);
  std::vector<float> y(dy.size()), dx(x.size()), dw(w.size()), db(bias.size());
  for (auto _ : state) {
    if (pass == ConvPass::kForward)
      fastnn::cpu::conv2d_forward(y.data(), x.data(), w.data(), bias.data(), s, p, fastnn::Activation::kRelu);
    else if (pass == ConvPass::kBackwardInput)
      fastnn::cpu::conv2d_backward_input(dx.data(), dy.data(), w.data(), s, p);
    else
      fastnn::cpu::conv2d_backward_weight(dw.data(), db.data(), x.data(), dy.data(), s, p);
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] = benchmark::Counter(2.0 * s.n * s.oh * s.ow * s.f * 9 * s.c,
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(k.name);
}

// Depthwise 3x3 "same", depth multiplier 1, on the ResNet's 32x32x64 activations (the seed has no depthwise layer;
// this is the MobileNet-style block at the ResNet's width).
void BM_depthwise_forward(benchmark::State& state) {
  Conv2dShape s;
  s.n = 32, s.h = s.w = s.oh = s.ow = 32, s.c = 64, s.kh = s.kw = 3, s.f = 1;
  const Conv2dParams p = same_3x3();
  const std::vector<float> x = random_vector(s.n * s.h * s.w * s.c, 1), w = random_vector(9 * s.c, 2),
                           bias = random_vector(s.c, 3);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    fastnn::cpu::depthwise_conv2d_forward(y.data(), x.data(), w.data(), bias.data(), s, p,
                                          fastnn::Activation::kIdentity);
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] = benchmark::Counter(2.0 * s.n * s.oh * s.ow * s.c * 9,
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("resnet 32x32x64 depthwise 3x3");
}

// -- pooling --------------------------------------------------------------------------------------------------------

struct PoolCase {
  const char* name;
  int64_t n, h, w, c, pool;  // pool 0: global (the window covers the input)
};
const std::vector<PoolCase> kPoolCases = {
    {"cnn 28x28x32 2x2", 64, 28, 28, 32, 2}, {"cnn 14x14x64 2x2", 64, 14, 14, 64, 2},
    {"cnn 7x7x128 2x2", 64, 7, 7, 128, 2},   {"resnet 32x32x64 global", 32, 32, 32, 64, 0},
};

fastnn::Pool2dParams pool_params(const PoolCase& k) {
  if (k.pool == 0) return fastnn::global_pool2d_params(k.n, k.h, k.w, k.c);
  fastnn::Pool2dParams p;
  p.n = k.n, p.h = k.h, p.w = k.w, p.c = k.c;
  p.pool_h = p.pool_w = p.stride_h = p.stride_w = k.pool;
  return p;
}

// kind 0: max forward (y and the int64 argmax written), 1: max backward (the binding's checked kernel),
// 2: average forward, 3: average backward.
template <int kind>
void BM_pool(benchmark::State& state) {
  const PoolCase& k = kPoolCases[static_cast<size_t>(state.range(0))];
  const fastnn::Pool2dParams p = pool_params(k);
  const int64_t in = p.n * p.h * p.w * p.c, out = p.n * p.out_h() * p.out_w() * p.c;
  const std::vector<float> x = random_vector(in, 1), dy = random_vector(out, 2);
  std::vector<float> y(static_cast<size_t>(out)), dx(static_cast<size_t>(in));
  std::vector<int64_t> argmax(static_cast<size_t>(out));
  fastnn::cpu::max_pool2d_forward(y.data(), argmax.data(), x.data(), p);
  int64_t bytes = 0;
  for (auto _ : state) {
    if (kind == 0) {
      fastnn::cpu::max_pool2d_forward(y.data(), argmax.data(), x.data(), p);
      bytes = in * 4 + out * (4 + 8);
    } else if (kind == 1) {
      const int64_t bad = fastnn::cpu::max_pool2d_backward_checked(dx.data(), dy.data(), argmax.data(), p.n,
                                                                   p.h * p.w * p.c, out / p.n, p.c);
      benchmark::DoNotOptimize(bad);
      bytes = in * 4 + out * (4 + 8);
    } else if (kind == 2) {
      fastnn::cpu::avg_pool2d_forward(y.data(), x.data(), p);
      bytes = (in + out) * 4;
    } else {
      fastnn::cpu::avg_pool2d_backward(dx.data(), dy.data(), p);
      bytes = (in + out) * 4;
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.SetItemsProcessed(state.iterations() * in);
  state.SetLabel(k.name);
}

// -- batch normalization --------------------------------------------------------------------------------------------

struct NormCase {
  const char* name;
  int64_t m, c;
};
const std::vector<NormCase> kNormCases = {{"resnet 32x32x32x64", 32 * 32 * 32, 64}, {"64x28x28x32", 64 * 28 * 28, 32}};

// kind 0: training forward, 1: backward, 2: inference forward.
template <int kind>
void BM_batch_norm(benchmark::State& state) {
  const NormCase& k = kNormCases[static_cast<size_t>(state.range(0))];
  fastnn::BatchNormParams p;
  p.m = k.m, p.c = k.c;
  const int64_t size = k.m * k.c;
  const std::vector<float> x = random_vector(size, 1), dy = random_vector(size, 2), gamma = random_vector(k.c, 3),
                           beta = random_vector(k.c, 4);
  std::vector<float> y(static_cast<size_t>(size)), mean(k.c), var(k.c), rstd(k.c), dgamma(k.c), dbeta(k.c);
  fastnn::cpu::batch_norm_train_forward(y.data(), mean.data(), var.data(), rstd.data(), x.data(), gamma.data(),
                                        beta.data(), p);
  for (auto _ : state) {
    if (kind == 0)
      fastnn::cpu::batch_norm_train_forward(y.data(), mean.data(), var.data(), rstd.data(), x.data(), gamma.data(),
                                            beta.data(), p);
    else if (kind == 1)
      fastnn::cpu::batch_norm_backward(y.data(), dgamma.data(), dbeta.data(), dy.data(), x.data(), mean.data(),
                                       rstd.data(), gamma.data(), p);
    else
      fastnn::cpu::batch_norm_inference_forward(y.data(), x.data(), mean.data(), var.data(), gamma.data(),
                                                beta.data(), p);
    benchmark::ClobberMemory();
  }
  // Each array read or written once: x and y (forward), x, dy and dx (backward).
  state.SetBytesProcessed(state.iterations() * size * 4 * (kind == 1 ? 3 : 2));
  state.SetItemsProcessed(state.iterations() * size);
  state.SetLabel(k.name);
}

void conv_cases(benchmark::internal::Benchmark* b) {
  for (int64_t i = 0; i < static_cast<int64_t>(kConvCases.size()); ++i) b->Arg(i);
}
void pool_cases(benchmark::internal::Benchmark* b) {
  for (int64_t i = 0; i < static_cast<int64_t>(kPoolCases.size()); ++i) b->Arg(i);
}
void norm_cases(benchmark::internal::Benchmark* b) {
  for (int64_t i = 0; i < static_cast<int64_t>(kNormCases.size()); ++i) b->Arg(i);
}

}  // namespace

BENCHMARK(BM_conv2d<ConvPass::kForward>)->Name("conv2d_forward")->Apply(conv_cases)->UseRealTime();
BENCHMARK(BM_conv2d<ConvPass::kBackwardInput>)->Name("conv2d_backward_input")->Apply(conv_cases)->UseRealTime();
BENCHMARK(BM_conv2d<ConvPass::kBackwardWeight>)->Name("conv2d_backward_weight")->Apply(conv_cases)->UseRealTime();
BENCHMARK(BM_depthwise_forward)->Name("depthwise_conv2d_forward")->UseRealTime();
BENCHMARK(BM_pool<0>)->Name("max_pool2d_forward")->Apply(pool_cases)->UseRealTime();
BENCHMARK(BM_pool<1>)->Name("max_pool2d_backward")->Apply(pool_cases)->UseRealTime();
BENCHMARK(BM_pool<2>)->Name("avg_pool2d_forward")->Apply(pool_cases)->UseRealTime();
BENCHMARK(BM_pool<3>)->Name("avg_pool2d_backward")->Apply(pool_cases)->UseRealTime();
BENCHMARK(BM_batch_norm<0>)->Name("batch_norm_train_forward")->Apply(norm_cases)->UseRealTime();
BENCHMARK(BM_batch_norm<1>)->Name("batch_norm_backward")->Apply(norm_cases)->UseRealTime();
BENCHMARK(BM_batch_norm<2>)->Name("batch_norm_inference_forward")->Apply(norm_cases)->UseRealTime();
BENCHMARK_MAIN();
