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

#include "exec/worker_message.h"
#include "offload/error_types.h"
#include "util/base64.h"
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

// ,"files":[…],"result_path":… of a job message: where the job's files are and where
// the worker may write its result.
void AppendFiles(std::string* line, const Execution& exec) {
  if (!exec.files.empty()) {
    *line += R"(,"files":[)";
    for (std::size_t i = 0; i < exec.files.size(); ++i) {
      const JobFile& f = exec.files[i];
      if (i > 0) *line += ',';
      *line += R"({"field":)";
      AppendJsonString(line, f.field);
      *line += R"(,"filename":)";
      AppendJsonString(line, f.filename);
      *line += R"(,"content_type":)";
      AppendJsonString(line, f.content_type);
      *line += R"(,"size":)";
      *line += std::to_string(f.size);
      *line += R"(,"sha256":)";
      AppendJsonString(line, f.sha256);
      *line += R"(,"path":)";
      AppendJsonString(line, f.path);
      *line += '}';
    }
    *line += ']';
  }
  if (!exec.result_path.empty()) {
    *line += R"(,"result_path":)";
    AppendJsonString(line, exec.result_path);
  }
}

}  // namespace

struct WorkerPool::Impl {
  struct Worker;
  // One Start (a job), or one StartBatch (a map's chunk: its elements, run in order).
  struct PoolJob {
    Impl* pool = nullptr;
    bool batch = false;  // From StartBatch: `elements`, answered through batch_done.
    Execution exec;      // From Start: answered through done.
    Batch elements;
    ExecutionDone done;
    BatchDone batch_done;
    // A batch's outcomes so far. Fed element by element (to a worker without
    // "batch"), the worker has element outcome.ran() now.
    BatchOutcome outcome;
    // Set once a worker died during the batch sent as one message: which element
    // killed it is unknown, so the batch runs again one element per message, where
    // a death is that element's.
    bool one_at_a_time = false;
    Worker* worker = nullptr;  // Set while a worker has it.

    bool answered() const { return batch ? !batch_done : !done; }
    const std::shared_ptr<RunContext>& context() const { return batch ? elements.context : exec.context; }
    const std::string& id() const { return batch ? elements.map_id : exec.job_id; }
    // The elements not yet reported fail with `error`.
    void FailRest(const JobError& error) {
      while (outcome.ran() < elements.size()) outcome.Fail(error);
    }
    // Hands the batch's outcome over. REQUIRES: batch, not yet answered.
    void AnswerBatch() {
      BatchDone answer = std::move(batch_done);
      answer(std::move(outcome));
    }
  };
  struct Worker {
    enum class State { kStarting, kIdle, kBusy, kStopping };
    int slot = 0;
    std::shared_ptr<Process> proc;
    State state = State::kStarting;
    std::shared_ptr<PoolJob> job;
    // The id its current message is about: the job's, or for a batch message the map's.
    std::string message_id;
    bool sent_batch = false;  // The current message is a "batch".
    // Set when the pool stops the worker's job: what a single job reports.
    std::optional<Result> job_outcome;
    bool expected_exit = false;
    bool batch_feature = false;
    bool cancel_feature = false;
    std::vector<std::string> features;
    std::optional<JobError> fatal;  // What it said before it exited at start.
    std::string line;               // Stdout not yet ended by a newline.
    std::int64_t out_bytes = 0;     // Stdout since the current job began (or the last ended).
    std::string log_line;           // Stderr not yet ended by a newline.
    OutputTail err_tail{kStderrTail};
    std::int64_t jobs_done = 0;
    int noise_lines = 0;
    std::optional<asio::steady_timer> ready_timer;
    // Runs while a cancel message waits for its answer: past kill_grace, signals.
    std::optional<asio::steady_timer> cancel_timer;
  };

  Impl(ProcessSupervisor* sup, WorkerPoolOptions opt)
      : supervisor(sup), options(std::move(opt)), slots(options.workers) {
    for (int i = 0; i < options.workers; ++i) respawn_timers.emplace_back(supervisor->context());
  }

