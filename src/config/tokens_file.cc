#include "config/tokens_file.h"

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "auth/access_token.h"
#include "config/setting_table.h"

namespace offload {
namespace {

// A tenant name is a word: it shows in logs, metrics labels and the problem bodies.
bool IsTenantName(std::string_view s) {
  return !s.empty() && s.size() <= 64 &&
         s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
             std::string_view::npos;
}

Status ReadTokenTable(const std::string& file, const toml::table& t, TokenConfig* token) {
  token->where = Where(file, t.source());
  bool has_scopes = false;
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (key == "name") {
      auto s = v.value<std::string>();
      if (!v.is_string() || !IsTenantName(*s)) {
        return ConfigError(file, v, "a token's name must be 1 to 64 letters, digits, '_', '.' or '-'");
      }
      token->name = *s;
    } else if (key == "sha256") {
      auto s = v.value<std::string>();
      TokenDigest digest;
      if (!v.is_string() || !ParseHexDigest(*s, &digest)) {
        return ConfigError(file, v,
                           "sha256 must be the token's SHA-256 as 64 hex digits (`offload token create` prints it)");
      }
      token->sha256 = *s;
    } else if (key == "scopes") {
      const toml::array* a = v.as_array();
      if (!a || a->empty()) {
        return ConfigError(file, v, "scopes must be a non-empty array of \"submit\", \"read\", \"cancel\", \"admin\"");
      }
      for (const auto& e : *a) {
        Scope scope;
        if (!e.is_string() || !ParseScope(*e.value<std::string>(), &scope)) {
          return ConfigError(file, e, "a scope is \"submit\", \"read\", \"cancel\" or \"admin\"");
        }
        token->scopes.Add(scope);
      }
      has_scopes = true;
    } else {
      return ConfigError(file, v, "unknown key \"" + key + "\" in a token (expected name, sha256, scopes)");
    }
  }
  if (token->name.empty()) return ConfigError(file, t, "a token needs a name (its tenant)");
  if (token->sha256.empty()) return ConfigError(file, t, "token \"" + token->name + "\" needs its sha256");
  if (!has_scopes) return ConfigError(file, t, "token \"" + token->name + "\" needs its scopes");
  return {};
}

}  // namespace

Status ReadTokenTables(const std::string& file, const toml::node& node, std::vector<TokenConfig>* out) {
  const toml::array* a = node.as_array();
  if (!a) return ConfigError(file, node, "tokens must be an array of tables: [[tokens]] name = ..., sha256 = ...");
  for (const auto& e : *a) {
    const toml::table* t = e.as_table();
    if (!t) return ConfigError(file, e, "a token is a table: {name = ..., sha256 = ..., scopes = [...]}");
    TokenConfig token;
    if (Status s = ReadTokenTable(file, *t, &token); !s) return s;
    out->push_back(std::move(token));
  }
  return {};
}

ErrorOr<std::vector<TokenConfig>> LoadTokensFile(const std::string& path, const std::string& named_at) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kInvalidArgument, named_at + path + ": cannot open the tokens file");
  std::stringstream text;
  text << in.rdbuf();
  toml::table root;
  try {
    root = toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    return MakeError(ErrorCode::kInvalidArgument, Where(path, e.source()) + std::string(e.description()));
  }
  std::vector<TokenConfig> tokens;
  for (const auto& [k, v] : root) {
    if (k.str() != "tokens") {
      return ConfigError(path, v, "unknown key \"" + std::string(k.str()) + "\" (a tokens file holds [[tokens]])");
    }
    if (Status s = ReadTokenTables(path, v, &tokens); !s) return s.error();
  }
  return tokens;
}

Status ValidateTokens(const AuthConfig& auth, const std::string& where, bool allow_none) {
  std::set<std::string> digests;
  for (const auto* list : {&auth.tokens, &auth.file_tokens}) {
    for (const TokenConfig& t : *list) {
      std::string lower = t.sha256;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!digests.insert(lower).second) {
        return MakeError(ErrorCode::kInvalidArgument, t.where + "token \"" + t.name +
                                                          "\": another token has the same sha256 (one token, "
                                                          "one entry)");
      }
    }
  }
  if (digests.empty() && !allow_none) {
    return MakeError(ErrorCode::kInvalidArgument,
                     where +
                         "[auth] has no tokens: nobody could use the server (add tokens, or a tokens_file with "
                         "[[tokens]]; `offload token create NAME --scopes ...` makes one)");
  }
  return {};
}

}  // namespace offload
