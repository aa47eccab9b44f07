// offload: the job server's command line. `offload serve` runs the server: an
// offload::Server (include/offload/server.h) with the built-in tasks, as a program
// that embeds offload would run it with its own.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

// The settings table, for --help; the server itself is reached through its public
// header only.
#include "cli/commands.h"
#include "cli/token_command.h"
#include "config/config.h"
#include "config/settings.h"
#include "offload/server.h"
#include "offload/task_registry.h"
#include "util/log_format.h"

namespace {

struct ServeFlags {
  std::string config_path;
  std::string listen;
  unsigned threads = 0;
  std::string role;
  std::string log_level = "info";
  std::string log_format = "text";
};

int Serve(const ServeFlags& flags) {
  offload::ServerOptions options;
  options.config_file = flags.config_path;
  options.listen = flags.listen;
  options.threads = flags.threads;
  options.role = flags.role;
  auto server = offload::Server::Create(options, offload::TaskRegistry::WithBuiltins());
  if (!server) {
    std::cerr << "offload: " << server.error().detail << "\n";
    return 2;
  }
  (*server)->Run();
  server->reset();
  spdlog::info("offload stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "offload: a job server. Submit work over HTTP; it runs off the request path. `offload serve` runs the "
      "server; the other commands talk to one (--url, $OFFLOAD_URL)."};
  app.require_subcommand(1);
  ServeFlags flags;
  CLI::App* serve = app.add_subcommand("serve", "Run the server");
  serve->add_option("--config", flags.config_path, "TOML config file (docs/config.md)")->check(CLI::ExistingFile);
  serve->add_option("--listen", flags.listen,
                    "HOST:PORT to listen on (default " + offload::ServerConfig{}.listen + ")");
  serve->add_option("--threads", flags.threads, "I/O threads (default: number of cores)");
  serve->add_option("--role", flags.role, "With a PostgreSQL store: all, api or worker (docs/cluster.md)")
      ->check(CLI::IsMember({"all", "api", "worker"}));
  serve->add_option("--log-level", flags.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  serve->add_option("--log-format", flags.log_format, "text (default) or json: one JSON object per line")
      ->check(CLI::IsMember({"text", "json"}));
  serve->footer(offload::SettingsHelp());
  app.add_subcommand("version", "Print the version")->callback([] { std::cout << "offload 0.1.0\n"; });
  offload::cli::GlobalOptions client_options;
  std::function<int()> run_client;
  offload::cli::AddClientCommands(&app, &client_options, &run_client);
  offload::cli::AddTokenCommand(&app, &run_client);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help is a success; any other parse error is a usage error (exit 2).
    const int code = app.exit(e);
    return code == 0 ? 0 : offload::cli::kUsage;
  }
  if (run_client) {
    try {
      return run_client();
    } catch (const std::exception& e) {
      // A 200 whose body is not what an offload server sends: --url names something else.
      std::cerr << "offload: the answer from the server is not what offload sends (" << e.what() << ")\n";
      return offload::cli::kServerError;
    }
  }
  if (serve->parsed()) {
    offload::UseBufferedStderrLog();
    spdlog::set_level(spdlog::level::from_str(flags.log_level));
    offload::SetLogFormat(flags.log_format);
    const int code = Serve(flags);
    spdlog::shutdown();  // Stops the flusher thread and writes out the buffer.
    return code;
  }
  return 0;
}