  // Any thread: posts `job` to the loop; a stop of its context reaches StopJob there.
  void Submit(std::shared_ptr<PoolJob> job, const std::shared_ptr<ProcessSupervisor>& sup);

  // Everything below: supervisor thread only.
  void SpawnWorker(int slot);
  void OnSpawned(const std::shared_ptr<Worker>& w, ErrorOr<std::shared_ptr<Process>> proc);
  void ScheduleRespawn(int slot, bool after_failure);
  void OnStdout(Worker* w, std::string_view data);
  void OnStderr(Worker* w, std::string_view data);
  void HandleLine(Worker* w, std::string_view line);
  void OnReady(Worker* w, WorkerMessage& msg);
  void OnFatal(Worker* w, WorkerMessage& msg);
  void OnExit(Worker* w, const ExitStatus& status);
  // The worker answered its current message: `outcome` for a job message (an element
  // of a batch fed one at a time, or a single job).
  void OnJobAnswer(Worker* w, Result outcome);
  void OnBatchAnswer(Worker* w, WorkerMessage& msg, std::size_t line_size);
  // Reports the worker's job and frees the worker (or recycles it). A single job
  // reports `single_outcome` (REQUIRES: set for it); a batch its outcomes.
  void FinishJob(Worker* w, std::optional<Result> single_outcome = std::nullopt);
  // Reports what ran of a job that is not finishing normally (its worker died or was
  // stopped): a single job gets `outcome`, a batch it for the element that was running.
  void ReportInterrupted(PoolJob* job, Result outcome);
  void StopWorker(Worker* w, const std::string& why);
  void Enqueue(std::shared_ptr<PoolJob> job);
  void StopJob(const std::shared_ptr<PoolJob>& job);
  void Dispatch();
  // Sends the worker its job's next message: the whole batch, or one job.
  void SendNext(Worker* w);
  void FailOneWaiting(const JobError& error);
  void Shutdown();
  void Publish();
  // The result in a message (null when it had none), moved out of it. `size`: of
  // the line it came in, which bounds the result's; 0 when the caller checked it.
  Result ParseResult(json::value* result, bool base64, std::size_t size) const;
  Result TooLarge() const;
  std::string Name(const Worker* w) const {
    return "task " + options.task + ": worker " + std::to_string(w->proc ? w->proc->pid() : 0);
  }

  ProcessSupervisor* const supervisor;
  const WorkerPoolOptions options;

  std::vector<std::shared_ptr<Worker>> slots;  // Null while the slot waits to respawn.
  std::vector<asio::steady_timer> respawn_timers;
  std::deque<std::shared_ptr<PoolJob>> waiting;
  int consecutive_failures = 0;  // Unexpected exits since a job last completed.
  int failed_starts = 0;         // Workers in a row that ended before ready.
  int deaths_in_jobs = 0;        // Workers in a row that died during a job.
  std::int64_t started = 0;
  std::int64_t unexpected_exits = 0;
  std::vector<std::string> last_features;
  std::string last_exit;
  std::string last_stderr;
  std::optional<JobError> last_error;
  // The fields above changed since Publish last copied them (the counts it copies
  // every time).
  bool details_changed = true;
  bool closing = false;

  // The destructor waits on these for every worker to be gone. Held only to read or
  // change the two fields below, never while calling out.
  Mutex mu;
  CondVar cv;
  int alive GUARDED_BY(mu) = 0;           // Slots holding a process.
  bool shut_down GUARDED_BY(mu) = false;  // Shutdown has run, so no worker starts again.

