// Several real `offload serve` processes on one PostgreSQL schema: a cluster. A job
// submitted to one node is waited on and canceled from the others; a node killed or
// paused past its lease has its jobs finished elsewhere (or failed `interrupted`),
// and its late completions are refused; an exclusive resource keeps submission order
// across nodes; a lost listener connection only slows things down; a map's chunks run
// on every node and come back in order, through a killed runner, vanished rows and a
// cancel from a node that does not hold the map.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/event_reader.h"
#include "support/http_client.h"
#include "support/job_helpers.h"
#include "support/postgres_schema.h"
#include "support/test_server.h"
#include "support/tokens.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Short leases, so that the tests of dead and paused nodes take seconds.
constexpr const char* kCluster = R"(
lease_ttl = "1500ms"
lease_grace = "500ms"
shutdown_grace = "1s"
)";

class ClusterTest : public PostgresSchemaTest {
 protected:
  // Starts a node with the config lines `more` (after the store and the short leases).
  TestServer& StartNode(const std::string& more) {
    nodes_.push_back(std::make_unique<TestServer>());
    TestServer& node = *nodes_.back();
    const std::string why = node.Start(PostgresConfig(conninfo_, std::string(kCluster) + more));
    EXPECT_EQ(why, "");
    return node;
  }

  std::vector<std::unique_ptr<TestServer>> nodes_;
};

// One cpu per node, and a sleep that holds it.
constexpr const char* kOneCpu = R"(
[resources]
cpu = 1
[tasks.hold]
run = "builtin:sleep"
uses = {cpu = 1}
)";

