// The cluster's state in PostgreSQL: which nodes are alive (their leases), which node
// runs which job (claims), and what becomes of the jobs of a node that stopped
// renewing its lease (rescues). Functions of a connection, no state of their own: the
// lease supervisor (node_lease.h) runs them on its thread and connection.
//
// Times of leases are the database's (clock_timestamp()), never a node's, so that
// clocks that differ between machines cannot expire a live node.
//
// Fencing: a node's identity is its id and its epoch. A rescue marks an expired node
// (expired_at) and moves it to the next epoch, so that its renewals fail from then
// on, and moves every running job whose claimant (id and epoch) is not a live node,
// guarded by that claimant and the running status, so that a job finished just before
// is left alone. A node that comes back registers again at a later epoch; the jobs of
// its old epoch are then orphans, rescued like a dead node's. The writes a node makes
// for the jobs it claimed must name its epoch in their condition (PgJobWrite's
// extra condition), so that once rescued they match no row. Epochs of an id grow
// while its row exists: a clean stop marks the row expired rather than removing it,
// so that the next start of the same node (a server's id is its host and files_dir) runs at a new
// epoch, and whatever its last one left running is rescued at once. Rows expired for
// a day go.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cluster/map_chunks.h"
#include "config/config.h"
#include "sched/resource_demand.h"
#include "store/job_record.h"
#include "store/pg_connection.h"
#include "store/store.h"
#include "util/clock.h"

namespace offload {

// Registers node `id`, with a lease of `ttl` from now: epoch 1 for a new id, the next
// epoch for one that registered before (its old lease, if still there, ends now).
// `info` is a JSON object for people and dashboards (role, resources, tasks).
ErrorOr<NodeIdentity> RegisterNode(PgConnection& conn, const std::string& id, const std::string& info, Millis ttl);

// Extends the node's lease to `ttl` from now. False when the node was fenced: a
// rescue removed it, or it registered again since (another epoch).
ErrorOr<bool> RenewLease(PgConnection& conn, const NodeIdentity& node, Millis ttl);

// Marks the node expired at a clean stop, at its next epoch: whatever it still held
// (a final write that could not be made) is rescued by the next rescue.
Status DeregisterNode(PgConnection& conn, const NodeIdentity& node);

// What a node asks for when it claims work: what it has free, and which tasks it runs.
struct ClaimRequest {
  NodeIdentity node;
  // Per resource index: the node's capacity, and what its jobs hold now or will
  // hold once those it claimed start.
  std::vector<std::int64_t> capacity;
  std::vector<std::int64_t> in_use;
  // The tasks the node runs, each with what one of its jobs holds. A task whose jobs
  // need more than the node's capacity is left out: such a job must not hold up, on
  // this node, the jobs it can start.
  std::vector<std::pair<std::string, ResourceDemand>> tasks;
  // Per entry of `tasks`, or empty: how many of its jobs to claim ahead, beyond those
  // that start now, to wait here until a slot frees (claim-ahead, docs/cluster.md).
  // None is a map.
  std::vector<std::size_t> ahead;
  std::size_t limit = 256;           // The most queued jobs looked at, and so claimed, per call.
  UnixMillis now = 0;                // Jobs whose run_after is later are not claimed yet.
  std::vector<std::string> exclude;  // Ids not to claim (their last claim is still leaving this node).
  // Tenants' max_running (TenantPolicy), by tenant: (resource index, units) that its
  // jobs running anywhere in the cluster may hold. A job of a capped tenant is claimed
  // only while it keeps the tenant within its caps, and never ahead.
  std::map<std::string, std::vector<std::pair<int, std::int64_t>>> tenant_caps;
};

// Claims the queued jobs this node may start now, marking them running on it (at its
// epoch), and returns them in start order, as they were queued. The order is the
// scheduler's (sched/scheduler.h) over the whole cluster's queue: higher priority
// first, then submission; strict head-of-line per resource, so that on an exclusive
// resource jobs start in submission order whichever node frees first. Then, after
// them, up to `ahead` more of each task, in the queue's order, but none past a job
// left queued that uses a resource it uses: a job claimed ahead never overtakes one
// that waits for the same resource. Claims are
// serialized cluster-wide (a transaction-scoped advisory lock), so two nodes never
// claim past each other. A job in back-off (run_after) waits; one whose files are on
// one node's disk (files_node) is only that node's to claim.
//
// A claim commits without waiting for the disk (synchronous_commit off): the write of
// the jobs' start follows it through the store's group commit, which does wait, and
// PostgreSQL's log is written in order, so the claim is durable once that write is. A
// crash of PostgreSQL itself (not a restart) between the two loses the claim, and the
// job runs again: the window a job started on one server has until its start is
// written.
//
// A tenant with max_running (ClaimRequest::tenant_caps) has its jobs claimed while what
// its running jobs hold across the cluster, counted in the claim's turn, stays within
// its caps: as claims take turns, two nodes cannot both take its last unit.
//
// Offered chunks of maps (map_chunks.h) of other nodes' maps are claimed in the same
// pass, in the same order: each takes its place in the queue as one execution of
// its task.
struct ClaimedWork {
  std::vector<JobRecord> jobs;
  std::vector<ClaimedChunk> chunks;
};
ErrorOr<ClaimedWork> ClaimJobs(PgConnection& conn, const ClaimRequest& request);

// Moves a running job of a node that lost its lease to its next status: queued again
// (its task retries) or failed (it does not), with `interrupted` as the reason, at
// time `now`.
using RescueDecision = std::function<void(JobRecord* job, UnixMillis now)>;

struct RescueReport {
  std::size_t nodes = 0;  // Nodes marked expired.
  std::size_t jobs = 0;   // Running jobs without a live claimant, moved.
  ChunkRescue chunks;
};

// Marks expired, at its next epoch, every node whose lease ended more than `grace`
// ago; then sends every running job whose claimant is not a live node through
// `decide` and writes it back; the chunks of maps go as RescueChunks says
// (map_chunks.h); rows expired for a day go. One transaction. One
// rescuer runs at a time cluster-wide (an advisory lock; the others return an empty
// report at once).
ErrorOr<RescueReport> RescueExpiredNodes(PgConnection& conn, Millis grace, UnixMillis now,
                                         const RescueDecision& decide);

// The jobs running under `claim` (a live node's own) whose ids are not in `held`,
// the jobs the node knows it holds: each goes through `decide` and is written back,
// as a rescue does. They are the jobs a node claimed and lost track of: a claim whose
// commit went out but whose answer was lost, a final state the store refused for
// good. Returns how many moved. One transaction. REQUIRES: no claim of the node's is
// in flight (one made meanwhile would be taken for lost).
ErrorOr<std::size_t> RescueUnheld(PgConnection& conn, const NodeIdentity& claim, const std::vector<std::string>& held,
                                  UnixMillis now, const RescueDecision& decide);

}  // namespace offload
