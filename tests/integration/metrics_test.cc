// GET /metrics: the exposition passes Prometheus's own linter (promtool), its counts
// move as jobs run, and a real Prometheus scrapes it and answers queries with the
// figures the server showed. The sample alert rules of docs/operations.md are
// checked and their unit tests run with promtool too.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/server_fixture.h"

extern char** environ;

namespace offload::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// Series by their text ("name{labels}"), as the exposition writes them.
using Series = std::map<std::string, double>;

Series ParseExposition(const std::string& text) {
  Series out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const std::size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

// Runs `argv` with its output (both streams) into `log`; returns its wait status.
int RunProgram(const std::vector<std::string>& argv, const fs::path& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A loopback port free now (the kernel picks it), for a program that cannot report
// the one it bound.
unsigned short FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

constexpr std::string_view kConfig = R"(
shutdown_grace = "200ms"

[resources]
cpu = 2

[tasks.quick]
run = "builtin:sleep"
uses = {cpu = 1}

[tasks.broken]
command = ["/bin/sh", "-c", "exit 3"]
uses = {cpu = 1}
retries = 1
)";

class MetricsTest : public ServerTest {
 protected:
  Series Scrape() {
    Response res = client().Get("/metrics");
    EXPECT_EQ(res.status, 200) << Describe(res);
    EXPECT_EQ(res.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    last_scrape_ = res.body;
    return ParseExposition(res.body);
  }

  std::string last_scrape_;
};

TEST_F(MetricsTest, CountsMoveAsJobsRunAndPromtoolAcceptsTheExposition) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  const Series before = Scrape();
  EXPECT_EQ(before.at("offload_jobs_submitted_total{task=\"quick\"}"), 0);
  EXPECT_EQ(before.at("offload_resource_capacity{resource=\"cpu\"}"), 2);

  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Field(SubmitJob(client(), "quick", boost::json::object{{"ms", 30}}), "id"));
  const std::string broken = Field(SubmitJob(client(), "broken", boost::json::object{}), "id");
  for (const auto& id : ids) EXPECT_EQ(Field(WaitFinished(client(), id), "status"), "succeeded");
  EXPECT_EQ(Field(WaitFinished(client(), broken), "status"), "failed");
  // A job that holds a slot now: the running gauge and the resource's use show it.
  const std::string held = Field(SubmitJob(client(), "quick", boost::json::object{{"ms", 60'000}}), "id");
  WaitForStatus(client(), held, "running");
  EXPECT_EQ(client().Get("/v1/jobs/nope").status, 404);

  const Series after = Scrape();
  EXPECT_EQ(after.at("offload_jobs_submitted_total{task=\"quick\"}"), 4);
  EXPECT_EQ(after.at("offload_jobs_submitted_total{task=\"broken\"}"), 1);
  EXPECT_EQ(after.at("offload_jobs_started_total{task=\"quick\"}"), 4);
  EXPECT_EQ(after.at("offload_jobs_started_total{task=\"broken\"}"), 2);  // The retry is a second start.
  EXPECT_EQ(after.at("offload_job_retries_total{task=\"broken\"}"), 1);
  EXPECT_EQ(after.at("offload_jobs_finished_total{task=\"quick\",status=\"succeeded\"}"), 3);
  EXPECT_EQ(after.at("offload_jobs_finished_total{task=\"broken\",status=\"failed\"}"), 1);
  EXPECT_EQ(after.at("offload_jobs_running{task=\"quick\"}"), 1);
  EXPECT_EQ(after.at("offload_resource_in_use{resource=\"cpu\"}"), 1);
  // Three ran 30 ms each: the run-time histogram has them in the buckets above 25 ms only.
  EXPECT_EQ(after.at("offload_job_run_seconds_count{task=\"quick\"}"), 3);
  EXPECT_EQ(after.at("offload_job_run_seconds_bucket{task=\"quick\",le=\"0.025\"}"), 0);
  EXPECT_EQ(after.at("offload_job_run_seconds_bucket{task=\"quick\",le=\"+Inf\"}"), 3);
  EXPECT_GE(after.at("offload_job_run_seconds_sum{task=\"quick\"}"), 0.09);
  EXPECT_EQ(after.at("offload_job_queue_wait_seconds_count{task=\"quick\"}"), 4);
  // The default store (SQLite) committed the inserts and the state changes in batches.
  EXPECT_GE(after.at("offload_store_write_batch_size_count"), 1);
  EXPECT_GE(after.at("offload_store_write_batch_size_sum"), 5);
  // HTTP: by route template (never an id), method and code.
  EXPECT_EQ(after.at("offload_http_requests_total{route=\"/v1/jobs\",method=\"POST\",code=\"202\"}"), 5);
  EXPECT_EQ(after.at("offload_http_requests_total{route=\"/v1/jobs/{id}\",method=\"GET\",code=\"404\"}"), 1);
  EXPECT_EQ(after.at("offload_http_requests_total{route=\"/metrics\",method=\"GET\",code=\"200\"}"), 1);
  EXPECT_GE(after.at("offload_http_request_duration_seconds_count{route=\"/v1/jobs/{id}\"}"), 5);
  EXPECT_GE(after.at("offload_http_connections_open"), 1);  // This client's, and any closing.
  EXPECT_GT(after.at("process_resident_memory_bytes"), 1e6);
  for (const auto& [series, value] : after) {
    for (const auto& id : ids) EXPECT_EQ(series.find(id), std::string::npos) << series;
  }

  const fs::path dir = MakeTestDir("offload-metrics-");
  { std::ofstream(dir / "metrics.txt") << last_scrape_; }
  const int status = RunProgram({"/bin/sh", "-c", "promtool check metrics < '" + (dir / "metrics.txt").string() + "'"},
                                dir / "promtool.log");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "promtool check metrics (is Debian's prometheus installed? scripts/install-deps.sh installs it): "
      << ReadFile(dir / "promtool.log") << "\n"
      << last_scrape_;
  fs::remove_all(dir);
}

// The alert rules docs/operations.md gives: valid, and their unit tests (series in,
// alerts out) pass.
TEST(MetricsAlertRules, PassPromtoolsChecksAndUnitTests) {
  const fs::path rules = fs::path(OFFLOAD_SOURCE_DIR) / "deploy/prometheus/offload-alerts.yml";
  const fs::path tests = fs::path(OFFLOAD_SOURCE_DIR) / "deploy/prometheus/offload-alerts.test.yml";
  const fs::path log = fs::temp_directory_path() / ("offload-promtool-" + std::to_string(::getpid()) + ".log");
  int status = RunProgram({"promtool", "check", "rules", rules.string()}, log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(log);
  status = RunProgram({"promtool", "test", "rules", tests.string()}, log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(log);
  fs::remove(log);
}

// A real Prometheus, configured as docs/operations.md says, scrapes the server and
// answers a query with what the server counted.
TEST_F(MetricsTest, ARealPrometheusScrapesTheServer) {
  ASSERT_NO_FATAL_FAILURE(StartServer(kConfig));
  for (int i = 0; i < 2; ++i) {
    WaitFinished(client(), Field(SubmitJob(client(), "quick", boost::json::object{{"ms", 1}}), "id"));
  }
  const fs::path dir = MakeTestDir("offload-prometheus-");
  const unsigned short port = FreePort();
  {
    std::ofstream config(dir / "prometheus.yml");
    config << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
           << "rule_files:\n  - " << (fs::path(OFFLOAD_SOURCE_DIR) / "deploy/prometheus/offload-alerts.yml").string()
           << "\nscrape_configs:\n  - job_name: offload\n    static_configs:\n      - targets: ['127.0.0.1:"
           << server_.port() << "']\n";
  }
  std::vector<std::string> argv = {"prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
                                   "--storage.tsdb.path=" + (dir / "data").string(),
                                   "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"};
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = (dir / "prometheus.log").string();
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t prometheus = -1;
  ASSERT_EQ(posix_spawnp(&prometheus, args[0], &actions, nullptr, args.data(), environ), 0)
      << "prometheus not found: scripts/install-deps.sh installs Debian's prometheus";
  posix_spawn_file_actions_destroy(&actions);

  // Bounded: 30 s for Prometheus to start, scrape and answer.
  HttpClient prom(port);
  double value = -1;
  std::string last;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    Response res =
        prom.Get("/api/v1/query?query=offload_jobs_finished_total%7Btask%3D%22quick%22%2Cstatus%3D%22succeeded%22%7D",
                 milliseconds(2'000));
    last = Describe(res);
    if (res.status == 200) {
      const auto& result = res.json().at("data").at("result").as_array();
      if (!result.empty()) {
        value = std::stod(std::string(result[0].at("value").as_array()[1].as_string()));
        break;
      }
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  ::kill(prometheus, SIGTERM);
  int status = 0;
  waitpid(prometheus, &status, 0);
  EXPECT_EQ(value, 2) << "last answer: " << last << "\nprometheus log:\n" << ReadFile(log);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace offload::testing
