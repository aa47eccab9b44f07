// The Range header of a GET (RFC 9110 section 14): which bytes of a representation of
// `size` bytes a client asks for. One range is served (206); a list of several is
// answered with the whole representation (200), as RFC 9110 lets a server do, since
// no client we serve resumes a download with a multipart/byteranges answer.
#pragma once

#include <cstdint>
#include <string_view>

namespace offload {

struct ByteRange {
  enum class Kind {
    kWhole,          // No Range, one the server ignores (another unit, several ranges, malformed): 200.
    kPart,           // [first, last] of the representation: 206.
    kUnsatisfiable,  // Starts past the end: 416 with Content-Range: bytes */size.
  };
  Kind kind = Kind::kWhole;
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // Inclusive.
  std::uint64_t length() const { return last - first + 1; }
};

// `header` is the Range field's value; empty when there is none.
ByteRange ParseByteRange(std::string_view header, std::uint64_t size);

}  // namespace offload
