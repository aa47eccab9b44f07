// The fixture of the JobService tests: the service end to end without HTTP (the
// memory store, the real scheduler and pool) and handlers the tests steer — "gated"
// blocks on a gate the test opens, so that every state is reached on purpose and
// never by timing.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "exec/task_executors.h"
#include "offload/task_registry.h"
#include "service/job_service.h"
#include "support/manual_clock.h"
#include "util/thread_pool.h"

namespace offload {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using SnapshotOr = ErrorOr<JobSnapshot>;

constexpr auto kDeadline = std::chrono::seconds(10);

// Polls `pred` until it holds or the deadline passes; returns its last value.
template <typename Pred>
bool Eventually(Pred pred) {
  const auto deadline = Clock::now() + kDeadline;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// The handler of the "gated" tasks. A job's input is {"tag": N} plus optional
// "progress" (reported at start), "linger" (after seeing a cancel, keep running
// until opened, as a handler that stops slowly would) and "fail" (fail when opened). The handler records the start,
// then waits until the test opens its gate or the job is canceled.
//
// Thread-safe: pool threads run Run(), the test thread calls the rest.
class Gate {
 public:
  Result Run(const Job& job, Context& ctx) {
    const json::object& in = job.input.as_object();
    const int tag = static_cast<int>(in.at("tag").as_int64());
    const bool linger = in.contains("linger") && in.at("linger").as_bool();
    const bool fail = in.contains("fail") && in.at("fail").as_bool();
    if (in.contains("progress")) ctx.ReportProgress(in.at("progress").as_double());

    std::unique_lock lock(mu_);
    started_.push_back(tag);
    ++running_;
    max_running_ = std::max(max_running_, running_);
    cv_.notify_all();
    const auto deadline = Clock::now() + kDeadline;
    bool canceled = false;
    // The handler cannot be woken by a cancel, so it checks every millisecond, like
    // a real handler that polls ctx.canceled() between chunks of work.
    while (!IsOpen(tag) && Clock::now() < deadline) {
      if (ctx.canceled()) {
        canceled = true;
        saw_cancel_.insert(tag);
        cv_.notify_all();
        break;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(1));
    }
    if (canceled && linger) {
      cv_.wait_until(lock, deadline, [&] { return IsOpen(tag); });
    }
    const bool opened = IsOpen(tag);
    --running_;
    cv_.notify_all();
    if (canceled) return Result::Fail("canceled", "the gate saw the cancel");
    if (!opened) return Result::Fail("test_deadline", "the test never opened the gate");
    if (fail) return Result::Fail("bad_element", "tag " + std::to_string(tag) + " failed when opened");
    return Result::Json(json::object{{"tag", tag}});
  }

  void Open(int tag) {
    std::lock_guard lock(mu_);
    open_.insert(tag);
    cv_.notify_all();
  }
  void OpenAll() {
    std::lock_guard lock(mu_);
    open_all_ = true;
    cv_.notify_all();
  }
  bool WaitStarted(std::size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return started_.size() >= n; });
  }
  bool WaitSawCancel(int tag) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return saw_cancel_.count(tag) > 0; });
  }
  std::vector<int> started() {
    std::lock_guard lock(mu_);
    return started_;
  }
  int max_running() {
    std::lock_guard lock(mu_);
    return max_running_;
  }

 private:
  bool IsOpen(int tag) const { return open_all_ || open_.count(tag) > 0; }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> started_;  // guarded by mu_
  std::set<int> open_;        // guarded by mu_
  std::set<int> saw_cancel_;  // guarded by mu_
  bool open_all_ = false;     // guarded by mu_
  int running_ = 0;           // guarded by mu_
  int max_running_ = 0;       // guarded by mu_
};

