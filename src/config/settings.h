// The settings table, as documentation: every key of the config file (top level and
// [tasks.NAME]) with its type, default and help. Each key is declared once, in
// settings.cc, and that one entry is what the parser applies, what this header
// describes, what `offload serve --help` prints (SettingsHelp) and what
// config_test checks docs/config.md against. Defaults are not restated there: they
// are rendered from the structs' initializers (config.h).
#pragma once

#include <string>
#include <vector>

namespace offload {

struct SettingDoc {
  std::string key;
  // "string", "integer", "duration", "size", "array of strings", "table of ...".
  std::string type;
  // The default as it would be written in the file: `100000`, `"5s"`, `{cpu = 1}`.
  std::string default_value;
  // Empty, or what the default means where it is the type's empty value ("number of
  // cores" for threads = 0, "none" for an empty command); shown instead of it.
  std::string default_note;
  std::string help;
  // [tasks.NAME] keys taken by some kinds of task only: "command and worker tasks",
  // "worker tasks". Empty: every task (and every top-level key).
  std::string only_for;

  // What --help and the default column of docs/config.md show.
  const std::string& DefaultText() const { return default_note.empty() ? default_value : default_note; }
};

// In the order of the table (the order docs/config.md and --help list them).
const std::vector<SettingDoc>& ServerSettingDocs();
const std::vector<SettingDoc>& TaskSettingDocs();
const std::vector<SettingDoc>& AuthSettingDocs();

// Every setting with its type, default and help, for `offload serve --help`.
std::string SettingsHelp();

}  // namespace offload
