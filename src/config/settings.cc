// The settings table (setting_table.h): every key of the config file, declared once.
#include <filesystem>
#include <utility>

#include "config/setting_table.h"
#include "config/tokens_file.h"
#include "store/pg_connection.h"
#include "store/store.h"

namespace offload {
namespace {

// Reads a duration given as a string ("30s") or an integer number of seconds.
ErrorOr<Millis> ReadDuration(const std::string& file, const toml::node& node, std::string_view key) {
  Millis out{};
  if (auto i = node.value<std::int64_t>(); i && node.is_integer()) {
    if (*i < 0) return ConfigError(file, node, std::string(key) + " must not be negative");
    if (*i > INT64_MAX / 1000) return ConfigError(file, node, std::string(key) + " is too large");
    return Millis(*i * 1000);
  }
  if (auto s = node.value<std::string>(); s && ParseDuration(*s, &out)) return out;
  return ConfigError(file, node,
                     std::string(key) +
                         " must be a duration such as \"500ms\", \"30s\", \"5m\", "
                         "\"24h\" or a number of seconds");
}

ErrorOr<std::string> ReadString(const std::string& file, const toml::node& node, std::string_view key) {
  if (!node.is_string()) return ConfigError(file, node, std::string(key) + " must be a string");
  return *node.value<std::string>();
}

// Reads a size given as an integer number of bytes or a string such as "512MiB".
ErrorOr<std::int64_t> ReadByteSize(const std::string& file, const toml::node& node, std::string_view key) {
  std::int64_t out = 0;
  if (node.is_integer() && *node.value<std::int64_t>() >= 0) return *node.value<std::int64_t>();
  if (auto s = node.value<std::string>(); s && ParseByteSize(*s, &out)) return out;
  return ConfigError(file, node,
                     std::string(key) +
                         " must be a number of bytes or a size such as \"512MiB\", "
                         "\"2GiB\", \"100MB\"");
}

ErrorOr<std::vector<std::string>> ReadArgv(const std::string& file, const toml::node& node, std::string_view key) {
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
                       std::string(key) +
                           " must be a non-empty array of strings: the program and its "
                           "arguments, such as [\"python3\", \"worker.py\"] (no shell)");
  }
  return argv;
}

// "*" or scheme://host[:port] as a browser sends it in Origin: http or https, no
// path, no trailing slash.
bool IsOriginPattern(std::string_view s) {
  if (s == "*") return true;
  std::string_view rest;
  if (s.rfind("http://", 0) == 0)
    rest = s.substr(7);
  else if (s.rfind("https://", 0) == 0)
    rest = s.substr(8);
  else
    return false;
  return !rest.empty() && rest.find_first_of("/?#@ ") == std::string_view::npos;
}

// Values as they are written in the file, for defaults in --help and the docs.

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

// The largest unit that writes `d` exactly: 300000ms is "5m", 1500ms "1500ms".
std::string FormatDuration(Millis d) {
  const std::int64_t ms = d.count();
  if (ms == 0) return Quote("0s");
  if (ms % 3'600'000 == 0) return Quote(std::to_string(ms / 3'600'000) + "h");
  if (ms % 60'000 == 0) return Quote(std::to_string(ms / 60'000) + "m");
  if (ms % 1000 == 0) return Quote(std::to_string(ms / 1000) + "s");
  return Quote(std::to_string(ms) + "ms");
}

// A power-of-two multiple as "64MiB", anything else as a bare number of bytes.
std::string FormatByteSize(std::int64_t n) {
  static constexpr std::pair<const char*, std::int64_t> kUnits[] = {
      {"GiB", std::int64_t{1} << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}};
  if (n != 0) {
    for (const auto& [unit, scale] : kUnits) {
      if (n % scale == 0) return Quote(std::to_string(n / scale) + unit);
    }
  }
  return std::to_string(n);
}

std::string FormatStrings(const std::vector<std::string>& v) {
  std::string out = "[";
  for (const auto& s : v) out += (out.size() > 1 ? ", " : "") + Quote(s);
  return out + "]";
}

