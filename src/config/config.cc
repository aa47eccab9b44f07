#include "config/config.h"

#include <toml++/toml.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

namespace offload {
namespace {

constexpr const char* kBuiltinTasks[] = {"noop", "sleep", "cpu", "mandelbrot"};

std::string Where(const std::string& file, const toml::source_region& src) {
  return file + ":" + std::to_string(src.begin.line) + ": ";
}

Error ConfigError(const std::string& file, const toml::node& node, const std::string& what) {
  return MakeError(ErrorCode::kInvalidArgument, Where(file, node.source()) + what);
}

// Reads a duration given as a string ("30s") or an integer number of seconds.
ErrorOr<Millis> ReadDuration(const std::string& file, const toml::node& node,
                            std::string_view key) {
  Millis out{};
  if (auto i = node.value<std::int64_t>(); i && node.is_integer()) {
    if (*i < 0) return ConfigError(file, node, std::string(key) + " must not be negative");
    if (*i > INT64_MAX / 1000) return ConfigError(file, node, std::string(key) + " is too large");
    return Millis(*i * 1000);
  }
  if (auto s = node.value<std::string>(); s && ParseDuration(*s, &out)) return out;
  return ConfigError(file, node,
                     std::string(key) + " must be a duration such as \"500ms\", \"30s\", \"5m\", "
                                        "\"24h\" or a number of seconds");
}

ErrorOr<std::int64_t> ReadPositiveInt(const std::string& file, const toml::node& node,
                                     std::string_view key, bool allow_zero = false) {
  auto v = node.value<std::int64_t>();
  if (!node.is_integer() || !v || *v < 0 || (*v == 0 && !allow_zero)) {
    return ConfigError(file, node, std::string(key) + " must be a " +
                                       (allow_zero ? "non-negative" : "positive") + " integer");
  }
  return *v;
}

ErrorOr<std::string> ReadString(const std::string& file, const toml::node& node,
                               std::string_view key) {
  if (!node.is_string()) return ConfigError(file, node, std::string(key) + " must be a string");
  return *node.value<std::string>();
}

ErrorOr<std::int64_t> ReadByteSize(const std::string& file, const toml::node& node,
                                   std::string_view key);

// "*" or scheme://host[:port] as a browser sends it in Origin: http or https, no
// path, no trailing slash.
bool IsOriginPattern(std::string_view s) {
  if (s == "*") return true;
  std::string_view rest;
  if (s.rfind("http://", 0) == 0) rest = s.substr(7);
  else if (s.rfind("https://", 0) == 0) rest = s.substr(8);
  else return false;
  return !rest.empty() && rest.find_first_of("/?#@ ") == std::string_view::npos;
}

// One top-level setting: its key, default, help, and how to apply it.
struct Setting {
  SettingDoc doc;
  std::function<ErrorOr<bool>(const std::string& file, const toml::node&, ServerConfig*)> apply;
};

Setting DurationSetting(const char* key, const char* def, const char* help,
                        Millis ServerConfig::*field) {
  return Setting{{key, def, help},
                 [key, field](const std::string& f, const toml::node& n,
                              ServerConfig* c) -> ErrorOr<bool> {
                   auto d = ReadDuration(f, n, key);
                   if (!d) return d.error();
                   c->*field = *d;
                   return true;
                 }};
}

// A duration that must be above zero (a zero timeout would close every connection).
Setting PositiveDurationSetting(const char* key, const char* def, const char* help,
                                Millis ServerConfig::*field) {
  return Setting{{key, def, help},
                 [key, field](const std::string& f, const toml::node& n,
                              ServerConfig* c) -> ErrorOr<bool> {
                   auto d = ReadDuration(f, n, key);
                   if (!d) return d.error();
                   if (d->count() <= 0) return ConfigError(f, n, std::string(key) + " must be above zero");
                   c->*field = *d;
                   return true;
                 }};
}

// `allow_zero`: 0 is a value of its own ("none", "derived"), else refused.
template <typename Int>
Setting IntSetting(const char* key, const char* def, const char* help, Int ServerConfig::*field,
                   bool allow_zero = false) {
  return Setting{{key, def, help},
                 [key, field, allow_zero](const std::string& f, const toml::node& n,
                                          ServerConfig* c) -> ErrorOr<bool> {
                   auto v = ReadPositiveInt(f, n, key, allow_zero);
                   if (!v) return v.error();
                   c->*field = static_cast<Int>(*v);
                   return true;
                 }};
}

Setting StringSetting(const char* key, const char* def, const char* help,
                      std::string ServerConfig::*field,
                      std::function<bool(const std::string&)> valid, const char* expected) {
  return Setting{{key, def, help},
                 [key, field, valid, expected](const std::string& f, const toml::node& n,
                                               ServerConfig* c) -> ErrorOr<bool> {
                   auto s = ReadString(f, n, key);
                   if (!s) return s.error();
                   if (!valid(*s)) return ConfigError(f, n, std::string(key) + " must be " + expected);
                   c->*field = *s;
                   return true;
                 }};
}

const std::vector<Setting>& Settings() {
  static const std::vector<Setting> settings = {
      StringSetting("listen", "\"127.0.0.1:8080\"",
                    "Address and port to serve HTTP on, `HOST:PORT` or `[V6]:PORT`; port 0 picks a free one.",
                    &ServerConfig::listen, [](const std::string& s) { return s.find(':') != std::string::npos; },
                    "HOST:PORT"),
      IntSetting("threads", "number of cores", "I/O threads. Job work never runs on them.",
                 &ServerConfig::threads),
      IntSetting("max_body", "16777216", "Largest request body in bytes; a larger one gets 413.",
                 &ServerConfig::max_body),
      DurationSetting("max_wait", "\"60s\"", "Cap on `Prefer: wait=N` and `?wait=N`.",
                      &ServerConfig::max_wait),
      DurationSetting("run_timeout", "\"300s\"",
                      "How long `POST /v1/tasks/NAME/run` waits for its job before answering 504 "
                      "and canceling it.",
                      &ServerConfig::run_timeout),
      DurationSetting("retention", "\"24h\"",
                      "Finished jobs and their results are removed this long after they finish.",
                      &ServerConfig::retention),
      DurationSetting("shutdown_grace", "\"30s\"",
                      "On SIGINT/SIGTERM, running jobs may finish within this; then they are canceled.",
                      &ServerConfig::shutdown_grace),
      StringSetting("store", "\"sqlite:./offload-data/offload.db\"",
                    "Where jobs are kept: `\"sqlite:PATH\"` (durable; the folder is created) or `\"memory\"` "
                    "(lost at exit).",
                    &ServerConfig::store,
                    [](const std::string& s) { return s == "memory" || (s.rfind("sqlite:", 0) == 0 && s.size() > 7); },
                    "\"memory\" or \"sqlite:PATH\""),
      Setting{{"sqlite_synchronous", "\"full\"",
               "`\"full\"`: a job is synced to disk before its 202 and survives a power loss. `\"normal\"`: "
               "it survives a crash of offload (kill -9) but the last commits may be lost on an OS crash "
               "or power loss; faster."},
              [](const std::string& f, const toml::node& n, ServerConfig* c) -> ErrorOr<bool> {
                auto s = ReadString(f, n, "sqlite_synchronous");
                if (!s) return s.error();
                if (*s != "full" && *s != "normal") {
                  return ConfigError(f, n, "sqlite_synchronous must be \"full\" or \"normal\"");
                }
                c->sqlite_synchronous_full = *s == "full";
                return true;
              }},
      IntSetting("sqlite_max_bytes", "0",
                 "Caps the SQLite file in bytes (0: no cap). Past it, submits get 503 as on a full disk, "
                 "until retention frees room.",
                 &ServerConfig::sqlite_max_bytes, /*allow_zero=*/true),
      DurationSetting("idempotency_ttl", "\"24h\"",
                      "How long an `Idempotency-Key` is remembered: a repeat within it returns the first job.",
                      &ServerConfig::idempotency_ttl),
      IntSetting("max_connections", "0",
                 "Open connections at most; past it a new one gets a fixed 503 and is closed. 0: derived "
                 "from the open-file limit, `RLIMIT_NOFILE − max(64, RLIMIT_NOFILE / 8)`.",
                 &ServerConfig::max_connections, /*allow_zero=*/true),
      PositiveDurationSetting("idle_timeout", "\"60s\"",
                              "A keep-alive connection with no request for this long is closed.",
                              &ServerConfig::idle_timeout),
      PositiveDurationSetting("header_timeout", "\"10s\"",
                              "From a request's first byte until its header is complete; also the "
                              "longest a request body may stall. Past it the connection is closed.",
                              &ServerConfig::header_timeout),
      PositiveDurationSetting("write_timeout", "\"10s\"",
                              "A response write that makes no progress for this long (a client that "
                              "stopped reading) drops the connection.",
                              &ServerConfig::write_timeout),
      Setting{{"allowed_origins", "[]",
               "Web origins (`\"https://app.example:8443\"`) whose pages may call the API; they get "
               "CORS headers. A request with another `Origin` (but the server's own) gets 403. `\"*\"` "
               "admits every page a user visits: any site could then submit and cancel jobs."},
              [](const std::string& f, const toml::node& n, ServerConfig* c) -> ErrorOr<bool> {
                const toml::array* a = n.as_array();
                if (!a) return ConfigError(f, n, "allowed_origins must be an array of strings");
                std::vector<std::string> origins;
                for (const auto& e : *a) {
                  auto s = e.value<std::string>();
                  if (!e.is_string() || !IsOriginPattern(*s)) {
                    return ConfigError(f, e,
                                       "allowed_origins entries must be \"*\" or an origin such as "
                                       "\"http://localhost:3000\" (scheme://host[:port], no path)");
                  }
                  origins.push_back(*s);
                }
                c->allowed_origins = std::move(origins);
                return true;
              }},
      Setting{{"max_list_bytes", "\"16MiB\"",
               "Largest `GET /v1/jobs` answer; a page over it (with `?include=result`) gets 422. A "
               "number of bytes or a size such as `\"64MiB\"`."},
              [](const std::string& f, const toml::node& n, ServerConfig* c) -> ErrorOr<bool> {
                auto v = ReadByteSize(f, n, "max_list_bytes");
                if (!v) return v.error();
                if (*v < 1024) return ConfigError(f, n, "max_list_bytes must be at least 1024 bytes");
                c->max_list_bytes = *v;
                return true;
              }},
  };
  return settings;
}

// Reads a size given as an integer number of bytes or a string such as "512MiB".
ErrorOr<std::int64_t> ReadByteSize(const std::string& file, const toml::node& node,
                                   std::string_view key) {
  std::int64_t out = 0;
  if (node.is_integer() && *node.value<std::int64_t>() >= 0) return *node.value<std::int64_t>();
  if (auto s = node.value<std::string>(); s && ParseByteSize(*s, &out)) return out;
  return ConfigError(file, node,
                     std::string(key) + " must be a number of bytes or a size such as \"512MiB\", "
                                        "\"2GiB\", \"100MB\"");
}

ErrorOr<std::vector<std::string>> ReadArgv(const std::string& file, const toml::node& node,
                                          std::string_view key) {
  const toml::array* a = node.as_array();
  std::vector<std::string> argv;
  if (a) {
    for (const auto& e : *a) {
      if (!e.is_string()) break;
      argv.push_back(*e.value<std::string>());
    }
  }
  if (!a || a->empty() || argv.size() != a->size() || argv[0].empty()) {
    return ConfigError(file, node,
                       std::string(key) + " must be a non-empty array of strings: the program and its "
                                          "arguments, such as [\"python3\", \"worker.py\"] (no shell)");
  }
  return argv;
}

// Every resource a task uses is declared, with room for one job.
ErrorOr<bool> ValidateTaskUses(const ServerConfig& config, const std::string& name,
                               const TaskConfig& task) {
  for (const auto& [res, amount] : task.uses) {
    auto it = config.resources.find(res);
    if (it == config.resources.end()) {
      return MakeError(ErrorCode::kInvalidArgument, "task \"" + name + "\" uses resource \"" + res +
                                                        "\", which [resources] does not declare");
    }
    if (amount > it->second) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "task \"" + name + "\" uses " + std::to_string(amount) + " " + res +
                           " but the capacity is " + std::to_string(it->second) +
                           ": its jobs could never start");
    }
  }
  return true;
}

