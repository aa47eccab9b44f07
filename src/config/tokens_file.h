// The tokens of [auth]: the tables that describe a token, inline in the config file
// ([[auth.tokens]]) or in its tokens_file ([[tokens]]), which the server reads again
// on SIGHUP (docs/security.md).
#pragma once

#include <toml++/toml.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "util/error.h"

namespace offload {

// Appends the token tables of the array `node` to *out; errors name the file and line.
Status ReadTokenTables(const std::string& file, const toml::node& node, std::vector<TokenConfig>* out);

// Reads a tokens file: [[tokens]] tables and nothing else.
ErrorOr<std::vector<TokenConfig>> LoadTokensFile(const std::string& path);

// The checks that span tokens: at least one, and no digest given twice.
Status ValidateTokens(const AuthConfig& auth);

}  // namespace offload
