// ClusterNode: the calls a node makes on the shared tables (cancels wherever the job
// is, an Idempotency-Key's holder, which jobs are finished or no longer held) and the
// notifications nodes send each other.
#include "cluster/cluster_node.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/node_lease.h"
#include "cluster_test_util.h"
#include "util/clock.h"

namespace offload::testing {
namespace {

using std::chrono::milliseconds;

// What a node's listener heard.
struct Heard {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> done;
  std::vector<std::string> canceled;

  // Waits up to 5 s for `id` in `list`.
  bool WaitFor(std::vector<std::string>& list, const std::string& id) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5),
                       [&] { return std::find(list.begin(), list.end(), id) != list.end(); });
  }
};

class ClusterNodeTest : public ClusterSchemaTest {
 protected:
  std::unique_ptr<ClusterNode> Start(Heard* heard = nullptr) {
    ClusterNodeOptions o;
    o.conninfo = conninfo_;
    o.node_id = NewNodeId();
    o.decide = [](JobRecord*, UnixMillis) {};
    if (heard) {
      o.on_done = [heard](const std::vector<std::string>& ids) {
        std::lock_guard lock(heard->mu);
        heard->done.insert(heard->done.end(), ids.begin(), ids.end());
        heard->cv.notify_all();
      };
      o.on_canceled = [heard](const std::vector<std::string>& ids) {
        std::lock_guard lock(heard->mu);
        heard->canceled.insert(heard->canceled.end(), ids.begin(), ids.end());
        heard->cv.notify_all();
      };
    }
    auto node = ClusterNode::Start(std::move(o), SystemClock());
    EXPECT_TRUE(node.has_value()) << node.error().detail;
    if (!node) return nullptr;
    // What is sent before a node listens is not heard (its poll finds it instead).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!(*node)->listening() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(5));
    }
    EXPECT_TRUE((*node)->listening());
    return std::move(*node);
  }

  void InsertQueued(std::uint64_t seq, const std::string& key = "", UnixMillis created_at = 1000) {
    JobRecord r;
    r.id = "job-" + std::to_string(seq);
    r.task = "sleep";
    r.seq = seq;
    r.input = std::make_shared<const boost::json::value>(boost::json::object{{"ms", 1}});
    r.created_at = created_at;
    r.idempotency_key = key;
    r.request_hash = key.empty() ? 0 : 77;
    ASSERT_TRUE(store_->Insert(r).has_value());
  }

  static void ToCanceled(JobRecord* job) {
    job->status = JobStatus::kCanceled;
    job->finished_at = 5000;
    job->error = JobError{"canceled", "canceled by a test"};
  }
};

TEST_F(ClusterNodeTest, ACancelReachesAQueuedJobAndTheNodeRunningOne) {
  Heard heard;
  auto canceler = Start();
  auto runner = Start(&heard);
  ASSERT_TRUE(canceler && runner);
  InsertQueued(1);
  auto queued = canceler->Cancel("job-1", ToCanceled);
  ASSERT_TRUE(queued.has_value()) << queued.error().detail;
  EXPECT_TRUE(queued->canceled);
  EXPECT_EQ(Status(1), "4");
  EXPECT_TRUE(heard.WaitFor(heard.done, "job-1")) << "waiters elsewhere hear that it is over";

  InsertRunning(2, runner->identity().id, runner->identity().epoch);
  auto running = canceler->Cancel("job-2", ToCanceled);
  ASSERT_TRUE(running.has_value()) << running.error().detail;
  EXPECT_TRUE(running->canceled);
  EXPECT_EQ(Status(2), "4");
  EXPECT_TRUE(heard.WaitFor(heard.canceled, "job-2")) << "the node running it must stop it";
  auto held = runner->NoLongerHeld({"job-2"}, runner->identity());
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(*held, std::vector<std::string>{"job-2"});

  // Over already, or unknown: nothing is written.
  auto again = canceler->Cancel("job-2", ToCanceled);
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->canceled);
  ASSERT_TRUE(again->job.has_value());
  EXPECT_EQ(again->job->status, JobStatus::kCanceled);
  auto unknown = canceler->Cancel("job-99", ToCanceled);
  ASSERT_TRUE(unknown.has_value());
  EXPECT_FALSE(unknown->job.has_value());
  InsertQueued(3);
  auto ended = canceler->Finished({"job-1", "job-2", "job-3", "job-99"});
  ASSERT_TRUE(ended.has_value()) << ended.error().detail;
  ASSERT_EQ(ended->finished.size(), 2u);
  EXPECT_EQ(ended->finished[0].status, JobStatus::kCanceled);
  EXPECT_EQ(ended->unknown, std::vector<std::string>{"job-99"});
}

