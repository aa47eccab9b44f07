#include "exec/command_executor.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "offload/error_types.h"
#include "util/json_reader.h"
#include "util/json_writer.h"

namespace offload {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kStderrTail = 4096;

std::string StderrSuffix(const OutputTail& tail) {
  if (tail.empty()) return "; stderr was empty";
  return "; last stderr:\n" + tail.str();
}

// A blocking write of all of `data`: to a file, whose writes go to the page cache.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The spawn of one job: the task's, with the job's files and result path in the
// environment (and its file as stdin, unless the task takes it as a path).
SpawnOptions JobSpawn(const CommandOptions& opt, const Execution& exec) {
  SpawnOptions spawn = opt.spawn;
  if (!exec.result_path.empty()) SetEnvironment(&spawn.environment, "OFFLOAD_RESULT_PATH", exec.result_path);
  if (!exec.files.empty()) {
    const std::string& first = exec.files.front().path;
    SetEnvironment(&spawn.environment, "OFFLOAD_INPUT_PATH", first);
    SetEnvironment(&spawn.environment, "OFFLOAD_INPUT_DIR", std::filesystem::path(first).parent_path().string());
    if (!opt.input_as_path) spawn.stdin_path = first;
  }
  return spawn;
}

}  // namespace

struct CommandExecutor::Run {
  std::shared_ptr<Shared> shared;
  Execution exec;
  ExecutionDone done;
  std::shared_ptr<Process> proc;
  std::string out;
  // Set once a binary stdout passed max_memory_result: the rest goes to this file.
  int spill_fd = -1;
  std::string spill_path;
  std::int64_t out_bytes = 0;  // Of stdout, in memory or spilled.
  bool spill_failed = false;
  std::string spill_error;
  bool too_large = false;
  bool stop_requested = false;
  OutputTail err{kStderrTail};

  // The disk refused the spilled stdout: the job fails and its process is stopped.
  void FailSpill() {
    spill_failed = true;
    spill_error = std::strerror(errno);
    proc->Terminate(shared->options.kill_grace);
  }
};

CommandExecutor::CommandExecutor(std::shared_ptr<ProcessSupervisor> supervisor, CommandOptions options)
    : supervisor_(std::move(supervisor)), shared_(std::make_shared<Shared>()) {
  shared_->supervisor = supervisor_.get();
  shared_->options = std::move(options);
}

CommandExecutor::~CommandExecutor() {
  {
    MutexLock lock(&shared_->mu);
    shared_->closing = true;
  }
  asio::post(shared_->supervisor->context(), [shared = shared_] {
    for (Run* run : shared->running) {
      run->stop_requested = true;
      if (run->proc) run->proc->Kill();
    }
  });
  // Every 5 s until they are done, a warning, logged without the lock (a Finish on
  // the supervisor thread needs it).
  for (;;) {
    std::int64_t live;
    {
      MutexLock lock(&shared_->mu);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (shared_->live != 0) {
        if (!shared_->cv.WaitUntil(&shared_->mu, deadline)) break;
      }
      live = shared_->live;
    }
    if (live == 0) return;
    spdlog::warn("task {}: still waiting for {} command(s) to exit", shared_->options.task, live);
  }
}

void CommandExecutor::Start(Execution exec, ExecutionDone done) {
  auto run = std::make_shared<Run>();
  run->shared = shared_;
  run->exec = std::move(exec);
  run->done = std::move(done);
  {
    MutexLock lock(&shared_->mu);
    ++shared_->live;
  }
  asio::post(shared_->supervisor->context(), [run] { Begin(run); });
  // Posted after Begin, so the stop finds the process if there is one; a stop that
  // came earlier is seen by Begin through canceled().
  run->exec.context->OnStop([weak = std::weak_ptr<Run>(run), sup = std::weak_ptr<ProcessSupervisor>(supervisor_)] {
    auto supervisor = sup.lock();
    if (!supervisor) return;
    asio::post(supervisor->context(), [weak] {
      auto run = weak.lock();
      if (!run || run->stop_requested) return;
      run->stop_requested = true;
      if (run->proc) run->proc->Terminate(run->shared->options.kill_grace);
    });
  });
}

