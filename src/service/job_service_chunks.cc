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

#include <algorithm>
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
// After an insert of offers failed, none is tried for this long.
constexpr std::chrono::seconds kOfferRetry{1};

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
  json::value* values = o.if_contains("values");
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
  out.batch.values = std::move(values->get_array());  // Not o["values"]: it may rehash, and `errors` dangle.
  std::size_t last = 0;
  for (const json::value& e : errors->get_array()) {
    const json::array* a = e.if_array();
    if (!a || a->size() != 4 || !(*a)[0].is_int64() || (*a)[0].get_int64() < 0 || !(*a)[1].is_string() ||
        !(*a)[2].is_string() || !(*a)[3].is_string()) {
      return std::nullopt;
    }
    const auto position = static_cast<std::size_t>((*a)[0].get_int64());
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
  const auto now = std::chrono::steady_clock::now();
  if (!m.pending()) {
    // Nothing left to start here: what no node claimed runs here.
    if (offers.unclaimed > 0) WithdrawOffersLocked(job);
    return;
  }
  if (offers.closed || now < offers.retry_after || !m.measured() || offers.unclaimed >= kMostUnclaimed) return;
  // Elements so quick that even the largest chunk takes under half an offer's target
  // run here: a claim and a write would cost more than they do.
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
  ++offers.generation;
  offers.unclaimed += batch.size();
  const JobRecord& rec = job->record;
  OfferedMap map{rec.id, rec.task, rec.priority, rec.timeout_ms, rec.map->collect, *job->claim, rec.tenant};
  store_queue_->Read(
      [this, map = std::move(map), batch = std::move(batch), input = rec.input, adoption = job->adoption]() mutable {
        // The elements' JSON is made here, off the service's lock.
        for (ChunkOffer& offer : batch) {
          AppendJsonList(&offer.input, input->get_array(), offer.indices, JsonNumbers::kKeepKind);
        }
        const Status offered = cluster_->OfferChunks(map, batch);
        Launches launches;
        std::vector<std::int64_t> orphans;  // Inserted for a map that ended meanwhile.
        {
          MutexLock lock(&mu_);
          auto it = active_.find(map.job_id);
          ActiveJob* job = it != active_.end() && it->second->adoption == adoption ? it->second.get() : nullptr;
          if (job) {
            job->offers.writing = false;
            ++job->offers.generation;
            if (!offered) {
              spdlog::warn("cluster: cannot offer chunks of map {} to other nodes ({}); they run here", map.job_id,
                           offered.error().detail);
              job->offers.retry_after = std::chrono::steady_clock::now() + kOfferRetry;
            }
          }
          for (const ChunkOffer& offer : batch) {
            if (offered) {
              // Not out any more: the map ended (its offers were dropped, maybe before
              // this insert landed), and no node is to run it.
              if (!job || !job->offers.out.count(offer.chunk)) orphans.push_back(offer.chunk);
              continue;
            }
            auto chunk = job ? job->offers.out.extract(offer.chunk) : decltype(job->offers.out)::node_type();
            if (chunk.empty()) continue;
            if (job->offers.unclaimed > 0) --job->offers.unclaimed;
            // As a chunk that ran none of its elements: they go out again, here.
            AfterFoldLocked(job, job->map->Fold(chunk.mapped(), ChunkOutcome{}, EffectiveTimeout(*job), 0, false));
            if (active_.find(map.job_id) == active_.end()) job = nullptr;
          }
          if (job && offered) ShareMapLocked(job);  // The tail may have come meanwhile, or room for more.
          DispatchLocked(&launches);
        }
        Launch(std::move(launches));
        if (!orphans.empty()) (void)cluster_->DropChunks(map.job_id, map.owner, orphans);  // Else the rescue.
      });
}