std::string FormatKey(const std::string& k) {
  const bool bare = !k.empty() && k.find_first_not_of(
                                      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789_-") == std::string::npos;
  return bare ? k : Quote(k);
}

template <typename Value, typename Format>
std::string FormatTable(const std::map<std::string, Value>& m, Format format) {
  if (m.empty()) return "{}";
  std::string out = "{";
  for (const auto& [k, v] : m) out += (out.size() > 1 ? ", " : "") + FormatKey(k) + " = " + format(v);
  return out + "}";
}

// Entry builders, one per type. `Config` is ServerConfig or TaskConfig.

template <typename Config>
Setting<Config> DurationSetting(const char* key, Millis Config::*field, const char* help, bool above_zero = false) {
  return {key, "duration", help,
          [key, field, above_zero](const std::string& f, const toml::node& n, Config* c) -> Status {
            auto d = ReadDuration(f, n, key);
            if (!d) return d.error();
            // A zero timeout would close every connection.
            if (above_zero && d->count() <= 0) return ConfigError(f, n, std::string(key) + " must be above zero");
            c->*field = *d;
            return {};
          },
          [field](const Config& c) { return FormatDuration(c.*field); }};
}

// `allow_zero`: 0 is a value of its own ("none", "derived"), else refused.
template <typename Config, typename Int>
Setting<Config> IntSetting(const char* key, Int Config::*field, const char* help, bool allow_zero = false) {
  return {key, "integer", help,
          [key, field, allow_zero](const std::string& f, const toml::node& n, Config* c) -> Status {
            auto v = ReadPositiveInt(f, n, key, allow_zero);
            if (!v) return v.error();
            c->*field = static_cast<Int>(*v);
            return {};
          },
          [field](const Config& c) { return std::to_string(c.*field); }};
}

// A number of bytes or a size such as "512MiB", at least `min`.
template <typename Config>
Setting<Config> SizeSetting(const char* key, std::int64_t Config::*field, std::int64_t min, const char* help) {
  return {key, "size", help,
          [key, field, min](const std::string& f, const toml::node& n, Config* c) -> Status {
            auto v = ReadByteSize(f, n, key);
            if (!v) return v.error();
            if (*v < min) {
              return ConfigError(f, n,
                                 std::string(key) + (min == 1 ? " must be positive"
                                                              : " must be at least " + std::to_string(min) + " bytes"));
            }
            c->*field = *v;
            return {};
          },
          [field](const Config& c) { return FormatByteSize(c.*field); }};
}

// `valid` (when given) accepts the value; else the error says it must be `expected`.
template <typename Config>
Setting<Config> StringSetting(const char* key, std::string Config::*field, const char* help,
                              bool (*valid)(const std::string&) = nullptr, const char* expected = nullptr) {
  return {key, "string", help,
          [key, field, valid, expected](const std::string& f, const toml::node& n, Config* c) -> Status {
            auto s = ReadString(f, n, key);
            if (!s) return s.error();
            if (valid && !valid(*s)) return ConfigError(f, n, std::string(key) + " must be " + expected);
            c->*field = *s;
            return {};
          },
          [field](const Config& c) { return Quote(c.*field); }};
}

// A rate such as "100/s"; 0 (or "0"): none.
template <typename Config>
Setting<Config> RateSetting(const char* key, double Config::*field, const char* help) {
  return Setting<Config>{key, "rate", help,
                         [key, field](const std::string& f, const toml::node& n, Config* c) -> Status {
                           double rate = 0;
                           if (n.is_integer() && *n.value<std::int64_t>() == 0) {
                             c->*field = 0;
                             return {};
                           }
                           auto s = n.value<std::string>();
                           if (!n.is_string() || (*s != "0" && !ParseRate(*s, &rate))) {
                             return ConfigError(f, n,
                                                std::string(key) +
                                                    " must be a rate such as \"100/s\", \"600/m\" "
                                                    "or \"10/h\" (or 0: none)");
                           }
                           c->*field = rate;
                           return {};
                         },
                         [field](const Config& c) { return c.*field > 0 ? Quote(FormatRate(c.*field)) : "0"; }}
      .Note("none");
}

// A file's path, relative to the config file's folder. Empty: none.
template <typename Config>
Setting<Config> PathSetting(const char* key, std::string Config::*field, const char* help) {
  return Setting<Config>{key, "string", help,
                         [key, field](const std::string& f, const toml::node& n, Config* c) -> Status {
                           auto s = ReadString(f, n, key);
                           if (!s) return s.error();
                           if (s->empty()) return ConfigError(f, n, std::string(key) + " must name a file");
                           c->*field = FromConfigFolder(f, *s);
                           return {};
                         },
                         [field](const Config& c) { return Quote(c.*field); }}
      .Note("none");
}

// A program and its arguments.
template <typename Config>
Setting<Config> ArgvSetting(const char* key, std::vector<std::string> Config::*field, const char* help) {
  return {key, "array of strings", help,
          [key, field](const std::string& f, const toml::node& n, Config* c) -> Status {
            auto argv = ReadArgv(f, n, key);
            if (!argv) return argv.error();
            c->*field = std::move(*argv);
            return {};
          },
          [field](const Config& c) { return FormatStrings(c.*field); }};
}

Status ApplySqliteSynchronous(const std::string& f, const toml::node& n, ServerConfig* c) {
  auto s = ReadString(f, n, "sqlite_synchronous");
  if (!s) return s.error();
  if (*s != "full" && *s != "normal") return ConfigError(f, n, "sqlite_synchronous must be \"full\" or \"normal\"");
  c->sqlite_synchronous_full = *s == "full";
  return {};
}

Status ApplyAllowedOrigins(const std::string& f, const toml::node& n, ServerConfig* c) {
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
  return {};
}

// Reads the TOML table `n` into `out`, each value by `read(file, node, "KEY.NAME")`;
// `shape` is what the error says it must be when `n` is not a table.
template <typename Value, typename Read>
Status ReadTable(const std::string& f, const toml::node& n, const std::string& key, const char* shape, Read read,
                 std::map<std::string, Value>* out) {
  const toml::table* t = n.as_table();
  if (!t) return ConfigError(f, n, key + " must be " + shape);
  out->clear();
  for (const auto& [k, v] : *t) {
    auto value = read(f, v, key + "." + std::string(k.str()));
    if (!value) return value.error();
    (*out)[std::string(k.str())] = *value;
  }
  return {};
}

Status ApplyUses(const std::string& f, const toml::node& n, TaskConfig* task) {
  auto read = [](const std::string& file, const toml::node& v, const std::string& key) {
    return ReadPositiveInt(file, v, key);
  };
  if (auto r = ReadTable(f, n, "uses", "a table such as {cpu = 1}", read, &task->uses); !r) return r;
  if (task->uses.empty()) return ConfigError(f, n, "uses must name at least one resource");
  return {};
}

Status ApplyEnv(const std::string& f, const toml::node& n, TaskConfig* task) {
  auto read = [](const std::string& file, const toml::node& v, const std::string& key) {
    return ReadString(file, v, key);
  };
  return ReadTable(f, n, "env", "a table of strings such as {LANG = \"C\"}", read, &task->env);
}

Status ApplyCwd(const std::string& f, const toml::node& n, TaskConfig* task) {
  auto s = ReadString(f, n, "cwd");
  if (!s) return s.error();
  task->cwd = s->empty() ? "" : FromConfigFolder(f, *s);
  return {};
}

Status ApplyPythonPath(const std::string& f, const toml::node& n, TaskConfig* task) {
  const toml::array* a = n.as_array();
  if (!a) return ConfigError(f, n, "python_path must be an array of folders such as [\".\", \"src\"]");
  task->python_path.clear();
  for (const auto& e : *a) {
    if (!e.is_string() || e.value<std::string>()->empty()) {
      return ConfigError(f, e, "python_path entries must be non-empty strings (folders)");
    }
    task->python_path.push_back(FromConfigFolder(f, *e.value<std::string>()));
  }
  return {};
}

// A bare name ("python3.11") is looked up on PATH when the task starts; a path with
// a slash is taken from the config file's folder.
Status ApplyInterpreter(const std::string& f, const toml::node& n, TaskConfig* task) {
  auto s = ReadString(f, n, "interpreter");
  if (!s) return s.error();
  if (s->empty()) return ConfigError(f, n, "interpreter must name a program, such as \"/opt/venv/bin/python\"");
  task->interpreter = s->find('/') == std::string::npos ? *s : FromConfigFolder(f, *s);
  return {};
}

// "module:attribute", each part dotted names.
bool IsPythonTarget(const std::string& s) {
  const std::size_t colon = s.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size() || s.find(':', colon + 1) != s.npos) {
    return false;
  }
  return s.find_first_of(" \t/\\") == std::string::npos;
}
bool IsCallStyle(const std::string& s) { return s == "arg" || s == "kwargs"; }

