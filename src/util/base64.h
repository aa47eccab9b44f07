// Base64 (RFC 4648, standard alphabet, padded): how a binary result travels inside
// JSON, e.g. the PNG of each element of a parallel map.
#pragma once

#include <string>
#include <string_view>

namespace offload {

std::string Base64Encode(std::string_view bytes);

}  // namespace offload
