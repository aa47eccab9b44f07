// Helpers for executor tests: start an execution and wait for its outcome with a
// deadline.
#pragma once

#include <unistd.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "exec/executor.h"
#include "exec/process_supervisor.h"
#include "exec/run_context.h"

namespace offload::testing {

// One execution in flight.
class Pending {
 public:
  Pending(Executor& executor, boost::json::value input, std::string job_id = "job-1",
          std::shared_ptr<RunContext> context = std::make_shared<RunContext>())
      : context_(std::move(context)) {
    auto promise = std::make_shared<std::promise<Result>>();
    future_ = promise->get_future();
    Execution exec;
    exec.job_id = std::move(job_id);
    exec.task = "test";
    exec.input = std::make_shared<const boost::json::value>(std::move(input));
    exec.context = context_;
    executor.Start(std::move(exec), [promise](Result r) { promise->set_value(std::move(r)); });
  }

  RunContext& context() { return *context_; }

  // The outcome, or nullopt when it did not come within `deadline`.
  std::optional<Result> Wait(std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    if (!result_ && future_.wait_for(deadline) == std::future_status::ready) result_ = future_.get();
    return result_;
  }
  bool done() const { return result_ || future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

 private:
  std::shared_ptr<RunContext> context_;
  std::future<Result> future_;
  std::optional<Result> result_;
};

// Asio opens its reactor's descriptors (epoll, eventfd, timerfd) on first use: a
// timer makes it do so now, so that descriptor counts taken afterwards compare
// like with like.
inline void WarmUp(ProcessSupervisor& sup) {
  std::promise<void> fired;
  boost::asio::steady_timer timer(sup.context(), std::chrono::milliseconds(0));
  timer.async_wait([&](const boost::system::error_code&) { fired.set_value(); });
  fired.get_future().wait();
}

// The Python that runs test workers: the system's when there is one, since a
// version manager's `python3` on PATH may be a shell script that costs a second per
// start on a loaded machine.
inline std::string TestPython() { return ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

inline std::string Describe(const Result& r) {
  if (r.ok()) {
    return "ok " + r.output()->content_type + " " +
           (r.output()->is_json() ? boost::json::serialize(r.output()->json) : r.output()->bytes.substr(0, 100));
  }
  return "failed " + r.error().type + ": " + r.error().message;
}

}  // namespace offload::testing
