// WriteJson: shortest round-trip doubles, correct escapes, always valid UTF-8.
#include "util/json_writer.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "util/json_reader.h"

namespace offload {
namespace {

namespace json = boost::json;

// True when `s` is well-formed UTF-8 (checked here independently of the writer).
bool IsUtf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    const std::uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

std::string Str(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

TEST(WriteJsonTest, DoublesInShortestRoundTripForm) {
  EXPECT_EQ(WriteJson(2.5), "2.5");
  EXPECT_EQ(WriteJson(0.1), "0.1");
  EXPECT_EQ(WriteJson(1.0), "1");
  EXPECT_EQ(WriteJson(-0.0), "-0");
  EXPECT_EQ(WriteJson(1e300), "1e+300");
  EXPECT_EQ(WriteJson(1e-7), "1e-07");
  EXPECT_EQ(WriteJson(0.30000000000000004), "0.30000000000000004");
  EXPECT_EQ(WriteJson(json::array{1.5, -2.25}), "[1.5,-2.25]");
}

TEST(WriteJsonTest, KeepKindGivesIntegralDoublesAFraction) {
  EXPECT_EQ(WriteJson(1.0, JsonNumbers::kKeepKind), "1.0");
  EXPECT_EQ(WriteJson(-0.0, JsonNumbers::kKeepKind), "-0.0");
  EXPECT_EQ(WriteJson(2.5, JsonNumbers::kKeepKind), "2.5");
  EXPECT_EQ(WriteJson(1e300, JsonNumbers::kKeepKind), "1e+300");
  EXPECT_EQ(WriteJson(std::int64_t{1}, JsonNumbers::kKeepKind), "1");
}

TEST(WriteJsonTest, LargeIntegralDoublesStayDoublesWhenReadBack) {
  // 2^64 and 1.2345678901234568e+20 print shortest in fixed notation, an integer
  // literal that no 64-bit integer holds.
  for (double d : {18446744073709551616.0, 1.2345678901234568e+20, -9.3e18, 9223372036854775808.0}) {
    for (JsonNumbers mode : {JsonNumbers::kShortest, JsonNumbers::kKeepKind}) {
      const std::string text = WriteJson(d, mode);
      auto back = ParseJson(text);
      ASSERT_TRUE(back.has_value()) << text << ": " << back.error().detail;
      ASSERT_TRUE(back->is_double()) << text;
      EXPECT_EQ(back->get_double(), d) << text;
    }
  }
  EXPECT_EQ(WriteJson(18446744073709551616.0), "1.8446744073709552e+19");
  EXPECT_EQ(WriteJson(1e15), "1e+15");
  EXPECT_EQ(WriteJson(123456789.0), "123456789");
}

// The writer has a fast path for short decimals; whatever the path, a double below
// 2^63 is written exactly as std::to_chars writes it (and "X.0" for an integral one in
// kKeepKind).
TEST(WriteJsonTest, DoublesAreWrittenAsToCharsWritesThem) {
  std::vector<double> values = {-0.0, 0.0, 0.001,   0.0015,    0.00099, 1e-4,  999999999.5, 1e9,    100000,
                                10,   120, 1e5 + 1, 123456789, 0.0001,  99.25, 3.14159,     1.0 / 3};
  for (int k = 0; k <= 5; ++k) {
    const double p = std::pow(10.0, k);
    for (int i = -2000; i <= 2000; i += 7) values.push_back(i / p);
    for (std::int64_t i = 1; i < 2'000'000'000; i = i * 3 + 1) values.push_back(static_cast<double>(i) / p);
  }
  std::uint64_t x = 88172645463325252ull;  // xorshift64: doubles from every exponent.
  for (int i = 0; i < 20000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    double d;
    std::memcpy(&d, &x, sizeof(d));
    if (std::isfinite(d) && std::fabs(d) < 9e18) values.push_back(d);
    values.push_back(static_cast<double>(x % 100000) / 1000);
  }
  for (double d : values) {
    char buf[32];
    const std::string want(buf, std::to_chars(buf, buf + sizeof(buf), d).ptr);
    ASSERT_EQ(WriteJson(d), want) << std::hexfloat << d;
    const bool integral = want.find_first_of(".e") == std::string::npos;
    ASSERT_EQ(WriteJson(d, JsonNumbers::kKeepKind), integral ? want + ".0" : want) << std::hexfloat << d;
  }
}

TEST(WriteJsonTest, NonFiniteDoublesAreNull) {
  EXPECT_EQ(WriteJson(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(WriteJson(-std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(WriteJson(std::nan("")), "null");
  EXPECT_EQ(WriteJson(json::object{{"p", std::numeric_limits<double>::infinity()}}, JsonNumbers::kKeepKind),
            R"({"p":null})");
}

TEST(WriteJsonTest, IntegersAtTheLimits) {
  EXPECT_EQ(WriteJson(std::numeric_limits<std::int64_t>::min()), "-9223372036854775808");
  EXPECT_EQ(WriteJson(std::numeric_limits<std::uint64_t>::max()), "18446744073709551615");
  EXPECT_EQ(WriteJson(0), "0");
}

TEST(WriteJsonTest, LiteralsAndContainers) {
  EXPECT_EQ(WriteJson(nullptr), "null");
  EXPECT_EQ(WriteJson(true), "true");
  EXPECT_EQ(WriteJson(false), "false");
  EXPECT_EQ(WriteJson(json::array{}), "[]");
  EXPECT_EQ(WriteJson(json::object{}), "{}");
  EXPECT_EQ(WriteJson(json::parse(R"({"a":[1,{"b":null}],"c":"d"})")), R"({"a":[1,{"b":null}],"c":"d"})");
}

TEST(WriteJsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(Str("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(Str("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(Str(std::string_view("\0\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(Str("/\x7f"), "\"/\x7f\"");
  // Keys too.
  EXPECT_EQ(WriteJson(json::object{{"k\"\n", 1}}), R"({"k\"\n":1})");
}

TEST(WriteJsonTest, ValidUtf8IsKept) {
  EXPECT_EQ(Str("é✓𝄞"), "\"é✓𝄞\"");
  EXPECT_EQ(Str("\xF4\x8F\xBF\xBF"), "\"\xF4\x8F\xBF\xBF\"");  // U+10FFFF
}

TEST(WriteJsonTest, InvalidUtf8IsReplacedByOneReplacementCharacterPerMaximalSubpart) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(Str("\xFF\xFE"), "\"" + r + r + "\"");
  EXPECT_EQ(Str("a\x80z"), "\"a" + r + "z\"");                      // A stray continuation byte.
  EXPECT_EQ(Str("\xC0\xAF"), "\"" + r + r + "\"");                  // Overlong '/': C0 is never valid.
  EXPECT_EQ(Str("\xE0\x80\x80"), "\"" + r + r + r + "\"");          // Overlong: E0 needs A0..BF.
  EXPECT_EQ(Str("\xED\xA0\x80"), "\"" + r + r + r + "\"");          // A surrogate.
  EXPECT_EQ(Str("\xF4\x90\x80\x80"), "\"" + r + r + r + r + "\"");  // Past U+10FFFF.
  EXPECT_EQ(Str("\xE2\x9C"), "\"" + r + "\"");                      // Truncated ✓: one subpart.
  EXPECT_EQ(Str("\xE2\x9Cx"), "\"" + r + "x\"");
  EXPECT_EQ(Str("\xF0\x9D\x84"), "\"" + r + "\"");  // Truncated 𝄞.
  EXPECT_EQ(Str("\xE2\x9C\"\xE2\x9C\x93"), "\"" + r + "\\\"✓\"");
  // In keys as in values.
  EXPECT_EQ(WriteJson(json::object{{"\xFF", "\xFE"}}), "{\"" + r + "\":\"" + r + "\"}");
}

TEST(WriteJsonTest, OutputIsValidUtf8ForEveryByte) {
  // Every single byte and every pair of bytes in a string: the output reads back as
  // JSON (Boost's reader validates UTF-8) and is UTF-8.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; b += (a < 0x80 ? 17 : 1)) {
      const char bytes[3] = {static_cast<char>(a), static_cast<char>(b), '\xE2'};
      const std::string out = Str(std::string_view(bytes, 3));
      ASSERT_TRUE(IsUtf8(out)) << a << " " << b;
      boost::system::error_code ec;
      json::parse(out, ec);
      ASSERT_FALSE(ec) << a << " " << b << ": " << ec.message();
    }
  }
}

TEST(WriteJsonTest, NestedValuesRoundTripExactly) {
  const char* doc = R"({"a": [0.1, 2.5, 1.0, -0.0, 1e300, 5e-324, 9223372036854775807,
                              -9223372036854775808, 18446744073709551615, "x\u0000y\n\u00e9"],
                        "b": {"c": {"d": [[], {}, null, true, false]}}, "": ""})";
  const json::value v = *ParseJson(doc);
  for (JsonNumbers mode : {JsonNumbers::kShortest, JsonNumbers::kKeepKind}) {
    const std::string text = WriteJson(v, mode);
    auto back = ParseJson(text);
    ASSERT_TRUE(back.has_value()) << text;
    // kShortest reads 1.0 back as the integer 1 and -0.0 as 0: equal as JSON numbers.
    if (mode == JsonNumbers::kKeepKind) {
      EXPECT_EQ(WriteJson(*back, mode), text);
      EXPECT_EQ(*back, v) << text;
      EXPECT_TRUE(std::signbit(back->at("a").at(3).get_double()));
    }
  }
}

TEST(WriteJsonTest, AppendsToWhatIsThere) {
  std::string out = "x=";
  AppendJson(&out, json::array{1, 2});
  EXPECT_EQ(out, "x=[1,2]");
}

TEST(WriteJsonTest, AListOfSomeElementsInTheOrderOfTheirIndices) {
  const json::array a{1.0, "b", json::object{{"c", 3}}, nullptr};
  std::string out = "in=";
  const std::vector<std::size_t> indices{2, 0, 0};
  AppendJsonList(&out, a, indices, JsonNumbers::kKeepKind);
  EXPECT_EQ(out, R"(in=[{"c":3},1.0,1.0])");
  out.clear();
  AppendJsonList(&out, a, {});
  EXPECT_EQ(out, "[]");
}

}  // namespace
}  // namespace offload