  // What Workers() reads from any thread; written by Publish on the loop.
  mutable Mutex status_mu;
  WorkerStatus status GUARDED_BY(status_mu);
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
  Publish();
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
    ++failed_starts;
    last_exit = proc.error().detail;
    last_stderr.clear();
    details_changed = true;
    FailOneWaiting(JobError{error_type::kWorkerUnavailable, proc.error().detail});
    ScheduleRespawn(w->slot, true);
    return Publish();
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
  WorkerMessage msg = ParseWorkerMessage(line);
  using Kind = WorkerMessage::Kind;
  if (msg.kind == Kind::kBlank) return;
  if (msg.kind == Kind::kUnusable) {
    // A protocol message with a number no value holds (1e400): it cannot be read as
    // the worker meant it, and guessing would turn a result into Infinity.
    if (w->state == Worker::State::kBusy) {
      Result bad =
          Result::Fail(error_type::kInvalidResult, "the worker sent a message that is not usable JSON: " + msg.detail);
      if (w->sent_batch) {
        w->job->FailRest(bad.error());
        return FinishJob(w);
      }
      return OnJobAnswer(w, std::move(bad));
    }
    spdlog::warn("{}: ignored a stdout line with a number out of range: {}", Name(w), msg.detail);
    return;
  }
  if (msg.kind == Kind::kNoise) {
    if (++w->noise_lines <= kMaxNoiseLogs) {
      spdlog::warn(
          "{}: ignored a stdout line that is not a protocol message (print to stderr "
          "instead; docs/worker-protocol.md): {:.200}",
          Name(w), line);
    }
    return;
  }
  if (msg.kind == Kind::kReady) return OnReady(w, msg);
  if (msg.kind == Kind::kFatal) return OnFatal(w, msg);
  // The rest are about the current job (or batch).
  if (w->state != Worker::State::kBusy || !msg.id || *msg.id != w->message_id) {
    spdlog::warn("{}: ignored a \"{}\" message that is not about its current job: {:.200}", Name(w), msg.type, line);
    return;
  }
  if (msg.kind == Kind::kProgress) {
    // A batch's elements share the map's context: the map counts its own progress.
    if (msg.progress && !w->job->batch) w->job->context()->ReportProgress(*msg.progress);
  } else if (msg.kind == Kind::kResult && !w->sent_batch && !w->job->batch && msg.result_file) {
    // The worker wrote the result to the file the job message named.
    OnJobAnswer(w, Result::File(options.content_type, w->job->exec.result_path));
  } else if (msg.kind == Kind::kResult && !w->sent_batch) {
    OnJobAnswer(w, ParseResult(msg.result ? &*msg.result : nullptr, msg.base64, line.size()));
  } else if (msg.kind == Kind::kError && !w->sent_batch) {
    OnJobAnswer(w, Result::Fail(std::move(msg.error)));
  } else if (msg.kind == Kind::kBatchResult && w->sent_batch) {
    OnBatchAnswer(w, msg, line.size());
  } else {
    spdlog::warn("{}: ignored a message of unexpected type \"{}\"", Name(w), msg.type);
  }
}

void WorkerPool::Impl::OnReady(Worker* w, WorkerMessage& msg) {
  if (w->state != Worker::State::kStarting) return;
  w->state = Worker::State::kIdle;
  w->ready_timer.reset();
  for (std::string& name : msg.features) {
    if (name == "batch") w->batch_feature = true;
    if (name == "cancel") w->cancel_feature = true;
    w->features.push_back(std::move(name));
  }
  failed_starts = 0;
  last_features = w->features;
  details_changed = true;
  spdlog::debug("{}: ready", Name(w));
  Dispatch();
}

void WorkerPool::Impl::OnFatal(Worker* w, WorkerMessage& msg) {
  if (w->state != Worker::State::kStarting) return;
  JobError err = std::move(msg.error);
  spdlog::error("{}: cannot start: {}: {}{}", Name(w), err.type, err.message,
                err.detail.empty() ? "" : "\n" + err.detail);
  w->fatal = std::move(err);
}

Result WorkerPool::Impl::TooLarge() const {
  return Result::Fail(error_type::kResultTooLarge, "the worker's result is larger than max_result (" +
                                                       std::to_string(options.max_result) + " bytes)");
}

