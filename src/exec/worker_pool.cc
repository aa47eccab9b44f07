#include "exec/worker_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <deque>
#include <fstream>
#include <future>
#include <optional>

#include "offload/error_types.h"
#include "util/base64.h"
#include "util/json_reader.h"
#include "util/json_writer.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::size_t kStderrTail = 4096;
// A log line longer than this is cut; what is kept of stderr for error messages is
// the last kStderrTail bytes regardless.
constexpr std::size_t kMaxLogLine = 4096;
// Room for the envelope around a result of max_result bytes (base64 adds a third).
std::int64_t LineLimit(std::int64_t max_result) { return max_result + max_result / 3 + 4096; }
// Stray stdout lines logged per worker before the rest are only counted.
constexpr int kMaxNoiseLogs = 5;
constexpr std::chrono::seconds kReadyWarning{30};

// VmRSS of `pid` in bytes, or -1 when /proc cannot tell.
std::int64_t ReadRss(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  }
  return -1;
}

std::string StderrSuffix(const OutputTail& tail) {
  if (tail.empty()) return "; its stderr was empty";
  return "; its last stderr:\n" + tail.str();
}

}  // namespace

struct WorkerPool::Impl {
  struct Worker;
  struct PoolJob {
    Impl* pool = nullptr;
    Execution exec;
    ExecutionDone done;
    Worker* worker = nullptr;  // Set while a worker has it.
  };
  struct Worker {
    enum class State { kStarting, kIdle, kBusy, kStopping };
    int slot = 0;
    std::shared_ptr<Process> proc;
    State state = State::kStarting;
    std::shared_ptr<PoolJob> job;
    // Set when the pool stops the worker during a job: what that job reports.
    std::optional<Result> job_outcome;
    bool expected_exit = false;
    std::string line;            // Stdout not yet ended by a newline.
    std::int64_t out_bytes = 0;  // Stdout since the current job began (or the last ended).
    std::string log_line;        // Stderr not yet ended by a newline.
    OutputTail err_tail{kStderrTail};
    std::int64_t jobs_done = 0;
    int noise_lines = 0;
    std::optional<asio::steady_timer> ready_timer;
  };

  Impl(ProcessSupervisor* sup, WorkerPoolOptions opt)
      : supervisor(sup), options(std::move(opt)), slots(options.workers) {
    for (int i = 0; i < options.workers; ++i) respawn_timers.emplace_back(supervisor->context());
  }

  // Everything below: supervisor thread only.
  void SpawnWorker(int slot);
  void OnSpawned(const std::shared_ptr<Worker>& w, ErrorOr<std::shared_ptr<Process>> proc);
  void ScheduleRespawn(int slot, bool after_failure);
  void OnStdout(Worker* w, std::string_view data);
  void OnStderr(Worker* w, std::string_view data);
  void HandleLine(Worker* w, std::string_view line);
  void OnExit(Worker* w, const ExitStatus& status);
  void FinishJob(Worker* w, Result outcome);
  void StopWorker(Worker* w, const std::string& why);
  void Enqueue(std::shared_ptr<PoolJob> job);
  void StopJob(const std::shared_ptr<PoolJob>& job);
  void Dispatch();
  void FailOneWaiting(const std::string& type, const std::string& message);
  void Shutdown();
  Result ParseResult(const json::object& msg, std::size_t line_size) const;
  std::string Name(const Worker* w) const {
    return "task " + options.task + ": worker " + std::to_string(w->proc ? w->proc->pid() : 0);
  }

  ProcessSupervisor* const supervisor;
  const WorkerPoolOptions options;

  std::vector<std::shared_ptr<Worker>> slots;  // Null while the slot waits to respawn.
  std::vector<asio::steady_timer> respawn_timers;
  std::deque<std::shared_ptr<PoolJob>> waiting;
  int consecutive_failures = 0;
  std::int64_t started = 0;
  std::int64_t unexpected_exits = 0;
  bool closing = false;

  // The destructor waits on these for every worker to be gone. Held only to read or
  // change the two fields below, never while calling out.
  Mutex mu;
  CondVar cv;
  int alive GUARDED_BY(mu) = 0;           // Slots holding a process.
  bool shut_down GUARDED_BY(mu) = false;  // Shutdown has run, so no worker starts again.
};

