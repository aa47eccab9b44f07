// `offload token create NAME --scopes ...`: makes an access token and prints it once,
// with the [[tokens]] entry that lets the server take it (docs/security.md). Local: it
// talks to no server, and the token is never written anywhere but the terminal.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace offload::cli {

// Adds `token create` to `app`; when parsed, *run is set to what it does.
void AddTokenCommand(CLI::App* app, std::function<int()>* run);

}  // namespace offload::cli
