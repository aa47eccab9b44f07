#include "util/base64.h"

#include <gtest/gtest.h>

namespace offload {
namespace {

// The test vectors of RFC 4648, section 10.
TEST(Base64Test, EncodesTheRfcVectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
}

TEST(Base64Test, EncodesEveryByteValue) {
  EXPECT_EQ(Base64Encode(std::string("\x00\xff\xfe", 3)), "AP/+");
  EXPECT_EQ(Base64Encode("\x89PNG\r\n\x1a\n"), "iVBORw0KGgo=");
}

TEST(Base64Test, DecodesWhatItEncodesInBothAlphabetsWithOrWithoutPadding) {
  const std::string bytes("\x00\xff\xfe\x89PNG", 7);
  std::string out;
  ASSERT_TRUE(Base64Decode(Base64Encode(bytes), &out));
  EXPECT_EQ(out, bytes);
  ASSERT_TRUE(Base64Decode("AP_-", &out));  // URL-safe alphabet.
  EXPECT_EQ(out, std::string("\x00\xff\xfe", 3));
  ASSERT_TRUE(Base64Decode("Zm8", &out));  // No padding.
  EXPECT_EQ(out, "fo");
}

TEST(Base64Test, RefusesCharactersOutsideTheAlphabet) {
  std::string out;
  EXPECT_FALSE(Base64Decode("Zm9v!", &out));
  EXPECT_FALSE(Base64Decode("Zg==Zg", &out)) << "nothing but padding after padding";
}

}  // namespace
}  // namespace offload
