// Server configuration: the TOML file (docs/config.md) plus command-line overrides.
// Every top-level key is declared once, in the settings table in config.cc, which
// also feeds `offload serve --help` and the check that docs/config.md names it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "util/error.h"

namespace offload {

using Millis = std::chrono::milliseconds;

// One [tasks.NAME] table.
struct TaskConfig {
  std::string name;
  // "builtin:NAME" runs an in-process handler from the TaskRegistry.
  std::string run;
  // Resource units one job holds while it runs. Default {cpu = 1}.
  std::map<std::string, std::int64_t> uses{{"cpu", 1}};
  // Queued jobs beyond this are refused with 429.
  std::int64_t max_queued = 100000;
  // A running job past this is canceled and fails with error.type "timeout".
  // Zero: no limit.
  Millis timeout{0};
  // Overrides the handler's own content type. Empty: the handler's.
  std::string content_type;
};

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  unsigned threads = 0;                   // 0: one I/O thread per core.
  std::int64_t max_body = 16 << 20;       // Bytes; larger request bodies get 413.
  Millis max_wait{60'000};                // Cap on `Prefer: wait=N` and `?wait=N`.
  Millis run_timeout{300'000};            // How long POST /v1/tasks/NAME/run waits.
  Millis retention{24 * 3600 * 1000};     // Finished jobs are removed after this.
  Millis shutdown_grace{30'000};          // Running jobs may finish within this.
  std::string store = "memory";
  // Resource name -> capacity. "cpu" defaults to the number of cores.
  std::map<std::string, std::int64_t> resources;
  // Task name -> its config. Always holds the built-ins (noop, sleep, cpu,
  // mandelbrot) unless the file redefines them.
  std::map<std::string, TaskConfig> tasks;
};

// Defaults plus the built-in tasks: what `offload serve` runs without --config.
ServerConfig DefaultConfig();

// Reads `path` on top of DefaultConfig(). Errors name the file and line.
ErrorOr<ServerConfig> LoadConfigFile(const std::string& path);
// Same, from text (for tests); `source_name` stands in for the file name.
ErrorOr<ServerConfig> ParseConfig(std::string_view toml_text, const std::string& source_name);

// Checks cross-references: every task's resources exist, capacities positive...
ErrorOr<bool> ValidateConfig(const ServerConfig& config);

// Parses "250ms", "30s", "5m", "24h" or a bare number of seconds.
bool ParseDuration(std::string_view text, Millis* out);

// The top-level keys the file accepts, for docs and --help.
struct SettingDoc {
  const char* key;
  const char* default_value;
  const char* help;
};
const std::vector<SettingDoc>& ServerSettingDocs();

}  // namespace offload
