// The offload CLI's client commands — submit, status, wait, result, cancel, ls, tasks,
// top, retry — spoken over the HTTP API to the server at --url (docs/operations.md#cli).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace offload::cli {

// The process's exit status (docs/operations.md#cli lists them).
enum ExitCode : int {
  kOk = 0,
  kJobFailed = 1,    // The job failed or was canceled.
  kUsage = 2,        // The command line is wrong.
  kUnreachable = 3,  // No answer from the server.
  kRefused = 4,      // The server refused the request (4xx): an unknown id, a full queue...
  kServerError = 5,  // The server failed (5xx).
  kTimedOut = 6,     // `wait --timeout` passed first.
};

struct GlobalOptions {
  std::string url;
  std::string token;   // --token, $OFFLOAD_TOKEN: sent as Authorization: Bearer.
  std::string cacert;  // --cacert, $OFFLOAD_CACERT: the CA of an https:// server.
  bool json = false;
};

// Adds the client subcommands to `app`. The one parsed sets *run to what it does,
// which returns the exit status.
void AddClientCommands(CLI::App* app, GlobalOptions* options, std::function<int()>* run);

}  // namespace offload::cli
