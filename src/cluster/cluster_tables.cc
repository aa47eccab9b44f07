#include "cluster/cluster_tables.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "cluster/map_chunks.h"
#include "sched/scheduler.h"
#include "store/postgres_rows.h"

namespace offload {

namespace {

// Rolls back the open transaction and returns `e`.
Error Abort(PgConnection& conn, Error e) {
  if (!conn.broken()) (void)conn.ExecScript("ROLLBACK");
  return e;
}

// Sends each row of `orphans` (kPgJobColumns, then its node_id and node_epoch) through
// `decide` and writes it back, still guarded by that claimant and the running status.
// Returns how many moved. REQUIRES: a transaction that locked the rows.
ErrorOr<std::size_t> MoveOrphans(PgConnection& conn, const PgResult& orphans, UnixMillis now,
                                 const RescueDecision& decide) {
  std::size_t moved_jobs = 0;
  constexpr int kNodeColumn = kPgJobColumnCount;  // After the job's columns.
  for (int row = 0; row < orphans.rows(); ++row) {
    const std::string node(orphans.Bytes(row, kNodeColumn));
    const std::int64_t epoch = orphans.Int(row, kNodeColumn + 1);
    JobRecord job = ReadPgJobRow(orphans, row);
    decide(&job, now);
    const StoreOp op{StoreOp::Kind::kUpdate, std::move(job)};  // The call borrows its strings.
    PgCall write = PgJobWrite(op, "node_id IS NOT DISTINCT FROM $17 AND node_epoch = $18 AND status = 1");
    if (orphans.null(row, kNodeColumn)) {
      write.params.Null();
    } else {
      write.params.Text(node);
    }
    write.params.Int(epoch);
    auto moved = conn.Exec(write.sql, write.params);
    if (!moved) return moved.error();
    moved_jobs += static_cast<std::size_t>(moved->changed());
  }
  return moved_jobs;
}

}  // namespace

ErrorOr<NodeIdentity> RegisterNode(PgConnection& conn, const std::string& id, const std::string& info, Millis ttl) {
  auto res = conn.Exec(
      "INSERT INTO offload_nodes (id, epoch, lease_until, info) "
      "VALUES ($1, 1, clock_timestamp() + $2 * interval '1 millisecond', $3) "
      "ON CONFLICT (id) DO UPDATE SET epoch = offload_nodes.epoch + 1, lease_until = EXCLUDED.lease_until, "
      "info = EXCLUDED.info, started_at = clock_timestamp(), expired_at = NULL "
      "RETURNING epoch",
      PgParams().Text(id).Int(ttl.count()).Text(info));
  if (!res) return res.error();
  return NodeIdentity{id, res->Int(0, 0)};
}

ErrorOr<bool> RenewLease(PgConnection& conn, const NodeIdentity& node, Millis ttl) {
  auto res = conn.Exec(
      "UPDATE offload_nodes SET lease_until = clock_timestamp() + $3 * interval '1 millisecond' "
      "WHERE id = $1 AND epoch = $2 AND expired_at IS NULL",
      PgParams().Text(node.id).Int(node.epoch).Int(ttl.count()));
  if (!res) return res.error();
  return res->changed() == 1;
}

Status DeregisterNode(PgConnection& conn, const NodeIdentity& node) {
  auto res = conn.Exec(
      "UPDATE offload_nodes SET epoch = epoch + 1, expired_at = clock_timestamp() WHERE id = $1 AND epoch = $2",
      PgParams().Text(node.id).Int(node.epoch));
  if (!res) return res.error();
  return {};
}

ErrorOr<ClaimedWork> ClaimJobs(PgConnection& conn, const ClaimRequest& request) {
  ClaimedWork claimed;
  // A task whose jobs cannot fit this node at all is not its to claim: left in, its
  // jobs would hold up every later job on their resources here, for good.
  std::vector<const std::pair<std::string, ResourceDemand>*> eligible;
  for (const auto& task : request.tasks) {
    bool fits = true;
    for (auto [r, amount] : task.second.units) fits = fits && amount <= request.capacity[static_cast<std::size_t>(r)];
    if (fits) eligible.push_back(&task);
  }
  if (eligible.empty() || request.limit == 0) return claimed;
  std::vector<std::string> names;
  for (const auto* task : eligible) names.push_back(task->first);
  const std::string tasks = PgTextArray(names);

  // Two round trips: BEGIN, the turn and the head of the queue; then the update and
  // the commit. What the picker needs, and no row locks: claims take turns (the
  // transaction's advisory lock), and the update takes only rows still queued, so a
  // job canceled meanwhile drops out of the claim.
  std::vector<PgCall> head;
  head.push_back(PgCall{"BEGIN", {}});
  // The claim's commit does not wait for the disk (see the header): the write of the
  // jobs' start, right after, does.
  head.push_back(PgCall{"SET LOCAL synchronous_commit = off", {}});
  head.push_back(PgCall{"SELECT pg_advisory_xact_lock(hashtextextended('offload claim ' || current_schema(), 0))", {}});
  PgParams select;
  select.Text(tasks)
      .Int(static_cast<std::int64_t>(request.limit))
      .Int(request.now)
      .Text(request.node.id)
      .Own(PgTextArray(request.exclude));
  head.push_back(PgCall{
      "SELECT seq, task, priority, map_spec IS NOT NULL, tenant FROM offload_jobs WHERE status = 0 AND task = "
      "ANY($1::text[]) AND run_after <= $3 AND (files_node IS NULL OR files_node = $4) AND id <> ALL($5::text[]) "
      "ORDER BY priority DESC, seq LIMIT $2",
      std::move(select)});
  PgParams offered;
  offered.Text(tasks).Int(static_cast<std::int64_t>(request.limit)).Text(request.node.id);
  head.push_back(PgCall{kOfferedChunksHead, std::move(offered)});
  std::vector<std::string> capped;
  for (const auto& [tenant, caps] : request.tenant_caps) capped.push_back(tenant);
  if (!capped.empty()) {
    // What the capped tenants' jobs hold now, cluster-wide (those claimed ahead too),
    // and the chunks of their maps that other nodes run: each one execution of its task.
    PgParams held;
    held.Own(PgTextArray(capped));
    head.push_back(
        PgCall{"SELECT tenant, task, count(*) FROM (SELECT tenant, task FROM offload_jobs WHERE status = 1 AND tenant "
               "= ANY($1::text[]) UNION ALL SELECT tenant, task FROM offload_map_chunks WHERE status = 1 AND tenant = "
               "ANY($1::text[])) AS running GROUP BY tenant, task",
               std::move(held)});
  }
  auto first = conn.Pipeline(head);
  if (!first) return Abort(conn, first.error());

  // The head of the cluster's queue: jobs and offered chunks of maps, in one order.
  struct Entry {
    Scheduler<std::uint64_t>::Key key;
    std::uint64_t seq;
    std::size_t task;  // Into `eligible`.
    bool map;          // A map, or a chunk of one: never claimed ahead.
    bool chunk;
    int tenant;  // In the picker: 0, or a capped tenant's own.
  };
  // The picker's tenants: one for each capped tenant, the rest share tenant 0 (and the
  // cluster's one order).
  Scheduler<std::uint64_t> picker(request.capacity);
  std::unordered_map<std::string, int> capped_index;
  if (!capped.empty()) {
    std::unordered_map<std::string, const ResourceDemand*> demand_of;
    for (const auto& task : request.tasks) demand_of.emplace(task.first, &task.second);
    std::map<std::pair<std::string, int>, std::int64_t> held;  // (tenant, resource): units.
    const PgResult& rows = (*first)[5];
    for (int row = 0; row < rows.rows(); ++row) {
      auto demand = demand_of.find(std::string(rows.Bytes(row, 1)));
      if (demand == demand_of.end()) continue;  // A task of other nodes: what it holds is not known here.
      for (auto [r, amount] : demand->second->units)
        held[{std::string(rows.Bytes(row, 0)), r}] += amount * rows.Int(row, 2);
    }
    for (const auto& [tenant, caps] : request.tenant_caps) {
      const int t = picker.AddTenant();
      capped_index.emplace(tenant, t);
      for (auto [r, units] : caps) {
        auto h = held.find({tenant, r});
        picker.shares().SetCap(t, r, std::max<std::int64_t>(0, units - (h == held.end() ? 0 : h->second)));
      }
    }
  }
  std::unordered_map<std::string, std::size_t> index_of;
  for (const auto* task : eligible) index_of.emplace(task->first, index_of.size());
  std::vector<Entry> entries;
  // A list cut at its limit says nothing of what comes after its last entry: the
  // merged head ends there, so that nothing unread can be overtaken.
  std::optional<Scheduler<std::uint64_t>::Key> cut;
  for (int part = 3; part <= 4; ++part) {
    const PgResult& rows = (*first)[static_cast<std::size_t>(part)];
    for (int row = 0; row < rows.rows(); ++row) {
      const auto seq = static_cast<std::uint64_t>(rows.Int(row, 0));
      const auto priority = static_cast<int>(rows.Int(row, 2));
      const bool chunk = part == 4;
      int tenant = 0;
      if (!capped_index.empty()) {
        auto it = capped_index.find(std::string(rows.Bytes(row, 4)));
        if (it != capped_index.end()) tenant = it->second;
      }
      entries.push_back(Entry{Scheduler<std::uint64_t>::MakeKey(priority, seq), seq,
                              index_of.at(std::string(rows.Bytes(row, 1))),
                              chunk || rows.Bytes(row, 3) == std::string_view("\x01", 1), chunk, tenant});
    }
    if (rows.rows() > 0 && static_cast<std::size_t>(rows.rows()) >= request.limit) {
      const auto last = entries.back().key;
      if (!cut || last < *cut) cut = last;
    }
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.key < b.key; });
  if (cut) std::erase_if(entries, [&](const Entry& e) { return *cut < e.key; });

