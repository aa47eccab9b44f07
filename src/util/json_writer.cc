#include "util/json_writer.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

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

// Writes into the string's own storage through a pointer, growing it by doubling:
// std::string::append per token costs more than the token (a capacity check, a size
// update, a terminator). The string is resized to what was written when the Sink goes.
class Sink {
 public:
  explicit Sink(std::string* s) : s_(s) {
    // Not to the capacity: resize zero-fills what it adds, and a caller appending
    // many small values to one long string (a batch line) would pay for the whole
    // spare capacity at each.
    const std::size_t used = s->size();
    s_->resize(used + 64);
    p_ = s_->data() + used;
    end_ = s_->data() + s_->size();
  }
  ~Sink() { s_->resize(static_cast<std::size_t>(p_ - s_->data())); }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  // At least `n` writable bytes at the returned pointer; Commit() what was used.
  char* Room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) Grow(n);
    return p_;
  }
  void Commit(char* end) { p_ = end; }
  void Put(char c) {
    Room(1);
    *p_++ = c;
  }
  void Put(std::string_view t) {
    Room(t.size());
    std::memcpy(p_, t.data(), t.size());
    p_ += t.size();
  }

 private:
  void Grow(std::size_t n) {
    const std::size_t used = static_cast<std::size_t>(p_ - s_->data());
    s_->resize(std::max(s_->size() * 2, used + n));
    p_ = s_->data() + used;
    end_ = s_->data() + s_->size();
  }

  std::string* s_;
  char* p_;
  char* end_;
};

void PutEscape(Sink& out, unsigned char c) {
  switch (c) {
    case '"':
      out.Put("\\\"");
      return;
    case '\\':
      out.Put("\\\\");
      return;
    case '\b':
      out.Put("\\b");
      return;
    case '\f':
      out.Put("\\f");
      return;
    case '\n':
      out.Put("\\n");
      return;
    case '\r':
      out.Put("\\r");
      return;
    case '\t':
      out.Put("\\t");
      return;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";
      const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.Put(std::string_view(u, sizeof(u)));
    }
  }
}