TEST_F(ClusterTest, SubmittedOnAWaitedOnBCanceledOnC) {
  TestServer& a = StartNode(std::string("role = \"api\"\n") + kOneCpu);
  TestServer& b = StartNode(kOneCpu);
  TestServer& c = StartNode(kOneCpu);
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port()), on_b(b.port()), on_c(c.port());

  // An api node runs nothing: the job runs on B or C, and B's long-poll hears of it.
  const std::string quick = Field(SubmitJob(on_a, "hold", json::object{{"ms", 50}}), "id");
  json::object done = WaitFinished(on_b, quick, seconds(20));
  EXPECT_EQ(Field(done, "status"), "succeeded") << json::serialize(done);

  // The result in the same call, from the node that does not run it.
  Response run = on_a.Post("/v1/tasks/hold/run", R"({"ms": 20})", {}, seconds(20));
  EXPECT_EQ(run.status, 200) << Describe(run);

  // A long job, canceled from C while it runs on B or C: its cpu is free again within
  // a second or so (the node that ran it heard of the cancel and stopped it).
  const std::string long_job = Field(SubmitJob(on_a, "hold", json::object{{"ms", 60'000}}), "id");
  json::object running = WaitForStatus(on_b, long_job, "running", seconds(10));
  ASSERT_EQ(Field(running, "status"), "running");
  Response canceled = on_c.Delete("/v1/jobs/" + long_job);
  ASSERT_EQ(canceled.status, 200) << Describe(canceled);
  EXPECT_EQ(Field(canceled.json().as_object(), "status"), "canceled");
  EXPECT_EQ(Field(GetJob(on_a, long_job), "status"), "canceled");
  WaitForInUse(on_b, "cpu", 0, milliseconds(2000));
  WaitForInUse(on_c, "cpu", 0, milliseconds(2000));
  // A second cancel says it is over, from any node.
  EXPECT_EQ(on_b.Delete("/v1/jobs/" + long_job).status, 409);
  EXPECT_EQ(on_a.Delete("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA").status, 404);
  Response unknown = on_a.Get("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA?wait=1");
  EXPECT_EQ(unknown.status, 404) << Describe(unknown);
}

// A cancel made on the node that runs the job is answered once the canceled state is
// stored: from then on every node reads it, and a second cancel anywhere says it is over.
TEST_F(ClusterTest, ACancelIsAnsweredOnceEveryNodeReadsIt) {
  TestServer& a = StartNode(std::string("role = \"api\"\n") + kOneCpu);
  TestServer& b = StartNode(kOneCpu);
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port()), on_b(b.port());
  const std::string job = Field(SubmitJob(on_a, "hold", json::object{{"ms", 60'000}}), "id");
  ASSERT_EQ(Field(WaitForStatus(on_b, job, "running", seconds(10)), "status"), "running");

  // The test's own transaction holds the job's row, so B's write of the cancel waits.
  std::future<Response> canceled;
  SqlSession holder(conninfo_);
  const std::string holder_pid = holder.Run("SELECT pg_backend_pid()");
  holder.Run("BEGIN");
  holder.Run("SELECT id FROM offload_jobs WHERE id = '" + job + "' FOR UPDATE");
  canceled = std::async(std::launch::async, [&] { return HttpClient(b.port()).Delete("/v1/jobs/" + job); });
  const std::string blocked =
      "SELECT count(*) FROM pg_stat_activity WHERE " + holder_pid + " = ANY(pg_blocking_pids(pid))";
  const auto give_up = Clock::now() + seconds(10);
  while (Sql(conninfo_, blocked) == "0" && Clock::now() < give_up) std::this_thread::sleep_for(milliseconds(10));
  const bool write_waits = Sql(conninfo_, blocked) != "0";
  if (!write_waits) holder.Run("ROLLBACK");
  ASSERT_TRUE(write_waits);
  // B's cancel ran (its own view says so), and its write waits on the row: the cancel
  // is not stored, so not answered yet.
  EXPECT_EQ(Field(WaitForStatus(on_b, job, "canceled", seconds(10)), "status"), "canceled");
  EXPECT_EQ(canceled.wait_for(milliseconds(200)), std::future_status::timeout);
  EXPECT_EQ(Field(GetJob(on_a, job), "status"), "running");
  holder.Run("COMMIT");

  Response answer = canceled.get();
  ASSERT_EQ(answer.status, 200) << Describe(answer);
  EXPECT_EQ(Field(answer.json().as_object(), "status"), "canceled");
  EXPECT_EQ(Field(GetJob(on_a, job), "status"), "canceled");
  EXPECT_EQ(on_a.Delete("/v1/jobs/" + job).status, 409);
  WaitForInUse(on_b, "cpu", 0, milliseconds(2000));
}

TEST_F(ClusterTest, AnIdempotencyKeyAndMaxQueuedHoldAcrossNodes) {
  const std::string tasks = R"(
[resources]
cpu = 1
[tasks.capped]
run = "builtin:sleep"
max_queued = 3
)";
  TestServer& a = StartNode("role = \"api\"\n" + tasks);
  TestServer& b = StartNode("role = \"api\"\n" + tasks);
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port()), on_b(b.port());
  const Headers key{{"Idempotency-Key", "order-17"}};
  Response first = on_a.Post("/v1/jobs", R"({"task":"capped","input":{"ms":1}})", key);
  ASSERT_EQ(first.status, 202) << Describe(first);
  Response again = on_b.Post("/v1/jobs", R"({"task":"capped","input":{"ms":1}})", key);
  ASSERT_EQ(again.status, 200) << Describe(again);
  EXPECT_EQ(Field(again.json().as_object(), "id"), Field(first.json().as_object(), "id"));
  Response other = on_b.Post("/v1/jobs", R"({"task":"capped","input":{"ms":2}})", key);
  EXPECT_EQ(other.status, 422) << Describe(other);

  // No node runs `capped`: its queue fills up cluster-wide (3 jobs). B counts A's
  // jobs once its poll (each second) has seen them; until then it may take a few more.
  for (int i = 0; i < 2; ++i) ASSERT_EQ(on_a.Post("/v1/jobs", R"({"task":"capped","input":{"ms":1}})").status, 202);
  const auto deadline = Clock::now() + seconds(5);
  Response full;
  int extra = 0;
  while (Clock::now() < deadline) {
    full = on_b.Post("/v1/jobs", R"({"task":"capped","input":{"ms":1}})");
    if (full.status != 202) break;
    ++extra;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(full.status, 429) << Describe(full);
  EXPECT_LE(extra, 15) << "one poll's worth at most";
}

TEST_F(ClusterTest, ATenantsMaxQueuedHoldsAcrossNodesExactly) {
  const Token alice = CreateToken("alice", "submit,read");
  const Token bob = CreateToken("bob", "submit,read");
  const std::string config = R"(
role = "api"
[resources]
cpu = 1
[tasks.capped]
run = "builtin:sleep"
[auth]
tokens = [)" + alice.Toml("max_queued = 20") +
                             ", " + bob.Toml() + "]\n";
  TestServer& a = StartNode(config);
  TestServer& b = StartNode(config);
  ASSERT_FALSE(HasFailure());
  // No node runs `capped`: alice's jobs stay queued. Eight clients, four on each node,
  // submit at once, and bob's submits go between hers (in the same batches); the store
  // counts hers under the tenant's lock, so exactly 20 are taken, not one node's count
  // of them, and none of bob's is refused.
  std::atomic<int> taken{0}, refused{0}, bobs{0};
  auto submit = [&](int port) {
    HttpClient on(port);
    for (int i = 0; i < 10; ++i) {
      Response res = on.Post("/v1/jobs", R"({"task":"capped","input":{"ms":1}})", alice.JsonBearer());
      if (res.status == 202) {
        ++taken;
      } else if (res.status == 429 && Field(res.json().as_object(), "type") == "urn:offload:problem:quota-max-queued") {
        ++refused;
      } else {
        ADD_FAILURE() << Describe(res);
      }
      Response other = on.Post("/v1/jobs", R"({"task":"capped","input":{"ms":1}})", bob.JsonBearer());
      EXPECT_EQ(other.status, 202) << "bob's quota is his own: " << Describe(other);
      if (other.status == 202) ++bobs;
    }
  };
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) clients.emplace_back(submit, i % 2 == 0 ? a.port() : b.port());
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(taken.load(), 20);
  EXPECT_EQ(refused.load(), 60);
  EXPECT_EQ(bobs.load(), 80);
}

TEST_F(ClusterTest, ATenantsMaxRunningHoldsAcrossNodes) {
  const Token alice = CreateToken("alice", "submit,read,cancel");
  const Token bob = CreateToken("bob", "submit,read,cancel");
  const std::string config = R"(
[resources]
gpu = 1
[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}
[auth]
tokens = [)" + alice.Toml("max_running = {gpu = 1}") +
                             ", " + bob.Toml() + "]\n";
  TestServer& a = StartNode(config);
  TestServer& b = StartNode(config);
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port()), on_b(b.port());
  auto submit = [](HttpClient& on, const Token& who) {
    Response res = on.Post("/v1/jobs", R"({"task":"render","input":{"ms":60000}})", who.JsonBearer());
    EXPECT_EQ(res.status, 202) << Describe(res);
    return res.status == 202 ? Field(res.json().as_object(), "id") : "";
  };
  auto status = [&](const std::string& id) {
    Response res = on_a.Request(boost::beast::http::verb::get, "/v1/jobs/" + id, {}, alice.Bearer());
    return res.status == 200 ? Field(res.json().as_object(), "status") : Describe(res);
  };
  // Two GPUs in the cluster, one on each node; alice may hold one of them.
  const std::string first = submit(on_a, alice), second = submit(on_b, alice);
  const auto deadline = Clock::now() + seconds(20);
  while (status(first) != "running" && status(second) != "running") {
    ASSERT_LT(Clock::now(), deadline) << "neither of alice's jobs started";
    std::this_thread::sleep_for(milliseconds(20));
  }
  // The other GPU is free, and stays free of alice's jobs: bob's job takes it.
  Response bobs = on_b.Post("/v1/jobs", R"({"task":"render","input":{"ms":60000}})", bob.JsonBearer());
  ASSERT_EQ(bobs.status, 202) << Describe(bobs);
  const std::string bob_job = Field(bobs.json().as_object(), "id");
  for (;;) {
    Response res = on_b.Request(boost::beast::http::verb::get, "/v1/jobs/" + bob_job, {}, bob.Bearer());
    if (res.status == 200 && Field(res.json().as_object(), "status") == "running") break;
    ASSERT_LT(Clock::now(), deadline) << "bob's job never started: " << Describe(res);
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(std::min(status(first), status(second)), "queued") << "alice holds one GPU of the cluster at most";
  for (HttpClient* on : {&on_a}) {
    on->Post("/v1/jobs/cancel", R"({"all": true})", alice.JsonBearer());
    on->Post("/v1/jobs/cancel", R"({"all": true})", bob.JsonBearer());
  }
}

TEST_F(ClusterTest, AWorkerNodeServesOnlyItsHealth) {
  TestServer& w = StartNode("role = \"worker\"\n");
  ASSERT_FALSE(HasFailure());
  HttpClient client(w.port());
  EXPECT_EQ(client.Get("/healthz").status, 200);
  Response refused = client.Post("/v1/jobs", R"({"task":"noop","input":{}})");
  EXPECT_EQ(refused.status, 404) << Describe(refused);
  EXPECT_NE(refused.body.find("role \\\"worker\\\""), std::string::npos) << refused.body;
}

// A with two cpus takes both jobs; B joins; A is killed with them running.
TEST_F(ClusterTest, JobsOfAKilledNodeFinishElsewhereOrFailInterrupted) {
  const std::string tasks = R"(
[resources]
cpu = 2
[tasks.retried]
run = "builtin:sleep"
uses = {cpu = 1}
retries = 1
[tasks.once]
run = "builtin:sleep"
uses = {cpu = 1}
)";
  TestServer& a = StartNode(tasks);
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port());
  const std::string retried = Field(SubmitJob(on_a, "retried", json::object{{"ms", 3000}}), "id");
  const std::string once = Field(SubmitJob(on_a, "once", json::object{{"ms", 3000}}), "id");
  WaitForStatus(on_a, retried, "running");
  WaitForStatus(on_a, once, "running");
  TestServer& b = StartNode(tasks);
  ASSERT_FALSE(HasFailure());
  HttpClient on_b(b.port());

  a.Signal(SIGKILL);
  ASSERT_TRUE(a.WaitForExit(seconds(10)).has_value());
  // Within lease_ttl + grace, and the rescue's period.
  json::object failed = WaitFinished(on_b, once, seconds(15));
  EXPECT_EQ(Field(failed, "status"), "failed") << json::serialize(failed);
  EXPECT_EQ(Field(failed.at("error").as_object(), "type"), "interrupted") << json::serialize(failed);
  json::object again = WaitFinished(on_b, retried, seconds(20));
  EXPECT_EQ(Field(again, "status"), "succeeded") << json::serialize(again);
  EXPECT_EQ(again.at("attempts"), 2) << json::serialize(again);
  ASSERT_TRUE(again.at("error_history").is_array()) << json::serialize(again);
  EXPECT_EQ(Field(again.at("error_history").as_array().at(0).as_object(), "type"), "interrupted");
}

TEST_F(ClusterTest, APausedNodesLateCompletionIsRefusedAndNoJobFinishesTwice) {
  const std::string tasks = std::string(kOneCpu) + R"(
[tasks.retried]
run = "builtin:sleep"
uses = {cpu = 1}
retries = 1
)";
  TestServer& a = StartNode(tasks);
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port());
  const std::string id = Field(SubmitJob(on_a, "retried", json::object{{"ms", 2500}}), "id");
  WaitForStatus(on_a, id, "running");
  TestServer& b = StartNode(tasks);
  ASSERT_FALSE(HasFailure());
  HttpClient on_b(b.port());

  a.Signal(SIGSTOP);
  // B rescues it once A's lease is past (1.5 s + 0.5 s) and runs it again.
  const auto deadline = Clock::now() + seconds(15);
  json::object job;
  do {
    std::this_thread::sleep_for(milliseconds(50));
    job = GetJob(on_b, id);
  } while (job.at("attempts") != 2 && Clock::now() < deadline);
  ASSERT_EQ(job.at("attempts"), 2) << json::serialize(job);
  // A wakes with its attempt about to end: its lease is gone, and so is the job.
  a.Signal(SIGCONT);
  json::object done = WaitFinished(on_b, id, seconds(15));
  EXPECT_EQ(Field(done, "status"), "succeeded") << json::serialize(done);
  EXPECT_EQ(done.at("attempts"), 2);
  // A's attempt ends too, after B's or before: it is refused either way, and the job
  // keeps the outcome and the time of the one attempt that counted.
  std::this_thread::sleep_for(milliseconds(3000));
  json::object later = GetJob(on_a, id);
  EXPECT_EQ(Field(later, "status"), "succeeded") << json::serialize(later);
  EXPECT_EQ(later.at("attempts"), 2);
  EXPECT_EQ(TimeOf(later, "finished_at"), TimeOf(done, "finished_at"));
  EXPECT_NE(a.log().find("lost its lease"), std::string::npos) << a.log();
}

