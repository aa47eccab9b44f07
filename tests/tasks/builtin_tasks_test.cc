// The built-in tasks: input validation, cancellation latency, and real output.
#include "tasks/builtin_tasks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "exec/run_context.h"
#include "offload/task_registry.h"

namespace offload {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// offload promises cancellation within 50 ms; the bound here is looser so that a
// loaded machine or a sanitizer build does not make the test flaky, while a handler
// that ignores cancellation (and would run for seconds) still fails it.
constexpr auto kCancelBound = std::chrono::milliseconds(250);
constexpr auto kDeadline = std::chrono::seconds(10);

class BuiltinTasksTest : public ::testing::Test {
 protected:
  const TaskDefinition& Def(const std::string& name) {
    const TaskDefinition* d = registry_.Find(name);
    EXPECT_NE(d, nullptr) << name;
    return *d;
  }
  // The validator's verdict: nullopt when accepted.
  std::optional<std::string> Validate(const std::string& task, std::string_view input) {
    const TaskDefinition& d = Def(task);
    if (!d.validate) return std::nullopt;
    return d.validate(json::parse(input));
  }
  Result Run(const std::string& task, const json::value& input, Context& ctx) {
    Job job{"job-id", task, input, 0, 1};
    return Def(task).handler(job, ctx);
  }

  TaskRegistry registry_ = TaskRegistry::WithBuiltins();
};

// A Context that tells the test when the handler is inside its work loop: once it
// sleeps, or once it checks for cancellation (and gets "no") after having reported
// progress. A cancel requested after WaitBusy() therefore lands mid-work, between
// two checks, which is where a handler that checks too rarely is caught.
class ObservedContext final : public Context {
 public:
  bool canceled() const override {
    const bool c = inner_.canceled();
    if (!c && progressed_.load()) MarkBusy();
    return c;
  }
  bool SleepFor(std::chrono::milliseconds d) override {
    MarkBusy();
    return inner_.SleepFor(d);
  }
  void ReportProgress(double fraction) override {
    progressed_ = true;
    inner_.ReportProgress(fraction);
  }
  bool WaitBusy() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [this] { return busy_; });
  }
  void Cancel() { inner_.RequestStop(StopReason::kCanceled); }

 private:
  void MarkBusy() const {
    {
      std::lock_guard lock(mu_);
      if (busy_) return;
      busy_ = true;
    }
    cv_.notify_all();
  }
  RunContext inner_;
  std::atomic<bool> progressed_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable bool busy_ = false;  // guarded by mu_
};

TEST_F(BuiltinTasksTest, AllBuiltinsAreRegistered) {
  for (const char* name : {"noop", "sleep", "cpu", "mandelbrot"}) {
    const TaskDefinition* d = registry_.Find(name);
    ASSERT_NE(d, nullptr) << name;
    EXPECT_TRUE(static_cast<bool>(d->handler)) << name;
  }
  EXPECT_EQ(registry_.Find("render"), nullptr);
  EXPECT_EQ(Def("mandelbrot").content_type, "image/png");
  EXPECT_EQ(Def("sleep").content_type, "application/json");
}

TEST_F(BuiltinTasksTest, MsIsValidatedForSleepAndCpu) {
  for (const char* task : {"sleep", "cpu"}) {
    SCOPED_TRACE(task);
    EXPECT_EQ(Validate(task, R"({"ms": 0})"), std::nullopt);
    EXPECT_EQ(Validate(task, R"({"ms": 3600000})"), std::nullopt);
    for (const char* bad :
         {R"({})", R"({"ms": null})", R"({"ms": -1})", R"({"ms": 3600001})", R"({"ms": 18446744073709551615})",
          R"({"ms": 9223372036854775807})", R"({"ms": 1.5})", R"({"ms": "10"})", R"({"ms": true})"}) {
      auto e = Validate(task, bad);
      ASSERT_TRUE(e.has_value()) << bad;
      EXPECT_NE(e->find("input.ms"), std::string::npos) << bad << " -> " << *e;
    }
    for (const char* bad : {"null", "[10]", "10", R"("ms")"}) {
      auto e = Validate(task, bad);
      ASSERT_TRUE(e.has_value()) << bad;
      EXPECT_NE(e->find("object"), std::string::npos) << bad << " -> " << *e;
    }
  }
}

TEST_F(BuiltinTasksTest, MandelbrotSizesAreValidated) {
  EXPECT_EQ(Validate("mandelbrot", "null"), std::nullopt) << "all defaults";
  EXPECT_EQ(Validate("mandelbrot", "{}"), std::nullopt);
  EXPECT_EQ(Validate("mandelbrot", R"({"width": 8192, "height": 1, "max_iter": 1})"), std::nullopt);
  struct Case {
    const char* input;
    const char* field;
  };
  for (const Case& c :
       {Case{R"({"width": 8193})", "input.width"}, Case{R"({"width": 0})", "input.width"},
        Case{R"({"width": -5})", "input.width"}, Case{R"({"width": "wide"})", "input.width"},
        Case{R"({"height": 8193})", "input.height"}, Case{R"({"height": 100000000000})", "input.height"},
        Case{R"({"max_iter": 0})", "input.max_iter"}, Case{R"({"max_iter": 100001})", "input.max_iter"},
        Case{R"({"width": 64, "height": 9000})", "input.height"}}) {
    auto e = Validate("mandelbrot", c.input);
    ASSERT_TRUE(e.has_value()) << c.input;
    EXPECT_NE(e->find(c.field), std::string::npos) << c.input << " -> " << *e;
  }
  EXPECT_TRUE(Validate("mandelbrot", "[1]").has_value());
}

