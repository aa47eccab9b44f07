// Reading the config file: the TOML tables around the settings (setting_table.h
// holds each key), cross-checks, and the defaults.
#include "config/config.h"

#include <toml++/toml.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "config/setting_table.h"
#include "config/tokens_file.h"

namespace offload {
namespace {

constexpr const char* kBuiltinTasks[] = {"noop", "sleep", "cpu", "mandelbrot"};

template <typename Config>
const Setting<Config>* FindSetting(const std::vector<Setting<Config>>& settings, std::string_view key) {
  for (const auto& s : settings) {
    if (key == s.key) return &s;
  }
  return nullptr;
}

// Every resource a task uses is declared, with room for one job.
Status ValidateTaskUses(const ServerConfig& config, const std::string& name, const TaskConfig& task) {
  for (const auto& [res, amount] : task.uses) {
    auto it = config.resources.find(res);
    if (it == config.resources.end()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "task \"" + name + "\" uses resource \"" + res + "\", which [resources] does not declare");
    }
    if (amount > it->second) {
      return MakeError(ErrorCode::kInvalidArgument, "task \"" + name + "\" uses " + std::to_string(amount) + " " + res +
                                                        " but the capacity is " + std::to_string(it->second) +
                                                        ": its jobs could never start");
    }
  }
  return {};
}

// Refuses a key of table `t` that the task's kind does not take (TaskScope).
Status CheckScope(const std::string& file, const toml::table& t, const TaskConfig& task, TaskScope scope) {
  bool takes = true;
  switch (scope) {
    case TaskScope::kAll:
      break;
    case TaskScope::kProcess:
      takes = task.run.empty();
      break;
    case TaskScope::kWorker:
      takes = !task.worker.empty() || !task.python.empty();
      break;
    case TaskScope::kPython:
      takes = !task.python.empty();
      break;
  }
  if (takes) return {};
  for (const auto& s : TaskSettings()) {
    if (s.scope == scope && t.contains(s.key)) {
      return ConfigError(file, *t.get(s.key), std::string(s.key) + " applies to " + TaskScopeName(scope) + " only");
    }
  }
  return {};
}

// A task has exactly one of run, command, worker and python; the one this table
// sets replaces an inherited one (a file may turn a built-in into a command). Keys
// that only make sense for another kind are refused rather than silently ignored.
Status ApplyTaskKind(const std::string& file, const std::string& name, const toml::table& t, TaskConfig* task) {
  const int kinds = t.contains("run") + t.contains("command") + t.contains("worker") + t.contains("python");
  if (kinds > 1) {
    return ConfigError(file, t,
                       "[tasks." + name + "] sets more than one of run, command, worker and python; a task has one");
  }
  if (kinds == 1) {
    if (!t.contains("run")) task->run.clear();
    if (!t.contains("command")) task->command.clear();
    if (!t.contains("worker")) task->worker.clear();
    if (!t.contains("python")) task->python.clear();
  }
  if (task->run.empty() && task->command.empty() && task->worker.empty() && task->python.empty()) {
    return ConfigError(file, t,
                       "[tasks." + name +
                           "] needs run = \"builtin:NAME\", command = [...], worker = [...] or python = "
                           "\"module:function\"");
  }
  for (TaskScope scope : {TaskScope::kWorker, TaskScope::kPython, TaskScope::kProcess}) {
    if (auto r = CheckScope(file, t, *task, scope); !r) return r;
  }
  // The processes of a task from a file run in its folder unless it says otherwise.
  if (task->run.empty() && task->cwd.empty() && !t.contains("cwd")) {
    task->cwd = FromConfigFolder(file, ".");
  }
  return {};
}

Status ApplyTask(const std::string& file, const std::string& name, const toml::table& t, ServerConfig* config) {
  TaskConfig task;
  if (auto it = config->tasks.find(name); it != config->tasks.end()) task = it->second;
  task.name = name;
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    const Setting<TaskConfig>* setting = FindSetting(TaskSettings(), key);
    if (!setting) {
      std::string expected;
      for (const auto& s : TaskSettings()) expected += (expected.empty() ? "" : ", ") + std::string(s.key);
      return ConfigError(file, v, "unknown key \"" + key + "\" in [tasks." + name + "] (expected " + expected + ")");
    }
    if (auto r = setting->apply(file, v, &task); !r) return r.error();
  }
  if (auto r = ApplyTaskKind(file, name, t, &task); !r) return r.error();
  config->tasks[name] = std::move(task);
  return {};
}

}  // namespace

