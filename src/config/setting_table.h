// The settings table itself: one entry per key of the config file, holding how the
// key is read and applied as well as its documentation. Internal to src/config (and
// its tests); everyone else sees the documentation through settings.h.
//
// Why a table: a key's parser, its default shown by --help and its line in
// docs/config.md used to be written in three places and drifted. Here an entry
// binds the key to its field once; the default is read back from a
// default-constructed struct, so it cannot disagree with what the server runs with.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/settings.h"
#include "util/error.h"

namespace offload {

// Which tasks take a [tasks.NAME] key. A key set on another kind of task is refused
// rather than silently ignored.
// Which kinds of task take a key: every one; those that run processes (command,
// worker, python); those with persistent workers (worker, python); python alone.
enum class TaskScope { kAll, kProcess, kWorker, kPython };

// One key of a table whose values land in a `Config` (ServerConfig for the top
// level, TaskConfig for [tasks.NAME]).
template <typename Config>
struct Setting {
  const char* key;
  const char* type;
  const char* help;
  // Reads the key's value and stores it in `config`; errors name the file and line.
  std::function<Status(const std::string& file, const toml::node& value, Config* config)> apply;
  // The field's value as it would be written in the file.
  std::function<std::string(const Config& config)> render;
  // See SettingDoc::default_note. Only for a default that is the type's empty value.
  const char* default_note = nullptr;
  TaskScope scope = TaskScope::kAll;

  Setting Note(const char* note) && {
    default_note = note;
    return std::move(*this);
  }
  Setting OnlyFor(TaskScope s) && {
    scope = s;
    return std::move(*this);
  }
};

// Top-level keys, and the keys of a [tasks.NAME] table, in documentation order.
// [resources] and [tasks] themselves are tables of names, parsed by ParseConfig.
const std::vector<Setting<ServerConfig>>& ServerSettings();
const std::vector<Setting<TaskConfig>>& TaskSettings();
// The keys of [auth].
const std::vector<Setting<AuthConfig>>& AuthSettings();

// "command, worker and python tasks", "worker and python tasks", "python tasks",
// or "" for kAll.
const char* TaskScopeName(TaskScope scope);

// "FILE:LINE: " of a node.
std::string Where(const std::string& file, const toml::source_region& source);
// `path` as an absolute path, a relative one taken from the folder of the config
// file `file`, so that the file means the same wherever the server is started from.
std::string FromConfigFolder(const std::string& file, const std::string& path);
// kInvalidArgument naming the file and line of `node`.
Error ConfigError(const std::string& file, const toml::node& node, const std::string& what);
// An integer above zero (or zero too, with `allow_zero`).
ErrorOr<std::int64_t> ReadPositiveInt(const std::string& file, const toml::node& node, std::string_view key,
                                      bool allow_zero = false);

}  // namespace offload