Result WorkerPool::Impl::ParseResult(json::value* r, bool base64, std::size_t size) const {
  if (options.content_type == "application/json") {
    // The line less its envelope is the result's size, give or take the id.
    if (static_cast<std::int64_t>(size) > options.max_result + 256) return TooLarge();
    return Result::Json(r ? std::move(*r) : json::value(nullptr));
  }
  if (!r || !r->is_string()) {
    return Result::Fail(error_type::kInvalidResult, "the worker's result for a task of content type " +
                                                        options.content_type +
                                                        " must be a string (base64 with \"encoding\": \"base64\")");
  }
  if (base64) {
    std::string bytes;
    if (!Base64Decode(r->get_string(), &bytes)) {
      return Result::Fail(error_type::kInvalidResult, "the worker's result is not valid base64");
    }
    if (static_cast<std::int64_t>(bytes.size()) > options.max_result) return TooLarge();
    return Result::Bytes(options.content_type, std::move(bytes));
  }
  if (static_cast<std::int64_t>(r->get_string().size()) > options.max_result) return TooLarge();
  return Result::Bytes(options.content_type, std::string(r->get_string()));
}

void WorkerPool::Impl::OnJobAnswer(Worker* w, Result outcome) {
  PoolJob* job = w->job.get();
  if (!job->batch) return FinishJob(w, std::move(outcome));
  // An element of a batch fed one at a time: the next goes to the same worker.
  const bool failed = !outcome.ok();
  job->outcome.Add(std::move(outcome));
  ++w->jobs_done;
  const bool stop = job->context()->canceled() || w->cancel_timer || (failed && job->elements.stop_on_failure);
  if (job->outcome.ran() == job->elements.size() || stop) return FinishJob(w);
  w->out_bytes = 0;
  SendNext(w);
}

void WorkerPool::Impl::OnBatchAnswer(Worker* w, WorkerMessage& msg, std::size_t line_size) {
  PoolJob* job = w->job.get();
  const std::size_t n = job->elements.size();
  json::array* results = msg.results ? &*msg.results : nullptr;
  if (!results || results->size() > n) {
    job->FailRest(JobError{error_type::kInvalidResult, "the worker's batch_result has no \"results\" list of at most " +
                                                           std::to_string(n) + " outcomes (docs/worker-protocol.md)"});
    return FinishJob(w);
  }
  const std::size_t ran = results->size();
  if (static_cast<std::int64_t>(line_size) > options.max_result + 256) {
    const JobError too_large{error_type::kResultTooLarge, "the worker's batch answer is larger than max_result (" +
                                                              std::to_string(options.max_result) + " bytes)"};
    for (std::size_t i = 0; i < ran; ++i) job->outcome.Fail(too_large);
    return FinishJob(w);
  }
  // Failed elements, by position; most batches have none.
  std::vector<std::pair<std::size_t, JobError>> errors = std::move(msg.errors);
  BatchOutcome& outcome = job->outcome;
  if (options.content_type == "application/json") {
    // The values as parsed, moved whole: the whole answer was within max_result, so
    // is each result.
    outcome.values = std::move(*results);
    for (auto& [index, error] : errors) outcome.values[index] = nullptr;
    outcome.errors = std::move(errors);
  } else {
    const bool base64 = msg.base64;
    auto error = errors.begin();
    for (std::size_t i = 0; i < ran; ++i) {
      if (error != errors.end() && error->first == i) {
        outcome.Fail(std::move(error->second));
        ++error;
      } else {
        outcome.Add(ParseResult(&(*results)[i], base64, 0));
      }
    }
  }
  w->jobs_done += static_cast<std::int64_t>(ran);
  FinishJob(w);
}

