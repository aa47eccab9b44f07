// The lease supervisor: it renews on its own thread whatever the CPUs do, says so once
// when the lease is lost (fenced by a rescue, or PostgreSQL out of reach past the
// lease), joins again at a later epoch, rescues dead nodes, and leaves at a clean stop.
#include "cluster/node_lease.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "cluster/cluster_test_util.h"
#include "offload/error_types.h"
#include "service/job_lifecycle.h"

namespace offload::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// What the callbacks reported, waited on with a deadline.
class Events {
 public:
  void Lost(const NodeIdentity& n) {
    std::lock_guard lock(mu_);
    lost_.push_back(n);
    cv_.notify_all();
  }
  void Regained(const NodeIdentity& n) {
    std::lock_guard lock(mu_);
    regained_.push_back(n);
    cv_.notify_all();
  }
  // Waits until `pred(lost, regained)` holds or `deadline` passes; returns whether it held.
  template <typename Pred>
  bool WaitFor(milliseconds deadline, Pred pred) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, deadline, [&] { return pred(lost_, regained_); });
  }
  std::size_t lost() {
    std::lock_guard lock(mu_);
    return lost_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<NodeIdentity> lost_;
  std::vector<NodeIdentity> regained_;
};

class NodeLeaseTest : public ClusterSchemaTest {
 protected:
  NodeLeaseOptions Options(const std::string& conninfo, Millis ttl) {
    NodeLeaseOptions o;
    o.conninfo = conninfo;
    o.node_id = NewNodeId();
    o.ttl = ttl;
    o.grace = milliseconds(0);
    o.decide = [](JobRecord* job, UnixMillis now) {
      EnterStatus(job, JobStatus::kQueued, now, JobError{error_type::kInterrupted, "lease lost"});
    };
    o.on_lost = [this](const NodeIdentity& n) { events_.Lost(n); };
    o.on_regained = [this](const NodeIdentity& n) { events_.Regained(n); };
    return o;
  }
  std::string LeaseUntil(const std::string& id) {
    return Sql(conninfo_, "SELECT lease_until FROM offload_nodes WHERE id = '" + id + "'");
  }
  Events events_;
};

TEST_F(NodeLeaseTest, BusyCpusDoNotCostTheLease) {
  auto lease = NodeLease::Start(Options(conninfo_, milliseconds(1'500)), SystemClock());
  ASSERT_TRUE(lease.has_value()) << lease.error().detail;
  const NodeIdentity me = (*lease)->identity();
  EXPECT_EQ(me.epoch, 1);
  const std::string first = LeaseUntil(me.id);
  // Twice as many threads as cores spinning for four ttls, as CPU-bound jobs would.
  std::atomic<bool> stop{false};
  std::vector<std::thread> spinners;
  for (unsigned i = 0; i < 2 * std::max(1u, std::thread::hardware_concurrency()); ++i) {
    spinners.emplace_back([&] {
      volatile std::uint64_t x = 0;
      while (!stop.load(std::memory_order_relaxed)) x = x + 1;
    });
  }
  EXPECT_FALSE(events_.WaitFor(milliseconds(6'000), [](auto& lost, auto&) { return !lost.empty(); }))
      << "the lease was lost while the CPUs were busy";
  stop = true;
  for (auto& t : spinners) t.join();
  EXPECT_TRUE((*lease)->held());
  EXPECT_NE(LeaseUntil(me.id), first) << "the lease was not renewed";
}

TEST_F(NodeLeaseTest, AFencedNodeSaysSoOnceAndJoinsAgainAtALaterEpoch) {
  auto lease = NodeLease::Start(Options(conninfo_, milliseconds(600)), SystemClock());
  ASSERT_TRUE(lease.has_value()) << lease.error().detail;
  const NodeIdentity me = (*lease)->identity();
  // What a rescue by another node does to it.
  Sql(conninfo_,
      "UPDATE offload_nodes SET epoch = epoch + 1, expired_at = clock_timestamp() WHERE id = '" + me.id + "'");
  ASSERT_TRUE(events_.WaitFor(milliseconds(5'000), [](auto&, auto& regained) { return !regained.empty(); }));
  EXPECT_EQ(events_.lost(), 1u);
  const NodeIdentity now = (*lease)->identity();
  EXPECT_EQ(now.id, me.id);
  EXPECT_EQ(now.epoch, me.epoch + 2);
  EXPECT_TRUE((*lease)->held());
}

TEST_F(NodeLeaseTest, ALeaseHolderRescuesDeadNodesAndLeavesCleanly) {
  auto dead = RegisterNode(*conn_, "dead", "{}", milliseconds(1));
  ASSERT_TRUE(dead.has_value());
  InsertRunning(1, "dead", dead->epoch);
  std::string id;
  {
    auto lease = NodeLease::Start(Options(conninfo_, milliseconds(300)), SystemClock());
    ASSERT_TRUE(lease.has_value()) << lease.error().detail;
    id = (*lease)->identity().id;
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (Status(1) != "0" && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
    EXPECT_EQ(Status(1), "0") << "the dead node's job was not rescued";
  }
  EXPECT_EQ(Sql(conninfo_, "SELECT count(*) FROM offload_nodes WHERE id = '" + id + "' AND expired_at IS NOT NULL"),
            "1")
      << "a clean stop marks the node expired, so that its next start is a new epoch";
}

TEST_F(NodeLeaseTest, ANodeThatCannotRenewGivesUpItsLeaseAndJoinsAgainWhenItCan) {
  PrivatePostgres pg;
  ASSERT_TRUE(pg.Run("start"));
  {
    auto store = PostgresStore::Open(PostgresOptions{pg.conninfo(), 2});  // Creates the tables.
    ASSERT_TRUE(store.has_value()) << store.error().detail;
  }
  auto lease = NodeLease::Start(Options(pg.conninfo(), milliseconds(900)), SystemClock());
  ASSERT_TRUE(lease.has_value()) << lease.error().detail;
  ASSERT_TRUE(pg.Run("halt"));
  // No renewal for two thirds of the ttl: the node cannot know that it was not
  // rescued, so it gives its jobs up.
  ASSERT_TRUE(events_.WaitFor(milliseconds(5'000), [](auto& lost, auto&) { return !lost.empty(); }));
  EXPECT_FALSE((*lease)->held());
  ASSERT_TRUE(pg.Run("resume"));
  EXPECT_TRUE(events_.WaitFor(milliseconds(10'000), [](auto&, auto& regained) { return !regained.empty(); }));
}

}  // namespace
}  // namespace offload::testing
