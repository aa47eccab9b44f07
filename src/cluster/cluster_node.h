// ClusterNode: this server's part in a cluster of servers that share one PostgreSQL
// schema (docs/cluster.md). It holds the node's lease (node_lease.h), hears the
// other nodes (wake_listener.h), tells them what happened here (NOTIFY), and makes
// the calls on the shared tables that JobService needs: claims, cancels of jobs that
// may run on another node, and checks of the jobs it waits on or holds.
//
// Three channels per schema (a NOTIFY reaches every session LISTENing to its name in
// the database, so the name carries a hash of the schema):
// - work: a job was queued (no payload). Sent at most once per 50 ms, and at the end
//   of such a window when more came meanwhile: a burst of submits costs two.
// - done: jobs finished (their ids, comma-separated), batched the same way.
// - cancel: jobs canceled from some node while they ran (their ids), at once.
// - chunks: of maps across nodes (map_chunks.h), "+id" when chunks of map `id` are
//   done, for its owner; "-id" when the owner dropped the map's chunks, for the nodes
//   that run them. Batched as done is.
// - events: jobs' status changes (service/job_event_log.h), only while some node has
//   subscribers: "W" + node id, sent by such a node every few seconds, asks the others
//   for their events; "E" + node id + a line per event is what they send, batched as
//   done is. Events are for people watching: what a send loses is lost.
// Notifications are hints: the caller polls as well (JobService, each second).
//
// Threads: NodeLease's three and WakeListener's one, plus a notifier thread with a
// connection of its own. Claims have a connection of their own (claim_mu_), so that a
// claim never waits behind the other calls, which share one (calls_mu_). Calls block
// for their round trips, on the caller's thread: JobService makes them on its
// claimer and store reader threads, never on an I/O thread.
// Callbacks run on the listener's and the lease's threads, never under a lock of
// this class.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster_tables.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload {

class NodeLease;
class PgConnection;
class WakeListener;