void WorkerPool::Impl::FinishJob(Worker* w, std::optional<Result> single_outcome) {
  std::shared_ptr<PoolJob> job = std::move(w->job);
  w->job.reset();
  job->worker = nullptr;
  w->cancel_timer.reset();
  if (!job->batch) ++w->jobs_done;
  w->out_bytes = 0;
  w->message_id.clear();
  w->sent_batch = false;
  if (consecutive_failures != 0 || deaths_in_jobs != 0) {
    consecutive_failures = 0;
    deaths_in_jobs = 0;
    details_changed = true;
  }
  w->state = Worker::State::kIdle;
  if (job->batch) {
    job->AnswerBatch();
  } else {
    // A stopped job reports the stop, whatever the worker answered.
    Result outcome = w->job_outcome ? std::move(*w->job_outcome) : std::move(*single_outcome);
    ExecutionDone done = std::move(job->done);
    done(std::move(outcome));
  }
  w->job_outcome.reset();
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

void WorkerPool::Impl::ReportInterrupted(PoolJob* job, Result outcome) {
  job->worker = nullptr;
  if (job->batch) {
    // What had run stays; the element that was running gets the outcome; the rest
    // did not run.
    if (job->outcome.ran() < job->elements.size()) job->outcome.Add(std::move(outcome));
    job->AnswerBatch();
  } else {
    ExecutionDone done = std::move(job->done);
    done(std::move(outcome));
  }
}

void WorkerPool::Impl::StopWorker(Worker* w, const std::string& why) {
  if (w->state == Worker::State::kStopping) return;
  spdlog::info("{}: stopping it: {}", Name(w), why);
  w->state = Worker::State::kStopping;
  w->expected_exit = true;
  w->ready_timer.reset();
  w->cancel_timer.reset();
  Publish();
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
    last_exit = status.Describe();
    last_stderr = w->err_tail.str();
    if (before_ready) ++failed_starts;
    if (w->job) ++deaths_in_jobs;
    if (w->fatal) last_error = w->fatal;
    details_changed = true;
    spdlog::warn("{}: {} unexpectedly{}", name, status.Describe(), tail);
  }
  // What /healthz and /v1/tasks show changes before a job that waited hears why: a
  // client told "the worker could not start" finds the pool's trouble there at once.
  Publish();
  std::shared_ptr<PoolJob> job = std::move(w->job);
  if (job && job->batch && w->sent_batch && !w->job_outcome && !closing) {
    spdlog::warn("{}: it died during a batch of {} elements of {}; they run again one at a time", name,
                 job->elements.size(), w->message_id);
    job->worker = nullptr;
    job->one_at_a_time = true;
    waiting.push_front(std::move(job));
  } else if (job) {
    Result outcome = w->job_outcome ? std::move(*w->job_outcome)
                                    : Result::Fail(error_type::kWorkerDied, "the worker process " + status.Describe() +
                                                                                " while running the job" + tail);
    ReportInterrupted(job.get(), std::move(outcome));
  } else if (before_ready && !w->expected_exit) {
    if (w->fatal) {
      JobError err = *w->fatal;
      err.message = "the worker could not start: " + err.message;
      FailOneWaiting(err);
    } else {
      FailOneWaiting(JobError{error_type::kWorkerDied, "the worker process " + status.Describe() +
                                                           " before it was ready (it never said "
                                                           "{\"type\":\"ready\"})" +
                                                           tail});
    }
  }
  ScheduleRespawn(w->slot, !w->expected_exit);
  Publish();
}

void WorkerPool::Impl::Enqueue(std::shared_ptr<PoolJob> job) {
  if (closing || job->context()->canceled()) {
    const JobError why{closing ? error_type::kShutdown : error_type::kCanceled,
                       "the job was stopped before a worker took it"};
    if (job->batch) return job->AnswerBatch();
    ExecutionDone done = std::move(job->done);
    return done(Result::Fail(why));
  }
  // Its timeout counts from when a worker takes it (a worker may still be starting).
  job->context()->MarkWaiting();
  waiting.push_back(std::move(job));
  Dispatch();
}

