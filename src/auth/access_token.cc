#include "auth/access_token.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <memory>

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
  // Every request with a token hashes it. EVP_Digest with EVP_sha256() would look the
  // algorithm up in OpenSSL's provider store (under its lock) and make a context each
  // time; this fetches it once and keeps one context per thread.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct ContextDeleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  thread_local const std::unique_ptr<EVP_MD_CTX, ContextDeleter> ctx(EVP_MD_CTX_new());
  TokenDigest digest{};
  unsigned int n = 0;
  // Only allocation can fail here.
  if (!sha256 || !ctx || EVP_DigestInit_ex(ctx.get(), sha256, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), token.data(), token.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest.data(), &n) != 1) {
    std::abort();
  }
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
