// ParseJson: numbers a value cannot hold are refused and named; all else reads as
// boost::json::parse would read it.
#include "util/json_reader.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace offload {
namespace {

namespace json = boost::json;

json::value Ok(std::string_view text) {
  auto r = ParseJson(text);
  EXPECT_TRUE(r.has_value()) << text << ": " << (r ? "" : r.error().detail);
  return r ? *r : json::value();
}

Error Err(std::string_view text, std::string_view root = {}) {
  auto r = ParseJson(text, root);
  EXPECT_FALSE(r.has_value()) << text << " was accepted";
  return r ? Error{} : r.error();
}

TEST(ParseJsonTest, ReadsWhatBoostReads) {
  const char* docs[] = {
      "null",      "true", "false",
      "0",         "-1",   "\"é✓\"",
      "[]",        "{}",   R"({"a": [1, 2.5, "three", null, true, {"b": {"c": []}}], "d": "\u00e9\n"})",
      " [1,2,3] ",
  };
  for (const char* d : docs) EXPECT_EQ(Ok(d), json::parse(d)) << d;
}

TEST(ParseJsonTest, MalformedIsMalformed) {
  for (const char* d : {"", "{", "[1,]", "{\"a\" 1}", "nul", "1 2", "\"\xff\"", "NaN", "Infinity", "{\"a\":1}x"}) {
    Error e = Err(d);
    EXPECT_EQ(e.code, ErrorCode::kMalformed) << d << ": " << e.detail;
  }
}

TEST(ParseJsonTest, DoubleOverflowIsRefusedNamingThePlace) {
  Error e = Err(R"({"a": [0, 1, 2, 1e400]})", "input");
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.detail.rfind("input.a[3]: the number 1e400 is out of range of a 64-bit float", 0), 0u) << e.detail;

  e = Err("-1e400");
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.detail.rfind("the number -1e400 is out of range", 0), 0u) << e.detail;

  e = Err(R"([{"x": 1}, {"x": 2, "y": {"z": 1.8e308}}])", "map");
  EXPECT_EQ(e.detail.rfind("map[1].y.z: the number 1.8e308 ", 0), 0u) << e.detail;

  // Without a root the place starts at the first key; odd keys are bracketed.
  e = Err(R"({"input": {"a.b": 1e999}})");
  EXPECT_EQ(e.detail.rfind(R"(input["a.b"]: the number 1e999 )", 0), 0u) << e.detail;
}

TEST(ParseJsonTest, PlaceFollowsKeysAndIndexesAsTheParserMoves) {
  // Earlier siblings, closed containers and earlier keys must not leak into the place.
  Error e = Err(R"({"a": {"deep": [1, [2, 3]]}, "b": [[], {}, "s", 1e400]})");
  EXPECT_EQ(e.detail.rfind("b[3]: ", 0), 0u) << e.detail;
  e = Err(R"([[1, 2], [3, [4, 5, 6e500]]])", "r");
  EXPECT_EQ(e.detail.rfind("r[1][1][2]: ", 0), 0u) << e.detail;
}

TEST(ParseJsonTest, IntegersBeyond64BitsAreRefused) {
  Error e = Err(R"({"n": 18446744073709551616})");
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.detail.rfind("n: the number 18446744073709551616 is outside the 64-bit integer range", 0), 0u)
      << e.detail;
  e = Err("-9223372036854775809");
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument) << e.detail;
  // A long literal is cut in the message.
  e = Err(std::string(500, '9'));
  EXPECT_LT(e.detail.size(), 250u) << e.detail;
}

TEST(ParseJsonTest, IntegersAtThe64BitLimitsAreKeptExactly) {
  json::value v = Ok("[18446744073709551615, -9223372036854775808, 9223372036854775807]");
  const json::array& a = v.get_array();
  ASSERT_TRUE(a[0].is_uint64());
  EXPECT_EQ(a[0].get_uint64(), std::numeric_limits<std::uint64_t>::max());
  ASSERT_TRUE(a[1].is_int64());
  EXPECT_EQ(a[1].get_int64(), std::numeric_limits<std::int64_t>::min());
  ASSERT_TRUE(a[2].is_int64());
  EXPECT_EQ(a[2].get_int64(), std::numeric_limits<std::int64_t>::max());
}

TEST(ParseJsonTest, RealsAreCorrectlyRounded) {
  json::value v = Ok("[0.1, 2.5, 1.0, 1e300, 1.7976931348623157e308, 5e-324, 2.2250738585072011e-308, 1E2]");
  const json::array& a = v.get_array();
  const double want[] = {0.1, 2.5, 1.0, 1e300, 1.7976931348623157e308, 5e-324, 2.2250738585072011e-308, 100};
  ASSERT_EQ(a.size(), std::size(want));
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(a[i].is_double()) << i;
    EXPECT_EQ(a[i].get_double(), want[i]) << i;
  }
}

TEST(ParseJsonTest, UnderflowReadsAsSignedZero) {
  json::value v = Ok("[1e-400, -1e-400]");
  const json::array& a = v.get_array();
  ASSERT_TRUE(a[0].is_double());
  EXPECT_EQ(a[0].get_double(), 0.0);
  EXPECT_FALSE(std::signbit(a[0].get_double()));
  ASSERT_TRUE(a[1].is_double());
  EXPECT_TRUE(std::signbit(a[1].get_double()));
}

TEST(ParseJsonTest, LongDocumentOfReals) {
  // Past the 4 KiB stack buffer the value_stack moves to the heap.
  std::string doc = "[";
  for (int i = 0; i < 5000; ++i) doc += (i ? "," : "") + std::to_string(i) + ".25";
  doc += "]";
  json::value v = Ok(doc);
  ASSERT_EQ(v.get_array().size(), 5000u);
  EXPECT_EQ(v.get_array()[4999].get_double(), 4999.25);
}

TEST(ParseJsonTest, DepthLimitIsBoostsDefault) {
  EXPECT_TRUE(ParseJson(std::string(32, '[') + std::string(32, ']')).has_value());
  EXPECT_EQ(Err(std::string(33, '[') + std::string(33, ']')).code, ErrorCode::kMalformed);
}

}  // namespace
}  // namespace offload
