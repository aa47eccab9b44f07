// The cluster's tables: registration and epochs, renewals, and the rescue of nodes
// past their lease, which moves their running jobs and nothing else.
#include "cluster/cluster_tables.h"

#include <gtest/gtest.h>

#include <chrono>
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

class ClusterTablesTest : public ClusterSchemaTest {};

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
  InsertRunning(4, "dead", dead->epoch - 1 + 100);        // Another epoch's: untouched.
  // One the dead node finished before it stopped: never run again by a rescue.
  InsertRunning(5, "dead", dead->epoch);
  Sql(conninfo_, "UPDATE offload_jobs SET status = 2, finished_at = 2000 WHERE seq = 5");
  std::this_thread::sleep_for(milliseconds(20));  // Past the 1 ms lease (the database's clock).

  auto report = RescueExpiredNodes(*conn_, milliseconds(0), 5000, RetryOnce);
  ASSERT_TRUE(report.has_value()) << report.error().detail;
  EXPECT_EQ(report->nodes, 1u);
  EXPECT_EQ(report->jobs, 2u);
  EXPECT_EQ(Status(1), "0");
  EXPECT_EQ(
      Sql(conninfo_, "SELECT error_history FROM offload_jobs WHERE seq = 1").find("interrupted") != std::string::npos,
      true);
  EXPECT_EQ(Status(2), "3");
  EXPECT_EQ(Sql(conninfo_, "SELECT error_type FROM offload_jobs WHERE seq = 2"), "interrupted");
  EXPECT_EQ(Status(3), "1");
  EXPECT_EQ(Status(4), "1");
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

}  // namespace
}  // namespace offload::testing
