// Access tokens: how `offload token create` makes one and what the server keeps of
// it. A token is a secret the server never stores: its tokens file holds the
// token's SHA-256, and a request's token is hashed and compared with those.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace offload {

using TokenDigest = std::array<unsigned char, 32>;

// "ofl_" and 43 characters of base64url: 256 bits from OpenSSL's CSPRNG. Aborts if
// the CSPRNG cannot be seeded (nothing sensible can go on without it).
std::string NewAccessToken();

TokenDigest DigestOfToken(std::string_view token);
// The digest as the tokens file writes it: 64 lowercase hex digits.
std::string HexDigestOfToken(std::string_view token);
// Parses 64 hex digits (either case); false for anything else.
bool ParseHexDigest(std::string_view hex, TokenDigest* out);

}  // namespace offload