struct ClusterNodeOptions {
  std::string conninfo;
  std::string node_id;
  std::string info = "{}";  // Shown with the node: its role, resources and tasks.
  Millis lease_ttl{15'000};
  Millis lease_grace{5'000};
  RescueDecision decide;          // What a rescue does with a dead node's running jobs.
  std::function<void()> on_work;  // Work was queued on some node.
  std::function<void(const std::vector<std::string>& ids)> on_done;  // Jobs finished on some node.
  // Jobs canceled while running (on this node, maybe).
  std::function<void(const std::vector<std::string>& ids)> on_canceled;
  // Chunks of maps held here are done; chunks run here of maps whose owner dropped them.
  std::function<void(const std::vector<std::string>& map_ids)> on_chunks_done;
  std::function<void(const std::vector<std::string>& map_ids)> on_chunks_dropped;
  // Another node wants this node's events; another node's events, a JSON object each.
  std::function<void()> on_events_wanted;
  std::function<void(const std::vector<std::string>& events)> on_events;
  // The listener connected again: whatever was sent meanwhile is lost.
  std::function<void()> on_reconnect;
  std::function<void(const NodeIdentity& lost)> on_lost;  // See NodeLease.
  std::function<void(const NodeIdentity& now)> on_regained;
};

// What Cancel found.
struct RemoteCancel {
  std::optional<JobRecord> job;  // Its state after the call; nullopt: no such job.
  bool canceled = false;         // By this call; else it had finished already.
};

// Thread-safe.
class ClusterNode {
 public:
  // Registers the node and starts its threads; a failure (PostgreSQL unreachable) is
  // returned and nothing runs.
  static ErrorOr<std::unique_ptr<ClusterNode>> Start(ClusterNodeOptions options, const WallClock& clock);
  // Sends what is pending, then stops the threads and leaves the cluster.
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  NodeIdentity identity() const;
  bool held() const;       // False from a loss of the lease until the node registered again.
  bool listening() const;  // Whether this node hears the others' notifications now.

  // ClaimJobs (cluster_tables.h) under this node's identity now, which it returns
  // with the jobs.
  ErrorOr<std::pair<NodeIdentity, ClaimedWork>> Claim(ClaimRequest request);
  // RescueUnheld (cluster_tables.h) of the jobs running under `claim`, this node's
  // present identity, that are not among `held`. Call it where claims are made, between
  // two of them.
  ErrorOr<std::size_t> RescueUnheld(const NodeIdentity& claim, const std::vector<std::string>& held, UnixMillis now,
                                    const RescueDecision& decide);
  // Of the chunks of maps running under `claim` (this node's present identity): those
  // not among `held` are offered again (their claim's answer was lost); returns those
  // of `held` that no longer run under it (dropped by their owner, or rescued). Call it
  // where claims are made, between two of them.
  ErrorOr<std::vector<std::uint64_t>> ReconcileChunks(const NodeIdentity& claim,
                                                      const std::vector<std::uint64_t>& held);

  // Maps across nodes (map_chunks.h). An offer announces work; a finished chunk tells
  // the map's owner; a drop tells the nodes running its chunks.
  Status OfferChunks(const OfferedMap& map, const std::vector<ChunkOffer>& offers);
  // False when the chunk was no longer the runner's.
  ErrorOr<bool> FinishChunk(std::uint64_t seq, const NodeIdentity& runner, const std::string& outcome);
  ErrorOr<ChunkStates> ReadChunks(const std::string& job_id, const NodeIdentity& owner);
  ErrorOr<std::vector<std::int64_t>> WithdrawChunks(const std::string& job_id, const NodeIdentity& owner);
  // Removes chunks folded in (RemoveChunks), or those of a map that ended (DropChunks,
  // which tells the nodes running them when there were any).
  ErrorOr<std::size_t> RemoveChunks(const std::string& job_id, const NodeIdentity& owner,
                                    const std::vector<std::int64_t>& chunks);
  Status DropChunks(const std::string& job_id, const NodeIdentity& owner, const std::vector<std::int64_t>& chunks);
  // Chunks claimed under `runner` that it gives back unstarted.
  Status OfferAgain(const NodeIdentity& runner, const std::vector<std::uint64_t>& seqs);
  // Tells the owner of map `job_id` that chunks of it were claimed: it may offer more.
  void AnnounceChunksClaimed(const std::string& job_id);

  // Cancels job `id` wherever it is: `to_canceled` moves its record (queued, or
  // running on any node) to canceled, which is written at once; the node that runs it
  // hears of it on the cancel channel, and so do those that run chunks of it (a map),
  // whose rows go.
  ErrorOr<RemoteCancel> Cancel(const std::string& id, const std::function<void(JobRecord*)>& to_canceled);
  // Of `ids`, the jobs that are finished, and the ids of none (never, or removed).
  struct Ended {
    std::vector<JobRecord> finished;
    std::vector<std::string> unknown;
  };
  ErrorOr<Ended> Finished(const std::vector<std::string>& ids);
  // Of `ids`, jobs this node claimed as `claim`, those that no longer run under it
  // (canceled from another node, rescued, or claimed by another since).
  ErrorOr<std::vector<std::string>> NoLongerHeld(const std::vector<std::string>& ids, const NodeIdentity& claim);

  // The job that holds Idempotency-Key `key` of task `task` for `tenant`, once a job
  // created before `expired_before` has lost it (its ttl is over: the key is free for
  // a new job); nullopt when none holds it now.
  ErrorOr<std::optional<JobRecord>> KeyHolder(const std::string& task, const std::string& tenant,
                                              const std::string& key, UnixMillis expired_before);
  // Queued jobs per task, cluster-wide.
  ErrorOr<std::vector<std::pair<std::string, std::int64_t>>> QueuedByTask();

  void AnnounceWork();
  void AnnounceDone(const std::string& id);
  // Sends an event (a JSON object on one line) to the nodes that want events. Past
  // kMaxEventsPending unsent, events are dropped.
  void AnnounceEvent(std::string event);
  // Asks the other nodes for their events (for the next 15 s: ask again before).
  void WantEvents();
  static constexpr std::size_t kMaxEventsPending = 50'000;

 private:
  struct Outbox {
    bool work = false;
    std::vector<std::string> done;
    std::vector<std::string> canceled;
    std::vector<std::string> chunks;  // "+id" and "-id" (see the channels above).
    std::vector<std::string> events;
    bool want_events = false;
    bool empty() const {
      return !work && done.empty() && canceled.empty() && chunks.empty() && events.empty() && !want_events;
    }
  };
  explicit ClusterNode(ClusterNodeOptions options);
  void NotifyLoop();
  void OnChunksNotified(const std::string& payload);
  void OnEventsNotified(const std::string& payload);
  // Sends the events in payloads under the limit; false when a send failed.
  bool NotifyEvents(PgConnection& conn, bool want, const std::vector<std::string>& events);
  void Post(const std::function<void(Outbox*)>& add);
  // `conn`, made again when it broke; null when PostgreSQL cannot be reached.
  PgConnection* Connection(std::unique_ptr<PgConnection>* conn);

  // Constant after Start.
  const ClusterNodeOptions options_;
  std::string work_channel_;
  std::string done_channel_;
  std::string cancel_channel_;
  std::string chunks_channel_;
  std::string events_channel_;

  Mutex claim_mu_;
  std::unique_ptr<PgConnection> claim_conn_ GUARDED_BY(claim_mu_);
  Mutex calls_mu_;
  std::unique_ptr<PgConnection> calls_conn_ GUARDED_BY(calls_mu_);

  Mutex out_mu_;
  CondVar out_cv_;  // Something to send, or stopping.
  Outbox outbox_ GUARDED_BY(out_mu_);
  bool stopping_ GUARDED_BY(out_mu_) = false;
  std::unique_ptr<PgConnection> notify_conn_;  // Notifier thread only.

  std::unique_ptr<NodeLease> lease_;
  std::unique_ptr<WakeListener> listener_;
  std::thread notifier_;
};

}  // namespace offload