TEST_F(ClusterNodeTest, AKeyIsHeldPerTenant) {
  auto node = Start();
  ASSERT_TRUE(node);
  for (auto [seq, tenant] : {std::pair<int, const char*>{1, "alice"}, {2, "bob"}, {3, ""}}) {
    JobRecord r;
    r.id = "job-" + std::to_string(seq);
    r.task = "sleep";
    r.seq = seq;
    r.input = std::make_shared<const boost::json::value>(nullptr);
    r.created_at = 1000 * seq;
    r.idempotency_key = "k";
    r.tenant = tenant;
    ASSERT_TRUE(store_->Insert(r).has_value());
  }
  for (auto [tenant, id] : {std::pair<const char*, const char*>{"alice", "job-1"}, {"bob", "job-2"}, {"", "job-3"}}) {
    auto held = node->KeyHolder("sleep", tenant, "k", 0);
    ASSERT_TRUE(held.has_value() && held->has_value()) << tenant;
    EXPECT_EQ((*held)->id, id);
    EXPECT_EQ((*held)->tenant, tenant);
  }
  auto carol = node->KeyHolder("sleep", "carol", "k", 0);
  ASSERT_TRUE(carol.has_value());
  EXPECT_FALSE(carol->has_value());
  // Alice's key, past its ttl, is freed; bob's and the no-tenant job's, as old, are not touched.
  auto freed = node->KeyHolder("sleep", "alice", "k", 5000);
  ASSERT_TRUE(freed.has_value());
  EXPECT_FALSE(freed->has_value());
  EXPECT_EQ(Sql(conninfo_, "SELECT string_agg(coalesce(idem_key, '-'), ',' ORDER BY seq) FROM offload_jobs"), "-,k,k");
}

TEST_F(ClusterNodeTest, AnIdempotencyKeyPastItsTtlIsTakenFromItsJob) {
  auto node = Start();
  ASSERT_TRUE(node);
  InsertQueued(1, "k", /*created_at=*/1000);
  auto live = node->KeyHolder("sleep", "", "k", /*expired_before=*/500);
  ASSERT_TRUE(live.has_value()) << live.error().detail;
  ASSERT_TRUE(live->has_value());
  EXPECT_EQ((*live)->id, "job-1");
  EXPECT_EQ((*live)->request_hash, 77u);
  auto expired = node->KeyHolder("sleep", "", "k", /*expired_before=*/2000);
  ASSERT_TRUE(expired.has_value());
  EXPECT_FALSE(expired->has_value());
  EXPECT_EQ(Sql(conninfo_, "SELECT coalesce(idem_key, 'none') FROM offload_jobs WHERE seq = 1"), "none");
  InsertQueued(2, "k", 3000);  // The key is free for a new job.
  auto queued = node->QueuedByTask();
  ASSERT_TRUE(queued.has_value());
  EXPECT_EQ(*queued, (std::vector<std::pair<std::string, std::int64_t>>{{"sleep", 2}}));
}

TEST_F(ClusterNodeTest, FinishedJobsAreAnnouncedToTheOtherNodesInBatches) {
  Heard heard;
  auto sender = Start();
  auto listener = Start(&heard);
  ASSERT_TRUE(sender && listener);
  for (int i = 0; i < 500; ++i) sender->AnnounceDone("id-" + std::to_string(i));
  EXPECT_TRUE(heard.WaitFor(heard.done, "id-0"));
  EXPECT_TRUE(heard.WaitFor(heard.done, "id-499"));
  std::lock_guard lock(heard.mu);
  EXPECT_EQ(heard.done.size(), 500u);
}

}  // namespace
}  // namespace offload::testing