void CommandExecutor::Begin(const std::shared_ptr<Run>& run) {
  Shared& shared = *run->shared;
  const CommandOptions& opt = shared.options;
  bool closing;
  {
    MutexLock lock(&shared.mu);
    closing = shared.closing;
  }
  if (closing || run->exec.context->canceled()) {
    return Finish(run, Result::Fail(error_type::kCanceled, "the job was stopped before its command started"));
  }
  shared.running.insert(run.get());
  // The callbacks hold the run (and so the process) until on_exit, which the
  // process guarantees to call once.
  Process::Callbacks cb;
  cb.on_stdout = [r = run.get()](std::string_view data) {
    const CommandOptions& o = r->shared->options;
    if (r->too_large || r->spill_failed) return;
    r->out_bytes += static_cast<std::int64_t>(data.size());
    if (r->out_bytes > o.max_result) {
      r->too_large = true;
      r->out.clear();
      r->out.shrink_to_fit();
      r->proc->Terminate(o.kill_grace);
      return;
    }
    if (r->spill_fd < 0 && o.content_type != "application/json" && !r->exec.result_path.empty() &&
        r->out_bytes > o.max_memory_result) {
      r->spill_path = r->exec.result_path + ".stdout";
      r->spill_fd = ::open(r->spill_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (r->spill_fd < 0 || !WriteAll(r->spill_fd, r->out)) return r->FailSpill();
      r->out.clear();
      r->out.shrink_to_fit();
    }
    if (r->spill_fd >= 0) {
      if (!WriteAll(r->spill_fd, data)) r->FailSpill();
      return;
    }
    r->out.append(data);
  };
  cb.on_stderr = [r = run.get()](std::string_view data) { r->err.Append(data); };
  cb.on_exit = [run](const ExitStatus& status) {
    const CommandOptions& opt = run->shared->options;
    const std::string program = opt.spawn.argv[0];
    if (run->stop_requested) {
      return Finish(run, Result::Fail(error_type::kCanceled,
                                      "the command was stopped (" + program + " " + status.Describe() + ")"));
    }
    if (run->too_large) {
      return Finish(
          run, Result::Fail(error_type::kResultTooLarge, program + " wrote more than max_result (" +
                                                             std::to_string(opt.max_result) + " bytes) to stdout"));
    }
    if (run->spill_failed) {
      return Finish(run, Result::Fail(error_type::kResultNotStored, "the result could not be written to " +
                                                                        run->spill_path + ": " + run->spill_error));
    }
    if (!status.success()) {
      return Finish(
          run, Result::Fail(error_type::kCommandFailed, program + " " + status.Describe() + StderrSuffix(run->err)));
    }
    // A result written to OFFLOAD_RESULT_PATH wins over stdout.
    if (FileExists(run->exec.result_path)) return Finish(run, Result::File(opt.content_type, run->exec.result_path));
    if (run->spill_fd >= 0) {
      ::close(std::exchange(run->spill_fd, -1));
      return Finish(run, Result::File(opt.content_type, std::exchange(run->spill_path, {})));
    }
    if (opt.content_type != "application/json") {
      return Finish(run, Result::Bytes(opt.content_type, std::move(run->out)));
    }
    if (run->out.find_first_not_of(" \t\r\n") == std::string::npos) {
      return Finish(run, Result::Json(nullptr));
    }
    ErrorOr<boost::json::value> v = ParseJson(run->out, "result");
    if (!v && v.error().code == ErrorCode::kInvalidArgument) {
      // JSON, but with a number (1e400) no value holds: failing beats an Infinity
      // that no client could read.
      return Finish(
          run, Result::Fail(error_type::kInvalidResult,
                            program + " exited with status 0 but its stdout is not usable JSON: " + v.error().detail));
    }
    if (!v) {
      return Finish(run, Result::Fail(error_type::kInvalidResult,
                                      program + " exited with status 0 but its stdout is not JSON (" +
                                          v.error().detail + "); it begins: " + run->out.substr(0, 200)));
    }
    Finish(run, Result::Json(std::move(*v)));
  };

  SpawnOptions spawn = JobSpawn(opt, run->exec);
  const bool input_is_stdin = !spawn.stdin_path.empty();
  Process::Start(shared.supervisor, std::move(spawn), std::move(cb),
                 [run, input_is_stdin](ErrorOr<std::shared_ptr<Process>> proc) {
                   if (!proc) return Finish(run, Result::Fail(error_type::kSpawnFailed, proc.error().detail));
                   run->proc = std::move(*proc);
                   // Stopped while it was being spawned: it has had no input yet.
                   if (run->stop_requested) return run->proc->Kill();
                   if (input_is_stdin) return run->proc->CloseStdin();
                   // kKeepKind: the command reads 2.0 as the float its client sent.
                   std::string line = WriteJson(*run->exec.input, JsonNumbers::kKeepKind);
                   line += '\n';
                   run->proc->Write(std::move(line));
                   run->proc->CloseStdin();
                 });
}

void CommandExecutor::Finish(const std::shared_ptr<Run>& run, Result outcome) {
  Shared& shared = *run->shared;
  // What the attempt wrote and the outcome does not use.
  if (run->spill_fd >= 0) ::close(std::exchange(run->spill_fd, -1));
  if (!run->spill_path.empty()) ::unlink(run->spill_path.c_str());
  if (!outcome.ok() && !run->exec.result_path.empty()) ::unlink(run->exec.result_path.c_str());
  shared.running.erase(run.get());
  run->proc.reset();
  ExecutionDone done = std::move(run->done);
  done(std::move(outcome));
  MutexLock lock(&shared.mu);
  if (--shared.live == 0) shared.cv.SignalAll();
}

}  // namespace offload