bool IsInputAs(const std::string& s) { return s == "stdin" || s == "path"; }
bool IsPythonInput(const std::string& s) { return s == "path" || s == "bytes"; }

// "type/subtype", "type/*" or "*/*", without parameters; JSON is not a file type.
bool IsMediaRange(std::string_view s) {
  const std::size_t slash = s.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size()) return false;
  if (s.find_first_of(" ;,\t\"") != std::string_view::npos || s.find('/', slash + 1) != std::string_view::npos) {
    return false;
  }
  return !(s.substr(0, slash) == "*" && s.substr(slash + 1) != "*");
}

Status ApplyAccept(const std::string& f, const toml::node& n, TaskConfig* task) {
  const toml::array* a = n.as_array();
  if (!a) return ConfigError(f, n, "accept must be an array of content types such as [\"image/png\", \"image/*\"]");
  task->accept.clear();
  for (const auto& e : *a) {
    auto s = e.value<std::string>();
    if (!e.is_string() || !IsMediaRange(*s)) {
      return ConfigError(f, e,
                         "accept entries must be content types such as \"image/png\", \"image/*\" or \"*/*\" "
                         "(no parameters)");
    }
    if (*s == "application/json" || *s == "multipart/form-data") {
      return ConfigError(f, e, *s + " is always understood as the request's own format; accept lists file types");
    }
    task->accept.push_back(*s);
  }
  return {};
}