void WorkerPool::Impl::SpawnWorker(int slot) {
  if (closing || slots[slot]) return;
  // The slot is taken (and counted alive) from now: the spawn completes later.
  auto w = std::make_shared<Worker>();
  w->slot = slot;
  slots[slot] = w;
  {
    MutexLock lock(&mu);
    ++alive;
  }
  ++started;
  Worker* raw = w.get();
  Process::Callbacks cb;
  cb.on_stdout = [this, raw](std::string_view d) { OnStdout(raw, d); };
  cb.on_stderr = [this, raw](std::string_view d) { OnStderr(raw, d); };
  cb.on_exit = [this, raw](const ExitStatus& s) { OnExit(raw, s); };
  Process::Start(supervisor, options.spawn, std::move(cb),
                 [this, w](ErrorOr<std::shared_ptr<Process>> proc) { OnSpawned(w, std::move(proc)); });
}

void WorkerPool::Impl::OnSpawned(const std::shared_ptr<Worker>& w, ErrorOr<std::shared_ptr<Process>> proc) {
  if (!proc) {
    slots[w->slot].reset();
    {
      MutexLock lock(&mu);
      --alive;
    }
    cv.SignalAll();
    if (closing) return;
    spdlog::error("task {}: {}", options.task, proc.error().detail);
    ++unexpected_exits;
    ++consecutive_failures;
    FailOneWaiting(error_type::kWorkerUnavailable, proc.error().detail);
    return ScheduleRespawn(w->slot, true);
  }
  w->proc = std::move(*proc);
  if (w->state == Worker::State::kStopping) {  // Shutdown came first.
    w->proc->CloseStdin();
    return w->proc->Terminate(options.kill_grace);
  }
  spdlog::debug("{}: started, waiting for its ready message", Name(w.get()));
  w->ready_timer.emplace(supervisor->context(), kReadyWarning);
  w->ready_timer->async_wait([this, weak = std::weak_ptr<Worker>(w)](const boost::system::error_code& ec) {
    auto w = weak.lock();
    if (ec || !w || w->state != Worker::State::kStarting) return;
    spdlog::warn(
        "{}: no {{\"type\":\"ready\"}} line on stdout after {} s; jobs wait until it "
        "comes (docs/worker-protocol.md)",
        Name(w.get()), kReadyWarning.count());
  });
}

void WorkerPool::Impl::ScheduleRespawn(int slot, bool after_failure) {
  if (closing) return;
  std::chrono::milliseconds delay{0};
  if (after_failure && consecutive_failures > 0) {
    delay = options.backoff_initial;
    for (int i = 1; i < consecutive_failures && delay < options.backoff_max; ++i) delay *= 2;
    delay = std::min(delay, options.backoff_max);
  }
  if (delay.count() == 0) return SpawnWorker(slot);
  spdlog::info("task {}: restarting a worker in {} ms ({} unexpected exit(s) in a row)", options.task, delay.count(),
               consecutive_failures);
  auto& timer = respawn_timers[slot];
  timer.expires_after(delay);
  timer.async_wait([this, slot](const boost::system::error_code& ec) {
    if (!ec && !closing) SpawnWorker(slot);
  });
}

void WorkerPool::Impl::OnStdout(Worker* w, std::string_view data) {
  if (w->state == Worker::State::kStopping) return;
  w->out_bytes += static_cast<std::int64_t>(data.size());
  if (w->out_bytes > LineLimit(options.max_result)) {
    const std::string why = "wrote more than max_result (" + std::to_string(options.max_result) + " bytes) to stdout";
    if (w->job) w->job_outcome = Result::Fail(error_type::kResultTooLarge, "the worker " + why);
    w->line.clear();
    w->line.shrink_to_fit();
    return StopWorker(w, why);
  }
  while (!data.empty() && w->state != Worker::State::kStopping) {
    const std::size_t nl = data.find('\n');
    if (nl == std::string_view::npos) {
      w->line.append(data);
      return;
    }
    if (w->line.empty()) {
      HandleLine(w, data.substr(0, nl));
    } else {
      w->line.append(data.substr(0, nl));
      std::string line = std::move(w->line);
      w->line.clear();
      HandleLine(w, line);
    }
    data.remove_prefix(nl + 1);
  }
  if (w->line.capacity() > (1 << 20) && w->line.empty()) w->line.shrink_to_fit();
}

void WorkerPool::Impl::OnStderr(Worker* w, std::string_view data) {
  w->err_tail.Append(data);
  while (!data.empty()) {
    const std::size_t nl = data.find('\n');
    std::string_view part = data.substr(0, nl);
    if (w->log_line.size() < kMaxLogLine) {
      w->log_line.append(part.substr(0, kMaxLogLine - w->log_line.size()));
    }
    if (nl == std::string_view::npos) return;
    spdlog::info("{}: {}", Name(w), w->log_line);
    w->log_line.clear();
    data.remove_prefix(nl + 1);
  }
}

