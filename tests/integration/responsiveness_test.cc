// The event loop never blocks: with every cpu slot busy burning CPU, status reads
// still answer quickly. A correctness bound, not a benchmark (bench/ measures).
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "support/server_fixture.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

using ResponsivenessTest = ServerTest;

TEST_F(ResponsivenessTest, StatusReadsAnswerWhileEveryCpuSlotIsBusy) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(
shutdown_grace = "200ms"
[resources]
cpu = 2
)"));
  std::vector<std::string> burners;
  for (int i = 0; i < 2; ++i) {
    json::object job = SubmitJob(client(), "cpu", json::object{{"ms", 60'000}});
    ASSERT_EQ(Field(job, "status"), "running") << json::serialize(job);
    burners.push_back(Field(job, "id"));
  }
  // More work waits behind them, so the scheduler has a queue too.
  std::vector<std::string> queued;
  for (int i = 0; i < 10; ++i) {
    queued.push_back(Field(SubmitJob(client(), "cpu", json::object{{"ms", 1}}), "id"));
  }
  WaitForInUse(client(), "cpu", 2);

  std::vector<microseconds> latencies;
  for (int i = 0; i < 200; ++i) {
    const std::string& id = i % 2 == 0 ? burners[(i / 2) % 2] : queued[(i / 2) % queued.size()];
    const auto start = Clock::now();
    Response res = client().Get("/v1/jobs/" + id, milliseconds(5'000));
    latencies.push_back(std::chrono::duration_cast<microseconds>(Clock::now() - start));
    ASSERT_EQ(res.status, 200) << "request " << i << ": " << Describe(res);
    const std::string status = Field(res.json().as_object(), "status");
    ASSERT_EQ(status, i % 2 == 0 ? "running" : "queued") << res.body;
  }
  std::sort(latencies.begin(), latencies.end());
  const microseconds p50 = latencies[latencies.size() / 2];
  const microseconds p99 = latencies[latencies.size() * 99 / 100];
  RecordProperty("p50_us", static_cast<int>(p50.count()));
  RecordProperty("p99_us", static_cast<int>(p99.count()));
  EXPECT_LT(p99, milliseconds(100)) << "p50 " << p50.count() << " us, p99 " << p99.count() << " us, max "
                                    << latencies.back().count() << " us";

  for (const auto& id : burners) EXPECT_EQ(client().Delete("/v1/jobs/" + id).status, 200);
}

}  // namespace
}  // namespace offload::testing
