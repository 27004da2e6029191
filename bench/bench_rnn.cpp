// C++ microbenchmark of the recurrence kernels (Google Benchmark), beside bench_gemm. Build with
//   cmake -S . -B build/bench -DFASTNN_BUILD_BENCHMARKS=ON && cmake --build build/bench && build/bench/bench_rnn
// The benchmark shape: B = 64 sequences of T = 100 steps, U = 128 units, float32, on the threads set by
// --threads=N (default 2, the project's benchmark setting). Forward with and without saving for the backward, and
// the backward through time. "FLOPS" counts the recurrent GEMMs only (2 B T U G U per direction, dR once more in
// the backward); the input projection is outside these kernels.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "fastnn/parallel.h"
#include "fastnn/rnn.h"

namespace {

int g_threads = 2;

struct Problem {
  fastnn::RnnParams p;
  std::vector<float> xproj, R, h0, c0, out, h_last, c_last, d_out;
  std::vector<float> hs, cs, pre, gates, extra;
  std::vector<float> dx, dR, dh0, dc0, drb;
  fastnn::RnnWorkspace<float> ws;

  Problem(fastnn::RnnCell cell, int64_t B, int64_t T, int64_t U) {
    p.cell = cell;
    p.batch = B;
    p.steps = T;
    p.units = U;
    const int64_t G = fastnn::rnn_gates(cell);
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.f, 1.f);
    auto fill = [&](std::vector<float>& v, int64_t n, float scale) {
      v.resize(n);
      for (auto& x : v) x = dist(rng) * scale;
    };
    fill(xproj, B * T * G * U, 1.f);
    fill(R, U * G * U, 0.1f);
    fill(h0, B * U, 0.f);
    fill(c0, B * U, 0.f);
    fill(d_out, B * T * U, 1.f);
    out.resize(B * T * U);
    h_last.resize(B * U);
    c_last.resize(B * U);
    const auto sizes = fastnn::rnn_workspace_sizes(p);
    hs.resize(sizes.h_states);
    cs.resize(sizes.c_states);
    pre.resize(sizes.pre);
    gates.resize(sizes.gates);
    extra.resize(sizes.extra);
    ws.h_states = hs.data();
    ws.c_states = cs.empty() ? nullptr : cs.data();
    ws.pre = pre.data();
    ws.gates = gates.data();
    ws.extra = extra.empty() ? nullptr : extra.data();
    dx.resize(B * T * G * U);
    dR.resize(U * G * U);
    dh0.resize(B * U);
    dc0.resize(B * U);
    drb.resize(G * U);
  }
  bool lstm() const { return p.cell == fastnn::RnnCell::kLstm; }
  void forward(bool save) {
    fastnn::cpu::rnn_forward<float>(p, out.data(), h_last.data(), lstm() ? c_last.data() : nullptr, xproj.data(),
                                    R.data(), h0.data(), lstm() ? c0.data() : nullptr, nullptr, nullptr, nullptr,
                                    save ? &ws : nullptr);
  }
  void backward() {
    fastnn::cpu::rnn_backward<float>(p, dx.data(), dR.data(), dh0.data(), lstm() ? dc0.data() : nullptr,
                                     p.cell == fastnn::RnnCell::kGru ? drb.data() : nullptr, ws, R.data(),
                                     d_out.data(), nullptr, nullptr, nullptr, nullptr);
  }
  double gemm_flops() const {
    return 2.0 * p.batch * p.steps * p.units * fastnn::rnn_gates(p.cell) * p.units;
  }
};

// range(0): cell, range(1): 0 forward (inference), 1 forward saving the workspace, 2 backward.
void BM_rnn(benchmark::State& state) {
  fastnn::set_num_threads(g_threads);
  const auto cell = static_cast<fastnn::RnnCell>(state.range(0));
  const int64_t mode = state.range(1);
  Problem pr(cell, 64, 100, 128);
  pr.forward(true);
  for (auto _ : state) {
    if (mode == 2) pr.backward(); else pr.forward(mode == 1);
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] = benchmark::Counter(pr.gemm_flops() * (mode == 2 ? 2 : 1),
                                               benchmark::Counter::kIsIterationInvariantRate);
  static const char* cells[] = {"lstm", "gru", "gru_reset_before", "simple_rnn"};
  static const char* modes[] = {"forward (inference)", "forward (saving)", "backward"};
  state.SetLabel(std::string(cells[state.range(0)]) + " " + modes[mode] + ", " + std::to_string(g_threads) +
                 " threads");
}

}  // namespace

BENCHMARK(BM_rnn)->ArgsProduct({{0, 1}, {0, 1, 2}})->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--threads=", 10) == 0) g_threads = std::atoi(argv[i] + 10);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