void WorkerPool::Impl::HandleLine(Worker* w, std::string_view line) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
  ErrorOr<json::value> parsed = ParseJson(line);
  if (!parsed && parsed.error().code == ErrorCode::kInvalidArgument) {
    // A protocol message with a number no value holds (1e400): it cannot be read as
    // the worker meant it, and guessing would turn a result into Infinity.
    if (w->state == Worker::State::kBusy) {
      return FinishJob(w, Result::Fail(error_type::kInvalidResult,
                                       "the worker sent a message that is not usable JSON: " + parsed.error().detail));
    }
    spdlog::warn("{}: ignored a stdout line with a number out of range: {}", Name(w), parsed.error().detail);
    return;
  }
  const json::value v = parsed ? std::move(*parsed) : json::value();
  const json::object* msg = v.is_object() ? &v.get_object() : nullptr;
  const json::value* type_v = msg ? msg->if_contains("type") : nullptr;
  const json::string* type = type_v ? type_v->if_string() : nullptr;
  if (!type) {
    if (++w->noise_lines <= kMaxNoiseLogs) {
      spdlog::warn(
          "{}: ignored a stdout line that is not a protocol message (print to stderr "
          "instead; docs/worker-protocol.md): {:.200}",
          Name(w), line);
    }
    return;
  }
  if (*type == "ready") {
    if (w->state == Worker::State::kStarting) {
      w->state = Worker::State::kIdle;
      w->ready_timer.reset();
      spdlog::debug("{}: ready", Name(w));
      Dispatch();
    }
    return;
  }
  // The rest are about the current job.
  const json::value* id = msg->if_contains("id");
  if (w->state != Worker::State::kBusy || !id || !id->is_string() || id->get_string() != w->job->exec.job_id) {
    spdlog::warn("{}: ignored a \"{}\" message that is not about its current job: {:.200}", Name(w),
                 std::string_view(*type), line);
    return;
  }
  if (*type == "progress") {
    const json::value* p = msg->if_contains("progress");
    if (p && p->is_number()) w->job->exec.context->ReportProgress(p->to_number<double>());
  } else if (*type == "result") {
    FinishJob(w, ParseResult(*msg, line.size()));
  } else if (*type == "error") {
    JobError err{error_type::kWorkerError, "the worker reported an error without a message"};
    if (const json::value* e = msg->if_contains("error")) {
      if (e->is_string()) {
        err.message = e->get_string();
      } else if (e->is_object()) {
        const json::object& o = e->get_object();
        if (auto* t = o.if_contains("type"); t && t->is_string() && !t->get_string().empty()) {
          err.type = t->get_string();
        }
        if (auto* m = o.if_contains("message"); m && m->is_string()) err.message = m->get_string();
      }
    }
    FinishJob(w, Result::Fail(std::move(err.type), std::move(err.message)));
  } else {
    spdlog::warn("{}: ignored a message of unknown type \"{}\"", Name(w), std::string_view(*type));
  }
}

Result WorkerPool::Impl::ParseResult(const json::object& msg, std::size_t line_size) const {
  const Result too_large =
      Result::Fail(error_type::kResultTooLarge,
                   "the worker's result is larger than max_result (" + std::to_string(options.max_result) + " bytes)");
  const json::value* r = msg.if_contains("result");
  if (options.content_type == "application/json") {
    // The line less its envelope is the result's size, give or take the id.
    if (static_cast<std::int64_t>(line_size) > options.max_result + 256) return too_large;
    return Result::Json(r ? *r : json::value(nullptr));
  }
  if (!r || !r->is_string()) {
    return Result::Fail(error_type::kInvalidResult, "the worker's result for a task of content type " +
                                                        options.content_type +
                                                        " must be a string (base64 with \"encoding\": \"base64\")");
  }
  const json::value* enc = msg.if_contains("encoding");
  if (enc && enc->is_string() && enc->get_string() == "base64") {
    std::string bytes;
    if (!Base64Decode(r->get_string(), &bytes)) {
      return Result::Fail(error_type::kInvalidResult, "the worker's result is not valid base64");
    }
    if (static_cast<std::int64_t>(bytes.size()) > options.max_result) return too_large;
    return Result::Bytes(options.content_type, std::move(bytes));
  }
  if (static_cast<std::int64_t>(r->get_string().size()) > options.max_result) return too_large;
  return Result::Bytes(options.content_type, std::string(r->get_string()));
}

