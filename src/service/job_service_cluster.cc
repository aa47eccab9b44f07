// JobService's part as a node of a cluster (job_service.h, docs/cluster.md): claims,
// the jobs it holds and releases, and the waiters and cancels of jobs it does not hold.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <iterator>
#include <map>
#include <random>
#include <unordered_set>

#include "cluster/cluster_node.h"
#include "offload/error_types.h"
#include "service/active_job.h"
#include "service/job_lifecycle.h"
#include "service/job_service.h"

namespace offload {

namespace {

// The poll that catches what notifications missed: finished jobs waited for here,
// held jobs canceled elsewhere, work queued elsewhere.
constexpr Millis kClusterPoll{1000};

// Claim-ahead (docs/cluster.md): a task's jobs are claimed ahead of a free slot once
// this many of its executions were timed here, at most this many at once, and those
// that still wait this long after their claim (claim_ahead times it, and no less
// than the floor) go back to the cluster's queue.
constexpr std::uint64_t kTimedBeforeAhead = 8;
constexpr double kMostAhead = 512;
constexpr int kAheadWaitFactor = 20;
constexpr Millis kAheadWaitFloor{100};

// How often the claimer looks for jobs under this node's claim that it does not hold.
constexpr Millis kUnheldCheck{2000};

// The node's entry in offload_nodes.info: what people and dashboards see of it.
std::string NodeInfo(const ServerConfig& config) {
  boost::json::object info;
  info["role"] = config.role;
  info["listen"] = config.listen;
  boost::json::object resources;
  for (const auto& [name, cap] : config.resources) resources[name] = cap;
  info["resources"] = std::move(resources);
  boost::json::array tasks;
  for (const auto& [name, task] : config.tasks) tasks.emplace_back(name);
  info["tasks"] = std::move(tasks);
  return boost::json::serialize(info);
}

}  // namespace

Status JobService::JoinCluster(const std::string& conninfo) {
  runs_jobs_ = config_.role != "api";
  ClusterNodeOptions o;
  o.conninfo = conninfo;
  o.node_id = node_id_;
  o.info = NodeInfo(config_);
  o.lease_ttl = config_.lease_ttl;
  o.lease_grace = config_.lease_grace;
  // A rescue runs on the lease's thread and reads only what is constant here.
  o.decide = [this](JobRecord* job, UnixMillis now) {
    Interrupt(job, now, "the node running the job stopped renewing its lease");
  };
  o.on_work = [this] {
    MutexLock lock(&mu_);
    WakeClaimerLocked();
  };
  o.on_done = [this](const std::vector<std::string>& ids) { AnswerRemoteWaitersSoon(ids); };
  // The chunks run here of maps `ids` stop: on a cancel, or their owner's drop.
  auto drop_chunks_of = [this](const std::vector<std::string>& ids) {
    DropRemoteRuns([set = std::unordered_set<std::string>(ids.begin(), ids.end())](const ActiveJob& run) {
      return set.count(run.record.id) > 0;
    });
  };
  o.on_canceled = [this, drop_chunks_of](const std::vector<std::string>& ids) {
    std::vector<std::pair<std::string, std::uint64_t>> any;
    for (const std::string& id : ids) any.emplace_back(id, 0);
    ReleaseJobs(any);
    drop_chunks_of(ids);
  };
  o.on_chunks_done = [this](const std::vector<std::string>& ids) { CollectChunksSoon(ids); };
  o.on_chunks_dropped = drop_chunks_of;
  o.on_reconnect = [this] { PollClusterSoon(); };
  o.on_events_wanted = [this] { OnEventsWanted(); };
  o.on_events = [this](const std::vector<std::string>& events) { OnEventsFromElsewhere(events); };
  o.on_lost = [this](const NodeIdentity& lost) { OnLeaseLost(lost); };
  o.on_regained = [this](const NodeIdentity&) {
    MutexLock lock(&mu_);
    WakeClaimerLocked();
  };
  {
    // Its threads may call in before cluster_ is set: they find the cluster closed.
    MutexLock lock(&mu_);
    cluster_closed_ = true;
  }
  auto node = ClusterNode::Start(std::move(o), clock_);
  if (!node) return node.error();
  cluster_ = std::move(*node);
  {
    MutexLock lock(&mu_);
    cluster_closed_ = false;
    WakeClaimerLocked();  // Whatever is queued already.
  }
  if (runs_jobs_) claimer_ = std::thread([this] { ClaimLoop(); });
  ScheduleClusterPoll();
  return {};
}

// Reads only what is constant: called on the cluster's threads.
void JobService::Interrupt(JobRecord* job, UnixMillis now, std::string why) const {
  auto task = tasks_.find(job->task);
  const int retries = task == tasks_.end() ? 0 : task->second->config.retries;
  JobError lost{error_type::kInterrupted, std::move(why)};
  EnterStatus(job, job->attempts <= retries ? JobStatus::kQueued : JobStatus::kFailed, now, std::move(lost));
}

void JobService::RescueUnheld() {
  if (!cluster_->held()) return;
  const NodeIdentity claim = cluster_->identity();
  std::vector<std::string> held;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, job] : active_) {
      if (job->claim == claim) held.push_back(id);
    }
    held.insert(held.end(), giving_back_.begin(), giving_back_.end());
  }
  auto moved = cluster_->RescueUnheld(claim, held, clock_.Now(), [this](JobRecord* job, UnixMillis now) {
    Interrupt(job, now, "the node that claimed the job lost track of it");
  });
  if (moved && *moved > 0) {
    spdlog::warn("cluster: {} jobs running under this node's claim were not held here; queued again or failed", *moved);
    cluster_->AnnounceWork();
  }
}