bool IsHostPort(const std::string& s) { return s.find(':') != std::string::npos; }
bool IsAccessLogFormat(const std::string& s) { return s == "json" || s == "common"; }

bool IsRole(const std::string& s) { return s == "all" || s == "api" || s == "worker"; }

bool IsStore(const std::string& s) {
  if (s == "memory" || (s.rfind("sqlite:", 0) == 0 && s.size() > 7)) return true;
  auto conninfo = PostgresConnInfo(s);
  return conninfo && ValidConnInfo(*conninfo, nullptr);
}
bool IsBuiltinRun(const std::string& s) { return s.rfind("builtin:", 0) == 0; }

template <typename Config>
std::vector<SettingDoc> Docs(const std::vector<Setting<Config>>& settings, const Config& defaults) {
  std::vector<SettingDoc> docs;
  docs.reserve(settings.size());
  for (const auto& s : settings) {
    docs.push_back(SettingDoc{s.key, s.type, s.render(defaults), s.default_note ? s.default_note : "", s.help,
                              TaskScopeName(s.scope)});
  }
  return docs;
}

// Appends `text` to `out`, wrapped before `width` columns, each line indented.
void AppendWrapped(std::string* out, std::string_view text, std::size_t indent, std::size_t width) {
  std::size_t column = 0;
  while (!text.empty()) {
    const std::size_t end = text.find(' ');
    const std::string_view word = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (word.empty()) continue;
    if (column > 0 && column + 1 + word.size() > width) {
      *out += '\n';
      column = 0;
    }
    if (column == 0) {
      out->append(indent, ' ');
      column = indent;
    } else {
      *out += ' ';
      ++column;
    }
    out->append(word);
    column += word.size();
  }
  *out += '\n';
}

void AppendSettings(std::string* out, const std::vector<SettingDoc>& docs) {
  for (const SettingDoc& d : docs) {
    *out += "  " + d.key + " (" + d.type + "), default " + d.DefaultText();
    if (!d.only_for.empty()) *out += "; " + d.only_for + " only";
    *out += '\n';
    AppendWrapped(out, d.help, 6, 96);
  }
}

}  // namespace

std::string Where(const std::string& file, const toml::source_region& source) {
  return file + ":" + std::to_string(source.begin.line) + ": ";
}

Error ConfigError(const std::string& file, const toml::node& node, const std::string& what) {
  return MakeError(ErrorCode::kInvalidArgument, Where(file, node.source()) + what);
}

std::string FromConfigFolder(const std::string& file, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative()) {
    const std::filesystem::path folder = std::filesystem::path(file).parent_path();
    p = (folder.empty() ? std::filesystem::current_path() : folder) / p;
  }
  p = std::filesystem::absolute(p).lexically_normal();
  if (p.filename().empty() && p.has_relative_path()) p = p.parent_path();  // "dir/." is "dir", not "dir/".
  return p.string();
}

ErrorOr<std::int64_t> ReadPositiveInt(const std::string& file, const toml::node& node, std::string_view key,
                                      bool allow_zero) {
  auto v = node.value<std::int64_t>();
  if (!node.is_integer() || !v || *v < 0 || (*v == 0 && !allow_zero)) {
    return ConfigError(file, node,
                       std::string(key) + " must be a " + (allow_zero ? "non-negative" : "positive") + " integer");
  }
  return *v;
}

const char* TaskScopeName(TaskScope scope) {
  switch (scope) {
    case TaskScope::kAll:
      return "";
    case TaskScope::kProcess:
      return "command, worker and python tasks";
    case TaskScope::kWorker:
      return "worker and python tasks";
    case TaskScope::kPython:
      return "python tasks";
  }
  return "";
}