void WorkerPool::Impl::FinishJob(Worker* w, Result outcome) {
  std::shared_ptr<PoolJob> job = std::move(w->job);
  w->job.reset();
  job->worker = nullptr;
  ++w->jobs_done;
  w->out_bytes = 0;
  consecutive_failures = 0;
  w->state = Worker::State::kIdle;
  ExecutionDone done = std::move(job->done);
  done(std::move(outcome));
  if (options.max_jobs_per_worker > 0 && w->jobs_done >= options.max_jobs_per_worker) {
    return StopWorker(w, "served " + std::to_string(w->jobs_done) + " jobs (max_jobs_per_worker)");
  }
  if (options.max_rss > 0) {
    const std::int64_t rss = ReadRss(w->proc->pid());
    if (rss > options.max_rss) {
      return StopWorker(
          w, "RSS of " + std::to_string(rss) + " bytes is over max_rss (" + std::to_string(options.max_rss) + ")");
    }
  }
  Dispatch();
}

void WorkerPool::Impl::StopWorker(Worker* w, const std::string& why) {
  if (w->state == Worker::State::kStopping) return;
  spdlog::info("{}: stopping it: {}", Name(w), why);
  w->state = Worker::State::kStopping;
  w->expected_exit = true;
  w->ready_timer.reset();
  if (!w->proc) return;  // Still being spawned: OnSpawned stops it.
  w->proc->CloseStdin();
  w->proc->Terminate(options.kill_grace);
}

void WorkerPool::Impl::OnExit(Worker* w, const ExitStatus& status) {
  std::shared_ptr<Worker> keep = std::move(slots[w->slot]);
  slots[w->slot].reset();
  {
    MutexLock lock(&mu);
    --alive;
  }
  cv.SignalAll();
  const bool before_ready = w->state == Worker::State::kStarting;
  const std::string name = Name(w);
  const std::string tail = StderrSuffix(w->err_tail);
  if (!w->log_line.empty()) spdlog::info("{}: {}", name, w->log_line);
  if (w->expected_exit) {
    spdlog::debug("{}: {}", name, status.Describe());
  } else {
    ++unexpected_exits;
    ++consecutive_failures;
    spdlog::warn("{}: {} unexpectedly{}", name, status.Describe(), tail);
  }
  if (std::shared_ptr<PoolJob> job = std::move(w->job)) {
    job->worker = nullptr;
    Result outcome = w->job_outcome ? std::move(*w->job_outcome)
                                    : Result::Fail(error_type::kWorkerDied, "the worker process " + status.Describe() +
                                                                                " while running the job" + tail);
    ExecutionDone done = std::move(job->done);
    done(std::move(outcome));
  } else if (before_ready && !w->expected_exit) {
    FailOneWaiting(error_type::kWorkerDied, "the worker process " + status.Describe() +
                                                " before it was ready (it never said {\"type\":\"ready\"})" + tail);
  }
  ScheduleRespawn(w->slot, !w->expected_exit);
}

void WorkerPool::Impl::Enqueue(std::shared_ptr<PoolJob> job) {
  if (closing || job->exec.context->canceled()) {
    ExecutionDone done = std::move(job->done);
    return done(Result::Fail(closing ? error_type::kShutdown : error_type::kCanceled,
                             "the job was stopped before a worker took it"));
  }
  waiting.push_back(std::move(job));
  Dispatch();
}

void WorkerPool::Impl::StopJob(const std::shared_ptr<PoolJob>& job) {
  if (!job->done) return;  // Finished already.
  if (job->worker) {
    Worker* w = job->worker;
    if (!w->job_outcome) w->job_outcome = Result::Fail(error_type::kCanceled, "the job was stopped");
    return StopWorker(w, "its job " + job->exec.job_id + " was stopped");
  }
  auto it = std::find(waiting.begin(), waiting.end(), job);
  if (it == waiting.end()) return;
  waiting.erase(it);
  ExecutionDone done = std::move(job->done);
  done(Result::Fail(error_type::kCanceled, "the job was stopped before a worker took it"));
}

void WorkerPool::Impl::Dispatch() {
  for (auto& w : slots) {
    if (waiting.empty()) return;
    if (!w || w->state != Worker::State::kIdle) continue;
    std::shared_ptr<PoolJob> job = std::move(waiting.front());
    waiting.pop_front();
    w->state = Worker::State::kBusy;
    w->out_bytes = 0;
    job->worker = w.get();
    // {"type":"job","id":…,"task":…,"input":…,"attempt":N}, written in place rather
    // than built as an object, which would copy the input. kKeepKind: the worker
    // reads 2.0 as the float its client sent.
    std::string line = R"({"type":"job","id":)";
    AppendJsonString(&line, job->exec.job_id);
    line += R"(,"task":)";
    AppendJsonString(&line, options.task);
    line += R"(,"input":)";
    AppendJson(&line, *job->exec.input, JsonNumbers::kKeepKind);
    line += R"(,"attempt":)";
    line += std::to_string(job->exec.attempt);
    line += "}\n";
    w->job = std::move(job);
    w->proc->Write(std::move(line));
  }
}