// A service as offload::Server builds one: the executors MakeTaskExecutors makes
// from `registry`, over `pool`. REQUIRES: `pool` and `clock` outlive the service.
inline ErrorOr<std::unique_ptr<JobService>> CreateService(const ServerConfig& config, const TaskRegistry& registry,
                                                          std::unique_ptr<Store> store, ThreadPool* pool,
                                                          const WallClock& clock = SystemClock()) {
  auto executors = MakeTaskExecutors(config, registry, pool);
  if (!executors) return executors.error();
  return JobService::Create(config, std::move(*executors), std::move(store), clock);
}

inline json::value Tag(int tag) { return json::object{{"tag", tag}}; }

inline SubmitRequest Request(std::string task, json::value input, int priority = 0) {
  SubmitRequest r;
  r.task = std::move(task);
  r.input = std::move(input);
  r.priority = priority;
  return r;
}

class JobServiceTest : public ::testing::Test {
 protected:
  // cpu = 4, gpu = 1; "gated" holds the GPU, "gated_cpu" one CPU, "boom" throws,
  // "fails" returns an error, "echo" returns its input. The built-ins stay as they are.
  static ServerConfig BaseConfig() {
    ServerConfig c = DefaultConfig();
    c.resources["cpu"] = 4;
    c.resources["gpu"] = 1;
    AddTask(&c, "gated", "builtin:gated", {{"gpu", 1}});
    AddTask(&c, "gated_cpu", "builtin:gated", {{"cpu", 1}});
    AddTask(&c, "boom", "builtin:boom", {{"cpu", 1}});
    AddTask(&c, "fails", "builtin:fails", {{"cpu", 1}});
    AddTask(&c, "echo", "builtin:echo", {{"cpu", 1}});
    return c;
  }
  static void AddTask(ServerConfig* c, const std::string& name, const std::string& run,
                      std::map<std::string, std::int64_t> uses) {
    TaskConfig t;
    t.name = name;
    t.run = run;
    t.uses = std::move(uses);
    c->tasks[name] = t;
  }

  // `store`: the memory store when null.
  void Start(const ServerConfig& config, std::unique_ptr<Store> store = nullptr,
             const WallClock& clock = SystemClock()) {
    TaskRegistry registry = TaskRegistry::WithBuiltins();
    registry.Register(
        "gated",
        TaskDefinition{[this](const Job& job, Context& ctx) { return gate_.Run(job, ctx); }, {}, "application/json"});
    registry.Register("boom", TaskDefinition{[](const Job&, Context&) -> Result { throw std::runtime_error("kaboom"); },
                                             {},
                                             "application/json"});
    registry.Register(
        "fails",
        TaskDefinition{
            [](const Job&, Context&) { return Result::Fail("bad_luck", "it failed"); }, {}, "application/json"});
    // Returns its input {"v": ANY, "us": N, "fail_until": A}: after N microseconds,
    // failing with "bad_element" while the attempt is below A.
    registry.Register("echo",
                      TaskDefinition{[](const Job& job, Context&) {
                                       const json::object& in = job.input.as_object();
                                       if (auto* us = in.if_contains("us")) {
                                         std::this_thread::sleep_for(std::chrono::microseconds(us->to_number<int>()));
                                       }
                                       auto* until = in.if_contains("fail_until");
                                       if (until && job.attempt < until->to_number<int>()) {
                                         return Result::Fail("bad_element", "attempt " + std::to_string(job.attempt));
                                       }
                                       return Result::Json(in.contains("v") ? in.at("v") : nullptr);
                                     },
                                     {},
                                     "application/json"});
    if (!store) {
      auto memory = OpenStore("memory");
      ASSERT_TRUE(memory.has_value());
      store = std::move(*memory);
    }
    service_.reset();  // Before the pool its executors run on.
    pool_ = std::make_unique<ThreadPool>(InProcessPoolSize(config), /*nice_increment=*/5);
    auto service = CreateService(config, registry, std::move(store), pool_.get(), clock);
    ASSERT_TRUE(service.has_value()) << service.error().detail;
    service_ = std::move(*service);
  }
  void SetUp() override { Start(BaseConfig()); }