void JobService::WakeClaimerLocked() {
  if (!clustered_ || !runs_jobs_ || cluster_closed_) return;
  claim_wanted_ = true;
  claim_cv_.Signal();
}

void JobService::ClaimLoop() {
  std::minstd_rand rng{std::random_device{}()};
  std::uniform_int_distribution<int> jitter(0, 200);
  auto last_warning = std::chrono::steady_clock::now() - std::chrono::minutes(1);
  auto next_unheld_check = std::chrono::steady_clock::now() + kUnheldCheck;
  for (;;) {
    // Between two claims, none in flight: what runs under this node's claim and is not
    // held here was lost track of.
    if (std::chrono::steady_clock::now() >= next_unheld_check) {
      RescueUnheld();
      ReconcileChunks();
      next_unheld_check = std::chrono::steady_clock::now() + kUnheldCheck;
    }
    ClaimRequest request;
    {
      MutexLock lock(&mu_);
      const auto poll = std::chrono::steady_clock::now() + kClusterPoll + Millis(jitter(rng));
      while (!claimer_stop_ && !claim_wanted_) {
        if (!claim_cv_.WaitUntil(&mu_, poll)) break;
      }
      if (claimer_stop_) return;
      claim_wanted_ = false;
      // Nothing while this node starts no work.
      if (draining_ || unstored_finals_ > 0) continue;
      // Jobs whose last claim here is still leaving are not claimed again meanwhile.
      for (const auto& [id, job] : active_) {
        if (job->released || job->handed_back) request.exclude.push_back(id);
      }
      request.exclude.insert(request.exclude.end(), giving_back_.begin(), giving_back_.end());
      int r = 0;
      for (const auto& [name, cap] : config_.resources) {
        request.capacity.push_back(cap);
        request.in_use.push_back(scheduler_.in_use(r++));
      }
      for (const auto& [tenant, policy] : tenant_policies_) {
        if (policy.max_running.empty()) continue;
        auto& caps = request.tenant_caps[tenant];
        int index = 0;
        for (const auto& [name, cap] : config_.resources) {
          if (auto it = policy.max_running.find(name); it != policy.max_running.end())
            caps.emplace_back(index, it->second);
          ++index;
        }
      }
      // What the jobs claimed here and waiting will hold once they start; and what to
      // claim ahead of them.
      for (const auto& [name, demand] : claim_tasks_) {
        const TaskRuntime& task = *tasks_.at(name);
        for (auto [res, amount] : demand.units) {
          request.in_use[static_cast<std::size_t>(res)] += amount * static_cast<std::int64_t>(task.claimed_waiting);
        }
        // Not while some jobs are left out of the claim: one claimed ahead could
        // overtake them.
        request.ahead.push_back(request.exclude.empty() ? AheadWantedLocked(task) : 0);
      }
    }
    bool fits = false;
    std::size_t ahead = 0;
    for (std::size_t t = 0; t < claim_tasks_.size(); ++t) {
      bool room = true;
      for (auto [res, amount] : claim_tasks_[t].second.units) {
        const auto i = static_cast<std::size_t>(res);
        room = room && request.in_use[i] + amount <= request.capacity[i];
      }
      fits = fits || room;
      ahead += request.ahead[t];
    }
    if ((!fits && ahead == 0) || !cluster_->held()) continue;
    request.limit = std::max(request.limit, ahead + 64);
    request.tasks = claim_tasks_;
    request.now = clock_.Now();
    const std::size_t request_limit = request.limit;
    const auto began = std::chrono::steady_clock::now();
    auto claimed = cluster_->Claim(std::move(request));
    spdlog::debug(
        "cluster: claim of {} jobs and {} chunks of maps took {} us", claimed ? claimed->second.jobs.size() : 0,
        claimed ? claimed->second.chunks.size() : 0,
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - began).count());
    if (!claimed) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_warning > std::chrono::seconds(10)) {
        last_warning = now;
        spdlog::warn("cluster: cannot claim jobs ({}); trying again each second", claimed.error().detail);
      }
      continue;
    }
    if (claimed->second.jobs.empty() && claimed->second.chunks.empty()) continue;
    const bool full = claimed->second.jobs.size() >= request_limit || claimed->second.chunks.size() >= request_limit;
    Adopt(claimed->first, std::move(claimed->second));
    if (full) {
      MutexLock lock(&mu_);
      WakeClaimerLocked();  // More may fit.
    }
  }
}

