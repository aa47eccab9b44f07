// offload: the job server's command line. `offload serve` runs the server.
#include <CLI/CLI.hpp>
#include <sys/resource.h>

#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>
#include <thread>

#include "config/config.h"
#include "config/settings.h"
#include "exec/process.h"
#include "http/api.h"
#include "http/server.h"
#include "offload/task_registry.h"
#include "service/job_service.h"
#include "store/store.h"

namespace {

// Raises the soft open-file limit to the hard one, as nginx (worker_rlimit_nofile)
// and Go's runtime do: the soft default (often 1024) exists for programs that use
// select(), and this one does not; every connection, pipe and store file is an fd.
// Returns the soft limit now in force.
std::uint64_t RaiseOpenFileLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  // Children get the limit the server was started with.
  offload::SetChildOpenFileLimit(lim.rlim_cur == RLIM_INFINITY ? 0 : static_cast<std::uint64_t>(lim.rlim_cur));
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur == RLIM_INFINITY ? std::uint64_t{1} << 20 : static_cast<std::uint64_t>(lim.rlim_cur);
}

struct ServeFlags {
  std::string config_path;
  std::string listen;
  unsigned threads = 0;
  std::string log_level = "info";
};

int Serve(const ServeFlags& flags) {
  using namespace offload;
  ErrorOr<ServerConfig> loaded =
      flags.config_path.empty() ? ErrorOr<ServerConfig>(DefaultConfig()) : LoadConfigFile(flags.config_path);
  if (!loaded) {
    std::cerr << "offload: config error: " << loaded.error().detail << "\n";
    return 2;
  }
  ServerConfig config = std::move(*loaded);
  if (!flags.listen.empty()) config.listen = flags.listen;
  if (flags.threads > 0) config.threads = flags.threads;
  if (config.threads == 0) config.threads = std::max(1u, std::thread::hardware_concurrency());

  // Before anything opens files or starts processes.
  const std::uint64_t nofile = RaiseOpenFileLimit();
  auto store = OpenStore(StoreOptions{config.store, config.sqlite_synchronous_full, config.sqlite_max_bytes});
  if (!store) {
    std::cerr << "offload: store error: " << store.error().detail << "\n";
    return 2;
  }
  auto service = JobService::Create(config, TaskRegistry::WithBuiltins(), std::move(*store));
  if (!service) {
    std::cerr << "offload: " << service.error().detail << "\n";
    return 2;
  }
  Api api(service->get(), config);
  HttpServerOptions http_options;
  http_options.threads = config.threads;
  http_options.max_body = config.max_body;
  http_options.max_connections =
      config.max_connections > 0 ? config.max_connections : DefaultMaxConnections(nofile);
  http_options.idle_timeout = config.idle_timeout;
  http_options.header_timeout = config.header_timeout;
  http_options.write_timeout = config.write_timeout;
  HttpServer server(&api, http_options);
  auto bound = server.Listen(config.listen);
  if (!bound) {
    std::cerr << "offload: " << bound.error().detail << "\n";
    return 1;
  }
  const std::string where = bound->address().is_v6()
                                ? "[" + bound->address().to_string() + "]:" + std::to_string(bound->port())
                                : bound->address().to_string() + ":" + std::to_string(bound->port());
  // Shutdown runs on its own thread: it blocks on the service while the I/O
  // threads keep answering (503 for new jobs, status for the rest).
  std::thread shutdown;
  boost::asio::signal_set signals(server.main_context(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: draining (shutdown_grace {} ms)", sig, config.shutdown_grace.count());
    shutdown = std::thread([&] {
      JobService& svc = **service;
      svc.BeginDrain();
      if (!svc.WaitForIdle(config.shutdown_grace)) {
        spdlog::warn("shutdown_grace elapsed: canceling the jobs still running");
      }
      svc.CancelAll();
      svc.WaitForIdle(std::chrono::seconds(5));
      // A finished job whose final state is not stored would count as interrupted at
      // the next start: it is worth waiting for the store as long as for a job.
      if (!svc.WaitForFinalWrites(std::max<Millis>(config.shutdown_grace, std::chrono::seconds(5)))) {
        spdlog::error("the store still refuses the final state of {} finished jobs",
                      svc.store_health().unstored_finals);
      }
      server.Stop(std::chrono::seconds(2));
    });
  });
  // Said once SIGTERM is handled: whoever waits for this line may stop the server
  // the moment it appears.
  spdlog::info("offload listening on http://{} ({} I/O threads, store {}, max_connections {}, open-file limit {})",
               where, config.threads, config.store, http_options.max_connections, nofile);
  server.Run();
  if (shutdown.joinable()) shutdown.join();
  // The service goes first: the waiters it still holds keep sessions alive, and a
  // session must die while the server and its io_contexts still exist.
  service->reset();
  spdlog::info("offload stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_default_logger(spdlog::stderr_color_mt("offload"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);

  CLI::App app{"offload: a job server. Submit work over HTTP; it runs off the request path."};
  app.require_subcommand(1);
  ServeFlags flags;
  CLI::App* serve = app.add_subcommand("serve", "Run the server");
  serve->add_option("--config", flags.config_path, "TOML config file (docs/config.md)")->check(CLI::ExistingFile);
  serve->add_option("--listen", flags.listen, "HOST:PORT to listen on (default " +
                                                  offload::ServerConfig{}.listen + ")");
  serve->add_option("--threads", flags.threads, "I/O threads (default: number of cores)");
  serve->add_option("--log-level", flags.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  serve->footer(offload::SettingsHelp());
  app.add_subcommand("version", "Print the version")->callback([] { std::cout << "offload 0.1.0\n"; });
  CLI11_PARSE(app, argc, argv);
  if (serve->parsed()) {
    spdlog::set_level(spdlog::level::from_str(flags.log_level));
    return Serve(flags);
  }
  return 0;
}