TEST_F(ClusterTest, AnExclusiveResourceKeepsSubmissionOrderAcrossNodes) {
  const std::string tasks = R"(
[resources]
gpu = 1
[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}
)";
  TestServer& a = StartNode(tasks);
  TestServer& b = StartNode(tasks);
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port()), on_b(b.port());
  constexpr int kJobs = 20;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    ids.push_back(Field(SubmitJob(i % 2 ? on_b : on_a, "render", json::object{{"ms", 100}}), "id"));
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> spans;  // [started, finished), in submission order.
  for (const std::string& id : ids) {
    json::object job = WaitFinished(on_a, id, seconds(30));
    ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
    spans.emplace_back(TimeOf(job, "started_at"), TimeOf(job, "finished_at"));
  }
  // Claims are in submission order; each node stamps started_at as it starts what it
  // claimed, so two jobs claimed a moment apart by two nodes may be stamped a few ms
  // the other way round (3 ms seen under ASan). A job overtaking another would start
  // a whole job (100 ms) early.
  constexpr std::int64_t kStampSkewMs = 20;
  for (int i = 1; i < kJobs; ++i) {
    EXPECT_LE(spans[i - 1].first, spans[i].first + kStampSkewMs) << "job " << i << " started before job " << i - 1;
  }
  // Two GPUs in the cluster: never three jobs at once (at each start, the jobs running).
  for (const auto& span : spans) {
    const std::int64_t t = span.first;
    const auto running = std::count_if(spans.begin(), spans.end(),
                                       [t](const auto& other) { return other.first <= t && t < other.second; });
    EXPECT_LE(running, 2) << "at " << t;
  }
}