void JobService::Adopt(const NodeIdentity& claim, ClaimedWork work) {
  Launches launches;
  std::vector<ActiveJob*> adopted;
  std::vector<std::pair<std::string, std::uint64_t>> waiting;  // Still, after the dispatch: by id and adoption.
  std::vector<std::string> claimed_maps;
  std::vector<std::uint64_t> waiting_chunks;
  {
    MutexLock lock(&mu_);
    // Claimed just as the lease was lost: the rescue gives them back (no attempt of
    // theirs started here).
    if (std::find(lost_claims_.begin(), lost_claims_.end(), claim) != lost_claims_.end()) return;
    std::vector<std::uint64_t> chunk_seqs;
    for (const ClaimedChunk& c : work.chunks) chunk_seqs.push_back(c.seq);
    claimed_maps = AdoptChunksLocked(claim, std::move(work.chunks));
    for (JobRecord& rec : work.jobs) {
      auto task = tasks_.find(rec.task);  // Claims name only this node's tasks.
      if (task == tasks_.end() || active_.count(rec.id)) {
        // Its last claim here has not left yet (the claim excludes such jobs, but one
        // may have been released since): this claim goes back to the queue.
        // Held here until that write lands: neither claimed again nor taken for lost.
        giving_back_.insert(rec.id);
        store_queue_->Write(StoreOp{StoreOp::Kind::kUpdate, rec, claim}, [this, id = rec.id](const Status& s) {
          if (!s)
            spdlog::error("cluster: cannot give job {} back to the queue ({}); it is rescued", id, s.error().detail);
          MutexLock lock(&mu_);
          giving_back_.erase(id);
        });
        continue;
      }
      --task->second->cluster_queued;
      next_seq_ = std::max(next_seq_, rec.seq);  // A map taking turns goes after it.
      for (std::size_t i = 0; i < rec.files.size(); ++i) rec.files[i].path = files_->InputPath(rec.id, i);
      auto job = std::make_unique<ActiveJob>(timers_.get());
      job->record = std::move(rec);
      job->task = task->second.get();
      job->claim = claim;
      job->adoption = ++next_adoption_;
      adopted.push_back(job.get());
      job->sched_seq = job->record.seq;
      if (job->record.map) {
        const auto& input = job->record.input;
        job->map = std::make_unique<MapRun>(input && input->is_array() ? input->get_array().size() : 0,
                                            *job->record.map, job->task->parallelism);
      }
      ActiveJob* raw = job.get();
      if (auto remote = remote_waiters_.find(raw->record.id); remote != remote_waiters_.end()) {
        raw->waiters = std::move(remote->second);
        remote_waiters_.erase(remote);
      }
      active_.emplace(raw->record.id, std::move(job));
      if (raw->map && raw->map->complete()) {
        raw->map->Stop();
        raw->record.result = Result::Json(boost::json::array()).output();
        MoveLocked(raw, JobStatus::kSucceeded);
      } else {
        raw->claim_waiting = true;
        ++raw->task->claimed_waiting;
        EnqueueLocked(raw);
      }
    }
    DispatchLocked(&launches);
    for (ActiveJob* job : adopted) {
      if (job->claim_waiting) waiting.emplace_back(job->record.id, job->adoption);
    }
    for (std::uint64_t seq : chunk_seqs) {
      if (auto it = remote_runs_.find(seq); it != remote_runs_.end() && it->second->claim_waiting) {
        waiting_chunks.push_back(seq);
      }
    }
  }
  Launch(std::move(launches));
  for (const std::string& id : claimed_maps) cluster_->AnnounceChunksClaimed(id);  // Its owner may offer more.
  if (!waiting_chunks.empty()) {
    // Claimed to start at once: one that still waits is held up here, and goes back.
    timers_->Schedule(std::max(kAheadWaitFloor, config_.claim_ahead * kAheadWaitFactor),
                      [this, seqs = std::move(waiting_chunks)] { HandBackChunks(seqs); });
  }
  if (!waiting.empty() && config_.claim_ahead.count() > 0) {
    // Those claimed ahead that a job running much longer than its task's usual keeps
    // from starting here: other nodes may be free.
    timers_->Schedule(std::max(kAheadWaitFloor, config_.claim_ahead * kAheadWaitFactor),
                      [this, waiting = std::move(waiting)] { HandBackUnstarted(waiting); });
  }
}

