#include "tasks/builtin_tasks.h"

#include <time.h>

#include <boost/json.hpp>

#include "offload/error_types.h"
#include "tasks/mandelbrot.h"

namespace offload {
namespace {

namespace json = boost::json;

std::int64_t ThreadCpuNanos() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::optional<std::string> ValidateMs(const json::value& input) {
  std::int64_t ms;
  return ReadIntField(input, "ms", 0, kMaxBuiltinMs, std::nullopt, &ms);
}

Result Sleep(const Job& job, Context& ctx) {
  std::int64_t ms = 0;
  if (auto err = ReadIntField(job.input, "ms", 0, kMaxBuiltinMs, std::nullopt, &ms)) {
    return Result::Fail(error_type::kInvalidInput, *err);
  }
  if (!ctx.SleepFor(std::chrono::milliseconds(ms))) return Result::Fail(error_type::kCanceled, "canceled");
  return Result::Json(nullptr);
}

// Burns `ms` of CPU time on this thread, checking for cancellation about every
// millisecond of work.
Result Cpu(const Job& job, Context& ctx) {
  std::int64_t ms = 0;
  if (auto err = ReadIntField(job.input, "ms", 0, kMaxBuiltinMs, std::nullopt, &ms)) {
    return Result::Fail(error_type::kInvalidInput, *err);
  }
  const std::int64_t start = ThreadCpuNanos();
  const std::int64_t budget = ms * 1'000'000;
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  std::uint64_t rounds = 0;
  for (;;) {
    for (int i = 0; i < 20000; ++i) {  // Roughly tens of microseconds.
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
    ++rounds;
    std::int64_t used = ThreadCpuNanos() - start;
    if (used >= budget) break;
    if (ctx.canceled()) return Result::Fail(error_type::kCanceled, "canceled");
    if (budget > 0) ctx.ReportProgress(static_cast<double>(used) / static_cast<double>(budget));
  }
  return Result::Json(json::object{{"ms", ms}, {"rounds", rounds}, {"checksum", x & 0xffff}});
}

std::optional<std::string> ValidateMandelbrot(const json::value& input) {
  MandelbrotParams p;
  return ReadMandelbrotParams(input, &p);
}

Result Mandelbrot(const Job& job, Context& ctx) {
  MandelbrotParams p;
  if (auto err = ReadMandelbrotParams(job.input, &p)) return Result::Fail(error_type::kInvalidInput, *err);
  std::string png;
  if (!RenderMandelbrotPng(p, ctx, &png)) {
    if (ctx.canceled()) return Result::Fail(error_type::kCanceled, "canceled");
    return Result::Fail(error_type::kEncodeError, "libpng failed to encode the image");
  }
  return Result::Bytes("image/png", std::move(png));
}

}  // namespace

std::optional<std::string> ReadIntField(const json::value& input, const char* field, std::int64_t min, std::int64_t max,
                                        std::optional<std::int64_t> fallback, std::int64_t* out) {
  const json::object* obj = input.if_object();
  if (!obj) return std::string("input must be a JSON object");
  const json::value* v = obj->if_contains(field);
  if (!v || v->is_null()) {
    if (fallback) {
      *out = *fallback;
      return std::nullopt;
    }
    return std::string("input.") + field + " is required";
  }
  std::int64_t n;
  if (v->is_int64())
    n = v->get_int64();
  else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    n = static_cast<std::int64_t>(v->get_uint64());
  else if (v->is_uint64())
    n = INT64_MAX;
  else
    return std::string("input.") + field + " must be an integer";
  if (n < min || n > max) {
    return std::string("input.") + field + " must be between " + std::to_string(min) + " and " + std::to_string(max);
  }
  *out = n;
  return std::nullopt;
}

void RegisterBuiltinTasks(TaskRegistry* registry) {
  registry->Register("noop", {[](const Job&, Context&) { return Result::Json(nullptr); }, {}, "application/json"});
  registry->Register("sleep", {Sleep, ValidateMs, "application/json"});
  registry->Register("cpu", {Cpu, ValidateMs, "application/json"});
  registry->Register("mandelbrot", {Mandelbrot, ValidateMandelbrot, "image/png"});
}

}  // namespace offload
