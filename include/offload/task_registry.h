// In-process tasks: register a C++ handler under a name, then refer to it from the
// config file as `run = "builtin:NAME"`.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "offload/context.h"
#include "offload/job.h"
#include "offload/result.h"

namespace offload {

using Handler = std::function<Result(const Job&, Context&)>;
// Checks an input before the job is accepted. Returns nullopt when the input is
// fine, else a detail for a person that names the offending field; the client then
// gets 422 and no job is created.
using InputValidator = std::function<std::optional<std::string>(const boost::json::value&)>;

struct TaskDefinition {
  Handler handler;
  InputValidator validate;  // May be empty: every input is accepted.
  std::string content_type = "application/json";
};

// Not thread-safe while being filled; read-only (and so thread-safe) once the
// server starts.
class TaskRegistry {
 public:
  // A registry holding the built-ins: noop, sleep, cpu, mandelbrot.
  static TaskRegistry WithBuiltins();

  // Replaces any definition of the same name.
  void Register(std::string name, TaskDefinition def);
  // nullptr when unknown.
  const TaskDefinition* Find(const std::string& name) const;

 private:
  std::map<std::string, TaskDefinition> defs_;
};

}  // namespace offload