void WorkerPool::Impl::StopJob(const std::shared_ptr<PoolJob>& job) {
  if (job->answered()) return;  // Finished already.
  if (Worker* w = job->worker) {
    if (!w->job_outcome) w->job_outcome = Result::Fail(error_type::kCanceled, "the job was stopped");
    const StopReason reason = job->context()->stop_reason();
    const bool cooperative = reason == StopReason::kCanceled || reason == StopReason::kTimeout;
    if (!w->cancel_feature || !cooperative || w->state != Worker::State::kBusy) {
      return StopWorker(w, "its job " + job->id() + " was stopped");
    }
    if (w->cancel_timer) return;  // Asked already.
    std::string line = R"({"type":"cancel","id":)";
    AppendJsonString(&line, w->message_id);
    line += "}\n";
    w->proc->Write(std::move(line));
    w->cancel_timer.emplace(supervisor->context(), options.kill_grace);
    w->cancel_timer->async_wait([this, w, weak = std::weak_ptr<PoolJob>(job)](const boost::system::error_code& ec) {
      auto job = weak.lock();
      if (ec || !job || job->worker != w) return;
      StopWorker(w, "it did not answer the cancel of " + w->message_id + " within kill_grace");
    });
    return;
  }
  auto it = std::find(waiting.begin(), waiting.end(), job);
  if (it == waiting.end()) return;
  std::shared_ptr<PoolJob> held = *it;
  waiting.erase(it);
  if (held->batch) return held->AnswerBatch();
  ExecutionDone done = std::move(held->done);
  done(Result::Fail(error_type::kCanceled, "the job was stopped before a worker took it"));
}

void WorkerPool::Impl::Dispatch() {
  for (auto& w : slots) {
    if (waiting.empty()) break;
    if (!w || w->state != Worker::State::kIdle) continue;
    std::shared_ptr<PoolJob> job = std::move(waiting.front());
    waiting.pop_front();
    w->state = Worker::State::kBusy;
    w->out_bytes = 0;
    job->worker = w.get();
    job->context()->MarkRunning();
    // A batch that runs again one at a time (its worker died) starts over.
    if (job->batch) job->outcome = BatchOutcome{};
    w->job = std::move(job);
    SendNext(w.get());
  }
  Publish();
}

void WorkerPool::Impl::SendNext(Worker* w) {
  PoolJob& job = *w->job;
  // Messages are written in place rather than built as objects, which would copy
  // the inputs. kKeepKind: the worker reads 2.0 as the float its client sent.
  std::string line;
  if (job.batch && w->batch_feature && !job.one_at_a_time) {
    // {"type":"batch","id":…,"task":…,"inputs":[…],"attempts":[…],"stop_on_failure":B}
    w->sent_batch = true;
    w->message_id = job.elements.map_id;
    line = R"({"type":"batch","id":)";
    AppendJsonString(&line, w->message_id);
    line += R"(,"task":)";
    AppendJsonString(&line, options.task);
    line += R"(,"inputs":)";
    const Batch& b = job.elements;
    AppendJsonList(&line, b.input->get_array(), b.indices, JsonNumbers::kKeepKind);
    if (!b.attempts.empty()) {
      line += R"(,"attempts":[)";
      for (std::size_t i = 0; i < b.size(); ++i) {
        if (i > 0) line += ',';
        line += std::to_string(b.attempts[i]);
      }
      line += ']';
    }
    line += b.stop_on_failure ? R"(,"stop_on_failure":true})" : R"(,"stop_on_failure":false})";
  } else {
    // {"type":"job","id":…,"task":…,"input":…,"attempt":N}
    const std::size_t next = job.outcome.ran();
    w->sent_batch = false;
    w->message_id = job.batch ? job.elements.IdOf(next) : job.exec.job_id;
    line = R"({"type":"job","id":)";
    AppendJsonString(&line, w->message_id);
    line += R"(,"task":)";
    AppendJsonString(&line, options.task);
    line += R"(,"input":)";
    AppendJson(&line, job.batch ? job.elements.InputOf(next) : *job.exec.input, JsonNumbers::kKeepKind);
    line += R"(,"attempt":)";
    line += std::to_string(job.batch ? job.elements.AttemptOf(next) : job.exec.attempt);
    if (!job.batch) AppendFiles(&line, job.exec);
    line += '}';
  }
  line += '\n';
  w->proc->Write(std::move(line));
}