  // The local scheduler's rule, run on the head of the cluster's queue.
  for (std::size_t r = 0; r < request.in_use.size(); ++r) {
    picker.Hold(static_cast<int>(r), std::min(request.in_use[r], request.capacity[r]));
  }
  std::vector<int> queue_of;
  for (const auto* task : eligible) queue_of.push_back(picker.AddQueue(task->second));
  for (const Entry& e : entries) picker.Enqueue(queue_of[e.task], e.key, e.seq, e.tenant);
  std::unordered_set<std::uint64_t> order;
  picker.Dispatch([&](int, std::uint64_t seq) { order.insert(seq); });
  // Claim-ahead: the rest of the head in its order, while no job left behind holds
  // back the resources of the next.
  std::vector<std::size_t> ahead(eligible.size(), 0);
  for (std::size_t i = 0; i < request.tasks.size() && i < request.ahead.size(); ++i) {
    if (auto it = index_of.find(request.tasks[i].first); it != index_of.end()) ahead[it->second] = request.ahead[i];
  }
  std::uint64_t left_behind = 0;  // Resources that a job left queued waits for.
  for (const Entry& e : entries) {
    // A capped tenant's job left queued holds back nobody else's.
    if (order.count(e.seq) || e.tenant != 0) continue;
    const ResourceDemand& uses = eligible[e.task]->second;
    if (ahead[e.task] > 0 && !e.map && (uses.mask & left_behind) == 0) {
      --ahead[e.task];
      order.insert(e.seq);
    } else {
      left_behind |= uses.mask;
    }
  }
  std::vector<std::uint64_t> job_seqs, chunk_seqs;
  for (const Entry& e : entries) {
    if (order.count(e.seq)) (e.chunk ? chunk_seqs : job_seqs).push_back(e.seq);
  }
  std::vector<PgCall> tail;
  if (!job_seqs.empty()) {
    PgParams mark;
    mark.Text(request.node.id).Int(request.node.epoch).Own(PgIntArray(job_seqs));
    tail.push_back(PgCall{std::string("UPDATE offload_jobs SET status = 1, node_id = $1, node_epoch = $2 WHERE seq = "
                                      "ANY($3::bigint[]) AND status = 0 RETURNING ") +
                              kPgJobColumns,
                          std::move(mark)});
  }
  if (!chunk_seqs.empty()) {
    PgParams mark;
    mark.Text(request.node.id).Int(request.node.epoch).Own(PgIntArray(chunk_seqs));
    tail.push_back(PgCall{kClaimChunks, std::move(mark)});
  }
  tail.push_back(PgCall{"COMMIT", {}});
  auto marked = conn.Pipeline(tail);
  if (!marked) return Abort(conn, marked.error());
  std::size_t next = 0;
  if (!job_seqs.empty()) {
    const PgResult& rows = (*marked)[next++];
    std::unordered_map<std::uint64_t, JobRecord> by_seq;
    for (int row = 0; row < rows.rows(); ++row) {
      JobRecord job = ReadPgJobRow(rows, row);
      job.status = JobStatus::kQueued;  // As it was queued: its start is the claimant's to write.
      by_seq.emplace(job.seq, std::move(job));
    }
    for (const Entry& e : entries) {
      if (auto it = by_seq.find(e.seq); !e.chunk && it != by_seq.end()) claimed.jobs.push_back(std::move(it->second));
    }
  }
  if (!chunk_seqs.empty()) {
    std::vector<std::uint64_t> bad;
    claimed.chunks = ReadClaimedChunks((*marked)[next], &bad);
    if (!bad.empty()) {
      // Not what a node offered: no node can run them. Their owners find them gone and
      // run their elements themselves.
      spdlog::error("cluster: {} chunks of maps in offload_map_chunks cannot be read; removed", bad.size());
      if (Status s = RemoveChunkRows(conn, bad); !s) spdlog::warn("cluster: {}", s.error().detail);
    }
  }
  return claimed;
}

