// Base64 (RFC 4648): how a binary result travels inside JSON — from a worker process
// (worker-protocol.md) and in the list of a parallel map.
#pragma once

#include <string>
#include <string_view>

namespace offload {

std::string Base64Encode(std::string_view bytes);
// Accepts the standard and the URL-safe alphabet, with or without padding. Returns
// false (and a partial `out`) at the first character of neither.
bool Base64Decode(std::string_view in, std::string* out);

}  // namespace offload