TEST_F(BuiltinTasksTest, HandlersRecheckTheirInput) {
  // A handler may be reached without the validator (e.g. a future retry path).
  RunContext ctx;
  Result r = Run("sleep", json::parse(R"({"ms": -1})"), ctx);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "invalid_input");
  EXPECT_NE(r.error().message.find("input.ms"), std::string::npos);
  r = Run("mandelbrot", json::parse(R"({"width": 9000})"), ctx);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "invalid_input");
}

TEST_F(BuiltinTasksTest, NoopReturnsNull) {
  RunContext ctx;
  Result r = Run("noop", json::value(), ctx);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.output()->is_json());
  EXPECT_TRUE(r.output()->json.is_null());
}

TEST_F(BuiltinTasksTest, ShortSleepSucceeds) {
  RunContext ctx;
  const auto t0 = Clock::now();
  Result r = Run("sleep", json::parse(R"({"ms": 20})"), ctx);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(20));
  EXPECT_TRUE(r.output()->json.is_null());
}

TEST_F(BuiltinTasksTest, SleepHonoursCancellationPromptly) {
  ObservedContext ctx;
  Result result = Result::Json(nullptr);
  Clock::time_point returned;
  std::thread runner([&] {
    result = Run("sleep", json::parse(R"({"ms": 60000})"), ctx);
    returned = Clock::now();
  });
  ASSERT_TRUE(ctx.WaitBusy()) << "the handler never started sleeping";
  const auto canceled_at = Clock::now();
  ctx.Cancel();
  runner.join();
  const auto latency = returned - canceled_at;
  EXPECT_LT(latency, kCancelBound) << std::chrono::duration_cast<std::chrono::milliseconds>(latency).count() << " ms";
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().type, "canceled");
}

TEST_F(BuiltinTasksTest, CpuHonoursCancellationPromptly) {
  ObservedContext ctx;
  Result result = Result::Json(nullptr);
  Clock::time_point returned;
  std::thread runner([&] {
    result = Run("cpu", json::parse(R"({"ms": 60000})"), ctx);
    returned = Clock::now();
  });
  ASSERT_TRUE(ctx.WaitBusy()) << "the handler never reported progress";
  const auto canceled_at = Clock::now();
  ctx.Cancel();
  runner.join();
  const auto latency = returned - canceled_at;
  EXPECT_LT(latency, kCancelBound) << std::chrono::duration_cast<std::chrono::milliseconds>(latency).count() << " ms";
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().type, "canceled");
}

TEST_F(BuiltinTasksTest, CpuBurnsAndReportsWhatItDid) {
  RunContext ctx;
  Result r = Run("cpu", json::parse(R"({"ms": 5})"), ctx);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const json::value& out = r.output()->json;
  EXPECT_EQ(out.at("ms"), 5);
  EXPECT_GT(out.at("rounds").to_number<std::int64_t>(), 0);
  EXPECT_GE(ctx.progress(), 0.0);
  EXPECT_LE(ctx.progress(), 1.0);
}

TEST_F(BuiltinTasksTest, MandelbrotProducesAPng) {
  RunContext ctx;
  Result r = Run("mandelbrot", json::parse(R"({"width": 64, "height": 48, "max_iter": 50})"), ctx);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Output& out = *r.output();
  EXPECT_EQ(out.content_type, "image/png");
  EXPECT_FALSE(out.is_json());
  const std::string kSignature("\x89PNG\r\n\x1a\n", 8);
  ASSERT_GE(out.bytes.size(), 33u);
  EXPECT_EQ(out.bytes.substr(0, 8), kSignature);
  // IHDR follows: length, "IHDR", then width and height as big-endian 32-bit ints.
  EXPECT_EQ(out.bytes.substr(12, 4), "IHDR");
  auto be32 = [&](size_t at) {
    std::uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(out.bytes[at + i]);
    return v;
  };
  EXPECT_EQ(be32(16), 64u);
  EXPECT_EQ(be32(20), 48u);
  EXPECT_EQ(out.bytes.substr(out.bytes.size() - 8, 4), "IEND");
}

TEST_F(BuiltinTasksTest, MandelbrotStopsWhenCanceled) {
  RunContext ctx;
  ctx.RequestStop(StopReason::kCanceled);
  const auto t0 = Clock::now();
  Result r = Run("mandelbrot", json::parse(R"({"width": 8192, "height": 8192, "max_iter": 100000})"), ctx);
  EXPECT_LT(Clock::now() - t0, kCancelBound) << "rendered anyway";
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "canceled");
}

TEST_F(BuiltinTasksTest, MandelbrotHonoursCancellationPromptly) {
  ObservedContext ctx;
  Result result = Result::Json(nullptr);
  Clock::time_point returned;
  std::thread runner([&] {
    // The widest image and the most iterations: the second row crosses the set, so
    // it alone takes hundreds of milliseconds. Cancellation arrives during it (the
    // first progress report comes after row 0) and must not wait for the row's end.
    result = Run("mandelbrot", json::parse(R"({"width": 8192, "height": 3, "max_iter": 100000})"), ctx);
    returned = Clock::now();
  });
  ASSERT_TRUE(ctx.WaitBusy()) << "the handler never got to row 1";
  const auto canceled_at = Clock::now();
  ctx.Cancel();
  runner.join();
  const auto latency = returned - canceled_at;
  EXPECT_LT(latency, kCancelBound) << std::chrono::duration_cast<std::chrono::milliseconds>(latency).count() << " ms";
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().type, "canceled");
}

}  // namespace
}  // namespace offload