std::size_t JobService::AheadWantedLocked(const TaskRuntime& task) const {
  if (!task.claims_ahead || task.slots_timed < kTimedBeforeAhead) return 0;
  // As many as its slots start within claim_ahead, at the pace they free; none while
  // more than half that many still wait, so that a claim brings many.
  const double per_slot = static_cast<double>(config_.claim_ahead.count()) * 1000.0 / std::max(task.slot_us, 1.0);
  const auto budget = static_cast<std::size_t>(std::min(kMostAhead, per_slot * static_cast<double>(task.parallelism)));
  if (task.claimed_waiting * 2 > budget) return 0;
  return budget - task.claimed_waiting;
}

void JobService::EndClaimWaitLocked(ActiveJob* job) {
  if (!job->claim_waiting) return;
  job->claim_waiting = false;
  --job->task->claimed_waiting;
  WakeClaimerLocked();  // Maybe time to claim the next.
}

void JobService::TimeSlotLocked(ActiveJob* job) {
  TaskRuntime& task = *job->task;
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - job->slot_since).count();
  task.slot_us = task.slots_timed++ == 0 ? us : 0.9 * task.slot_us + 0.1 * us;
}

void JobService::HandBackUnstarted(const std::vector<std::pair<std::string, std::uint64_t>>& jobs) {
  std::size_t handed = 0;
  Launches launches;
  {
    MutexLock lock(&mu_);
    if (cluster_closed_) return;
    for (const auto& [id, adoption] : jobs) {
      auto it = active_.find(id);
      if (it == active_.end() || it->second->adoption != adoption) continue;
      ActiveJob* job = it->second.get();
      if (!job->claim_waiting || job->released || job->handed_back) continue;
      UnqueueLocked(job);
      job->handed_back = true;  // As queued as it was: its claim ends with this write.
      WriteFinalLocked(job);
      // Its task's jobs run longer here than measured: none is claimed ahead again
      // until it is measured afresh (else they would come back, and go again).
      job->task->slots_timed = 0;
      ++handed;
    }
    if (handed > 0) DispatchLocked(&launches);  // Those behind them may start now.
  }
  Launch(std::move(launches));
  if (handed > 0)
    spdlog::info("cluster: {} jobs claimed ahead waited too long here; back to the cluster's queue", handed);
}