// A job left running under a live node's claim that the node does not hold (its
// claim's answer was lost, say) is found by that node and queued again, and then
// runs elsewhere.
TEST_F(ClusterTest, AJobRunningUnderALiveNodesClaimThatItDoesNotHoldIsQueuedAgain) {
  constexpr const char* kLater = "[tasks.later]\nrun = \"builtin:sleep\"\n";
  TestServer& a = StartNode(std::string("role = \"api\"\n") + kLater);
  TestServer& w = StartNode("role = \"worker\"\n");  // Does not run `later`.
  ASSERT_FALSE(HasFailure());
  (void)w;
  HttpClient on_a(a.port());
  const std::string id = Field(SubmitJob(on_a, "later", json::object{{"ms", 1}}), "id");
  const std::string worker = Sql(conninfo_,
                                 "SELECT id || ' ' || epoch FROM offload_nodes WHERE info LIKE '%\"worker\"%' AND "
                                 "expired_at IS NULL");
  const auto space = worker.find(' ');
  ASSERT_NE(space, std::string::npos) << worker;
  // As if the worker had claimed it and lost the answer.
  EXPECT_EQ(
      Sql(conninfo_, "UPDATE offload_jobs SET status = 1, node_id = '" + worker.substr(0, space) +
                         "', node_epoch = " + worker.substr(space + 1) + " WHERE id = '" + id + "' RETURNING status"),
      "1");
  EXPECT_EQ(Field(GetJob(on_a, id), "status"), "running");
  json::object queued = WaitForStatus(on_a, id, "queued", seconds(10));
  ASSERT_EQ(Field(queued, "status"), "queued") << json::serialize(queued);
  // The next node that runs `later` takes it.
  TestServer& b = StartNode(kLater);
  ASSERT_FALSE(HasFailure());
  (void)b;
  EXPECT_EQ(Field(WaitFinished(on_a, id, seconds(10)), "status"), "succeeded");
}