void WorkerPool::Impl::FailOneWaiting(const JobError& error) {
  if (waiting.empty()) return;
  std::shared_ptr<PoolJob> job = std::move(waiting.front());
  waiting.pop_front();
  if (job->batch) {
    // The first element fails with it, so that the map learns why.
    job->outcome.Fail(error);
    return job->AnswerBatch();
  }
  ExecutionDone done = std::move(job->done);
  done(Result::Fail(error));
}

void WorkerPool::Impl::Shutdown() {
  closing = true;
  for (auto& t : respawn_timers) t.cancel();
  while (!waiting.empty()) {
    FailOneWaiting(JobError{error_type::kShutdown, "the server shut down before a worker took the job"});
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

void WorkerPool::Impl::Publish() {
  int starting = 0, idle = 0, busy = 0;
  std::vector<WorkerStatus::Process> processes;
  processes.reserve(slots.size());
  for (const auto& w : slots) {
    const char* state = "busy";
    if (!w || w->state == Worker::State::kStarting || w->state == Worker::State::kStopping) {
      ++starting;
      state = w && w->state == Worker::State::kStopping ? "stopping" : "starting";
    } else if (w->state == Worker::State::kIdle) {
      ++idle;
      state = "idle";
    } else {
      ++busy;
    }
    if (w && w->proc) processes.push_back(WorkerStatus::Process{static_cast<int>(w->proc->pid()), state, w->jobs_done});
  }
  MutexLock lock(&status_mu);
  status.processes = std::move(processes);
  status.configured = options.workers;
  status.starting = starting;
  status.idle = idle;
  status.busy = busy;
  status.started = started;
  status.restarts = unexpected_exits;
  if (!details_changed) return;
  details_changed = false;
  status.features = last_features;
  status.last_exit = last_exit;
  status.stderr_tail = last_stderr;
  status.last_error = last_error;
  status.trouble.clear();
  if (failed_starts > 0) {
    status.trouble = std::to_string(failed_starts) + " worker start(s) in a row failed; the last " +
                     (last_error ? "said " + last_error->type + ": " + last_error->message : last_exit);
  } else if (deaths_in_jobs >= 3) {
    status.trouble = std::to_string(deaths_in_jobs) + " workers in a row died during a job; the last " + last_exit;
  }
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
  job->exec = std::move(exec);
  job->done = std::move(done);
  impl_->Submit(std::move(job), supervisor_);
}

void WorkerPool::StartBatch(Batch batch, BatchDone done) {
  if (batch.size() == 0) return done({});
  auto job = std::make_shared<Impl::PoolJob>();
  job->elements = std::move(batch);
  job->batch = true;
  job->batch_done = std::move(done);
  impl_->Submit(std::move(job), supervisor_);
}

void WorkerPool::Impl::Submit(std::shared_ptr<PoolJob> job, const std::shared_ptr<ProcessSupervisor>& sup) {
  job->pool = this;
  std::shared_ptr<RunContext> context = job->context();
  std::weak_ptr<Impl::PoolJob> weak = job;
  asio::post(supervisor->context(), [job = std::move(job)]() mutable {
    Impl* impl = job->pool;
    impl->Enqueue(std::move(job));
  });
  // Registered after the post so that the stop, if it comes, is handled after the
  // enqueue; a stop that came before is seen there through canceled().
  context->OnStop([weak, sup = std::weak_ptr<ProcessSupervisor>(sup)] {
    auto supervisor = sup.lock();
    if (!supervisor) return;
    asio::post(supervisor->context(), [weak] {
      if (auto job = weak.lock()) job->pool->StopJob(job);
    });
  });
}

std::optional<WorkerStatus> WorkerPool::Workers() const {
  MutexLock lock(&impl_->status_mu);
  return impl_->status;
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