void JobService::ScheduleClusterPoll() {
  timers_->Schedule(kClusterPoll, [this] {
    PollClusterSoon();
    ScheduleClusterPoll();
  });
}

// The poll blocks on the database: on a store reader thread, not the caller's. One at
// a time: while PostgreSQL does not answer, polls do not pile up behind each other.
void JobService::PollClusterSoon() {
  MutexLock lock(&mu_);
  if (cluster_closed_ || poll_pending_) return;
  poll_pending_ = true;
  store_queue_->Read([this] {
    PollCluster();
    MutexLock lock(&mu_);
    poll_pending_ = false;
  });
}

void JobService::PollCluster() {
  std::vector<std::string> waited;
  std::vector<std::string> sharing;  // Maps with chunks out on other nodes.
  // By claim: the ids held under it, and which adoption of each.
  std::map<std::pair<std::string, std::int64_t>, std::map<std::string, std::uint64_t>> held;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, waiters] : remote_waiters_) waited.push_back(id);
    for (const auto& [id, job] : active_) {
      if (!job->offers.out.empty()) sharing.push_back(id);
      if (job->claim && !job->released && !job->handed_back && !IsFinished(job->record.status)) {
        held[{job->claim->id, job->claim->epoch}][id] = job->adoption;
      }
    }
    WakeClaimerLocked();  // Work queued elsewhere whose notification was missed.
  }
  AskForEventsIfWatched();
  AnswerRemoteWaiters(waited);
  CollectChunksSoon(sharing);  // Those whose notification was missed, and tails to take back.
  if (auto queued = cluster_->QueuedByTask(); queued) {
    MutexLock lock(&mu_);
    for (auto& [name, task] : tasks_) task->cluster_queued = 0;
    for (const auto& [name, count] : *queued) {
      if (auto task = tasks_.find(name); task != tasks_.end()) task->second->cluster_queued = count;
    }
  }
  for (const auto& [claim, jobs] : held) {
    std::vector<std::string> ids;
    for (const auto& [id, adoption] : jobs) ids.push_back(id);
    auto gone = cluster_->NoLongerHeld(ids, NodeIdentity{claim.first, claim.second});
    if (!gone || gone->empty()) continue;
    // Only the adoption that was asked about: the job may have been handed back and
    // claimed here again since.
    std::vector<std::pair<std::string, std::uint64_t>> release;
    for (const std::string& id : *gone) release.emplace_back(id, jobs.at(id));
    ReleaseJobs(release);
  }
}

// Ids to check pile up while a check runs: one query answers many waiters.
void JobService::AnswerRemoteWaitersSoon(std::vector<std::string> ids) {
  MutexLock lock(&mu_);
  if (cluster_closed_) return;
  to_check_.insert(to_check_.end(), std::make_move_iterator(ids.begin()), std::make_move_iterator(ids.end()));
  if (check_pending_) return;
  check_pending_ = true;
  store_queue_->Read([this] {
    for (;;) {
      std::vector<std::string> batch;
      {
        MutexLock lock(&mu_);
        if (to_check_.empty()) {
          check_pending_ = false;
          return;
        }
        batch.swap(to_check_);
      }
      AnswerRemoteWaiters(batch);
    }
  });
}

void JobService::AnswerRemoteWaiters(const std::vector<std::string>& ids) {
  std::vector<std::string> waited;
  {
    MutexLock lock(&mu_);
    for (const std::string& id : ids) {
      if (remote_waiters_.count(id)) waited.push_back(id);
    }
  }
  if (waited.empty()) return;
  auto ended = cluster_->Finished(waited);  // One query for them all.
  if (!ended) return;                       // The next poll tries again.
  std::vector<std::pair<std::vector<Waiter>, ErrorOr<JobSnapshot>>> answers;
  {
    MutexLock lock(&mu_);
    auto take = [&](const std::string& id, ErrorOr<JobSnapshot> answer) {
      mu_.AssertHeld();  // Called below, under the same lock.
      auto it = remote_waiters_.find(id);
      if (it == remote_waiters_.end()) return;
      answers.emplace_back(std::move(it->second), std::move(answer));
      remote_waiters_.erase(it);
    };
    for (JobRecord& job : ended->finished) {
      const std::string id = job.id;
      take(id, JobSnapshot{std::move(job), std::nullopt});
    }
    for (const std::string& id : ended->unknown) {
      take(id, MakeError(ErrorCode::kNotFound, "no job with id \"" + id + "\""));
    }
  }
  for (auto& [waiters, answer] : answers) {
    for (auto& w : waiters) w.fn(answer);
  }
}

