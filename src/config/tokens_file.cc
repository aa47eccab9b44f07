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
    } else if (key == "weight") {
      auto w = v.value<double>();
      if (!(v.is_number() && *w >= 1e-3 && *w <= 1e6)) {
        return ConfigError(file, v,
                           "weight must be a number from 0.001 to 1000000 (the tenant's share against weight 1)");
      }
      token->weight = *w;
    } else if (key == "max_queued") {
      auto n = v.value<std::int64_t>();
      if (!v.is_integer() || *n < 1)
        return ConfigError(file, v, "max_queued must be a whole number of jobs, at least 1");
      token->max_queued = *n;
    } else if (key == "max_running") {
      const toml::table* caps = v.as_table();
      if (!caps) return ConfigError(file, v, "max_running must be a table of resource = units, e.g. { gpu = 1 }");
      std::map<std::string, std::int64_t> units;
      for (const auto& [rk, rv] : *caps) {
        auto n = rv.value<std::int64_t>();
        if (!rv.is_integer() || *n < 1) {
          return ConfigError(file, rv, "max_running." + std::string(rk.str()) + " must be a whole number, at least 1");
        }
        units[std::string(rk.str())] = *n;
      }
      token->max_running = std::move(units);
    } else if (key == "submit_rate") {
      auto text = v.value<std::string>();
      double rate = 0;
      if (!v.is_string() || !ParseRate(*text, &rate)) {
        return ConfigError(file, v, "submit_rate must be a rate such as \"10/s\", \"600/m\" or \"1000/h\"");
      }
      token->submit_rate = rate;
    } else {
      return ConfigError(file, v,
                         "unknown key \"" + key +
                             "\" in a token (expected name, sha256, scopes, weight, max_queued, max_running, "
                             "submit_rate)");
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

ErrorOr<std::map<std::string, TenantPolicy>> TenantPolicies(const AuthConfig& auth,
                                                            const std::map<std::string, std::int64_t>& resources) {
  std::map<std::string, TenantPolicy> policies;
  std::map<std::string, const TokenConfig*> set_by[4];  // weight, max_queued, max_running, submit_rate.
  auto take = [&](int which, const TokenConfig& t, const char* key, bool same) -> Status {
    auto [it, first] = set_by[which].emplace(t.name, &t);
    if (first || same) return {};
    return MakeError(ErrorCode::kInvalidArgument, t.where + "token \"" + t.name + "\" sets " + key +
                                                      " unlike another token of the same name (at " +
                                                      it->second->where.substr(0, it->second->where.rfind(':')) +
                                                      "): the tokens of a tenant share its " + key);
  };
  for (const auto* list : {&auth.tokens, &auth.file_tokens}) {
    for (const TokenConfig& t : *list) {
      TenantPolicy& p = policies[t.name];
      if (t.weight) {
        if (Status s = take(0, t, "weight", set_by[0].count(t.name) && p.weight == *t.weight); !s) return s.error();
        p.weight = *t.weight;
      }
      if (t.max_queued) {
        if (Status s = take(1, t, "max_queued", set_by[1].count(t.name) && p.max_queued == *t.max_queued); !s) {
          return s.error();
        }
        p.max_queued = *t.max_queued;
      }
      if (t.max_running) {
        for (const auto& [res, units] : *t.max_running) {
          auto cap = resources.find(res);
          if (cap == resources.end()) {
            return MakeError(ErrorCode::kInvalidArgument, t.where + "token \"" + t.name + "\": max_running names \"" +
                                                              res + "\", which is not a resource of [resources]");
          }
        }
        if (Status s = take(2, t, "max_running", set_by[2].count(t.name) && p.max_running == *t.max_running); !s) {
          return s.error();
        }
        p.max_running = *t.max_running;
      }
      if (t.submit_rate) {
        if (Status s = take(3, t, "submit_rate", set_by[3].count(t.name) && p.submit_rate == *t.submit_rate); !s) {
          return s.error();
        }
        p.submit_rate = *t.submit_rate;
      }
    }
  }
  return policies;
}

}  // namespace offload
