// The cluster's tables: registration and epochs, renewals, and the rescue of nodes
// past their lease, which moves their running jobs and nothing else.
#include "cluster/cluster_tables.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "cluster/cluster_test_util.h"
#include "offload/error_types.h"
#include "service/job_lifecycle.h"

namespace offload::testing {
namespace {

using std::chrono::milliseconds;

// Retries a job once: a first attempt is queued again, a later one fails.
void RetryOnce(JobRecord* job, UnixMillis now) {
  JobError lost{error_type::kInterrupted, "its node stopped renewing its lease"};
  EnterStatus(job, job->attempts <= 1 ? JobStatus::kQueued : JobStatus::kFailed, now, std::move(lost));
}

class ClusterTablesTest : public ClusterSchemaTest {
 protected:
  // Inserts queued job `seq` of `task` at `priority`.
  void InsertQueued(std::uint64_t seq, const std::string& task, int priority = 0, bool map = false) {
    JobRecord r;
    if (map) r.map = MapSpec{};
    r.id = "job-" + std::to_string(seq);
    r.task = task;
    r.seq = seq;
    r.priority = priority;
    r.input = std::make_shared<const boost::json::value>(nullptr);
    r.created_at = 1000 + static_cast<UnixMillis>(seq);
    ASSERT_TRUE(store_->Insert(r).has_value());
  }
  // Resources: 0 is cpu, 1 is gpu.
  static ResourceDemand Uses(std::int64_t cpu, std::int64_t gpu = 0) {
    ResourceDemand d;
    if (cpu > 0) d.Add(0, cpu);
    if (gpu > 0) d.Add(1, gpu);
    return d;
  }
  // The seqs `node` claims with `cpu` and `gpu` free of capacities 4 and 1.
  // `ahead`: per task, how many to claim ahead of a free slot.
  std::vector<std::uint64_t> Claim(const NodeIdentity& node, std::int64_t cpu_free, std::int64_t gpu_free,
                                   std::vector<std::pair<std::string, ResourceDemand>> tasks,
                                   std::vector<std::size_t> ahead = {}) {
    ClaimRequest req{node, {4, 1}, {4 - cpu_free, 1 - gpu_free}, std::move(tasks), std::move(ahead)};
    auto claimed = ClaimJobs(*conn_, req);
    EXPECT_TRUE(claimed.has_value()) << claimed.error().detail;
    std::vector<std::uint64_t> seqs;
    if (claimed) {
      for (const JobRecord& r : claimed->jobs) {
        EXPECT_EQ(r.status, JobStatus::kQueued) << "claims come back as they were queued";
        seqs.push_back(r.seq);
      }
    }
    return seqs;
  }
  std::string Owner(std::uint64_t seq) {
    return Sql(conninfo_, "SELECT node_id || '@' || node_epoch FROM offload_jobs WHERE seq = " + std::to_string(seq));
  }
  const NodeIdentity a_{"a", 1};
  const NodeIdentity b_{"b", 3};
};

using Seqs = std::vector<std::uint64_t>;

TEST_F(ClusterTablesTest, AClaimTakesWhatFitsInPriorityThenSubmissionOrder) {
  InsertQueued(1, "cpu1");
  InsertQueued(2, "cpu1", /*priority=*/5);
  InsertQueued(3, "cpu1");
  InsertQueued(4, "cpu1", /*priority=*/5);
  InsertQueued(5, "cpu1");
  EXPECT_EQ(Claim(a_, 3, 1, {{"cpu1", Uses(1)}}), (Seqs{2, 4, 1}));
  EXPECT_EQ(Status(2), "1");
  EXPECT_EQ(Owner(2), "a@1");
  EXPECT_EQ(Status(3), "0");
  // What is claimed is not claimed again.
  EXPECT_EQ(Claim(b_, 4, 1, {{"cpu1", Uses(1)}}), (Seqs{3, 5}));
  EXPECT_EQ(Owner(5), "b@3");
}

TEST_F(ClusterTablesTest, TheHeadOfAResourceHoldsItUpAndOnlyIt) {
  InsertQueued(1, "render");  // gpu: busy on this node.
  InsertQueued(2, "render");
  InsertQueued(3, "cpu1");  // Another resource: free to go.
  const std::vector<std::pair<std::string, ResourceDemand>> tasks = {{"render", Uses(0, 1)}, {"cpu1", Uses(1)}};
  EXPECT_EQ(Claim(a_, 4, 0, tasks), (Seqs{3}));
  // (A head that also used cpu would hold the cpu jobs after it too: the scheduler's
  // rule, so that no later job overtakes it on any of its resources.)
  // A job that needs more cpu than is free holds up the cpu jobs after it.
  InsertQueued(4, "cpu4");
  InsertQueued(5, "cpu1");
  std::vector<std::pair<std::string, ResourceDemand>> with_big = tasks;
  with_big.push_back({"cpu4", Uses(4)});
  EXPECT_EQ(Claim(a_, 3, 0, with_big), Seqs{});
}

TEST_F(ClusterTablesTest, AClaimAheadTakesTheNextInOrderButNeverPastAJobLeftBehind) {
  for (std::uint64_t seq = 1; seq <= 6; ++seq) InsertQueued(seq, "cpu1");
  // Two start now; three more wait on this node for a slot.
  EXPECT_EQ(Claim(a_, 2, 1, {{"cpu1", Uses(1)}}, {3}), (Seqs{1, 2, 3, 4, 5}));
  EXPECT_EQ(Owner(5), "a@1");
  InsertQueued(7, "cpu4");  // Waits for all 4 cpus: the cpu jobs after it wait too.
  InsertQueued(8, "cpu1");
  InsertQueued(9, "render");  // Not claimed ahead: holds up nothing on cpu.
  InsertQueued(10, "map", 0, /*map=*/true);
  const std::vector<std::pair<std::string, ResourceDemand>> tasks = {
      {"cpu1", Uses(1)}, {"cpu4", Uses(4)}, {"render", Uses(0, 1)}, {"map", Uses(0, 1)}};
  EXPECT_EQ(Claim(b_, 0, 0, tasks, {5, 0, 0, 5}), (Seqs{6}));
  EXPECT_EQ(Status(8), "0") << "a claim ahead does not overtake a job left queued on the same resource";
  EXPECT_EQ(Status(9), "0");
  // The gpu's head (9) is left behind: the map after it on the gpu is not taken; and
  // a map is never claimed ahead in any case.
  EXPECT_EQ(Claim(b_, 0, 0, {{"map", Uses(0, 1)}}, {5}), Seqs{});
  EXPECT_EQ(Status(10), "0");
}

TEST_F(ClusterTablesTest, AnExclusiveResourceStartsInSubmissionOrderWhicheverNodeFreesFirst) {
  for (std::uint64_t seq = 1; seq <= 4; ++seq) InsertQueued(seq, "render");
  const std::vector<std::pair<std::string, ResourceDemand>> tasks = {{"render", Uses(0, 1)}};
  EXPECT_EQ(Claim(b_, 4, 1, tasks), (Seqs{1}));
  EXPECT_EQ(Claim(a_, 4, 1, tasks), (Seqs{2}));
  EXPECT_EQ(Claim(a_, 4, 0, tasks), Seqs{});  // Busy: takes nothing.
  EXPECT_EQ(Claim(b_, 4, 1, tasks), (Seqs{3}));
  EXPECT_EQ(Claim(a_, 4, 1, tasks), (Seqs{4}));
}

TEST_F(ClusterTablesTest, ATaskANodeCannotRunIsInvisibleToIt) {
  InsertQueued(1, "render");
  InsertQueued(2, "huge");  // Needs 8 cpus: more than this node has.
  InsertQueued(3, "cpu1");
  EXPECT_EQ(Claim(a_, 4, 1, {{"cpu1", Uses(1)}, {"huge", Uses(8)}}), (Seqs{3}));
  EXPECT_EQ(Status(1), "0");
  EXPECT_EQ(Status(2), "0");
}

TEST_F(ClusterTablesTest, NodesClaimingAtOnceNeverTakeTheSameJob) {
  constexpr int kJobs = 200;
  for (int seq = 1; seq <= kJobs; ++seq) InsertQueued(static_cast<std::uint64_t>(seq), "cpu1");
  std::vector<std::vector<std::uint64_t>> got(4);
  std::vector<std::thread> nodes;
  for (int n = 0; n < 4; ++n) {
    nodes.emplace_back([&, n] {
      auto conn = PgConnection::Connect(conninfo_);
      ASSERT_TRUE(conn.has_value());
      const NodeIdentity me{"n" + std::to_string(n), 1};
      for (int round = 0; round < 100; ++round) {
        ClaimRequest req{me, {4, 1}, {0, 0}, {{"cpu1", Uses(1)}}};
        auto claimed = ClaimJobs(**conn, req);
        ASSERT_TRUE(claimed.has_value()) << claimed.error().detail;
        if (claimed->jobs.empty()) break;
        for (const JobRecord& r : claimed->jobs) got[n].push_back(r.seq);
      }
    });
  }
  for (auto& t : nodes) t.join();
  std::set<std::uint64_t> all;
  std::size_t total = 0;
  for (const auto& g : got) {
    total += g.size();
    all.insert(g.begin(), g.end());
  }
  EXPECT_EQ(total, std::size_t{kJobs});
  EXPECT_EQ(all.size(), std::size_t{kJobs}) << "a job was claimed twice";
  EXPECT_EQ(Sql(conninfo_, "SELECT count(*) FROM offload_jobs WHERE status = 1"), std::to_string(kJobs));
}

TEST_F(ClusterTablesTest, ANewNodeStartsAtEpochOneAndEachRegistrationMovesItOn) {
  auto first = RegisterNode(*conn_, "a", R"({"role":"all"})", milliseconds(15'000));
  ASSERT_TRUE(first.has_value()) << first.error().detail;
  EXPECT_EQ(*first, (NodeIdentity{"a", 1}));
  auto again = RegisterNode(*conn_, "a", "{}", milliseconds(15'000));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->epoch, 2);
  // The old epoch is fenced: its renewals are refused, the new one's taken.
  auto old = RenewLease(*conn_, *first, milliseconds(15'000));
  ASSERT_TRUE(old.has_value());
  EXPECT_FALSE(*old);
  auto current = RenewLease(*conn_, *again, milliseconds(15'000));
  ASSERT_TRUE(current.has_value());
  EXPECT_TRUE(*current);
}

TEST_F(ClusterTablesTest, ARenewalExtendsTheLeaseByTheDatabasesClock) {
  auto node = RegisterNode(*conn_, "a", "{}", milliseconds(1'000));
  ASSERT_TRUE(node.has_value());
  const std::string before = Sql(conninfo_, "SELECT lease_until FROM offload_nodes WHERE id = 'a'");
  ASSERT_TRUE(RenewLease(*conn_, *node, milliseconds(60'000)).value());
  EXPECT_EQ(Sql(conninfo_,
                "SELECT lease_until > clock_timestamp() + interval '50 seconds' FROM offload_nodes WHERE id = 'a'"),
            "t");
  EXPECT_NE(Sql(conninfo_, "SELECT lease_until FROM offload_nodes WHERE id = 'a'"), before);
}

TEST_F(ClusterTablesTest, ARescueMovesTheRunningJobsOfAnExpiredNodeOnlyAndFencesIt) {
  auto dead = RegisterNode(*conn_, "dead", "{}", milliseconds(1));
  auto live = RegisterNode(*conn_, "live", "{}", milliseconds(60'000));
  ASSERT_TRUE(dead.has_value() && live.has_value());
  InsertRunning(1, "dead", dead->epoch, /*attempts=*/1);  // Retried.
  InsertRunning(2, "dead", dead->epoch, /*attempts=*/2);  // Out of retries: failed.
  InsertRunning(3, "live", live->epoch);                  // A live node's: untouched.
  InsertRunning(4, "gone", 7);                            // A node with no row at all: an orphan.
  // One the dead node finished before it stopped: never run again by a rescue.
  InsertRunning(5, "dead", dead->epoch);
  Sql(conninfo_, "UPDATE offload_jobs SET status = 2, finished_at = 2000 WHERE seq = 5");
  std::this_thread::sleep_for(milliseconds(20));  // Past the 1 ms lease (the database's clock).

  auto report = RescueExpiredNodes(*conn_, milliseconds(0), 5000, RetryOnce);
  ASSERT_TRUE(report.has_value()) << report.error().detail;
  EXPECT_EQ(report->nodes, 1u);
  EXPECT_EQ(report->jobs, 3u);
  EXPECT_EQ(Status(1), "0");
  EXPECT_EQ(
      Sql(conninfo_, "SELECT error_history FROM offload_jobs WHERE seq = 1").find("interrupted") != std::string::npos,
      true);
  EXPECT_EQ(Status(2), "3");
  EXPECT_EQ(Sql(conninfo_, "SELECT error_type FROM offload_jobs WHERE seq = 2"), "interrupted");
  EXPECT_EQ(Status(3), "1");
  EXPECT_EQ(Status(4), "0");
  EXPECT_EQ(Status(5), "2");
  EXPECT_EQ(Sql(conninfo_, "SELECT finished_at FROM offload_jobs WHERE seq = 5"), "2000");

  // The dead node is fenced: its renewal fails, and when it joins again it is at an
  // epoch after the rescued one.
  EXPECT_FALSE(RenewLease(*conn_, *dead, milliseconds(15'000)).value());
  auto back = RegisterNode(*conn_, "dead", "{}", milliseconds(15'000));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->epoch, dead->epoch + 2);
  // A second rescue finds nothing more to do.
  auto again = RescueExpiredNodes(*conn_, milliseconds(0), 6000, RetryOnce);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->nodes, 0u);
  EXPECT_EQ(Status(1), "0");
}

TEST_F(ClusterTablesTest, ANodeThatJoinedAgainLeavesItsOldEpochsJobsToARescue) {
  auto first = RegisterNode(*conn_, "a", "{}", milliseconds(60'000));
  ASSERT_TRUE(first.has_value());
  InsertRunning(1, "a", first->epoch);
  // It lost its lease by a timeout and joined again before anyone rescued it.
  auto again = RegisterNode(*conn_, "a", "{}", milliseconds(60'000));
  ASSERT_TRUE(again.has_value());
  InsertRunning(2, "a", again->epoch);
  auto report = RescueExpiredNodes(*conn_, milliseconds(60'000), 5000, RetryOnce);
  ASSERT_TRUE(report.has_value()) << report.error().detail;
  EXPECT_EQ(report->nodes, 0u);
  EXPECT_EQ(report->jobs, 1u);
  EXPECT_EQ(Status(1), "0") << "the old epoch's job must not stay running for good";
  EXPECT_EQ(Status(2), "1");
}

TEST_F(ClusterTablesTest, ARescuedJobIsAnyNodesToClaim) {
  auto dead = RegisterNode(*conn_, "dead", "{}", milliseconds(1));
  ASSERT_TRUE(dead.has_value());
  InsertRunning(1, "dead", dead->epoch);
  std::this_thread::sleep_for(milliseconds(20));
  ASSERT_TRUE(RescueExpiredNodes(*conn_, milliseconds(0), 5000, RetryOnce).has_value());
  ASSERT_EQ(Status(1), "0");
  ResourceDemand none;
  ClaimRequest req{{"b", 1}, {4}, {0}, {{"sleep", none}}};
  auto claimed = ClaimJobs(*conn_, req);
  ASSERT_TRUE(claimed.has_value()) << claimed.error().detail;
  ASSERT_EQ(claimed->jobs.size(), 1u);
  EXPECT_EQ(Sql(conninfo_, "SELECT node_id || '@' || node_epoch FROM offload_jobs WHERE seq = 1"), "b@1");
}

TEST_F(ClusterTablesTest, ANodeIsRescuedOnlyPastItsGrace) {
  auto node = RegisterNode(*conn_, "slow", "{}", milliseconds(1));
  ASSERT_TRUE(node.has_value());
  InsertRunning(1, "slow", node->epoch);
  auto early = RescueExpiredNodes(*conn_, milliseconds(60'000), 5000, RetryOnce);
  ASSERT_TRUE(early.has_value());
  EXPECT_EQ(early->nodes, 0u);
  EXPECT_EQ(Status(1), "1");
  EXPECT_TRUE(RenewLease(*conn_, *node, milliseconds(15'000)).value()) << "within its grace a node may come back";
}

TEST_F(ClusterTablesTest, OneRescuerAtATime) {
  auto node = RegisterNode(*conn_, "dead", "{}", milliseconds(1));
  ASSERT_TRUE(node.has_value());
  InsertRunning(1, "dead", node->epoch);
  std::this_thread::sleep_for(milliseconds(20));
  // Another node is rescuing: it holds the rescue's lock in an open transaction.
  auto other = PgConnection::Connect(conninfo_);
  ASSERT_TRUE(other.has_value());
  ASSERT_TRUE((*other)->ExecScript("BEGIN").has_value());
  ASSERT_TRUE((*other)
                  ->Exec("SELECT pg_advisory_xact_lock(hashtextextended('offload rescue ' || current_schema(), 0))")
                  .has_value());
  auto skipped = RescueExpiredNodes(*conn_, milliseconds(0), 5000, RetryOnce);
  ASSERT_TRUE(skipped.has_value()) << skipped.error().detail;
  EXPECT_EQ(skipped->nodes, 0u);
  EXPECT_EQ(Status(1), "1");
  ASSERT_TRUE((*other)->ExecScript("COMMIT").has_value());
  auto done = RescueExpiredNodes(*conn_, milliseconds(0), 5000, RetryOnce);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->nodes, 1u);
  EXPECT_EQ(Status(1), "0");
}

// Maps across nodes (map_chunks.h): offered chunks take their place among the queued
// jobs, a runner's outcome reaches the owner once, and a rescue offers again what a
// dead runner held and removes what no running map owns.
class MapChunksTest : public ClusterTablesTest {
 protected:
  // Offers chunk `number` of map job-1 (running on `owner`) with elements `input`.
  void Offer(std::int64_t number, const std::string& input, std::vector<std::size_t> indices) {
    const OfferedMap map{"job-1", "cpu1", 0, 250, true, owner_};
    ASSERT_TRUE(OfferChunks(*conn_, map, {ChunkOffer{number, std::move(indices), {2, 1}, input}}).has_value());
  }
  ErrorOr<ClaimedWork> ClaimAs(const NodeIdentity& node, std::int64_t cpu_free) {
    ClaimRequest req{node, {4, 1}, {4 - cpu_free, 0}, {{"cpu1", Uses(1)}}};
    return ClaimJobs(*conn_, req);
  }
  const NodeIdentity owner_{"owner", 2};
};

TEST_F(MapChunksTest, AnOfferedChunkIsClaimedInQueueOrderByAnotherNode) {
  InsertRunning(1, owner_.id, owner_.epoch);  // The map.
  InsertQueued(2, "cpu1");
  Sql(conninfo_, "SELECT setval('offload_job_seq', 100)");
  Offer(7, R"(["p", "q"])", {4, 9});  // Seq 101: after job 2, before job 200.
  InsertQueued(200, "cpu1");

  // Its owner does not claim its own offers.
  auto own = ClaimAs(owner_, 1);
  ASSERT_TRUE(own.has_value()) << own.error().detail;
  EXPECT_TRUE(own->chunks.empty());
  EXPECT_EQ(own->jobs.size(), 1u);  // Job 2.

  auto claimed = ClaimAs(b_, 2);
  ASSERT_TRUE(claimed.has_value()) << claimed.error().detail;
  ASSERT_EQ(claimed->chunks.size(), 1u);
  ASSERT_EQ(claimed->jobs.size(), 1u);
  EXPECT_EQ(claimed->jobs[0].seq, 200u) << "one slot for the chunk, the next for the job after it";
  const ClaimedChunk& chunk = claimed->chunks[0];
  EXPECT_EQ(chunk.seq, 101u);
  EXPECT_EQ(chunk.job_id, "job-1");
  EXPECT_EQ(chunk.indices, (std::vector<std::size_t>{4, 9}));
  EXPECT_EQ(chunk.attempts, (std::vector<int>{2, 1}));
  EXPECT_EQ(*chunk.input, boost::json::parse(R"(["p", "q"])"));
  EXPECT_EQ(chunk.timeout_ms, 250);
  EXPECT_TRUE(chunk.collect);
  // Claimed once.
  auto again = ClaimAs(a_, 4);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->chunks.empty());

  // Only the runner's claim writes its outcome, once; the owner takes it once.
  auto stranger = FinishChunk(*conn_, chunk.seq, a_, "{}");
  ASSERT_TRUE(stranger.has_value());
  EXPECT_EQ(*stranger, "");
  auto written = FinishChunk(*conn_, chunk.seq, b_, R"({"values": []})");
  ASSERT_TRUE(written.has_value());
  EXPECT_EQ(*written, "job-1");
  auto read = ReadChunks(*conn_, "job-1", owner_);
  ASSERT_TRUE(read.has_value()) << read.error().detail;
  ASSERT_EQ(read->done.size(), 1u);
  EXPECT_EQ(read->done[0].chunk, 7);
  EXPECT_EQ(read->done[0].outcome, R"({"values": []})");
  EXPECT_EQ(read->present, (std::vector<std::int64_t>{7}));
  EXPECT_EQ(read->unclaimed, 0u);
  // A stranger's claim of the map removes nothing; the owner's removes it once.
  auto stranger_removes = RemoveChunks(*conn_, "job-1", a_, {7});
  ASSERT_TRUE(stranger_removes.has_value());
  EXPECT_EQ(*stranger_removes, 0u);
  auto removed = RemoveChunks(*conn_, "job-1", owner_, {7});
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(*removed, 1u);
  auto after = ReadChunks(*conn_, "job-1", owner_);
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(after->present.empty());
}

// The chunks of a capped tenant's map are the tenant's: capped by what its jobs and
// chunks hold across the cluster, and claimed with its name for the runner's shares.
TEST_F(MapChunksTest, AChunkOfACappedTenantsMapIsCappedAndCountedAsTheTenants) {
  InsertRunning(1, owner_.id, owner_.epoch);  // The map, of a task the claims do not name.
  Sql(conninfo_, "UPDATE offload_jobs SET tenant = 'alice' WHERE seq = 1");
  Sql(conninfo_, "SELECT setval('offload_job_seq', 100)");
  const OfferedMap map{"job-1", "cpu1", 0, 0, false, owner_, "alice"};
  ASSERT_TRUE(OfferChunks(*conn_, map, {ChunkOffer{7, {0}, {}, "[1]"}, ChunkOffer{8, {1}, {}, "[2]"}}).has_value());
  InsertQueued(200, "cpu1");  // Bob's, after both chunks.
  auto claim = [&](const NodeIdentity& node) {
    ClaimRequest req{node, {4, 1}, {0, 0}, {{"cpu1", Uses(1)}}};
    req.tenant_caps["alice"] = {{0, 1}};  // One cpu of the cluster.
    return ClaimJobs(*conn_, req);
  };
  auto first = claim(b_);
  ASSERT_TRUE(first.has_value()) << first.error().detail;
  ASSERT_EQ(first->chunks.size(), 1u) << "alice's cap lets one chunk run";
  EXPECT_EQ(first->chunks[0].seq, 101u);
  EXPECT_EQ(first->chunks[0].tenant, "alice");
  ASSERT_EQ(first->jobs.size(), 1u) << "alice's chunk left offered holds back nobody else's job";
  EXPECT_EQ(first->jobs[0].seq, 200u);
  // Her running chunk counts, on whichever node claims next.
  auto second = claim(a_);
  ASSERT_TRUE(second.has_value()) << second.error().detail;
  EXPECT_TRUE(second->chunks.empty()) << "alice's one cpu is held by her chunk on b";
  ASSERT_TRUE(FinishChunk(*conn_, 101, b_, R"({"values": [1]})").has_value());
  auto third = claim(a_);
  ASSERT_TRUE(third.has_value()) << third.error().detail;
  ASSERT_EQ(third->chunks.size(), 1u) << "her cpu is free once the chunk is done";
  EXPECT_EQ(third->chunks[0].seq, 102u);
}

// An owner that no longer holds the map offers nothing.
TEST_F(MapChunksTest, AnOwnerThatLostTheMapCannotOfferItsChunks) {
  InsertRunning(1, "someone-else", 1);
  const OfferedMap map{"job-1", "cpu1", 0, 0, false, owner_};
  offload::Status offered = OfferChunks(*conn_, map, {ChunkOffer{1, {0}, {}, "[1]"}, ChunkOffer{2, {1}, {}, "[2]"}});
  ASSERT_FALSE(offered.has_value());
  EXPECT_EQ(offered.error().code, ErrorCode::kConflict);
  EXPECT_EQ(Sql(conninfo_, "SELECT count(*) FROM offload_map_chunks"), "0");
}

TEST_F(MapChunksTest, ARescueOffersADeadRunnersChunkAgainAndRemovesThoseOfEndedMaps) {
  auto owner = RegisterNode(*conn_, owner_.id, "{}", milliseconds(60'000));
  ASSERT_TRUE(owner.has_value());
  InsertRunning(1, owner->id, owner->epoch);
  const NodeIdentity live_owner = *owner;
  const OfferedMap map{"job-1", "cpu1", 0, 0, false, live_owner};
  ASSERT_TRUE(OfferChunks(*conn_, map, {ChunkOffer{1, {0}, {}, "[1]"}, ChunkOffer{2, {1}, {}, "[2]"}}).has_value());
  auto runner = RegisterNode(*conn_, "runner", "{}", milliseconds(1));
  ASSERT_TRUE(runner.has_value());
  auto claimed = ClaimAs(*runner, 1);
  ASSERT_TRUE(claimed.has_value()) << claimed.error().detail;
  ASSERT_EQ(claimed->chunks.size(), 1u);
  std::this_thread::sleep_for(milliseconds(20));

  auto report = RescueExpiredNodes(*conn_, milliseconds(0), 5000, RetryOnce);
  ASSERT_TRUE(report.has_value()) << report.error().detail;
  EXPECT_EQ(report->chunks.offered_again, 1u);
  EXPECT_EQ(report->chunks.removed, 0u);
  EXPECT_EQ(Sql(conninfo_, "SELECT count(*) FROM offload_map_chunks WHERE status = 0"), "2");
  auto withdrawn = WithdrawChunks(*conn_, "job-1", live_owner);
  ASSERT_TRUE(withdrawn.has_value());
  EXPECT_EQ(withdrawn->size(), 2u);

  // A map that no longer runs under the claim that offered it leaves nothing behind.
  ASSERT_TRUE(OfferChunks(*conn_, map, {ChunkOffer{3, {0}, {}, "[1]"}}).has_value());
  Sql(conninfo_, "UPDATE offload_jobs SET status = 2 WHERE seq = 1");
  auto after = RescueExpiredNodes(*conn_, milliseconds(0), 6000, RetryOnce);
  ASSERT_TRUE(after.has_value()) << after.error().detail;
  EXPECT_EQ(after->chunks.removed, 1u);
  EXPECT_EQ(Sql(conninfo_, "SELECT count(*) FROM offload_map_chunks"), "0");
}

}  // namespace
}  // namespace offload::testing
