// NodeLease: this node's membership of the cluster, kept by a supervisor of its own.
//
// One thread and one PostgreSQL connection, used for nothing else, renew the node's
// lease every ttl/3 on a fixed schedule (the next renewal is due a third of the ttl
// after the previous one was due, not after it ended), so that no work the node does —
// a CPU-bound job, a blocked store, a slow disk — can delay a renewal: the failure of
// BullMQ's "stalled" jobs and Celery's visibility timeout, where the heartbeat waits for
// the work. Each call to PostgreSQL is bounded by ttl/3, server-side too.
//
// The lease is lost when a renewal is refused (a rescue fenced the node: it was paused
// or cut off past its lease) or when no renewal succeeded for ttl − ttl/3 (the node
// cannot tell whether a rescue is about to run). Then on_lost runs, once, on the lease
// thread: the node must stop the jobs it runs, since they may be running elsewhere by
// now. The supervisor then registers again, at the next epoch, and says so with
// on_regained; jobs claimed from then on carry the new epoch.
//
// After each renewal the supervisor also rescues the nodes whose leases ended more
// than `grace` ago (cluster_tables.h), so every live node is a rescuer and one at a
// time does it.
//
// Threads: the lease thread is the only one that touches the connection; mu_ guards
// the identity and state others read. Callbacks run on the lease thread, without mu_.
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
  std::string node_id;      // Unique per start of a server: NewNodeId() makes one.
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
  // Stops the thread and removes the node's row (best effort: a node that cannot
  // reach PostgreSQL then is rescued once its lease ends).
  ~NodeLease();
  NodeLease(const NodeLease&) = delete;
  NodeLease& operator=(const NodeLease&) = delete;

  // The identity jobs are claimed under now.
  NodeIdentity identity() const;
  // False from a loss until the node registered again.
  bool held() const;

 private:
  NodeLease(NodeLeaseOptions options, const WallClock& clock, std::unique_ptr<PgConnection> conn,
            NodeIdentity identity);
  void Loop();
  // One renewal (or registration, after a loss) and rescue. Lease thread only.
  void Tick(std::chrono::steady_clock::time_point now);
  // The connection, made again if it broke; null when PostgreSQL cannot be reached.
  PgConnection* Connection();

  // Constant after construction.
  const NodeLeaseOptions options_;
  const WallClock& clock_;

  // Lease thread only.
  std::unique_ptr<PgConnection> conn_;
  std::chrono::steady_clock::time_point last_renewed_;

  mutable Mutex mu_;
  CondVar wake_;
  NodeIdentity identity_ GUARDED_BY(mu_);
  bool held_ GUARDED_BY(mu_) = true;
  bool stopping_ GUARDED_BY(mu_) = false;

  // Started last, once every member above exists.
  std::thread thread_;
};

// A node id unique to this start of this server: the host name, the pid and random
// characters, so that a restarted server is a new node, never an old one's epoch.
std::string NewNodeId();

}  // namespace offload