  static SnapshotOr Sync(const std::function<void(JobService::SnapshotCallback)>& op) {
    auto p = std::make_shared<std::promise<SnapshotOr>>();
    auto f = p->get_future();
    op([p](SnapshotOr r) { p->set_value(std::move(r)); });
    if (f.wait_for(kDeadline) != std::future_status::ready) {
      return MakeError(ErrorCode::kInternal, "the callback never ran");
    }
    return f.get();
  }
  SnapshotOr Submit(const std::string& task, json::value input, int priority = 0) {
    return Sync([&](JobService::SnapshotCallback done) {
      service_->Submit(Request(task, std::move(input), priority), std::move(done));
    });
  }
  // Submits a gated job that must be accepted; returns its id.
  std::string SubmitGated(int tag, int priority = 0, const std::string& task = "gated") {
    auto r = Submit(task, Tag(tag), priority);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().detail);
    return r ? r->record.id : "";
  }
  std::string SubmitOk(const std::string& task, json::value input) {
    auto r = Submit(task, std::move(input));
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().detail);
    return r ? r->record.id : "";
  }
  SnapshotOr Get(const std::string& id) {
    return Sync([&](JobService::SnapshotCallback done) { service_->Get(id, std::move(done)); });
  }
  SnapshotOr Cancel(const std::string& id) {
    return Sync([&](JobService::SnapshotCallback done) { service_->Cancel(id, std::move(done)); });
  }
  JobStatus StatusOf(const std::string& id) {
    auto r = Get(id);
    EXPECT_TRUE(r.has_value()) << id;
    return r ? r->record.status : JobStatus::kQueued;
  }
  struct Page {
    std::vector<JobSnapshot> jobs;
    std::optional<std::uint64_t> next;
  };
  Page List(const JobQuery& q) {
    auto p = std::make_shared<std::promise<Page>>();
    auto f = p->get_future();
    service_->List(q, [p](ErrorOr<std::vector<JobSnapshot>> jobs, std::optional<std::uint64_t> next) {
      EXPECT_TRUE(jobs.has_value()) << jobs.error().detail;
      Page page;
      if (jobs) page.jobs = std::move(*jobs);
      page.next = next;
      p->set_value(std::move(page));
    });
    if (f.wait_for(kDeadline) != std::future_status::ready) {
      ADD_FAILURE() << "List never answered";
      return Page{};
    }
    return f.get();
  }
  static std::vector<std::string> Ids(const std::vector<JobSnapshot>& jobs) {
    std::vector<std::string> ids;
    for (const auto& j : jobs) ids.push_back(j.record.id);
    return ids;
  }

  // Waits until the job has finished and returns its final snapshot.
  JobSnapshot WaitFinished(const std::string& id) {
    auto p = std::make_shared<std::promise<JobSnapshot>>();
    auto f = p->get_future();
    if (service_->AwaitFinish(id, [p](ErrorOr<JobSnapshot> s) { p->set_value(std::move(*s)); }) == 0) {
      auto r = Get(id);
      EXPECT_TRUE(r.has_value()) << id;
      return r ? *r : JobSnapshot{};
    }
    if (f.wait_for(kDeadline) != std::future_status::ready) {
      ADD_FAILURE() << "job " << id << " did not finish";
      return JobSnapshot{};
    }
    return f.get();
  }

  ResourceInfo Resource(const std::string& name) {
    for (const ResourceInfo& r : service_->Resources()) {
      if (r.name == name) return r;
    }
    ADD_FAILURE() << "no resource " << name;
    return {};
  }
  TaskInfo Task(const std::string& name) {
    for (const TaskInfo& t : service_->Tasks()) {
      if (t.name == name) return t;
    }
    ADD_FAILURE() << "no task " << name;
    return {};
  }

  // The gate and the pool outlive the service, whose destructor stops the handlers
  // that use them.
  Gate gate_;
  std::unique_ptr<ThreadPool> pool_;
  ManualClock clock_;  // A time of day that moves only by Advance, for Start to pass.
  std::unique_ptr<JobService> service_;
};

}  // namespace offload