TEST_F(ClusterTest, WorkStillFlowsWhenTheListenersConnectionsAreKilled) {
  TestServer& a = StartNode("role = \"api\"\n");
  TestServer& b = StartNode("role = \"worker\"\n");
  ASSERT_FALSE(HasFailure());
  (void)b;
  HttpClient on_a(a.port());
  ASSERT_EQ(Field(WaitFinished(on_a, Field(SubmitJob(on_a, "noop", json::object{}), "id")), "status"), "succeeded");
  const std::string killed = Sql(conninfo_,
                                 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE "
                                 "'LISTEN offload_work_' || substr(md5(current_schema()), 1, 12) || '%'");
  EXPECT_EQ(killed, "2") << "one listener per node of this test's schema";
  for (int i = 0; i < 5; ++i) {
    const std::string id = Field(SubmitJob(on_a, "noop", json::object{}), "id");
    EXPECT_EQ(Field(WaitFinished(on_a, id, seconds(10)), "status"), "succeeded");
  }
}

// Maps across nodes. One cpu per node and task `where`, whose elements take `ms` and
// answer their input and the node that ran them: {"x": INPUT, "node": "a"}; from
// 1000, multiples of 7 fail.
std::string WhereNode(const std::string& node, int ms) {
  return R"(
[resources]
cpu = 1
[tasks.where]
uses = {cpu = 1}
command = ["sh", "-c", 'read x; [ "$x" -ge 1000 ] && [ $((x % 7)) -eq 0 ] && { echo "no $x" >&2; exit 3; }; sleep )" +
         std::to_string(ms / 1000.0) + R"(; printf "{\"x\": %s, \"node\": \")" + node + R"(\"}\n" "$x"']
)";
}

json::array Counting(int n) {
  json::array inputs;
  for (int i = 0; i < n; ++i) inputs.emplace_back(i);
  return inputs;
}

// Submits a map of `n` elements of `where` and returns its id.
std::string SubmitMap(HttpClient& client, int n) {
  Response res = client.Post("/v1/jobs", json::serialize(json::object{{"task", "where"}, {"map", Counting(n)}}));
  EXPECT_EQ(res.status, 202) << Describe(res);
  return res.status == 202 ? Field(res.json().as_object(), "id") : "";
}

// The nodes that ran a finished map's elements; every element answered its input, in
// order, as on one node.
std::set<std::string> NodesOfMap(const json::object& job, int n) {
  std::set<std::string> nodes;
  const json::value* result = job.if_contains("result");
  EXPECT_TRUE(result && result->is_array()) << json::serialize(job);
  if (!result || !result->is_array()) return nodes;
  const json::array& values = result->as_array();
  EXPECT_EQ(values.size(), static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(values[i].at("x"), static_cast<std::int64_t>(i)) << json::serialize(values[i]);
    nodes.insert(std::string(values[i].at("node").as_string()));
  }
  return nodes;
}

TEST_F(ClusterTest, AMapSpreadsOverEveryNodesSlotsAndKeepsItsOrder) {
  TestServer& a = StartNode(WhereNode("a", 100));
  StartNode(WhereNode("b", 100));
  StartNode(WhereNode("c", 100));
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port());
  constexpr int kElements = 60;
  const std::string id = SubmitMap(on_a, kElements);
  json::object done = WaitFinished(on_a, id, seconds(60));
  ASSERT_EQ(Field(done, "status"), "succeeded") << json::serialize(done);
  EXPECT_EQ(NodesOfMap(done, kElements), (std::set<std::string>{"a", "b", "c"}));
  // Every chunk was folded in and its row removed.
  EXPECT_EQ(Sql(conninfo_, "SELECT count(*) FROM offload_map_chunks"), "0");

  // Failures collected wherever they happened, each in its place.
  json::array inputs;
  for (int i = 0; i < kElements; ++i) inputs.emplace_back(1000 + i);
  Response res =
      on_a.Post("/v1/jobs", json::serialize(json::object{{"task", "where"}, {"map", inputs}, {"on_error", "collect"}}));
  ASSERT_EQ(res.status, 202) << Describe(res);
  json::object collected = WaitFinished(on_a, Field(res.json().as_object(), "id"), seconds(60));
  ASSERT_EQ(Field(collected, "status"), "succeeded") << json::serialize(collected);
  const json::array& entries = collected.at("result").as_array();
  ASSERT_EQ(entries.size(), static_cast<std::size_t>(kElements));
  std::set<std::string> nodes;
  for (int i = 0; i < kElements; ++i) {
    const json::object& entry = entries[i].as_object();
    if ((1000 + i) % 7 == 0) {
      EXPECT_NE(json::serialize(entry.at("error")).find("no " + std::to_string(1000 + i)), std::string::npos)
          << json::serialize(entry);
    } else {
      EXPECT_EQ(entry.at("ok").at("x"), 1000 + i) << json::serialize(entry);
      nodes.insert(std::string(entry.at("ok").at("node").as_string()));
    }
  }
  EXPECT_GT(nodes.size(), 1u) << "the second map spread too";
}