void JobService::ReleaseJobs(const std::vector<std::pair<std::string, std::uint64_t>>& jobs) {
  Launches launches;
  std::vector<std::string> released;
  {
    MutexLock lock(&mu_);
    if (cluster_closed_) return;
    for (const auto& [id, adoption] : jobs) {
      auto it = active_.find(id);
      if (it == active_.end() || (adoption != 0 && it->second->adoption != adoption)) continue;
      ActiveJob* job = it->second.get();
      // A job whose final write is in flight: that write, fenced, says whose it is.
      if (!job->claim || job->released || job->handed_back || IsFinished(job->record.status)) continue;
      released.push_back(id);
      ReleaseLocked(job);
    }
    if (!released.empty()) DispatchLocked(&launches);
  }
  Launch(std::move(launches));
  if (!released.empty()) {
    spdlog::info("cluster: {} jobs held here were canceled or taken over elsewhere; stopped", released.size());
    AnswerRemoteWaitersSoon(std::move(released));
  }
}

void JobService::ReleaseLocked(ActiveJob* job) {
  job->released = true;
  job->attempt_timer.Cancel();
  UnqueueLocked(job);
  if (job->map) {
    StopMapLocked(job, StopReason::kCanceled);
  } else if (job->run) {
    job->run->RequestStop(StopReason::kCanceled);
  }
  const std::string id = job->record.id;
  if (!job->waiters.empty()) {
    auto& remote = remote_waiters_[id];
    std::move(job->waiters.begin(), job->waiters.end(), std::back_inserter(remote));
    job->waiters.clear();
  }
  if (job->final_write_failures > 0 && --unstored_finals_ == 0) idle_cv_.SignalAll();
  job->final_write_failures = 0;
  if (!Executing(*job)) active_.erase(id);  // Else once its execution reports.
}

void JobService::OnFenced(const std::string& id, std::uint64_t adoption) {
  bool canceled_here = false;
  std::vector<SnapshotCallback> cancel_answers;
  Launches launches;
  {
    MutexLock lock(&mu_);
    auto it = active_.find(id);
    // A write of an earlier claim of it, here, says nothing of this one.
    if (it == active_.end() || it->second->released || it->second->adoption != adoption) return;
    // A cancel made here that the fence refused (a rescue took the job first): it is
    // made again where the job is now, and that says what its callers hear.
    canceled_here = it->second->record.status == JobStatus::kCanceled;
    cancel_answers = std::move(it->second->cancel_answers);
    it->second->cancel_answers.clear();
    ReleaseLocked(it->second.get());
    DispatchLocked(&launches);
  }
  Launch(std::move(launches));
  spdlog::warn("cluster: job {} is no longer this node's (canceled elsewhere, or rescued); its outcome here is dropped",
               id);
  if (canceled_here) {
    CancelElsewhere(id, CancelCause::kRequest,
                    [answers = std::move(cancel_answers)](const ErrorOr<JobSnapshot>& outcome) {
                      for (const auto& answer : answers) answer(outcome);
                    });
  } else {
    AnswerRemoteWaitersSoon({id});
  }
}

