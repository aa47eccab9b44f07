// Authenticator: who a request's bearer token says it comes from (docs/security.md).
//
// Thread-safe: constant after construction. A reload (SIGHUP) builds a new one and
// the server swaps it in whole.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "auth/access_token.h"
#include "auth/scope.h"
#include "config/config.h"

namespace offload {

// Who sent a request, as its token says.
struct Principal {
  std::string tenant;  // The token's name: the tenant whose jobs it sees.
  ScopeSet scopes;
  bool admin() const { return scopes.Has(Scope::kAdmin); }
};

class Authenticator {
 public:
  // The tokens of `auth`, inline and from its file. REQUIRES: validated (config).
  explicit Authenticator(const AuthConfig& auth);

  // The principal of an Authorization header ("Bearer TOKEN", RFC 6750); nullptr
  // when there is none or its token is not one of ours. The time it takes does not
  // depend on how much of a digest matched, nor on which token matched.
  const Principal* Authenticate(std::string_view authorization) const;

  std::size_t size() const { return tokens_.size(); }

 private:
  struct Token {
    TokenDigest digest;
    Principal principal;
  };
  std::vector<Token> tokens_;
};

// The token of an Authorization header value: what follows "Bearer " (the scheme in
// any case, RFC 9110 11.1); empty when the header is not a bearer credential.
std::string_view BearerToken(std::string_view authorization);

}  // namespace offload