ErrorOr<RescueReport> RescueExpiredNodes(PgConnection& conn, Millis grace, UnixMillis now,
                                         const RescueDecision& decide) {
  RescueReport report;
  if (Status s = conn.ExecScript("BEGIN"); !s) return Abort(conn, s.error());
  auto turn = conn.Exec("SELECT pg_try_advisory_xact_lock(hashtextextended('offload rescue ' || current_schema(), 0))");
  if (!turn) return Abort(conn, turn.error());
  if (turn->Bytes(0, 0) != std::string_view("\x01", 1)) {
    // Another node is rescuing now.
    if (Status s = conn.ExecScript("COMMIT"); !s) return s.error();
    return report;
  }
  // Nodes past their lease and grace move to their next epoch, marked expired: their
  // renewals fail from here on.
  auto expired = conn.Exec(
      "UPDATE offload_nodes SET epoch = epoch + 1, expired_at = clock_timestamp() "
      "WHERE expired_at IS NULL AND lease_until < clock_timestamp() - $1 * interval '1 millisecond'",
      PgParams().Int(grace.count()));
  if (!expired) return Abort(conn, expired.error());
  report.nodes = static_cast<std::size_t>(expired->changed());
  // Every running job whose claimant (node and epoch) is not a live node now: the
  // nodes just expired, one that registered again since (a new epoch), one whose row
  // is gone.
  auto orphans = conn.Exec(std::string("SELECT ") + kPgJobColumns +
                           ", node_id, node_epoch FROM offload_jobs j WHERE status = 1 AND NOT EXISTS (SELECT 1 FROM "
                           "offload_nodes n WHERE n.id = j.node_id AND n.epoch = j.node_epoch AND n.expired_at IS "
                           "NULL) ORDER BY seq FOR UPDATE");
  if (!orphans) return Abort(conn, orphans.error());
  auto moved = MoveOrphans(conn, *orphans, now, decide);
  if (!moved) return Abort(conn, moved.error());
  report.jobs = *moved;
  auto chunks = RescueChunks(conn);
  if (!chunks) return Abort(conn, chunks.error());
  report.chunks = *chunks;
  auto old = conn.Exec("DELETE FROM offload_nodes WHERE expired_at < clock_timestamp() - interval '1 day'");
  if (!old) return Abort(conn, old.error());
  if (Status s = conn.ExecScript("COMMIT"); !s) return s.error();
  return report;
}

ErrorOr<std::size_t> RescueUnheld(PgConnection& conn, const NodeIdentity& claim, const std::vector<std::string>& held,
                                  UnixMillis now, const RescueDecision& decide) {
  if (Status s = conn.ExecScript("BEGIN"); !s) return Abort(conn, s.error());
  auto orphans = conn.Exec(std::string("SELECT ") + kPgJobColumns +
                               ", node_id, node_epoch FROM offload_jobs WHERE status = 1 AND node_id = $1 AND "
                               "node_epoch = $2 AND id <> ALL($3::text[]) ORDER BY seq FOR UPDATE",
                           PgParams().Text(claim.id).Int(claim.epoch).Own(PgTextArray(held)));
  if (!orphans) return Abort(conn, orphans.error());
  auto moved = MoveOrphans(conn, *orphans, now, decide);
  if (!moved) return Abort(conn, moved.error());
  if (Status s = conn.ExecScript("COMMIT"); !s) return s.error();
  return *moved;
}

}  // namespace offload
