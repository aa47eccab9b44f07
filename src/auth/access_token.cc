#include "auth/access_token.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>

#include "util/base64.h"

namespace offload {

std::string NewAccessToken() {
  unsigned char secret[32];
  if (RAND_bytes(secret, sizeof(secret)) != 1) std::abort();
  std::string text = Base64Encode(std::string_view(reinterpret_cast<const char*>(secret), sizeof(secret)));
  // base64url without padding (RFC 4648 5): the token stays one word in a header, a
  // shell and a TOML string.
  std::string token = "ofl_";
  for (char c : text) {
    if (c == '=') break;
    token += c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return token;
}

TokenDigest DigestOfToken(std::string_view token) {
  TokenDigest digest{};
  unsigned int n = 0;
  // Only allocation can fail here.
  if (EVP_Digest(token.data(), token.size(), digest.data(), &n, EVP_sha256(), nullptr) != 1) std::abort();
  return digest;
}

std::string HexDigestOfToken(std::string_view token) {
  static constexpr char kHex[] = "0123456789abcdef";
  const TokenDigest digest = DigestOfToken(token);
  std::string out;
  out.reserve(64);
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

bool ParseHexDigest(std::string_view hex, TokenDigest* out) {
  if (hex.size() != 64) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

}  // namespace offload