ErrorOr<bool> ApplyUses(const std::string& file, const toml::node& node, TaskConfig* task) {
  const toml::table* t = node.as_table();
  if (!t) return ConfigError(file, node, "uses must be a table such as {cpu = 1}");
  task->uses.clear();
  for (const auto& [k, v] : *t) {
    auto n = ReadPositiveInt(file, v, "uses." + std::string(k.str()));
    if (!n) return n.error();
    task->uses[std::string(k.str())] = *n;
  }
  if (task->uses.empty()) return ConfigError(file, node, "uses must name at least one resource");
  return true;
}

// A task has exactly one of run, command and worker; the one this table sets
// replaces an inherited one (a file may turn a built-in into a command). Keys that
// only make sense for another kind are refused rather than silently ignored.
ErrorOr<bool> ApplyTaskKind(const std::string& file, const std::string& name, const toml::table& t,
                           bool has_run, TaskConfig* task) {
  const bool has_command = t.contains("command");
  const bool has_worker = t.contains("worker");
  if (has_run + has_command + has_worker > 1) {
    return ConfigError(file, t, "[tasks." + name +
                                    "] sets more than one of run, command and worker; a task has one");
  }
  if (has_run) task->command.clear(), task->worker.clear();
  if (has_command) task->run.clear(), task->worker.clear();
  if (has_worker) task->run.clear(), task->command.clear();
  if (task->run.empty() && task->command.empty() && task->worker.empty()) {
    return ConfigError(file, t, "[tasks." + name +
                                    "] needs run = \"builtin:NAME\", command = [...] or worker = [...]");
  }
  for (const char* key : {"workers", "max_jobs_per_worker", "max_rss"}) {
    if (task->worker.empty() && t.contains(key)) {
      return ConfigError(file, *t.get(key), std::string(key) + " applies to worker tasks only");
    }
  }
  for (const char* key : {"cwd", "env", "kill_grace", "max_result"}) {
    if (!task->run.empty() && t.contains(key)) {
      return ConfigError(file, *t.get(key), std::string(key) + " applies to command and worker tasks only");
    }
  }
  return true;
}