TEST_F(ClusterTest, AMapLosesNoElementWhenANodeRunningItsChunksIsKilled) {
  TestServer& a = StartNode(WhereNode("a", 100));
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port());
  constexpr int kElements = 60;
  const std::string id = SubmitMap(on_a, kElements);
  ASSERT_EQ(Field(WaitForStatus(on_a, id, "running", seconds(10)), "status"), "running");  // A holds it.
  TestServer& b = StartNode(WhereNode("b", 100));
  StartNode(WhereNode("c", 100));
  ASSERT_FALSE(HasFailure());
  HttpClient on_b(b.port());
  WaitForInUse(on_b, "cpu", 1, milliseconds(10'000));  // B runs a chunk of A's map.
  b.Signal(SIGKILL);
  ASSERT_TRUE(b.WaitForExit(seconds(10)).has_value());
  // B's chunk is offered again once its lease is past, and runs on A or C.
  json::object done = WaitFinished(on_a, id, seconds(60));
  ASSERT_EQ(Field(done, "status"), "succeeded") << json::serialize(done);
  EXPECT_TRUE(NodesOfMap(done, kElements).count("c"));
}

// Rows of chunks gone from the table (as when the answer to a withdraw is lost after
// its commit): the owner finds them missing and runs their elements again.
TEST_F(ClusterTest, AMapWhoseChunksRowsVanishStillFinishesWhole) {
  TestServer& a = StartNode(WhereNode("a", 100));
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port());
  constexpr int kElements = 40;
  const std::string id = SubmitMap(on_a, kElements);
  ASSERT_EQ(Field(WaitForStatus(on_a, id, "running", seconds(10)), "status"), "running");
  TestServer& b = StartNode(WhereNode("b", 100));
  ASSERT_FALSE(HasFailure());
  HttpClient on_b(b.port());
  WaitForInUse(on_b, "cpu", 1, milliseconds(10'000));
  EXPECT_NE(Sql(conninfo_, "WITH gone AS (DELETE FROM offload_map_chunks RETURNING 1) SELECT count(*) FROM gone"), "0");
  json::object done = WaitFinished(on_a, id, seconds(30));
  ASSERT_EQ(Field(done, "status"), "succeeded") << json::serialize(done);
  NodesOfMap(done, kElements);
}

TEST_F(ClusterTest, AMapCanceledFromANodeThatDoesNotHoldItStopsEverywhere) {
  TestServer& a = StartNode(WhereNode("a", 500));
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port());
  const std::string id = SubmitMap(on_a, 200);
  ASSERT_EQ(Field(WaitForStatus(on_a, id, "running", seconds(10)), "status"), "running");
  TestServer& b = StartNode(WhereNode("b", 500));
  TestServer& c = StartNode(WhereNode("c", 500));
  ASSERT_FALSE(HasFailure());
  HttpClient on_b(b.port()), on_c(c.port());
  WaitForInUse(on_b, "cpu", 1, milliseconds(10'000));
  WaitForInUse(on_c, "cpu", 1, milliseconds(10'000));

  Response canceled = on_b.Delete("/v1/jobs/" + id);
  ASSERT_EQ(canceled.status, 200) << Describe(canceled);
  EXPECT_EQ(Field(canceled.json().as_object(), "status"), "canceled");
  // A, which holds the map, hears of the cancel at once (its notification), or by its
  // poll within a second.
  EXPECT_EQ(Field(WaitForStatus(on_a, id, "canceled", seconds(3)), "status"), "canceled");
  // Every node stops its part within about a second, and the chunks' rows go.
  WaitForInUse(on_a, "cpu", 0, milliseconds(3000));
  WaitForInUse(on_b, "cpu", 0, milliseconds(3000));
  WaitForInUse(on_c, "cpu", 0, milliseconds(3000));
  const auto deadline = Clock::now() + seconds(10);
  while (Sql(conninfo_, "SELECT count(*) FROM offload_map_chunks") != "0" && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(Sql(conninfo_, "SELECT count(*) FROM offload_map_chunks"), "0");
  EXPECT_EQ(on_c.Delete("/v1/jobs/" + id).status, 409);
}

// PostgreSQL restarted while two nodes take and run jobs: submits meanwhile get 503,
// and every job that got its 202 finishes.
TEST(ClusterOutageTest, PostgresRestartedUnderLoadLosesNoAcceptedJob) {
  ASSERT_TRUE(TestPostgresConnInfo().has_value()) << "the test server's script is needed";
  PrivatePostgres pg;
  ASSERT_TRUE(pg.Run("start"));
  const std::string config = PostgresConfig(pg.conninfo(), std::string(kCluster) + R"(
[tasks.short]
run = "builtin:sleep"
retries = 3
)");
  TestServer a, b;
  ASSERT_EQ(a.Start(config), "");
  ASSERT_EQ(b.Start(config), "");
  std::vector<std::string> accepted;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::thread client([&] {
    HttpClient on_a(a.port());
    for (int i = 0; i < 3000 && !stop; ++i) {
      Response res = on_a.Post("/v1/jobs", R"({"task":"short","input":{"ms":5}})", {}, seconds(10));
      if (res.status == 202) {
        std::lock_guard lock(mu);
        accepted.push_back(Field(res.json().as_object(), "id"));
      } else {
        EXPECT_EQ(res.status, 503) << Describe(res);
        std::this_thread::sleep_for(milliseconds(20));
      }
    }
  });
  auto accepted_count = [&] {
    std::lock_guard lock(mu);
    return accepted.size();
  };
  const auto deadline = Clock::now() + seconds(10);
  while (accepted_count() < 100 && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_TRUE(pg.Run("halt"));
  std::this_thread::sleep_for(milliseconds(500));  // Down for a while: the outage under test.
  ASSERT_TRUE(pg.Run("resume"));
  const std::size_t before = accepted_count();
  const auto after_deadline = Clock::now() + seconds(15);
  while (accepted_count() < before + 100 && Clock::now() < after_deadline)
    std::this_thread::sleep_for(milliseconds(10));
  stop = true;
  client.join();
  EXPECT_GE(accepted_count(), before + 100) << "submits work again once PostgreSQL is back";
  HttpClient on_b(b.port());
  for (const std::string& id : accepted) {
    json::object job = WaitFinished(on_b, id, seconds(60));
    EXPECT_TRUE(Field(job, "status") == "succeeded" || Field(job, "status") == "failed") << json::serialize(job);
  }
}

// Events are cluster-wide: a stream on an api node, which runs nothing, carries the
// changes of the jobs the other node runs — those submitted through it, and those
// submitted to the other node directly — each naming the node it happened on.
TEST_F(ClusterTest, TheEventsOfJobsRunElsewhereReachAnotherNodesStream) {
  TestServer& a = StartNode(std::string("role = \"api\"\n") + kOneCpu);
  TestServer& b = StartNode(kOneCpu);
  ASSERT_FALSE(HasFailure());
  HttpClient on_a(a.port()), on_b(b.port());
  EventReader stream(a.port(), "/v1/events?task=hold");
  ASSERT_EQ(stream.status(), 200u);
  // The subscription on A asks B for its events, which B hears by a notification:
  // probes on B until one reaches A's stream, so that B is known to send them.
  bool heard = false;
  for (int i = 0; i < 50 && !heard; ++i) {
    const std::string probe = Field(SubmitJob(on_b, "hold", json::object{{"ms", 1}}), "id");
    heard =
        HasStatus(probe, "succeeded")(stream.ReadUntil(HasStatus(probe, "succeeded"), std::chrono::milliseconds(500)));
  }
  ASSERT_TRUE(heard) << "no event of B's reached A's stream";
  const std::string via_a = Field(SubmitJob(on_a, "hold", json::object{{"ms", 50}}), "id");
  const std::string on_b_only = Field(SubmitJob(on_b, "hold", json::object{{"ms", 50}}), "id");
  auto both_done = [&](const std::vector<Message>& m) {
    return HasStatus(via_a, "succeeded")(m) && HasStatus(on_b_only, "succeeded")(m);
  };
  const std::vector<Message>& messages = stream.ReadUntil(both_done, std::chrono::milliseconds(30'000));
  ASSERT_TRUE(both_done(messages)) << "events read: " << messages.size();
  EXPECT_EQ(StatusesOf(messages, on_b_only), (std::vector<std::string>{"queued", "running", "succeeded"}));
  EXPECT_EQ(StatusesOf(messages, via_a), (std::vector<std::string>{"queued", "running", "succeeded"}));
  // Queued by A (its submit) and run by B: each event names the node it happened on.
  std::string queued_on, ran_on;
  for (const Message& m : messages) {
    if (m.event != "status" || Field(m.object(), "id") != via_a) continue;
    if (Field(m.object(), "status") == "queued") queued_on = Field(m.object(), "node");
    if (Field(m.object(), "status") == "running") ran_on = Field(m.object(), "node");
  }
  EXPECT_FALSE(queued_on.empty());
  EXPECT_FALSE(ran_on.empty());
  EXPECT_NE(queued_on, ran_on);
}

}  // namespace
}  // namespace offload::testing
