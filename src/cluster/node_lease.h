// NodeLease: this node's membership of the cluster, kept by a supervisor of its own.
//
// One thread and one PostgreSQL connection, used for nothing else, renew the node's
// lease every ttl/3 on a fixed schedule (the next renewal is due a third of the ttl
// after the previous one was due, not after it ended), so that no work the node does —
// a CPU-bound job, a blocked store, a slow disk — can delay a renewal: the failure of
// BullMQ's "stalled" jobs and Celery's visibility timeout, where the heartbeat waits for
// the work. Each call to PostgreSQL (the connect too) is bounded by ttl/3, server-side
// as well.
//
// The lease is lost when a renewal is refused (a rescue fenced the node: it was paused
// or cut off past its lease) or when no renewal succeeded for ttl − ttl/3, counted
// from the start of the last one that did (the database's lease runs at least ttl
// from then). A watchdog thread keeps that deadline, so a renewal blocked in a call
// cannot make the node notice late. Then on_lost runs, once: the node must stop the
// jobs it runs, since they may be running elsewhere by now. The supervisor then
// registers again, at the next epoch, and says so with on_regained; jobs claimed from
// then on carry the new epoch, and those of the old one are rescued.
//
// A third thread, with its own connection, rescues every ttl/3 (cluster_tables.h):
// every live node is a rescuer, one at a time does it, and a slow rescue never delays
// a renewal.
//
// Threads: each of the three owns its connection; mu_ guards the identity and the
// state they share. on_lost runs on the renewal or the watchdog thread, on_regained on
// the renewal thread, never with mu_ held.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "cluster/cluster_tables.h"
#include "util/clock.h"
#include "util/mutex.h"

namespace offload {

class PgConnection;

struct NodeLeaseOptions {
  std::string conninfo;
  std::string node_id;      // The same at each start of one node; unique among live ones.
  std::string info = "{}";  // A JSON object shown with the node (role, resources, tasks).
  Millis ttl{15'000};
  Millis grace{5'000};    // How long past its lease a node is left before a rescue.
  RescueDecision decide;  // What a rescue does with a dead node's running jobs.
  std::function<void(const NodeIdentity& lost)> on_lost;
  std::function<void(const NodeIdentity& now)> on_regained;
};

// Thread-safe. Owns the lease thread and its connection.
class NodeLease {
 public:
  // Registers the node (a failure is returned, nothing runs) and starts the thread.
  // Jobs are stamped by `clock` when rescued; it must outlive the lease.
  static ErrorOr<std::unique_ptr<NodeLease>> Start(NodeLeaseOptions options, const WallClock& clock);
  // Stops the threads and marks the node expired (best effort: a node that cannot
  // reach PostgreSQL then is rescued once its lease ends).
  ~NodeLease();
  NodeLease(const NodeLease&) = delete;
  NodeLease& operator=(const NodeLease&) = delete;

  // The identity jobs are claimed under now.
  NodeIdentity identity() const;
  // False from a loss until the node registered again.
  bool held() const;

 private:
  using Steady = std::chrono::steady_clock;
  NodeLease(NodeLeaseOptions options, const WallClock& clock, std::unique_ptr<PgConnection> conn, NodeIdentity identity,
            Steady::time_point renewed);
  void RenewLoop();
  void WatchLoop();
  void RescueLoop();
  // One renewal, or registration after a loss. Renewal thread only.
  void Renew();
  // Marks the lease lost (once per epoch) and runs on_lost. REQUIRES: mu_ not held.
  void Lose(const NodeIdentity& node, const std::string& why) LOCKS_EXCLUDED(mu_);
  // `conn`, made again if it broke; null when PostgreSQL cannot be reached.
  PgConnection* Connection(std::unique_ptr<PgConnection>* conn);
  // Sleeps until `due` or the stop; false when stopping.
  bool SleepUntil(Steady::time_point due) LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const NodeLeaseOptions options_;
  const WallClock& clock_;
  const Millis period_;  // ttl/3: between renewals, and each call's bound.

  std::unique_ptr<PgConnection> renew_conn_;   // Renewal thread only.
  std::unique_ptr<PgConnection> rescue_conn_;  // Rescue thread only.

  mutable Mutex mu_;
  CondVar wake_;  // Stopping, or last_renewed_ moved.
  NodeIdentity identity_ GUARDED_BY(mu_);
  bool held_ GUARDED_BY(mu_) = true;
  bool stopping_ GUARDED_BY(mu_) = false;
  // When the last successful renewal (or registration) began.
  Steady::time_point last_renewed_ GUARDED_BY(mu_);

  // Started last, once every member above exists.
  std::thread renew_thread_;
  std::thread watch_thread_;
  std::thread rescue_thread_;
};

// A node id unique to this process: the host name, the pid and random characters.
std::string NewNodeId();
// The id of the server whose files live in `files_root`: its host and that folder, the
// same at each start and unique among live servers (a files_dir is locked by the one
// using it).
std::string NodeIdOf(const std::string& files_root);

}  // namespace offload