ErrorOr<bool> ApplyTask(const std::string& file, const std::string& name, const toml::table& t,
                       ServerConfig* config) {
  TaskConfig task;
  if (auto it = config->tasks.find(name); it != config->tasks.end()) task = it->second;
  task.name = name;
  bool has_run = false;
  for (const auto& [k, v] : t) {
    std::string key(k.str());
    ErrorOr<bool> r = true;
    if (key == "run") {
      auto s = ReadString(file, v, "run");
      if (!s) return s.error();
      if (s->rfind("builtin:", 0) != 0) {
        return ConfigError(file, v, "run must be \"builtin:NAME\" (noop, sleep, cpu, mandelbrot)");
      }
      task.run = *s;
      has_run = true;
    } else if (key == "uses") {
      r = ApplyUses(file, v, &task);
    } else if (key == "max_queued") {
      auto n = ReadPositiveInt(file, v, "max_queued");
      if (!n) return n.error();
      task.max_queued = *n;
    } else if (key == "timeout") {
      auto d = ReadDuration(file, v, "timeout");
      if (!d) return d.error();
      task.timeout = *d;
    } else if (key == "retries") {
      auto n = ReadPositiveInt(file, v, "retries", /*allow_zero=*/true);
      if (!n) return n.error();
      task.retries = *n;
    } else if (key == "retry_backoff") {
      auto d = ReadDuration(file, v, "retry_backoff");
      if (!d) return d.error();
      task.retry_backoff = *d;
    } else if (key == "retry_backoff_max") {
      auto d = ReadDuration(file, v, "retry_backoff_max");
      if (!d) return d.error();
      task.retry_backoff_max = *d;
    } else if (key == "content_type") {
      auto s = ReadString(file, v, "content_type");
      if (!s) return s.error();
      task.content_type = *s;
    } else if (key == "command" || key == "worker") {
      auto argv = ReadArgv(file, v, key);
      if (!argv) return argv.error();
      (key == "command" ? task.command : task.worker) = std::move(*argv);
    } else if (key == "workers" || key == "max_jobs_per_worker") {
      auto n = ReadPositiveInt(file, v, key, /*allow_zero=*/key == "max_jobs_per_worker");
      if (!n) return n.error();
      (key == "workers" ? task.workers : task.max_jobs_per_worker) = *n;
    } else if (key == "max_rss" || key == "max_result") {
      auto n = ReadByteSize(file, v, key);
      if (!n) return n.error();
      if (key == "max_result" && *n == 0) return ConfigError(file, v, "max_result must be positive");
      (key == "max_rss" ? task.max_rss : task.max_result) = *n;
    } else if (key == "kill_grace") {
      auto d = ReadDuration(file, v, "kill_grace");
      if (!d) return d.error();
      task.kill_grace = *d;
    } else if (key == "cwd") {
      auto s = ReadString(file, v, "cwd");
      if (!s) return s.error();
      std::filesystem::path dir(*s);
      if (dir.is_relative()) dir = std::filesystem::path(file).parent_path() / dir;
      task.cwd = s->empty() ? "" : std::filesystem::absolute(dir).lexically_normal().string();
    } else if (key == "env") {
      const toml::table* env = v.as_table();
      if (!env) return ConfigError(file, v, "env must be a table of strings such as {LANG = \"C\"}");
      task.env.clear();
      for (const auto& [ek, ev] : *env) {
        auto s = ReadString(file, ev, "env." + std::string(ek.str()));
        if (!s) return s.error();
        task.env[std::string(ek.str())] = *s;
      }
    } else {
      return ConfigError(file, v, "unknown key \"" + key + "\" in [tasks." + name +
                                      "] (expected run, uses, max_queued, timeout, content_type, retries, "
                                      "retry_backoff, retry_backoff_max, command, worker, workers, cwd, env, "
                                      "kill_grace, max_jobs_per_worker, max_rss, max_result)");
    }
    if (!r) return r.error();
  }
  auto r = ApplyTaskKind(file, name, t, has_run, &task);
  if (!r) return r.error();
  config->tasks[name] = std::move(task);
  return true;
}

}  // namespace