void WorkerPool::Impl::FailOneWaiting(const std::string& type, const std::string& message) {
  if (waiting.empty()) return;
  std::shared_ptr<PoolJob> job = std::move(waiting.front());
  waiting.pop_front();
  ExecutionDone done = std::move(job->done);
  done(Result::Fail(type, message));
}

void WorkerPool::Impl::Shutdown() {
  closing = true;
  for (auto& t : respawn_timers) t.cancel();
  while (!waiting.empty()) {
    FailOneWaiting(error_type::kShutdown, "the server shut down before a worker took the job");
  }
  for (auto& w : slots) {
    if (!w) continue;
    if (w->job && !w->job_outcome) {
      w->job_outcome = Result::Fail(error_type::kShutdown, "the server shut down while the job ran");
    }
    StopWorker(w.get(), "the server is shutting down");
  }
  MutexLock lock(&mu);
  shut_down = true;
  cv.SignalAll();
}

WorkerPool::WorkerPool(std::shared_ptr<ProcessSupervisor> supervisor, WorkerPoolOptions options)
    : supervisor_(std::move(supervisor)) {
  options.workers = std::max(1, options.workers);
  impl_ = std::make_unique<Impl>(supervisor_.get(), std::move(options));
  asio::post(supervisor_->context(), [impl = impl_.get()] {
    for (int i = 0; i < impl->options.workers; ++i) impl->SpawnWorker(i);
  });
}

WorkerPool::~WorkerPool() {
  Impl* impl = impl_.get();
  asio::post(supervisor_->context(), [impl] { impl->Shutdown(); });
  // Every 5 s until they are gone, a warning, logged without the lock (OnExit on the
  // supervisor thread needs it).
  for (;;) {
    bool gone;
    int alive;
    {
      MutexLock lock(&impl->mu);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!(impl->shut_down && impl->alive == 0)) {
        if (!impl->cv.WaitUntil(&impl->mu, deadline)) break;
      }
      gone = impl->shut_down && impl->alive == 0;
      alive = impl->alive;
    }
    if (gone) break;
    spdlog::warn("task {}: still waiting for {} worker(s) to exit", impl->options.task, alive);
  }
  // A barrier: handlers queued before it (a timer that fired as it was cancelled)
  // still see a live Impl, and check `closing`.
  std::promise<void> barrier;
  asio::post(supervisor_->context(), [&barrier] { barrier.set_value(); });
  barrier.get_future().wait();
}

void WorkerPool::Start(Execution exec, ExecutionDone done) {
  auto job = std::make_shared<Impl::PoolJob>();
  job->pool = impl_.get();
  job->exec = std::move(exec);
  job->done = std::move(done);
  std::shared_ptr<RunContext> context = job->exec.context;
  std::weak_ptr<Impl::PoolJob> weak = job;
  asio::post(supervisor_->context(), [job = std::move(job)]() mutable {
    Impl* impl = job->pool;
    impl->Enqueue(std::move(job));
  });
  // Registered after the post so that the stop, if it comes, is handled after the
  // enqueue; a stop that came before is seen there through canceled().
  context->OnStop([weak, sup = std::weak_ptr<ProcessSupervisor>(supervisor_)] {
    auto supervisor = sup.lock();
    if (!supervisor) return;
    asio::post(supervisor->context(), [weak] {
      if (auto job = weak.lock()) job->pool->StopJob(job);
    });
  });
}

WorkerPool::Stats WorkerPool::StatsForTest() {
  std::promise<Stats> result;
  asio::post(supervisor_->context(), [this, &result] {
    Stats s;
    for (const auto& w : impl_->slots) {
      if (w && (w->state == Impl::Worker::State::kIdle || w->state == Impl::Worker::State::kBusy)) {
        s.ready_pids.push_back(w->proc->pid());
      }
    }
    s.started = impl_->started;
    s.unexpected_exits = impl_->unexpected_exits;
    s.waiting_jobs = impl_->waiting.size();
    result.set_value(std::move(s));
  });
  return result.get_future().get();
}

}  // namespace offload
