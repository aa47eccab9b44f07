// Commands the integration tests run beside the server: `offload token create`, curl,
// openssl. Each waits for its command to end; what it printed comes back whole.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace offload::testing {

struct CommandOutput {
  std::string out;  // stdout (and stderr, when the command says 2>&1).
  int status = -1;  // As waitpid gives it.

  // Exited with `code` (0: succeeded).
  bool ExitedWith(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
};

// Runs `command` with /bin/sh.
inline CommandOutput RunCommand(const std::string& command) {
  CommandOutput result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return result;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.out.append(buf, n);
  result.status = ::pclose(pipe);
  return result;
}

}  // namespace offload::testing
