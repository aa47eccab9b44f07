// offload::Server, through its public header: errors as values, a registered handler
// served over HTTP, Stop from another thread, and the drain it begins.
#include "offload/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "support/http_client.h"

namespace offload {
namespace {

using namespace std::chrono_literals;
using testing::HttpClient;

constexpr auto kDeadline = 20s;

// "shout" appends "!" to its string input; "gated" blocks until the test opens it.
struct Handlers {
  std::promise<void> gated_started;
  std::promise<void> gate;
  std::shared_future<void> gate_open = gate.get_future().share();
  std::atomic<bool> gated_finished{false};

  TaskRegistry Registry() {
    TaskRegistry r = TaskRegistry::WithBuiltins();
    r.Register("shout",
               TaskDefinition{[](const Job& job, Context&) {
                                return Result::Json(boost::json::string(std::string(job.input.as_string()) + "!"));
                              },
                              [](const boost::json::value& in) -> std::optional<std::string> {
                                if (!in.is_string()) return "the input must be a string";
                                return std::nullopt;
                              },
                              "application/json"});
    r.Register("gated", TaskDefinition{[this](const Job&, Context& ctx) {
                                         gated_started.set_value();
                                         gate_open.wait_for(kDeadline);
                                         gated_finished = !ctx.canceled();
                                         return Result::Json(nullptr);
                                       },
                                       {},
                                       "application/json"});
    return r;
  }
};

ServerOptions Options() {
  ServerOptions o;
  o.config_toml =
      "store = \"memory\"\n"
      "[tasks.shout]\nrun = \"builtin:shout\"\n"
      "[tasks.gated]\nrun = \"builtin:gated\"\n";
  o.listen = "127.0.0.1:0";
  o.threads = 2;
  // A test process keeps its own signal handling and limits.
  o.configure_process = false;
  o.stop_on_signals = false;
  return o;
}

// Runs the server on its own thread; `returned` is ready once Run has returned. The
// destructor stops it (again) before joining, so a failed assertion cannot hang.
struct Running {
  explicit Running(Server* s)
      : server(s), thread([this] {
          server->Run();
          done.set_value();
        }) {}
  ~Running() {
    server->Stop();
    thread.join();
  }
  Server* server;
  std::promise<void> done;
  std::future<void> returned = done.get_future();
  std::thread thread;
};

TEST(ServerTest, ServesARegisteredHandlerUntilStop) {
  Handlers h;
  auto server = Server::Create(Options(), h.Registry());
  ASSERT_TRUE(server) << server.error().detail;
  const std::uint16_t port = (*server)->port();
  ASSERT_NE(port, 0);
  EXPECT_EQ((*server)->address(), "127.0.0.1:" + std::to_string(port));
  {
    Running running(server->get());
    HttpClient client(port);
    auto r = client.Post("/v1/tasks/shout/run", R"("hey")");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json(), "hey!");
    // The registered validator answers before a job exists.
    r = client.Post("/v1/tasks/shout/run", "42");
    EXPECT_EQ(r.status, 422) << r.body;
    (*server)->Stop();
    ASSERT_EQ(running.returned.wait_for(kDeadline), std::future_status::ready) << "Run did not return after Stop";
  }
}

TEST(ServerTest, StopBeforeRunMakesRunReturn) {
  Handlers h;
  auto server = Server::Create(Options(), h.Registry());
  ASSERT_TRUE(server) << server.error().detail;
  (*server)->Stop();
  (*server)->Stop();  // A second call does nothing.
  Running running(server->get());
  ASSERT_EQ(running.returned.wait_for(kDeadline), std::future_status::ready);
}

// Stop drains: the running job is let finish, not canceled, and Run returns after it.
TEST(ServerTest, StopLetsARunningJobFinish) {
  Handlers h;
  auto server = Server::Create(Options(), h.Registry());
  ASSERT_TRUE(server) << server.error().detail;
  Running running(server->get());
  HttpClient client((*server)->port());
  auto r = client.Post("/v1/jobs", R"({"task": "gated", "input": null})");
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_EQ(h.gated_started.get_future().wait_for(kDeadline), std::future_status::ready);
  (*server)->Stop();
  EXPECT_EQ(running.returned.wait_for(200ms), std::future_status::timeout)
      << "Run returned while a job was still running";
  h.gate.set_value();
  ASSERT_EQ(running.returned.wait_for(kDeadline), std::future_status::ready);
  EXPECT_TRUE(h.gated_finished) << "the running job was canceled instead of let finish";
}

TEST(ServerTest, ConfigMistakesAreErrorValues) {
  Handlers h;
  ServerOptions o = Options();
  o.config_toml = "threads = \"many\"\n";
  auto server = Server::Create(o, h.Registry());
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(server.error().detail.rfind("config error: config_toml", 0), 0u) << server.error().detail;

  o.config_toml = "store = \"memory\"\n[tasks.x]\nrun = \"builtin:not_registered\"\n";
  server = Server::Create(o, h.Registry());
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(server.error().detail.find("task \"x\""), std::string::npos) << server.error().detail;
}

TEST(ServerTest, AnAddressInUseIsAnErrorValue) {
  Handlers h;
  auto first = Server::Create(Options(), h.Registry());
  ASSERT_TRUE(first) << first.error().detail;
  ServerOptions o = Options();
  o.listen = (*first)->address();
  auto second = Server::Create(o, h.Registry());
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().detail.find((*first)->address()), std::string::npos) << second.error().detail;
}

}  // namespace
}  // namespace offload
