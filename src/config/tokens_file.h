// The tokens of [auth]: the tables that describe a token, inline in the config file
// ([[auth.tokens]]) or in its tokens_file ([[tokens]]), which the server reads again
// on SIGHUP (docs/security.md).
#pragma once

#include <toml++/toml.h>

#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "util/error.h"

namespace offload {

// Appends the token tables of the array `node` to *out; errors name the file and line.
Status ReadTokenTables(const std::string& file, const toml::node& node, std::vector<TokenConfig>* out);

// Reads a tokens file: [[tokens]] tables and nothing else. `named_at` ("FILE:LINE: "
// of the key that names the file, or empty) starts the error of a file that cannot
// be opened: that line is the one to fix. Errors inside the file name its own lines.
ErrorOr<std::vector<TokenConfig>> LoadTokensFile(const std::string& path, const std::string& named_at = "");

// The checks that span tokens: at least one (unless `allow_none`), and no digest given
// twice. `where` ("FILE:LINE: " of the [auth] table, or empty) starts the error of an
// [auth] with no token; a duplicate is named by its own table. A reload allows none:
// an operator who revokes the last token of the file means it.
Status ValidateTokens(const AuthConfig& auth, const std::string& where = "", bool allow_none = false);

// Each tenant's policy, from its tokens: kInvalidArgument when two tokens of a name
// set one of its keys differently, or max_running names no resource of `resources`.
ErrorOr<std::map<std::string, TenantPolicy>> TenantPolicies(const AuthConfig& auth,
                                                            const std::map<std::string, std::int64_t>& resources);

}  // namespace offload