const std::vector<Setting<ServerConfig>>& ServerSettings() {
  using C = ServerConfig;
  static const std::vector<Setting<C>> settings = {
      StringSetting("listen", &C::listen,
                    "Address and port to serve HTTP on, `HOST:PORT` or `[V6]:PORT`; port 0 picks a free one.",
                    IsHostPort, "HOST:PORT"),
      IntSetting("threads", &C::threads, "I/O threads. Job work never runs on them.").Note("number of cores"),
      IntSetting("max_body", &C::max_body, "Largest request body in bytes; a larger one gets 413."),
      DurationSetting("max_wait", &C::max_wait, "Cap on `Prefer: wait=N` and `?wait=N`."),
      DurationSetting("run_timeout", &C::run_timeout,
                      "How long `POST /v1/tasks/NAME/run` waits for its job before answering 504 and canceling it."),
      DurationSetting("retention", &C::retention,
                      "Finished jobs and their results are removed this long after they finish."),
      DurationSetting("shutdown_grace", &C::shutdown_grace,
                      "On SIGINT/SIGTERM, running jobs may finish within this; then they are canceled."),
      StringSetting("store", &C::store,
                    "Where jobs are kept: `\"sqlite:PATH\"` (durable; the folder is created), a PostgreSQL "
                    "connection string (`\"postgres://USER@HOST:PORT/DB\"`, or `\"postgres:\"` and libpq's "
                    "`key=value` form; docs/cluster.md), or `\"memory\"` (lost at exit).",
                    IsStore, "\"memory\", \"sqlite:PATH\" or a valid \"postgres://...\" connection string"),
      Setting<C>{"sqlite_synchronous", "string",
                 "`\"full\"`: a job is synced to disk before its 202 and survives a power loss. `\"normal\"`: "
                 "it survives a crash of offload (kill -9) but the last commits may be lost on an OS crash or "
                 "power loss; faster.",
                 ApplySqliteSynchronous,
                 [](const C& c) { return Quote(c.sqlite_synchronous_full ? "full" : "normal"); }},
      IntSetting("sqlite_max_bytes", &C::sqlite_max_bytes,
                 "Caps the SQLite file in bytes (0: no cap). Past it, submits get 503 as on a full disk, until "
                 "retention frees room.",
                 /*allow_zero=*/true),
      IntSetting("postgres_connections", &C::postgres_connections,
                 "With a PostgreSQL store: connections this server opens to it, at least 2: one writes and the "
                 "rest read; from 4, two write, each with its share of the jobs."),
      StringSetting("role", &C::role,
                    "With a PostgreSQL store, this node's part in the cluster: `\"all\"` takes HTTP and runs jobs, "
                    "`\"api\"` takes HTTP and runs nothing, `\"worker\"` runs jobs and serves only `/healthz` "
                    "(docs/cluster.md). `offload serve --role` overrides it.",
                    IsRole, "\"all\", \"api\" or \"worker\""),
      DurationSetting("lease_ttl", &C::lease_ttl,
                      "With a PostgreSQL store: a node's lease, renewed every third of it by a thread of its own; "
                      "a node that cannot renew it stops its jobs.",
                      /*above_zero=*/true),
      DurationSetting("lease_grace", &C::lease_grace,
                      "With a PostgreSQL store: how long past its lease a node is left before its running jobs are "
                      "queued again or failed `interrupted`."),
      DurationSetting("claim_ahead", &C::claim_ahead,
                      "With a PostgreSQL store: a node claims jobs of a task that runs shorter than a claim ahead "
                      "of its free slots, as many as it expects to start within this time (docs/cluster.md). "
                      "`\"0ms\"`: only what starts at once, for strict cluster-wide start order."),
      DurationSetting("idempotency_ttl", &C::idempotency_ttl,
                      "How long an `Idempotency-Key` is remembered: a repeat within it returns the first job."),
      IntSetting("max_connections", &C::max_connections,
                 "Open connections at most; past it a new one gets a fixed 503 and is closed. 0: derived from "
                 "the open-file limit, `RLIMIT_NOFILE − max(64, RLIMIT_NOFILE / 8)`.",
                 /*allow_zero=*/true),
      DurationSetting("idle_timeout", &C::idle_timeout,
                      "A connection with no request in progress (between requests, or before its first byte) is "
                      "closed after this.",
                      /*above_zero=*/true),
      DurationSetting("header_timeout", &C::header_timeout,
                      "From a request's first byte until its header is complete; also the longest a request body "
                      "may stall. Past it the connection is closed.",
                      /*above_zero=*/true),
      DurationSetting("write_timeout", &C::write_timeout,
                      "A response write that makes no progress for this long (a client that stopped reading) "
                      "drops the connection.",
                      /*above_zero=*/true),
      Setting<C>{"allowed_origins", "array of strings",
                 "Web origins (`\"https://app.example:8443\"`) whose pages may call the API; they get CORS "
                 "headers. A request with another `Origin` (but the server's own) gets 403. `\"*\"` admits every "
                 "page a user visits: any site could then submit and cancel jobs.",
                 ApplyAllowedOrigins, [](const C& c) { return FormatStrings(c.allowed_origins); }},
      SizeSetting("max_list_bytes", &C::max_list_bytes, 1024,
                  "Largest `GET /v1/jobs` answer, at least 1024; a page over it (with `?include=result`) gets "
                  "422."),
      StringSetting("files_dir", &C::files_dir,
                    "Where uploaded files and results kept on disk live (docs/api.md#files); the folder is "
                    "created. A relative path is taken from the server's working directory, as `store` is. With "
                    "`memory` the default is a temporary folder, removed at exit.")
          .Note("`NAME-files` beside `NAME.db`, else `offload-files`"),
      SizeSetting("max_memory_result", &C::max_memory_result, 0,
                  "Binary results larger than this are kept in a file under files_dir, streamed from there, "
                  "rather than in memory and in the database."),
      StringSetting("access_log", &C::access_log,
                    "Where each answered request is logged (docs/operations.md#logs): `\"\"` (off), `\"stderr\"`, or "
                    "a file, appended to (a relative path is taken from the server's working directory)."),
      StringSetting("access_log_format", &C::access_log_format,
                    "`\"json\"`: one JSON object per request; `\"common\"`: the NCSA common log format, as nginx "
                    "and Apache write it, with the request id and duration appended.",
                    IsAccessLogFormat, "\"json\" or \"common\""),
      Setting<C>{"log_jobs", "boolean",
                 "Each finished job leaves an info line in the server log (id, task, status, wait, run time); "
                 "`false` keeps the log to the server's own events (at tens of thousands of jobs a second the "
                 "lines cost a few percent of throughput).",
                 [](const std::string& f, const toml::node& n, C* c) -> Status {
                   if (!n.is_boolean()) return ConfigError(f, n, "log_jobs must be true or false");
                   c->log_jobs = *n.value<bool>();
                   return {};
                 },
                 [](const C& c) { return std::string(c.log_jobs ? "true" : "false"); }},
      Setting<C>{"insecure_no_auth", "boolean",
                 "Without `[auth]`, a `listen` address other than loopback is refused at start: anyone who can "
                 "reach the port could run, read and cancel every job. `true` listens anyway, for a network "
                 "that is trusted or a proxy that authenticates (docs/security.md).",
                 [](const std::string& f, const toml::node& n, C* c) -> Status {
                   if (!n.is_boolean()) return ConfigError(f, n, "insecure_no_auth must be true or false");
                   c->insecure_no_auth = *n.value<bool>();
                   return {};
                 },
                 [](const C& c) { return std::string(c.insecure_no_auth ? "true" : "false"); }},
      PathSetting<C>("tls_cert", &C::tls_cert,
                     "A PEM file of the server's certificate chain (its own certificate first). With `tls_key`, "
                     "the server speaks TLS 1.2 or later only; both are read again on SIGHUP, and connections "
                     "already open keep the certificate they began with (docs/security.md#tls). Relative to the "
                     "config file's folder."),
      PathSetting<C>("tls_key", &C::tls_key,
                     "The PEM file of `tls_cert`'s private key, unencrypted; keep it readable by the server's "
                     "user only."),
      RateSetting<C>("connection_rate", &C::connection_rate,
                     "Requests a second one connection may send (`\"200/s\"`, `\"600/m\"`), in bursts of a "
                     "second's worth; past it the request gets `429` (`rate-limited`, `Retry-After`) and the "
                     "connection is closed. With or without `[auth]`."),
  };
  return settings;
}