void JobService::OnLeaseLost(const NodeIdentity& lost) {
  std::vector<std::string> ids;
  Launches launches;
  {
    MutexLock lock(&mu_);
    if (cluster_closed_) return;
    lost_claims_.push_back(lost);
    std::vector<ActiveJob*> held;
    for (auto& [id, job] : active_) {
      if (job->claim == lost && !job->released && !job->handed_back && !IsFinished(job->record.status)) {
        held.push_back(job.get());
      }
    }
    for (ActiveJob* job : held) {
      ids.push_back(job->record.id);
      ReleaseLocked(job);
    }
    DropRemoteRunsLocked([&lost](const ActiveJob& run) { return run.remote->claim == lost; });
    DispatchLocked(&launches);
  }
  Launch(std::move(launches));
  spdlog::error("cluster: node {} lost its lease (epoch {}); its {} jobs were stopped, to be rescued by the cluster",
                lost.id, lost.epoch, ids.size());
  if (!ids.empty()) AnswerRemoteWaitersSoon(std::move(ids));
}

void JobService::CancelElsewhere(const std::string& id, CancelCause cause, SnapshotCallback done) {
  bool closed = false;
  {
    MutexLock lock(&mu_);
    closed = cluster_closed_;
  }
  if (closed) return done(MakeError(ErrorCode::kUnavailable, "the server is shutting down"));
  store_queue_->Read([this, id, cause, done = std::move(done)] {
    auto outcome = cluster_->Cancel(id, [&](JobRecord* job) {
      EnterStatus(job, JobStatus::kCanceled, clock_.Now(), CancelError(cause, job->task, config_.run_timeout));
    });
    if (!outcome) return done(outcome.error());
    if (!outcome->job) return done(MakeError(ErrorCode::kNotFound, "no job with id \"" + id + "\""));
    if (!outcome->canceled) {
      return done(MakeError(ErrorCode::kConflict,
                            "job " + id + " already finished as " + std::string(JobStatusName(outcome->job->status))));
    }
    {
      MutexLock lock(&mu_);
      NoteStatusLocked(*outcome->job);
    }
    AnswerRemoteWaitersSoon({id});
    done(JobSnapshot{std::move(*outcome->job), std::nullopt});
  });
}

void JobService::OnKeyTaken(std::unique_ptr<ActiveJob> job, const SnapshotCallback& done) {
  job->key_looked_up = true;
  auto owned = std::make_shared<std::unique_ptr<ActiveJob>>(std::move(job));
  store_queue_->Read([this, owned, done] {
    const JobRecord& rec = (*owned)->record;
    auto holder =
        cluster_->KeyHolder(rec.task, rec.tenant, rec.idempotency_key, clock_.Now() - config_.idempotency_ttl.count());
    if (!holder) return OnInserted(std::move(*owned), holder.error(), done);
    if (!*holder) {
      // The key is free again: the insert once more (a conflict now is a failure).
      ActiveJob* raw = owned->release();
      store_queue_->Write(StoreOp{StoreOp::Kind::kInsert, raw->record}, [this, raw, done](const Status& stored) {
        OnInserted(std::unique_ptr<ActiveJob>(raw), stored, done);
      });
      return;
    }
    const JobRecord& first = **holder;
    {
      MutexLock lock(&mu_);
      --(*owned)->task->pending_inserts;
      idempotency_.Forget(IdempotencyScope(rec.task, rec.tenant), rec.idempotency_key, rec.id);
      idempotency_.Put(IdempotencyScope(rec.task, rec.tenant), rec.idempotency_key,
                       IdempotencyCache::Entry{first.id, first.request_hash, first.created_at, true});
    }
    if (!rec.files.empty()) files_->RemoveJob(rec.id);
    if (first.request_hash != rec.request_hash) {
      return done(MakeError(ErrorCode::kInvalidArgument, "Idempotency-Key \"" + rec.idempotency_key +
                                                             "\" was used for job " + first.id +
                                                             " with a different request; use a new key for a new job"));
    }
    done(JobSnapshot{first, std::nullopt, true});
  });
}

void JobService::HandBackLocked(ActiveJob* job, JobError failure, Millis delay) {
  JobRecord& rec = job->record;
  const UnixMillis now = clock_.Now();
  EnterStatus(&rec, JobStatus::kQueued, now, std::move(failure));
  rec.run_after = now + delay.count();
  job->handed_back = true;
  WriteFinalLocked(job);  // Its claim ends with this write; it leaves active_ once durable.
  timers_->Schedule(delay, [this] {
    MutexLock lock(&mu_);
    WakeClaimerLocked();
  });
}

}  // namespace offload
