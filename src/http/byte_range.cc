#include "http/byte_range.h"

#include <charconv>

namespace offload {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A non-empty run of digits, all of `s`.
bool ParseNumber(std::string_view s, std::uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

ByteRange ParseByteRange(std::string_view header, std::uint64_t size) {
  ByteRange whole;
  header = Trim(header);
  constexpr std::string_view kUnit = "bytes=";
  if (header.size() <= kUnit.size()) return whole;
  for (std::size_t i = 0; i < kUnit.size(); ++i) {
    if ((header[i] | 0x20) != kUnit[i] && header[i] != kUnit[i]) return whole;
  }
  const std::string_view spec = Trim(header.substr(kUnit.size()));
  if (spec.find(',') != std::string_view::npos) return whole;
  const std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return whole;
  const std::string_view from = Trim(spec.substr(0, dash)), to = Trim(spec.substr(dash + 1));
  ByteRange r;
  r.kind = ByteRange::Kind::kPart;
  if (from.empty()) {
    // "-N": the last N bytes.
    std::uint64_t n = 0;
    if (!ParseNumber(to, &n)) return whole;
    if (n == 0 || size == 0) return ByteRange{ByteRange::Kind::kUnsatisfiable};
    r.first = n >= size ? 0 : size - n;
    r.last = size - 1;
    return r;
  }
  if (!ParseNumber(from, &r.first)) return whole;
  if (to.empty()) {
    r.last = size == 0 ? 0 : size - 1;
  } else if (!ParseNumber(to, &r.last) || r.last < r.first) {
    return whole;
  }
  if (r.first >= size) return ByteRange{ByteRange::Kind::kUnsatisfiable};
  if (r.last >= size) r.last = size - 1;
  return r;
}

}  // namespace offload