void JobService::WithdrawOffersLocked(ActiveJob* job) {
  job->offers.withdrawing = true;
  ++job->offers.generation;
  store_queue_->Read([this, id = job->record.id, claim = *job->claim, adoption = job->adoption] {
    auto back = cluster_->WithdrawChunks(id, claim);
    Launches launches;
    {
      MutexLock lock(&mu_);
      auto it = active_.find(id);
      if (it == active_.end() || it->second->adoption != adoption) return;
      ActiveJob* job = it->second.get();
      job->offers.withdrawing = false;
      ++job->offers.generation;
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
    std::uint64_t generation = 0;
    {
      MutexLock lock(&mu_);
      auto it = active_.find(id);
      if (it == active_.end() || it->second->adoption != adoption) return;
      claim = *it->second->claim;
      generation = it->second->offers.generation;
    }
    auto states = cluster_->ReadChunks(id, claim);
    std::vector<std::int64_t> remove;  // Rows done with: folded in, or of no chunk held here.
    Launches launches;
    {
      MutexLock lock(&mu_);
      auto it = active_.find(id);
      if (it == active_.end() || it->second->adoption != adoption) return;
      ActiveJob* job = it->second.get();
      ActiveJob::Offers& offers = job->offers;
      offers.collecting = false;
      if (!states) {
        spdlog::debug("cluster: cannot look up the chunks of map {} ({}); the next poll does", id,
                      states.error().detail);
        return;
      }
      // No insert or withdraw began or ended meanwhile: the rows are all there is.
      const bool settled = offers.generation == generation && !offers.writing && !offers.withdrawing;
      if (settled) offers.unclaimed = states->unclaimed;
      const std::unordered_set<std::int64_t> present(states->present.begin(), states->present.end());
      std::unordered_set<std::int64_t> done;
      std::vector<std::pair<MapRun::Chunk, std::optional<ChunkOutcome>>> folds;
      for (ChunkResult& result : states->done) {
        done.insert(result.chunk);
        remove.push_back(result.chunk);
        auto chunk = offers.out.extract(result.chunk);
        if (chunk.empty()) continue;  // Folded in already, or of an earlier claim of the map.
        std::optional<ChunkOutcome> outcome = DecodeOutcome(result.outcome);
        if (!outcome) {
          spdlog::error("cluster: the outcome of chunk {} of map {} cannot be read; its elements run again",
                        result.chunk, id);
        }
        folds.emplace_back(std::move(chunk.mapped()), std::move(outcome));
      }
      for (std::int64_t number : states->present) {
        // An offer given up on here, or of an earlier claim of the map.
        if (!done.count(number) && !offers.out.count(number)) remove.push_back(number);
      }
      if (settled) {
        // Offered here and gone from the table (a withdraw whose answer was lost, say):
        // their elements go out again.
        for (auto chunk = offers.out.begin(); chunk != offers.out.end();) {
          if (present.count(chunk->first)) {
            ++chunk;
            continue;
          }
          folds.emplace_back(std::move(chunk->second), std::nullopt);
          chunk = offers.out.erase(chunk);
        }
      }
      for (auto& [chunk, outcome] : folds) {
        // A chunk without an outcome folds in as one that ran none of its elements.
        AfterFoldLocked(job, job->map->Fold(chunk, outcome ? std::move(*outcome) : ChunkOutcome{},
                                            EffectiveTimeout(*job), job->task->config.retries,
                                            /*may_retry=*/!draining_));
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
    // A removal lost on the way leaves rows that the next look-up removes again.
    if (!remove.empty()) {
      if (auto removed = cluster_->RemoveChunks(id, claim, remove); !removed) {
        spdlog::debug("cluster: cannot remove chunks of map {} ({})", id, removed.error().detail);
      }
    }
  }
}

std::vector<std::string> JobService::AdoptChunksLocked(const NodeIdentity& claim, std::vector<ClaimedChunk> chunks) {
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
    rec.tenant = std::move(c.tenant);  // Its share and caps here are the map's tenant's.
    rec.status = JobStatus::kRunning;  // Nothing of it is written: its state is its owner's.
    rec.input = c.input;
    const std::size_t size = c.indices.size();
    rec.map = MapSpec{static_cast<std::int64_t>(size), c.collect};  // One chunk of all of it.
    run->task = task->second.get();
    run->map = std::make_unique<MapRun>(size, *rec.map, run->task->parallelism);
    run->remote = std::make_unique<ActiveJob::RemoteChunk>(
        ActiveJob::RemoteChunk{c.seq, claim, std::move(c.indices), std::move(c.attempts)});
    run->sched_seq = c.seq;
    next_seq_ = std::max(next_seq_, c.seq);  // A map taking turns here goes after it.
    run->claim_waiting = true;
    ++run->task->claimed_waiting;
    ActiveJob* raw = run.get();
    remote_runs_.emplace(c.seq, std::move(run));
    EnqueueLocked(raw);
    maps.insert(c.job_id);
  }
  return {maps.begin(), maps.end()};
}

void JobService::HandBackChunks(const std::vector<std::uint64_t>& seqs) {
  std::vector<std::uint64_t> back;
  NodeIdentity claim;
  Launches launches;
  {
    MutexLock lock(&mu_);
    if (cluster_closed_) return;
    for (std::uint64_t seq : seqs) {
      auto it = remote_runs_.find(seq);
      if (it == remote_runs_.end() || !it->second->claim_waiting || it->second->released) continue;
      ActiveJob* run = it->second.get();
      claim = run->remote->claim;  // One claim brought them all.
      UnqueueLocked(run);
      ++finishing_chunks_[seq];  // Held until given back: not taken for lost meanwhile.
      remote_runs_.erase(it);
      back.push_back(seq);
    }
    if (!back.empty()) DispatchLocked(&launches);  // Those behind them may start now.
  }
  Launch(std::move(launches));
  if (back.empty()) return;
  spdlog::info("cluster: {} chunks of maps claimed here waited too long; back to the cluster's queue", back.size());
  store_queue_->Read([this, claim, back] {
    if (Status s = cluster_->OfferAgain(claim, back); !s) {
      spdlog::warn("cluster: cannot give chunks of maps back ({}); they are offered again later", s.error().detail);
    }
    MutexLock lock(&mu_);
    for (std::uint64_t seq : back) EndChunkWriteLocked(seq);
  });
}

void JobService::FinishRemoteChunkLocked(ActiveJob* run, ChunkOutcome outcome) {
  const std::uint64_t seq = run->remote->seq;
  const NodeIdentity claim = run->remote->claim;
  ++finishing_chunks_[seq];  // Held until written: not taken for lost meanwhile.
  remote_runs_.erase(seq);
  store_queue_->Read([this, seq, claim, outcome = std::move(outcome)]() mutable {
    auto written = cluster_->FinishChunk(seq, claim, EncodeOutcome(std::move(outcome)));
    if (!written) {
      spdlog::warn("cluster: cannot store the outcome of chunk {} ({}); it is offered again", seq,
                   written.error().detail);
    }
    MutexLock lock(&mu_);
    EndChunkWriteLocked(seq);
  });
}

void JobService::EndChunkWriteLocked(std::uint64_t seq) {
  auto it = finishing_chunks_.find(seq);
  if (it != finishing_chunks_.end() && --it->second == 0) finishing_chunks_.erase(it);
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
    for (const auto& [seq, writes] : finishing_chunks_) held.push_back(seq);
  }
  auto gone = cluster_->ReconcileChunks(claim, held);
  if (!gone || gone->empty()) return;
  const std::unordered_set<std::uint64_t> stop(gone->begin(), gone->end());
  DropRemoteRuns([&stop](const ActiveJob& run) { return stop.count(run.remote->seq) > 0; });
}

}  // namespace offload