bool ParseByteSize(std::string_view text, std::int64_t* out) {
  std::int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || n < 0) return false;
  std::string_view unit(ptr, text.data() + text.size() - ptr);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  static constexpr std::pair<std::string_view, std::int64_t> kUnits[] = {{"", 1},
                                                                         {"B", 1},
                                                                         {"KB", 1000},
                                                                         {"MB", 1000'000},
                                                                         {"GB", 1000'000'000},
                                                                         {"KiB", 1 << 10},
                                                                         {"MiB", 1 << 20},
                                                                         {"GiB", std::int64_t{1} << 30}};
  for (const auto& [name, scale] : kUnits) {
    if (unit == name) {
      if (n > INT64_MAX / scale) return false;
      *out = n * scale;
      return true;
    }
  }
  return false;
}

bool ParseDuration(std::string_view text, Millis* out) {
  std::int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || n < 0) return false;
  std::string_view unit(ptr, text.data() + text.size() - ptr);
  std::int64_t scale;
  if (unit.empty() || unit == "s")
    scale = 1000;
  else if (unit == "ms")
    scale = 1;
  else if (unit == "m")
    scale = 60'000;
  else if (unit == "h")
    scale = 3'600'000;
  else
    return false;
  if (n > INT64_MAX / scale) return false;  // Would overflow: no sane duration is that long.
  *out = Millis(n * scale);
  return true;
}

bool ParseRate(std::string_view text, double* per_second) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  double n = 0;
  const std::string_view number = text.substr(0, slash);
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
  if (ec != std::errc() || ptr != number.data() + number.size() || !(n > 0) || !std::isfinite(n)) return false;
  const std::string_view unit = text.substr(slash + 1);
  const double seconds = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
  if (seconds == 0) return false;
  *per_second = n / seconds;
  return true;
}

std::string FormatRate(double per_second) {
  if (per_second <= 0) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g/s", per_second);
  return buf;
}

ServerConfig DefaultConfig() {
  ServerConfig c;
  c.resources["cpu"] = std::max(1u, std::thread::hardware_concurrency());
  for (const char* name : kBuiltinTasks) {
    TaskConfig t;
    t.name = name;
    t.run = std::string("builtin:") + name;
    c.tasks[name] = t;
  }
  return c;
}