const std::vector<Setting<AuthConfig>>& AuthSettings() {
  using C = AuthConfig;
  static const std::vector<Setting<C>> settings = {
      PathSetting<C>("tokens_file", &C::tokens_file,
                     "A file of `[[tokens]]` tables (docs/security.md), read at start and again on SIGHUP, so that "
                     "tokens are added and revoked without a restart. Relative to the config file's folder."),
      Setting<C>{
          "tokens", "array of tables",
          "Tokens given in the config file itself, each `{name, sha256, scopes}` as in a tokens file; "
          "kept with those of `tokens_file`.",
          [](const std::string& f, const toml::node& n, C* c) -> Status { return ReadTokenTables(f, n, &c->tokens); },
          [](const C&) { return std::string("[]"); }}
          .Note("none"),
      IntSetting<C>("max_streams", &C::max_streams,
                    "Event streams (`/v1/events`, `/v1/jobs/{id}/events`) one tenant may hold open on a server at "
                    "once; one more gets `429` (`too-many-streams`). 0: no cap.",
                    /*allow_zero=*/true),
      IntSetting<C>("max_waits", &C::max_waits,
                    "Requests of one tenant that may wait for a job on a server at once (`?wait=`, `Prefer: wait`, "
                    "`/run`); one more gets `429` (`too-many-waits`). 0: no cap.",
                    /*allow_zero=*/true),
      RateSetting<C>("request_rate", &C::request_rate,
                     "Requests a second one tenant may send to a server (`\"100/s\"`, `\"6000/m\"`), in bursts "
                     "of a second's worth, all its tokens together; past it `429` (`rate-limited`, "
                     "`Retry-After`)."),
      StringSetting<C>(
          "metrics_scope", &C::metrics_scope,
          "The scope `GET /metrics` takes: `\"admin\"`, or `\"read\"` so that a scraper's token need not "
          "be an admin's.",
          [](const std::string& s) { return s == "admin" || s == "read"; }, "\"admin\" or \"read\""),
  };
  return settings;
}

