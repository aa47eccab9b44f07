// JobService's part in maps across nodes (job_service.h, docs/cluster.md): the chunks
// that a map held here offers to the other nodes and folds in as they finish, and the
// chunks of other nodes' maps that run here.
//
// The node that holds a map keeps running it on its own slots, with chunks of about
// MapRun::kChunkTarget. While the map has more left than a couple of rounds of those,
// it offers larger chunks (kOfferedChunkTarget: a claim, a write and a look-up cost
// a few round trips) in offload_map_chunks, a few unclaimed at a time; each claim
// tells it to offer more. A chunk's outcome comes back through its row and goes
// through the same MapRun::Fold as a chunk run here: retries, fail-fast and the
// ordered result are the map's, wherever its elements ran. At the map's end, offers
// no node claimed are taken back and run here.
#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <unordered_set>

#include "cluster/cluster_node.h"
#include "service/active_job.h"
#include "service/job_lifecycle.h"
#include "service/job_service.h"
#include "util/json_writer.h"

namespace offload {

namespace json = boost::json;

namespace {

constexpr std::chrono::milliseconds kOfferedChunkTarget{50};
// Offers of one map that no node has claimed, at most: what a map's end may take back.
constexpr std::size_t kMostUnclaimed = 4;
// Chunks are offered while the map has more left than this many rounds of chunks on
// its slots here.
constexpr std::size_t kLocalRounds = 2;

std::string EncodeOutcome(ChunkOutcome outcome) {
  json::object o;
  o["values"] = std::move(outcome.batch.values);
  json::array errors;
  for (auto& [position, e] : outcome.batch.errors) {
    errors.emplace_back(json::array{position, e.type, e.message, e.detail});
  }
  o["errors"] = std::move(errors);
  o["ns"] = outcome.elapsed.count();
  o["stop"] = static_cast<int>(outcome.stop);
  return json::serialize(o);
}

// What EncodeOutcome wrote; nullopt for anything else.
std::optional<ChunkOutcome> DecodeOutcome(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  json::object& o = v.get_object();
  const json::value* values = o.if_contains("values");
  const json::value* errors = o.if_contains("errors");
  const json::value* ns = o.if_contains("ns");
  const json::value* stop = o.if_contains("stop");
  if (!values || !values->is_array() || !errors || !errors->is_array() || !ns || !ns->is_int64() || !stop ||
      !stop->is_int64() || stop->get_int64() < 0 || stop->get_int64() > static_cast<int>(StopReason::kShutdown)) {
    return std::nullopt;
  }
  ChunkOutcome out;
  out.elapsed = std::chrono::nanoseconds(ns->get_int64());
  out.stop = static_cast<StopReason>(stop->get_int64());
  out.batch.values = std::move(o["values"].get_array());
  std::size_t last = 0;
  for (const json::value& e : errors->get_array()) {
    const json::array* a = e.if_array();
    if (!a || a->size() != 4 || !(*a)[0].is_number() || !(*a)[1].is_string() || !(*a)[2].is_string() ||
        !(*a)[3].is_string()) {
      return std::nullopt;
    }
    const auto position = (*a)[0].to_number<std::size_t>();
    if (position >= out.batch.values.size() || (!out.batch.errors.empty() && position <= last)) return std::nullopt;
    last = position;
    out.batch.errors.emplace_back(position,
                                  JobError{std::string((*a)[1].get_string()), std::string((*a)[2].get_string()),
                                           std::string((*a)[3].get_string())});
  }
  return out;
}

}  // namespace

void JobService::ShareMapLocked(ActiveJob* job) {
  if (!clustered_ || !job->claim || job->released || job->remote || !job->map) return;
  MapRun& m = *job->map;
  ActiveJob::Offers& offers = job->offers;
  if (m.stopping() || IsFinished(job->record.status) || offers.writing || offers.withdrawing) return;
  if (!m.pending()) {
    // Nothing left to start here: what no node claimed runs here.
    if (offers.unclaimed > 0) WithdrawOffersLocked(job);
    return;
  }
  if (offers.closed || !m.measured() || offers.unclaimed >= kMostUnclaimed) return;
  // Elements so quick that a chunk of the most a chunk takes lasts much less than an
  // offer should run here: its claim and write would cost more than they do.
  if (m.ChunkTime(MapRun::kMaxChunk) < kOfferedChunkTarget / 2) return;
  const std::size_t here = m.ChunkSize() * job->task->parallelism * kLocalRounds;
  std::vector<ChunkOffer> batch;
  while (offers.unclaimed + batch.size() < kMostUnclaimed && m.pending() && m.remaining() > here) {
    MapRun::Chunk chunk = m.TakeChunk(kOfferedChunkTarget);
    batch.push_back(ChunkOffer{++next_chunk_, chunk.indices, chunk.attempts, {}});
    offers.out.emplace(batch.back().chunk, std::move(chunk));
  }
  if (batch.empty()) return;
  if (!m.pending()) UnqueueLocked(job);
  offers.writing = true;
  offers.unclaimed += batch.size();
  const JobRecord& rec = job->record;
  OfferedMap map{rec.id, rec.task, rec.priority, rec.timeout_ms, rec.map->collect, *job->claim};
  store_queue_->Read(
      [this, map = std::move(map), batch = std::move(batch), input = rec.input, adoption = job->adoption]() mutable {
        // The elements' JSON is made here, off the service's lock.
        for (ChunkOffer& offer : batch) {
          AppendJsonList(&offer.input, input->get_array(), offer.indices, JsonNumbers::kKeepKind);
        }
        const Status offered = cluster_->OfferChunks(map, batch);
        Launches launches;
        {
          MutexLock lock(&mu_);
          auto it = active_.find(map.job_id);
          if (it == active_.end() || it->second->adoption != adoption) return;
          ActiveJob* job = it->second.get();
          job->offers.writing = false;
          if (!offered) {
            spdlog::warn("cluster: cannot offer chunks of map {} to other nodes ({}); they run here", map.job_id,
                         offered.error().detail);
            for (const ChunkOffer& offer : batch) {
              auto back = job->offers.out.extract(offer.chunk);
              if (back.empty()) continue;  // The map ended meanwhile.
              --job->offers.unclaimed;
              // As a chunk that ran none of its elements: they go out again.
              AfterFoldLocked(job, job->map->Fold(back.mapped(), ChunkOutcome{}, EffectiveTimeout(*job), 0, false));
              if (active_.find(map.job_id) == active_.end()) break;
            }
          }
          DispatchLocked(&launches);
        }
        Launch(std::move(launches));
      });
}

void JobService::WithdrawOffersLocked(ActiveJob* job) {
  job->offers.withdrawing = true;
  store_queue_->Read([this, id = job->record.id, claim = *job->claim, adoption = job->adoption] {
    auto back = cluster_->WithdrawChunks(id, claim);
    Launches launches;
    {
      MutexLock lock(&mu_);
      auto it = active_.find(id);
      if (it == active_.end() || it->second->adoption != adoption) return;
      ActiveJob* job = it->second.get();
      job->offers.withdrawing = false;
      if (!back) {
        spdlog::warn("cluster: cannot take back the offered chunks of map {} ({}); tried again", id,
                     back.error().detail);
        return;
      }
      job->offers.unclaimed = 0;
      job->offers.closed = true;
      for (std::int64_t number : *back) {
        auto chunk = job->offers.out.extract(number);
        if (chunk.empty()) continue;
        AfterFoldLocked(job, job->map->Fold(chunk.mapped(), ChunkOutcome{}, EffectiveTimeout(*job), 0, false));
        if (active_.find(id) == active_.end()) break;
      }
      DispatchLocked(&launches);
    }
    Launch(std::move(launches));
  });
}

void JobService::DropOffersLocked(ActiveJob* job) {
  ActiveJob::Offers& offers = job->offers;
  if (offers.out.empty()) return;
  std::vector<std::int64_t> numbers;
  for (const auto& [number, chunk] : offers.out) {
    numbers.push_back(number);
    job->map->Fold(chunk, ChunkOutcome{}, Millis(0), 0, false);  // Stopping: no longer running.
  }
  offers.out.clear();
  offers.unclaimed = 0;
  store_queue_->Read([this, id = job->record.id, claim = *job->claim, numbers = std::move(numbers)] {
    if (Status s = cluster_->DropChunks(id, claim, numbers); !s) {
      spdlog::warn("cluster: cannot remove the chunks of map {} ({}); the rescue removes them", id, s.error().detail);
    }
  });
}

void JobService::CollectChunksSoon(const std::vector<std::string>& ids) {
  std::vector<std::pair<std::string, std::uint64_t>> collect;
  {
    MutexLock lock(&mu_);
    if (cluster_closed_) return;
    for (const std::string& id : ids) {
      auto it = active_.find(id);
      if (it == active_.end() || it->second->released || it->second->offers.out.empty()) continue;
      ActiveJob::Offers& offers = it->second->offers;
      if (offers.collecting) {
        offers.collect_again = true;
      } else {
        offers.collecting = true;
        collect.emplace_back(id, it->second->adoption);
      }
    }
  }
  for (auto& entry : collect) {
    store_queue_->Read([this, id = std::move(entry.first), adoption = entry.second] { CollectChunks(id, adoption); });
  }
}

void JobService::CollectChunks(const std::string& id, std::uint64_t adoption) {
  for (bool again = true; again;) {
    again = false;
    NodeIdentity claim;
    {
      MutexLock lock(&mu_);
      auto it = active_.find(id);
      if (it == active_.end() || it->second->adoption != adoption) return;
      claim = *it->second->claim;
    }
    auto results = cluster_->TakeChunkResults(id, claim);
    Launches launches;
    {
      MutexLock lock(&mu_);
      auto it = active_.find(id);
      if (it == active_.end() || it->second->adoption != adoption) return;
      ActiveJob* job = it->second.get();
      job->offers.collecting = false;
      if (!results) {
        spdlog::debug("cluster: cannot look up the chunks of map {} ({}); the next poll does", id,
                      results.error().detail);
        return;
      }
      if (!job->offers.writing) job->offers.unclaimed = results->unclaimed;
      for (ChunkResult& done : results->done) {
        auto chunk = job->offers.out.extract(done.chunk);
        if (chunk.empty()) continue;  // Of an earlier claim of the map, or the map ended.
        std::optional<ChunkOutcome> outcome = DecodeOutcome(done.outcome);
        if (!outcome) {
          spdlog::error("cluster: the outcome of chunk {} of map {} cannot be read; its elements run again", done.chunk,
                        id);
          outcome.emplace();
        }
        AfterFoldLocked(job, job->map->Fold(chunk.mapped(), std::move(*outcome), EffectiveTimeout(*job),
                                            job->task->config.retries, /*may_retry=*/!draining_));
        if (active_.find(id) == active_.end()) {
          job = nullptr;
          break;
        }
      }
      if (job) {
        if (job->offers.collect_again && !job->offers.out.empty()) {
          job->offers.collect_again = false;
          job->offers.collecting = true;
          again = true;
        }
        ShareMapLocked(job);
      }
      DispatchLocked(&launches);
    }
    Launch(std::move(launches));
  }
}

void JobService::AdoptChunksLocked(const NodeIdentity& claim, std::vector<ClaimedChunk> chunks) {
  std::unordered_set<std::string> maps;
  for (ClaimedChunk& c : chunks) {
    // Claims name only this node's tasks. One not held here is offered again
    // (ReconcileChunks).
    auto task = tasks_.find(c.task);
    if (task == tasks_.end() || remote_runs_.count(c.seq)) continue;
    auto run = std::make_unique<ActiveJob>(timers_.get());
    JobRecord& rec = run->record;
    rec.id = c.job_id;
    rec.task = c.task;
    rec.priority = c.priority;
    rec.timeout_ms = c.timeout_ms;
    rec.status = JobStatus::kRunning;  // Nothing of it is written: its state is its owner's.
    rec.input = c.input;
    const std::size_t size = c.indices.size();
    rec.map = MapSpec{static_cast<std::int64_t>(size), c.collect};  // One chunk of all of it.
    run->task = task->second.get();
    run->map = std::make_unique<MapRun>(size, *rec.map, run->task->parallelism);
    run->remote = std::make_unique<ActiveJob::RemoteChunk>(
        ActiveJob::RemoteChunk{c.seq, claim, std::move(c.indices), std::move(c.attempts)});
    run->sched_seq = c.seq;
    run->claim_waiting = true;
    ++run->task->claimed_waiting;
    ActiveJob* raw = run.get();
    remote_runs_.emplace(c.seq, std::move(run));
    EnqueueLocked(raw);
    maps.insert(c.job_id);
  }
  for (const std::string& id : maps) cluster_->AnnounceChunksClaimed(id);  // Its owner may offer more.
}

void JobService::FinishRemoteChunkLocked(ActiveJob* run, ChunkOutcome outcome) {
  const std::uint64_t seq = run->remote->seq;
  const NodeIdentity claim = run->remote->claim;
  finishing_chunks_.insert(seq);  // Held until written: not taken for lost meanwhile.
  remote_runs_.erase(seq);
  store_queue_->Read([this, seq, claim, outcome = std::move(outcome)]() mutable {
    auto written = cluster_->FinishChunk(seq, claim, EncodeOutcome(std::move(outcome)));
    if (!written) {
      spdlog::warn("cluster: cannot store the outcome of chunk {} ({}); it is offered again", seq,
                   written.error().detail);
    }
    MutexLock lock(&mu_);
    finishing_chunks_.erase(seq);
  });
}

void JobService::DropRemoteRunsLocked(const std::function<bool(const ActiveJob&)>& drop) {
  std::vector<ActiveJob*> picked;
  for (auto& [seq, run] : remote_runs_) {
    if (!run->released && drop(*run)) picked.push_back(run.get());
  }
  for (ActiveJob* run : picked) {
    run->released = true;
    UnqueueLocked(run);
    run->map->Stop();
    for (auto& ctx : run->chunk_contexts) ctx->RequestStop(StopReason::kCanceled);
    if (!Executing(*run)) remote_runs_.erase(run->remote->seq);  // Else once it reports.
  }
}

void JobService::DropRemoteRuns(const std::function<bool(const ActiveJob&)>& drop) {
  Launches launches;
  {
    MutexLock lock(&mu_);
    if (cluster_closed_) return;
    DropRemoteRunsLocked(drop);
    DispatchLocked(&launches);
  }
  Launch(std::move(launches));
}

void JobService::ReconcileChunks() {
  if (!cluster_->held()) return;
  const NodeIdentity claim = cluster_->identity();
  std::vector<std::uint64_t> held;
  {
    MutexLock lock(&mu_);
    for (const auto& [seq, run] : remote_runs_) {
      if (run->remote->claim == claim && !run->released) held.push_back(seq);
    }
    held.insert(held.end(), finishing_chunks_.begin(), finishing_chunks_.end());
  }
  auto gone = cluster_->ReconcileChunks(claim, held);
  if (!gone || gone->empty()) return;
  const std::unordered_set<std::uint64_t> stop(gone->begin(), gone->end());
  DropRemoteRuns([&stop](const ActiveJob& run) { return stop.count(run.remote->seq) > 0; });
}

}  // namespace offload
