#include "util/json_writer.h"

#include <array>
#include <charconv>
#include <cmath>

namespace offload {

namespace json = boost::json;

namespace {

// What a byte of a string needs: 0 copied as is, 1 escaped, 2 the start (or a stray
// part) of a multi-byte UTF-8 sequence.
constexpr std::array<unsigned char, 256> kByteClass = [] {
  std::array<unsigned char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 1;
  t['"'] = 1;
  t['\\'] = 1;
  for (int c = 0x80; c < 0x100; ++c) t[c] = 2;
  return t;
}();

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8.

void AppendEscape(std::string* out, unsigned char c) {
  switch (c) {
    case '"': out->append("\\\""); return;
    case '\\': out->append("\\\\"); return;
    case '\b': out->append("\\b"); return;
    case '\f': out->append("\\f"); return;
    case '\n': out->append("\\n"); return;
    case '\r': out->append("\\r"); return;
    case '\t': out->append("\\t"); return;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";
      const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out->append(u, sizeof(u));
    }
  }
}

// The length of the well-formed UTF-8 sequence at s[i] (Unicode Table 3-7), or, when it
// is ill-formed, minus the length of its maximal subpart (at least 1), which is
// replaced by one U+FFFD.
int Utf8Sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = b(i);
  int len;
  unsigned char lo = 0x80, hi = 0xBF;  // The range of the second byte.
  if (lead >= 0xC2 && lead <= 0xDF) {
    len = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3;
    if (lead == 0xE0) lo = 0xA0;  // No overlong forms.
    if (lead == 0xED) hi = 0x9F;  // No surrogates.
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4;
    if (lead == 0xF0) lo = 0x90;  // No overlong forms.
    if (lead == 0xF4) hi = 0x8F;  // Nothing past U+10FFFF.
  } else {
    return -1;  // A continuation byte without a lead, or a byte UTF-8 never uses.
  }
  if (i + 1 >= s.size() || b(i + 1) < lo || b(i + 1) > hi) return -1;
  for (int k = 2; k < len; ++k) {
    if (i + k >= s.size() || b(i + k) < 0x80 || b(i + k) > 0xBF) return -k;
  }
  return len;
}

void AppendDouble(std::string* out, double d, JsonNumbers numbers) {
  if (!std::isfinite(d)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), d);
  const std::string_view text(buf, static_cast<std::size_t>(r.ptr - buf));
  if (text.find_first_of(".e") == std::string_view::npos) {
    // An integral value in fixed notation. Past int64 it would read back as an integer
    // literal out of range (or as a uint64): scientific keeps it a double.
    if (std::fabs(d) >= 9223372036854775808.0) {
      r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
      out->append(buf, static_cast<std::size_t>(r.ptr - buf));
      return;
    }
    out->append(text);
    if (numbers == JsonNumbers::kKeepKind) out->append(".0");
    return;
  }
  out->append(text);
}

template <typename Int>
void AppendInteger(std::string* out, Int i) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), i);
  out->append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void Append(std::string* out, const json::value& v, JsonNumbers numbers) {
  switch (v.kind()) {
    case json::kind::null:
      out->append("null");
      return;
    case json::kind::bool_:
      out->append(v.get_bool() ? "true" : "false");
      return;
    case json::kind::int64:
      AppendInteger(out, v.get_int64());
      return;
    case json::kind::uint64:
      AppendInteger(out, v.get_uint64());
      return;
    case json::kind::double_:
      AppendDouble(out, v.get_double(), numbers);
      return;
    case json::kind::string:
      AppendJsonString(out, v.get_string());
      return;
    case json::kind::array: {
      out->push_back('[');
      bool first = true;
      for (const json::value& e : v.get_array()) {
        if (!first) out->push_back(',');
        first = false;
        Append(out, e, numbers);
      }
      out->push_back(']');
      return;
    }
    case json::kind::object: {
      out->push_back('{');
      bool first = true;
      for (const json::key_value_pair& kv : v.get_object()) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(out, kv.key());
        out->push_back(':');
        Append(out, kv.value(), numbers);
      }
      out->push_back('}');
      return;
    }
  }
}

}  // namespace

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    // The run of bytes that go out unchanged, appended at once.
    std::size_t run = i;
    while (run < s.size() && kByteClass[static_cast<unsigned char>(s[run])] == 0) ++run;
    out->append(s.data() + i, run - i);
    i = run;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (kByteClass[c] == 1) {
      AppendEscape(out, c);
      ++i;
      continue;
    }
    const int len = Utf8Sequence(s, i);
    if (len > 0) {
      out->append(s.data() + i, static_cast<std::size_t>(len));
      i += static_cast<std::size_t>(len);
    } else {
      out->append(kReplacement);
      i += static_cast<std::size_t>(-len);
    }
  }
  out->push_back('"');
}

void AppendJson(std::string* out, const json::value& v, JsonNumbers numbers) { Append(out, v, numbers); }

std::string WriteJson(const json::value& v, JsonNumbers numbers) {
  std::string out;
  // A job object is about 300 bytes: one allocation for most bodies, doubling after.
  out.reserve(512);
  Append(&out, v, numbers);
  return out;
}

}  // namespace offload