const std::vector<Setting<TaskConfig>>& TaskSettings() {
  using C = TaskConfig;
  static const std::vector<Setting<C>> settings = {
      StringSetting("run", &C::run,
                    "`\"builtin:NAME\"`: an in-process handler (noop, sleep, cpu, mandelbrot). A task has exactly "
                    "one of run, command, worker and python.",
                    IsBuiltinRun, "\"builtin:NAME\" (noop, sleep, cpu, mandelbrot)")
          .Note("none"),
      Setting<C>{"uses", "table of integers",
                 "Resource units one job holds while it runs, e.g. `{gpu = 1}`. Each resource must be declared "
                 "in [resources] with at least this capacity.",
                 ApplyUses,
                 [](const C& c) { return FormatTable(c.uses, [](std::int64_t v) { return std::to_string(v); }); }},
      IntSetting("max_queued", &C::max_queued, "Queued jobs beyond this are refused with 429."),
      DurationSetting("timeout", &C::timeout,
                      "A running job past this is canceled and fails with error.type \"timeout\"; in a parallel "
                      "map it bounds each element.")
          .Note("none"),
      StringSetting("content_type", &C::content_type,
                    "The content type of results, in place of the handler's (application/json for a command "
                    "or worker).")
          .Note("the handler's"),
      IntSetting("retries", &C::retries,
                 "A failed execution is tried again up to this many times. Rejected input (invalid_input) and "
                 "cancellations are not retried; timeouts and crashes are.",
                 /*allow_zero=*/true),
      DurationSetting("retry_backoff", &C::retry_backoff,
                      "Delay before retry n: retry_backoff × 2^(n−1), capped at retry_backoff_max, times a random "
                      "factor in [0.5, 1] so that jobs that failed together do not retry together."),
      DurationSetting("retry_backoff_max", &C::retry_backoff_max, "The cap of the delay before a retry."),
      ArgvSetting("command", &C::command,
                  "One process per job: program and arguments, no shell. The input is written to its stdin, its "
                  "stdout is the result.")
          .Note("none"),
      ArgvSetting("worker", &C::worker,
                  "Persistent worker processes that take one job at a time over newline-delimited JSON "
                  "(docs/worker-protocol.md): program and arguments, no shell.")
          .Note("none"),
      StringSetting("python", &C::python,
                    "A Python function, `\"module:function\"` (docs/python.md): persistent workers run offload's "
                    "bundled runner, which imports the module once per process and calls the function with each "
                    "job's input. No worker file, no PYTHONPATH to set.",
                    IsPythonTarget, "\"module:attribute\", such as \"calc:cpu_bound_func\"")
          .Note("none"),
      Setting<C>{"python_path", "array of strings",
                 "Folders put first on the workers' `sys.path`; relative ones are taken from the config file's "
                 "folder. The working directory (`cwd`) is importable without it.",
                 ApplyPythonPath, [](const C& c) { return FormatStrings(c.python_path); }}
          .OnlyFor(TaskScope::kPython),
      Setting<C>{"interpreter", "string",
                 "The Python that runs the workers: a name looked up on PATH, or a path (a relative one is "
                 "taken from the config file's folder), such as `\".venv/bin/python\"`. The log says which "
                 "one runs.",
                 ApplyInterpreter, [](const C& c) { return Quote(c.interpreter); }}
          .Note("python3 on PATH")
          .OnlyFor(TaskScope::kPython),
      StringSetting("call", &C::call,
                    "`\"arg\"`: the function gets the input as its one argument. `\"kwargs\"`: an object input "
                    "is spread as keyword arguments (any other input fails with invalid_input).",
                    IsCallStyle, "\"arg\" or \"kwargs\"")
          .OnlyFor(TaskScope::kPython),
      IntSetting("workers", &C::workers,
                 "Worker processes kept running; by default as many as `uses` lets run at once. Fewer makes "
                 "extra jobs wait for a free worker.")
          .Note("what `uses` allows")
          .OnlyFor(TaskScope::kWorker),
      Setting<C>{"cwd", "string",
                 "Working directory of the processes; a relative path is taken from the config file's folder.",
                 ApplyCwd, [](const C& c) { return Quote(c.cwd); }}
          .Note("the config file's folder")
          .OnlyFor(TaskScope::kProcess),
      Setting<C>{"env", "table of strings",
                 "Variables added to (or replacing in) the server's environment, e.g. `{OMP_NUM_THREADS = "
                 "\"1\"}`.",
                 ApplyEnv, [](const C& c) { return FormatTable(c.env, [](const std::string& v) { return Quote(v); }); }}
          .OnlyFor(TaskScope::kProcess),
      DurationSetting("kill_grace", &C::kill_grace,
                      "When a job is canceled, times out or the server stops, its process group gets SIGTERM, "
                      "then SIGKILL after this.")
          .OnlyFor(TaskScope::kProcess),
      IntSetting("max_jobs_per_worker", &C::max_jobs_per_worker,
                 "A worker is replaced after serving this many jobs (0: never).", /*allow_zero=*/true)
          .OnlyFor(TaskScope::kWorker),
      SizeSetting("max_rss", &C::max_rss, 0,
                  "A worker whose resident memory (VmRSS) exceeds this after a job is replaced (0: never).")
          .OnlyFor(TaskScope::kWorker),
      SizeSetting("max_result", &C::max_result, 1,
                  "Output beyond this fails the job with error.type \"result_too_large\" and stops the process.")
          .OnlyFor(TaskScope::kProcess),
      Setting<C>{"accept", "array of strings",
                 "Content types the task takes as a file: a binary body or the files of a multipart/form-data "
                 "request, e.g. `[\"image/png\", \"image/*\"]` or `[\"*/*\"]`. Others get 415. Empty: JSON "
                 "input only.",
                 ApplyAccept, [](const C& c) { return FormatStrings(c.accept); }},
      SizeSetting("max_input", &C::max_input, 1,
                  "The largest upload: a binary body, or all the parts of a multipart request together. Past it "
                  "the request gets 413 and nothing is kept."),
      StringSetting("input_as", &C::input_as,
                    "How a command gets a job's file: `\"stdin\"`, its bytes on stdin; `\"path\"`, the JSON "
                    "input on stdin and the file's path in `OFFLOAD_INPUT_PATH` (all files in "
                    "`OFFLOAD_INPUT_DIR`).",
                    IsInputAs, "\"stdin\" or \"path\"")
          .OnlyFor(TaskScope::kProcess),
      StringSetting("python_input", &C::python_input,
                    "How a python function gets a job's file: `\"path\"`, its path as a str; `\"bytes\"`, its "
                    "contents.",
                    IsPythonInput, "\"path\" or \"bytes\"")
          .OnlyFor(TaskScope::kPython),
  };
  return settings;
}

