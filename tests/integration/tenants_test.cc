// Tenants' quotas and fair share against the real binary (docs/security.md, "Quotas
// and fair share"): max_queued and submit_rate answer 429 with a problem type naming
// the quota and Retry-After, max_running caps what a tenant holds of a resource, and
// on a GPU of one a burst of one tenant does not make another's job wait behind it;
// with weights 3:1 the GPU's time splits 3:1. On the default store (SQLite); the
// cluster-wide max_queued is in cluster_test.cc.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/server_fixture.h"
#include "support/tokens.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

class TenantsTest : public ServerTest {
 protected:
  void SetUp() override {
    alice_ = CreateToken("alice", "submit,read,cancel");
    bob_ = CreateToken("bob", "submit,read,cancel");
    ops_ = CreateToken("ops", "admin");
  }

  // A GPU of `gpus`, a sleep on one of them; alice's token with `alice_keys`.
  void Start(int gpus, const std::string& alice_keys, const std::string& bob_keys = "") {
    ASSERT_NO_FATAL_FAILURE(StartServer("shutdown_grace = \"200ms\"\n" + std::string(R"(
[resources]
gpu = )") + std::to_string(gpus) + R"(

[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}

[auth]
tokens = [)" + alice_.Toml(alice_keys) + ", " +
                                        bob_.Toml(bob_keys) + ", " + ops_.Toml() + "]\n"));
  }

  Response Submit(const Token& who, int ms) {
    return client().Post("/v1/jobs", R"({"task": "render", "input": {"ms": )" + std::to_string(ms) + "}}",
                         who.JsonBearer());
  }
  std::string SubmitOk(const Token& who, int ms) {
    Response res = Submit(who, ms);
    EXPECT_EQ(res.status, 202) << Describe(res);
    return res.status == 202 ? Field(res.json().as_object(), "id") : "";
  }
  json::object Get(const std::string& id) {
    Response res = client().Request(http::verb::get, "/v1/jobs/" + id, {}, ops_.Bearer());
    EXPECT_EQ(res.status, 200) << Describe(res);
    return res.status == 200 ? res.json().as_object() : json::object();
  }
  std::string StatusOf(const std::string& id) { return Field(Get(id), "status"); }
  // Polls until job `id` has `status` (bounded).
  void AwaitStatus(const std::string& id, const std::string& status) {
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (StatusOf(id) != status) {
      ASSERT_LT(Clock::now(), deadline) << "job " << id << " never became " << status;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  // The succeeded jobs, every page, as the admin sees them.
  std::vector<json::object> Succeeded() {
    std::vector<json::object> out;
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      Response res = client().Request(
          http::verb::get, "/v1/jobs?status=succeeded&limit=1000" + (cursor.empty() ? "" : "&cursor=" + cursor), {},
          ops_.Bearer());
      EXPECT_EQ(res.status, 200) << Describe(res);
      if (res.status != 200) break;
      json::object body = res.json().as_object();
      for (const auto& j : body.at("jobs").as_array()) out.push_back(j.as_object());
      if (body.at("next_cursor").is_null()) break;
      cursor = std::string(body.at("next_cursor").as_string());
    }
    return out;
  }
  void CancelAll(const Token& who) {
    Response res = client().Post("/v1/jobs/cancel", R"({"all": true})", who.JsonBearer());
    EXPECT_EQ(res.status, 200) << Describe(res);
  }

  Token alice_, bob_, ops_;
};

TEST_F(TenantsTest, MaxQueuedRefusesTheNextSubmitWith429NamingTheQuota) {
  ASSERT_NO_FATAL_FAILURE(Start(1, "max_queued = 2"));
  const std::string running = SubmitOk(alice_, 60'000);
  ASSERT_NO_FATAL_FAILURE(AwaitStatus(running, "running"));
  SubmitOk(alice_, 1);
  SubmitOk(alice_, 1);  // Two queued: the quota.
  Response refused = Submit(alice_, 1);
  ASSERT_TRUE(IsProblem(refused, 429)) << Describe(refused);
  EXPECT_EQ(Field(refused.json().as_object(), "type"), "urn:offload:problem:quota-max-queued");
  EXPECT_EQ(refused.header("Retry-After"), "1");
  EXPECT_NE(Field(refused.json().as_object(), "detail").find("alice"), std::string::npos);
  // Another tenant's quota is its own.
  SubmitOk(bob_, 1);
  // Once one of alice's queued jobs has gone, she may submit again.
  CancelAll(alice_);
  SubmitOk(alice_, 1);
}

TEST_F(TenantsTest, SubmitRateRefusesPastTheRateAndLetsOtherRequestsThrough) {
  ASSERT_NO_FATAL_FAILURE(Start(1, "submit_rate = \"2/m\""));
  const std::string first = SubmitOk(alice_, 1);  // The burst: one.
  Response refused = Submit(alice_, 1);
  ASSERT_TRUE(IsProblem(refused, 429)) << Describe(refused);
  EXPECT_EQ(Field(refused.json().as_object(), "type"), "urn:offload:problem:quota-submit-rate");
  const int retry_after = std::stoi(refused.header("Retry-After").empty() ? "0" : refused.header("Retry-After"));
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 30);
  // Reading is not submitting; and bob has no submit_rate.
  Response read = client().Request(http::verb::get, "/v1/jobs/" + first, {}, alice_.Bearer());
  EXPECT_EQ(read.status, 200) << Describe(read);
  SubmitOk(bob_, 1);
  SubmitOk(bob_, 1);
}

TEST_F(TenantsTest, MaxRunningCapsATenantOnAResourceAndLeavesTheRestToOthers) {
  ASSERT_NO_FATAL_FAILURE(Start(3, "max_running = {gpu = 1}"));
  const std::string a1 = SubmitOk(alice_, 60'000);
  const std::string a2 = SubmitOk(alice_, 60'000);
  ASSERT_NO_FATAL_FAILURE(AwaitStatus(a1, "running"));
  const std::string b1 = SubmitOk(bob_, 60'000);
  const std::string b2 = SubmitOk(bob_, 60'000);
  ASSERT_NO_FATAL_FAILURE(AwaitStatus(b1, "running"));
  ASSERT_NO_FATAL_FAILURE(AwaitStatus(b2, "running"));
  EXPECT_EQ(StatusOf(a2), "queued") << "alice holds 1 GPU at most, though one was free before bob came";
  Response metrics = client().Request(http::verb::get, "/metrics", {}, ops_.Bearer());
  ASSERT_EQ(metrics.status, 200) << Describe(metrics);
  EXPECT_NE(metrics.body.find("offload_tenant_resource_in_use{tenant=\"alice\",resource=\"gpu\"} 1\n"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("offload_tenant_resource_in_use{tenant=\"bob\",resource=\"gpu\"} 2\n"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("offload_tenant_jobs_queued{tenant=\"alice\"} 1\n"), std::string::npos);
  CancelAll(alice_);
  CancelAll(bob_);
}

TEST_F(TenantsTest, OneJobOfATenantStartsAfterAtMostOneJobOfAnothersBurst) {
  ASSERT_NO_FATAL_FAILURE(Start(1, ""));
  std::vector<std::string> burst;
  for (int i = 0; i < 1000; ++i) burst.push_back(SubmitOk(alice_, 20));
  ASSERT_EQ(StatusOf(burst.back()), "queued") << "the burst is still under way";
  const std::string lone = SubmitOk(bob_, 20);
  ASSERT_NO_FATAL_FAILURE(AwaitStatus(lone, "succeeded"));
  CancelAll(alice_);
  const json::object b = Get(lone);
  const std::int64_t submitted = TimeOf(b, "created_at"), started = TimeOf(b, "started_at");
  // Alice's jobs that started while bob's waited: at most the one that was next.
  int overtook = 0;
  for (const json::object& job : Succeeded()) {
    if (Field(job, "tenant") != "alice") continue;
    const std::int64_t at = TimeOf(job, "started_at");
    if (at > submitted && at < started) ++overtook;
  }
  EXPECT_LE(overtook, 1) << "bob's job waited " << (started - submitted) << " ms";
}

TEST_F(TenantsTest, WeightsThreeToOneSplitTheGpuTimeThreeToOne) {
  ASSERT_NO_FATAL_FAILURE(Start(1, "weight = 3", "weight = 1"));
  // Both keep jobs queued throughout: 300 + 150 jobs of 20 ms, and the count stops at
  // 200 ended (about 4 s).
  std::vector<std::string> ids;
  for (int i = 0; i < 150; ++i) {
    ids.push_back(SubmitOk(alice_, 20));
    ids.push_back(SubmitOk(alice_, 20));
    ids.push_back(SubmitOk(bob_, 20));
  }
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  std::vector<json::object> done;
  for (;;) {
    done = Succeeded();
    if (done.size() >= 200) break;
    ASSERT_LT(Clock::now(), deadline) << done.size() << " jobs ended";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CancelAll(alice_);
  CancelAll(bob_);
  std::map<std::string, std::int64_t> ms;
  for (const json::object& job : Succeeded()) {
    ms[Field(job, "tenant")] += TimeOf(job, "finished_at") - TimeOf(job, "started_at");
  }
  const double share = static_cast<double>(ms["alice"]) / static_cast<double>(ms["alice"] + ms["bob"]);
  EXPECT_NEAR(share, 0.75, 0.05) << "alice " << ms["alice"] << " ms, bob " << ms["bob"] << " ms";
}

}  // namespace
}  // namespace offload::testing