bool ParseByteSize(std::string_view text, std::int64_t* out) {
  std::int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || n < 0) return false;
  std::string_view unit(ptr, text.data() + text.size() - ptr);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  static constexpr std::pair<std::string_view, std::int64_t> kUnits[] = {
      {"", 1},           {"B", 1},          {"KB", 1000},      {"MB", 1000'000},
      {"GB", 1000'000'000}, {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", std::int64_t{1} << 30}};
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
  if (unit.empty() || unit == "s") scale = 1000;
  else if (unit == "ms") scale = 1;
  else if (unit == "m") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else return false;
  if (n > INT64_MAX / scale) return false;  // Would overflow: no sane duration is that long.
  *out = Millis(n * scale);
  return true;
}

const std::vector<SettingDoc>& ServerSettingDocs() {
  static const std::vector<SettingDoc> docs = [] {
    std::vector<SettingDoc> d;
    for (const auto& s : Settings()) d.push_back(s.doc);
    return d;
  }();
  return docs;
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
    return MakeError(ErrorCode::kInvalidArgument,
                     Where(file, e.source()) + std::string(e.description()));
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
    bool known = false;
    for (const auto& s : Settings()) {
      if (key == s.doc.key) {
        auto r = s.apply(file, v, &config);
        if (!r) return r.error();
        known = true;
        break;
      }
    }
    if (!known) return ConfigError(file, v, "unknown key \"" + key + "\"");
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

ErrorOr<bool> ValidateConfig(const ServerConfig& config) {
  if (config.resources.size() > 64) {
    return MakeError(ErrorCode::kInvalidArgument, "at most 64 resources may be declared");
  }
  for (const auto& [name, task] : config.tasks) {
    if (auto ok = ValidateTaskUses(config, name, task); !ok) return ok.error();
  }
  return true;
}

}  // namespace offload