ErrorOr<ServerConfig> ParseConfig(std::string_view text, const std::string& file) {
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    return MakeError(ErrorCode::kInvalidArgument, Where(file, e.source()) + std::string(e.description()));
  }
  ServerConfig config = DefaultConfig();
  for (const auto& [k, v] : root) {
    std::string key(k.str());
    if (key == "resources") {
      const toml::table* t = v.as_table();
      if (!t) return ConfigError(file, v, "[resources] must be a table of name = capacity");
      for (const auto& [rk, rv] : *t) {
        auto n = ReadPositiveInt(file, rv, "resources." + std::string(rk.str()));
        if (!n) return n.error();
        config.resources[std::string(rk.str())] = *n;
      }
      continue;
    }
    if (key == "tasks") {
      const toml::table* t = v.as_table();
      if (!t) return ConfigError(file, v, "[tasks] must hold [tasks.NAME] tables");
      for (const auto& [tk, tv] : *t) {
        const toml::table* task = tv.as_table();
        if (!task) return ConfigError(file, tv, "tasks." + std::string(tk.str()) + " must be a table");
        auto r = ApplyTask(file, std::string(tk.str()), *task, &config);
        if (!r) return r.error();
      }
      continue;
    }
    if (key == "auth") {
      const toml::table* t = v.as_table();
      if (!t) return ConfigError(file, v, "[auth] must be a table (docs/security.md)");
      config.auth.enabled = true;
      for (const auto& [ak, av] : *t) {
        const Setting<AuthConfig>* setting = FindSetting(AuthSettings(), ak.str());
        if (!setting) return ConfigError(file, av, "unknown key \"" + std::string(ak.str()) + "\" in [auth]");
        if (auto r = setting->apply(file, av, &config.auth); !r) return r.error();
      }
      if (!config.auth.tokens_file.empty()) {
        auto tokens = LoadTokensFile(config.auth.tokens_file, Where(file, t->get("tokens_file")->source()));
        if (!tokens) return tokens.error();
        config.auth.file_tokens = std::move(*tokens);
      }
      if (Status s = ValidateTokens(config.auth, Where(file, v.source())); !s) return s.error();
      continue;
    }
    const Setting<ServerConfig>* setting = FindSetting(ServerSettings(), key);
    if (!setting) return ConfigError(file, v, "unknown key \"" + key + "\"");
    if (auto r = setting->apply(file, v, &config); !r) return r.error();
  }
  // Checked here, once [resources] is complete, so that the error names the line of
  // the task's uses (or of its table) in the file.
  if (const toml::table* tasks = root["tasks"].as_table()) {
    for (const auto& [tk, tv] : *tasks) {
      auto it = config.tasks.find(std::string(tk.str()));
      if (it == config.tasks.end()) continue;
      if (auto ok = ValidateTaskUses(config, it->first, it->second); !ok) {
        const toml::table* t = tv.as_table();
        const toml::node* uses = t ? t->get("uses") : nullptr;
        return MakeError(ErrorCode::kInvalidArgument,
                         Where(file, uses ? uses->source() : tv.source()) + ok.error().detail);
      }
    }
  }
  // The tokens' tenant keys, once [resources] is complete: their errors name the
  // token's own line.
  if (config.auth.enabled) {
    if (auto policies = TenantPolicies(config.auth, config.resources); !policies) return policies.error();
  }
  auto valid = ValidateConfig(config);
  if (!valid) {
    return MakeError(ErrorCode::kInvalidArgument, file + ": " + valid.error().detail);
  }
  return config;
}

ErrorOr<ServerConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kInvalidArgument, path + ": cannot open the file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

Status ValidateConfig(const ServerConfig& config) {
  if (config.resources.size() > 64) {
    return MakeError(ErrorCode::kInvalidArgument, "at most 64 resources may be declared");
  }
  if (config.postgres_connections < 2) {
    return MakeError(ErrorCode::kInvalidArgument, "postgres_connections must be at least 2 (a writer and a reader)");
  }
  if (config.role != "all" && config.role != "api" && config.role != "worker") {
    return MakeError(ErrorCode::kInvalidArgument, "role must be \"all\", \"api\" or \"worker\"");
  }
  // postgres:, postgresql:, postgres://, postgresql:// (IsStore checked the rest).
  if (config.role != "all" && config.store.rfind("postgres", 0) != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "role \"" + config.role +
                                                      "\" needs a PostgreSQL store: a server with its own store is the "
                                                      "whole cluster (docs/cluster.md)");
  }
  if (config.lease_ttl < Millis(300)) return MakeError(ErrorCode::kInvalidArgument, "lease_ttl must be at least 300ms");
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "tls_cert and tls_key go together: set both (TLS) or neither (plain HTTP)");
  }
  for (const auto& [name, task] : config.tasks) {
    if (auto ok = ValidateTaskUses(config, name, task); !ok) return ok;
  }
  return {};
}

}  // namespace offload
