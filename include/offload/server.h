// offload::Server: the job server inside a program of your own. It is what
// `offload serve` runs — the HTTP API of docs/api.md, the scheduler, the store — with
// the in-process handlers the program registers in a TaskRegistry, so that a C++
// model or library serves jobs without a worker process in between.
//
//   offload::TaskRegistry registry = offload::TaskRegistry::WithBuiltins();
//   registry.Register("word_count", {WordCount, ValidateText, "application/json"});
//   offload::ServerOptions options;
//   options.config_file = "offload.toml";  // [tasks.word_count] run = "builtin:word_count"
//   auto server = offload::Server::Create(options, registry);
//   if (!server) { std::cerr << server.error().detail << "\n"; return 2; }
//   (*server)->Run();  // Until SIGINT/SIGTERM or Stop().
//
// docs/embedding.md shows a whole program (examples/embed/).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "offload/error.h"
#include "offload/task_registry.h"

namespace offload {

struct ServerOptions {
  // The TOML file of docs/config.md, read on top of the defaults. Relative paths in
  // it (cwd of process tasks) are taken from the file's folder. Empty: none.
  std::string config_file;
  // The same settings as TOML text, read when config_file is empty. Its errors name
  // "config_toml" as their file; relative paths in it are taken from the current
  // directory. Empty: the defaults.
  std::string config_toml;
  // Override the config's `listen` and `threads`, as `offload serve --listen` and
  // `--threads` do. Empty or 0: the config's. "127.0.0.1:0" takes a free port (see
  // Server::port).
  std::string listen;
  unsigned threads = 0;
  // Overrides the config's `role`, as `offload serve --role` does. Empty: the config's.
  std::string role;
  // What `offload serve` sets up for its process: SIGPIPE ignored (a worker that dies
  // while being written to must not end the server) and the soft open-file limit
  // raised to the hard one (every connection, pipe and store file is a descriptor;
  // the processes it starts get the limit from before). A program that manages
  // these itself sets false.
  bool configure_process = true;
  // Run() drains and returns on SIGINT or SIGTERM, as `offload serve` does. False:
  // only Stop() ends it, and the program's signal handling is left alone.
  bool stop_on_signals = true;
};

// Create, then Run on the thread that should serve; Stop from any thread.
class Server {
 public:
  // Reads the config, opens the store (recovering the jobs a previous run left),
  // starts the executors and binds the listening socket. The registry must hold a
  // handler for every `run = "builtin:NAME"` task, the defaults' noop, sleep, cpu and
  // mandelbrot included (start from TaskRegistry::WithBuiltins()); the handlers are
  // copied, and the registry need not outlive the server. Errors: kInvalidArgument
  // for a mistake in the config or a missing handler (the detail names the file,
  // line or task), and the store's or the listening socket's error otherwise.
  static ErrorOr<std::unique_ptr<Server>> Create(const ServerOptions& options, const TaskRegistry& registry);
  // After Run, only joins what is left. Without Run, cancels the jobs still running
  // (no grace) and waits for them. REQUIRES: Run is not running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port: the configured one, or the one the system chose for port 0.
  std::uint16_t port() const;
  // The bound address as "HOST:PORT" ("[V6]:PORT" for IPv6).
  std::string address() const;

  // Serves on this thread and the config's `threads - 1` others until Stop() (or a
  // signal, with stop_on_signals), then shuts down as `offload serve` does: new jobs
  // are refused with 503, running ones get `shutdown_grace` to finish, the rest are
  // canceled, and the final state of every finished job is given time to reach the
  // store; then the HTTP server stops and Run returns. Logs through spdlog's default
  // logger. Call it once.
  void Run();
  // Begins the shutdown Run performs and returns at once. Thread-safe; a call before
  // Run makes Run shut down as soon as it starts; later calls do nothing.
  void Stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace offload
