// MapRun: the elements of one parallel map — which go out next and in chunks of
// what size, and what each outcome makes of the map (a result in its place, a retry,
// or the end of a map that fails fast).
//
// Not thread-safe: JobService calls it under its mutex. It starts nothing and holds
// no timer: the service dispatches the chunks it takes and schedules the retries it
// returns, so every decision here can be tested without threads.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "exec/executor.h"
#include "exec/run_context.h"
#include "offload/result.h"
#include "store/job_record.h"

namespace offload {

// How far a map has got; live while the map is active.
struct MapCounts {
  std::size_t total = 0;
  std::size_t done = 0;     // Elements with a final outcome (succeeded or failed).
  std::size_t failed = 0;   // Of those, the failed ones.
  std::size_t running = 0;  // Elements dispatched and not yet reported.
};

// The outcome of one chunk, as its executor reported it.
struct ChunkOutcome {
  BatchOutcome batch;
  std::chrono::nanoseconds elapsed{0};
  StopReason stop = StopReason::kNone;
};

class MapRun {
 public:
  // Elements per chunk once the first has been measured. A chunk's time is fitted as
  // a fixed cost per dispatch (tens of microseconds on the thread pool; a pipe round
  // trip and a message to decode for a worker process) plus a cost per element. A
  // chunk should take about kChunkTarget — long enough that an in-process dispatch
  // costs under 5% even for the tiniest elements, short enough that the jobs taking
  // turns with the map wait about that long — and longer where the fixed cost is
  // larger, so that it stays under 1/kFixedCostShare of the chunk.
  static constexpr std::chrono::milliseconds kChunkTarget{2};
  static constexpr double kFixedCostShare = 20;
  static constexpr std::size_t kMaxChunk = 8192;
  // A chunk is at most this many times the largest measured yet, so that a noisy
  // first estimate cannot send one huge chunk of slow elements.
  static constexpr std::size_t kMaxGrowth = 8;

  // `parallelism`: executions of the task that fit at once.
  MapRun(std::size_t total, const MapSpec& spec, std::size_t parallelism);

  struct Chunk {
    std::vector<std::size_t> indices;
    std::vector<int> attempts;  // Per index; empty when every one is a first attempt.
  };
  // The elements of the next chunk, those back from a retry or a stopped chunk
  // first, sized to take about `target`. They count as running until Fold.
  // REQUIRES: pending().
  Chunk TakeChunk(std::chrono::nanoseconds target = kChunkTarget);

  // What Fold leaves the service to do.
  struct Folded {
    // Elements to run again after their back-off: index, failed attempts so far.
    std::vector<std::pair<std::size_t, int>> retries;
    // Set when an element failed a fail-fast map: the map's error. The map is then
    // stopping, and `failed_index` names the element.
    std::optional<JobError> failure;
    std::int64_t failed_index = -1;
  };
  // Takes in the outcome of `chunk`. `timeout` is the elements' timeout (for the
  // message of one that ran past it); `retries` the task's; `may_retry` false once
  // the server drains.
  Folded Fold(const Chunk& chunk, ChunkOutcome outcome, std::chrono::milliseconds timeout, int retries, bool may_retry);

  // Element `index` is back from its back-off. Ignored once stopping.
  void Retry(std::size_t index);
  // Nothing more is taken: the map finished, failed fast, was canceled or shut down.
  void Stop();

  bool stopping() const { return stopping_; }
  // Elements left to take; false once stopping.
  bool pending() const { return !stopping_ && (!again_.empty() || next_ < total_); }
  // Every element has a final outcome.
  bool complete() const { return done_ == total_; }
  MapCounts counts() const { return MapCounts{total_, done_, failed_, running_}; }
  double progress() const { return total_ == 0 ? 1.0 : static_cast<double>(done_) / static_cast<double>(total_); }
  // The final outcomes in input order. REQUIRES: complete(); once.
  boost::json::array TakeResults() { return std::move(results_); }
  // Elements per chunk that TakeChunk(target) would take now.
  std::size_t ChunkSize(std::chrono::nanoseconds target = kChunkTarget) const;
  // Elements left to take (0 once stopping).
  std::size_t remaining() const { return stopping_ ? 0 : total_ - next_ + again_.size(); }
  // A chunk has reported: ChunkSize knows what an element costs.
  bool measured() const { return cost_.largest > 0; }
  // How long a chunk of `size` elements takes, as measured so far. REQUIRES: measured().
  std::chrono::nanoseconds ChunkTime(std::size_t size) const;

 private:
  const std::size_t total_;
  const MapSpec spec_;
  const std::size_t parallelism_;
  std::size_t next_ = 0;           // Elements below it went out at least once.
  std::deque<std::size_t> again_;  // Back from back-off or from a stopped chunk; go first.
  std::size_t done_ = 0;
  std::size_t failed_ = 0;
  std::size_t running_ = 0;
  std::unordered_map<std::size_t, int> failed_attempts_;
  boost::json::array results_;  // Final outcome per element, in input order.
  // Chunk time = fixed + per_element * size, fitted by least squares over the chunks
  // that ran, older ones weighing less (sums decay by kDecay per chunk).
  struct CostFit {
    static constexpr double kDecay = 0.8;
    double n = 0, k = 0, t = 0, kk = 0, kt = 0;
    double fixed_ns = 0;  // The last fit that could tell fixed from per-element cost.
    std::size_t largest = 0;
    void Add(std::size_t size, double ns);
    // ns per element (> 0) and the fixed ns per chunk. REQUIRES: a chunk was added.
    std::pair<double, double> Estimate() const;
  };
  CostFit cost_;
  bool stopping_ = false;
};

}  // namespace offload