const std::vector<SettingDoc>& ServerSettingDocs() {
  static const std::vector<SettingDoc> docs = Docs(ServerSettings(), DefaultConfig());
  return docs;
}

const std::vector<SettingDoc>& TaskSettingDocs() {
  static const std::vector<SettingDoc> docs = Docs(TaskSettings(), TaskConfig{});
  return docs;
}

const std::vector<SettingDoc>& AuthSettingDocs() {
  static const std::vector<SettingDoc> docs = Docs(AuthSettings(), AuthConfig{});
  return docs;
}

std::string SettingsHelp() {
  std::string out =
      "Settings of the config file (--config FILE, TOML; docs/config.md tells more). Durations are\n"
      "\"250ms\", \"30s\", \"5m\", \"24h\" or a number of seconds; sizes a number of bytes or \"64KiB\",\n"
      "\"512MiB\", \"2GiB\", \"100MB\".\n\nTop-level keys:\n";
  AppendSettings(&out, ServerSettingDocs());
  out +=
      "\n[resources]: NAME = capacity (a positive integer), at most 64. cpu is always declared, by\n"
      "default with the number of cores.\n\n[tasks.NAME] keys:\n";
  AppendSettings(&out, TaskSettingDocs());
  out += "\n[auth] keys (docs/security.md):\n";
  AppendSettings(&out, AuthSettingDocs());
  return out;
}

}  // namespace offload