// True when none of the 8 bytes of `w` needs a look: no control character, quote,
// backslash or non-ASCII byte (the classic "has a byte less than n" bit tricks, exact
// as a yes/no answer).
bool PlainWord(std::uint64_t w) {
  constexpr std::uint64_t k01 = 0x0101010101010101ull, k80 = 0x8080808080808080ull;
  const std::uint64_t quote = w ^ (k01 * '"');
  const std::uint64_t backslash = w ^ (k01 * '\\');
  const std::uint64_t special = (w - k01 * 0x20) | (quote - k01) | (backslash - k01);
  return ((special & ~w) | w) & k80 ? false : true;
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

// The common doubles (0, 1, 0.5, 2.5, 0.1, 99.25: magnitude 1e-3 to 1e9, at most 4
// decimals) without std::to_chars, which costs ~60 ns in libstdc++ 12. Writes what
// to_chars would write and returns true, or returns false to leave it to to_chars.
// Exact: m and 10^k are exact doubles, so m / 10^k is the double nearest the decimal
// m·10^-k, and below 1e9 an ulp is far smaller than 10^-4, so the one m that reads back
// as d is the shortest decimal, as to_chars would find it.
bool PutSimpleDouble(Sink& out, double d, JsonNumbers numbers) {
  const double a = std::fabs(d);
  if (a == 0) {
    out.Put(std::signbit(d) ? std::string_view("-0") : std::string_view("0"));
    if (numbers == JsonNumbers::kKeepKind) out.Put(".0");
    return true;
  }
  if (!(a >= 1e-3 && a < 1e9)) return false;
  static constexpr double kPow10[] = {1, 10, 100, 1000, 10000};
  for (int k = 0; k <= 4; ++k) {
    const double scaled = std::nearbyint(a * kPow10[k]);
    if (scaled / kPow10[k] != a) continue;
    auto m = static_cast<std::uint64_t>(scaled);
    char digits[24];
    char* end = std::to_chars(digits, digits + sizeof(digits), m).ptr;
    auto n = static_cast<int>(end - digits);
    if (k == 0) {
      // to_chars prints 100000 as "1e+05": scientific wins when it is shorter.
      int zeros = 0;
      while (zeros < n - 1 && digits[n - 1 - zeros] == '0') ++zeros;
      const int sig = n - zeros;
      if (sig + (sig > 1 ? 1 : 0) + 4 < n) return false;
    }
    char* const buf = out.Room(32);
    char* p = buf;
    if (d < 0) *p++ = '-';
    if (k == 0) {
      p = std::copy(digits, end, p);
      if (numbers == JsonNumbers::kKeepKind) {
        *p++ = '.';
        *p++ = '0';
      }
    } else {
      if (n <= k) {  // 0.0025: "0." and leading zeros.
        *p++ = '0';
        *p++ = '.';
        for (int z = n; z < k; ++z) *p++ = '0';
        p = std::copy(digits, end, p);
      } else {
        p = std::copy(digits, end - k, p);
        *p++ = '.';
        p = std::copy(end - k, end, p);
      }
    }
    out.Commit(p);
    return true;
  }
  return false;
}

void PutDouble(Sink& out, double d, JsonNumbers numbers) {
  if (!std::isfinite(d)) {
    out.Put("null");
    return;
  }
  if (PutSimpleDouble(out, d, numbers)) return;
  // Shortest round-trip is at most 24 characters ("-2.2250738585072014e-308"), plus ".0".
  char* const buf = out.Room(32);
  char* end = std::to_chars(buf, buf + 30, d).ptr;
  if (std::memchr(buf, '.', static_cast<std::size_t>(end - buf)) == nullptr &&
      std::memchr(buf, 'e', static_cast<std::size_t>(end - buf)) == nullptr) {
    // An integral value in fixed notation. Past int64 it would read back as an integer
    // literal out of range (or as a uint64): scientific keeps it a double.
    if (std::fabs(d) >= 9223372036854775808.0) {
      end = std::to_chars(buf, buf + 30, d, std::chars_format::scientific).ptr;
    } else if (numbers == JsonNumbers::kKeepKind) {
      *end++ = '.';
      *end++ = '0';
    }
  }
  out.Commit(end);
}

template <typename Int>
void PutInteger(Sink& out, Int i) {
  char* const buf = out.Room(24);
  out.Commit(std::to_chars(buf, buf + 24, i).ptr);
}

void PutString(Sink& out, std::string_view s) {
  out.Put('"');
  const std::size_t n = s.size();
  std::size_t run = 0;  // Bytes from `run` to `i` go out unchanged, copied at once.
  std::size_t i = 0;
  while (true) {
    while (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (!PlainWord(w)) break;
      i += 8;
    }
    if (i >= n) break;
    const auto c = static_cast<unsigned char>(s[i]);
    const unsigned char cls = kByteClass[c];
    if (cls == 0) {
      ++i;
      continue;
    }
    int len = 0;
    if (cls == 2) {
      len = Utf8Sequence(s, i);
      if (len > 0) {
        i += static_cast<std::size_t>(len);
        continue;
      }
    }
    out.Put(s.substr(run, i - run));
    if (cls == 1) {
      PutEscape(out, c);
      ++i;
    } else {
      out.Put(kReplacement);
      i += static_cast<std::size_t>(-len);
    }
    run = i;
  }
  out.Put(s.substr(run, n - run));
  out.Put('"');
}

void Put(Sink& out, const json::value& v, JsonNumbers numbers) {
  switch (v.kind()) {
    case json::kind::null:
      out.Put("null");
      return;
    case json::kind::bool_:
      out.Put(v.get_bool() ? std::string_view("true") : std::string_view("false"));
      return;
    case json::kind::int64:
      PutInteger(out, v.get_int64());
      return;
    case json::kind::uint64:
      PutInteger(out, v.get_uint64());
      return;
    case json::kind::double_:
      PutDouble(out, v.get_double(), numbers);
      return;
    case json::kind::string:
      PutString(out, v.get_string());
      return;
    case json::kind::array: {
      out.Put('[');
      bool first = true;
      for (const json::value& e : v.get_array()) {
        if (!first) out.Put(',');
        first = false;
        Put(out, e, numbers);
      }
      out.Put(']');
      return;
    }
    case json::kind::object: {
      out.Put('{');
      bool first = true;
      for (const json::key_value_pair& kv : v.get_object()) {
        if (!first) out.Put(',');
        first = false;
        PutString(out, kv.key());
        out.Put(':');
        Put(out, kv.value(), numbers);
      }
      out.Put('}');
      return;
    }
  }
}

}  // namespace

void AppendJsonString(std::string* out, std::string_view s) {
  Sink sink(out);
  PutString(sink, s);
}

void AppendJson(std::string* out, const json::value& v, JsonNumbers numbers) {
  Sink sink(out);
  Put(sink, v, numbers);
}

void AppendJsonList(std::string* out, const json::array& a, std::span<const std::size_t> indices, JsonNumbers numbers) {
  Sink sink(out);
  sink.Put('[');
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (i > 0) sink.Put(',');
    Put(sink, a[indices[i]], numbers);
  }
  sink.Put(']');
}

std::string WriteJson(const json::value& v, JsonNumbers numbers) {
  std::string out;
  // A job object is about 300 bytes: one allocation for most bodies, doubling after.
  out.reserve(512);
  AppendJson(&out, v, numbers);
  return out;
}

}  // namespace offload
