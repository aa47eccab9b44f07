// Micro-benchmarks of the scheduler alone: what one job costs in Scheduler<> from
// enqueue to release, so that a regression in dispatch shows up without HTTP, the
// store or threads around it.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "sched/scheduler.h"

namespace {

using offload::ResourceDemand;
using Sched = offload::Scheduler<std::uint64_t>;

// One job per iteration: enqueue it, release the job that runs, dispatch the next.
// range(0): task queues, all on one exclusive resource (the worst case for dispatch,
// which sorts the queue heads); range(1): jobs already queued behind.
void BM_SchedulerEnqueueDispatchRelease(benchmark::State& state) {
  const int queues = static_cast<int>(state.range(0));
  const std::int64_t backlog = state.range(1);
  Sched sched({1});
  for (int q = 0; q < queues; ++q) {
    ResourceDemand d;
    d.Add(0, 1);
    sched.AddQueue(std::move(d));
  }
  std::uint64_t seq = 0;
  int running = -1;
  auto on_start = [&](int q, std::uint64_t) { running = q; };
  for (std::int64_t i = 0; i < backlog + 1; ++i) {
    ++seq;
    sched.Enqueue(static_cast<int>(seq % queues), Sched::MakeKey(0, seq), seq);
  }
  sched.Dispatch(on_start);
  for (auto _ : state) {
    ++seq;
    sched.Enqueue(static_cast<int>(seq % queues), Sched::MakeKey(static_cast<int>(seq & 3), seq), seq);
    sched.Release(running);
    running = -1;
    sched.Dispatch(on_start);
    benchmark::DoNotOptimize(running);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SchedulerEnqueueDispatchRelease)
    ->ArgNames({"queues", "backlog"})
    ->Args({1, 0})
    ->Args({8, 0})
    ->Args({1, 10000})
    ->Args({8, 10000});

// The same with several units (a cpu resource with 8 slots): every release lets
// exactly one queued job start.
void BM_SchedulerCpuSlots(benchmark::State& state) {
  const int queues = static_cast<int>(state.range(0));
  Sched sched({8});
  for (int q = 0; q < queues; ++q) {
    ResourceDemand d;
    d.Add(0, 1);
    sched.AddQueue(std::move(d));
  }
  std::uint64_t seq = 0;
  std::vector<int> running;
  auto on_start = [&](int q, std::uint64_t) { running.push_back(q); };
  for (int i = 0; i < 1000; ++i) {
    ++seq;
    sched.Enqueue(static_cast<int>(seq % queues), Sched::MakeKey(0, seq), seq);
  }
  sched.Dispatch(on_start);
  std::size_t oldest = 0;
  for (auto _ : state) {
    ++seq;
    sched.Enqueue(static_cast<int>(seq % queues), Sched::MakeKey(0, seq), seq);
    sched.Release(running[oldest++]);
    sched.Dispatch(on_start);
    if (oldest > 4096) {
      running.erase(running.begin(), running.begin() + static_cast<std::ptrdiff_t>(oldest));
      oldest = 0;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SchedulerCpuSlots)->ArgName("queues")->Arg(1)->Arg(8);

}  // namespace
