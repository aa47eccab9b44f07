#include "auth/authenticator.h"

#include <openssl/crypto.h>

#include <boost/beast/core/string.hpp>

namespace offload {

Authenticator::Authenticator(const AuthConfig& auth) {
  for (const auto* list : {&auth.tokens, &auth.file_tokens}) {
    for (const TokenConfig& t : *list) {
      Token token;
      if (!ParseHexDigest(t.sha256, &token.digest)) continue;  // The config refused it already.
      token.principal = Principal{t.name, t.scopes};
      tokens_.push_back(std::move(token));
    }
  }
}

std::string_view BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !boost::beast::iequals(authorization.substr(0, kScheme.size()), kScheme)) {
    return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

const Principal* Authenticator::Authenticate(std::string_view authorization) const {
  const std::string_view token = BearerToken(authorization);
  if (token.empty()) return nullptr;
  const TokenDigest digest = DigestOfToken(token);
  // Every digest is compared, in constant time, so that neither how far a guess
  // matched nor where its match sits shows in the time of an answer.
  const Principal* found = nullptr;
  for (const Token& t : tokens_) {
    const bool match = CRYPTO_memcmp(t.digest.data(), digest.data(), digest.size()) == 0;
    found = match ? &t.principal : found;
  }
  return found;
}

}  // namespace offload
