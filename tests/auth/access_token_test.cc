// Access tokens: what `offload token create` prints and what the tokens file keeps of
// a token (its SHA-256 as hex).
#include "auth/access_token.h"

#include <gtest/gtest.h>

#include <string>

namespace offload {
namespace {

// FIPS 180-2, appendix B.1, and the digest of the empty string.
TEST(AccessTokenTest, HexDigestIsTheSha256OfTheToken) {
  EXPECT_EQ(HexDigestOfToken("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexDigestOfToken(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(AccessTokenTest, DigestAndHexDigestAgree) {
  const TokenDigest digest = DigestOfToken("abc");
  EXPECT_EQ(digest[0], 0xba);
  EXPECT_EQ(digest[31], 0xad);
  TokenDigest parsed{};
  ASSERT_TRUE(ParseHexDigest(HexDigestOfToken("abc"), &parsed));
  EXPECT_EQ(parsed, digest);
}

TEST(AccessTokenTest, ParseHexDigestTakesEitherCase) {
  const std::string lower = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  const std::string upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
  const std::string mixed = "Ba7816bF8f01CFea414140de5dae2223b00361a396177a9cb410ff61f20015aD";
  for (const std::string& hex : {lower, upper, mixed}) {
    SCOPED_TRACE(hex);
    TokenDigest out{};
    ASSERT_TRUE(ParseHexDigest(hex, &out));
    EXPECT_EQ(out, DigestOfToken("abc"));
  }
}

TEST(AccessTokenTest, ParseHexDigestRefusesAnythingButSixtyFourHexDigits) {
  const std::string good(64, 'a');
  TokenDigest out{};
  ASSERT_TRUE(ParseHexDigest(good, &out));
  EXPECT_FALSE(ParseHexDigest(std::string(63, 'a'), &out));
  EXPECT_FALSE(ParseHexDigest(std::string(65, 'a'), &out));
  EXPECT_FALSE(ParseHexDigest("", &out));
  EXPECT_FALSE(ParseHexDigest(std::string(128, 'a'), &out)) << "a SHA-512 is not a SHA-256";
  for (char bad : {'g', 'G', 'x', ' ', '-', '\0'}) {
    for (std::size_t at : {std::size_t{0}, std::size_t{31}, std::size_t{63}}) {
      std::string hex = good;
      hex[at] = bad;
      EXPECT_FALSE(ParseHexDigest(hex, &out)) << "'" << bad << "' at " << at;
    }
  }
}

TEST(AccessTokenTest, NewTokenIsOflAndFortyThreeCharactersOfBase64Url) {
  const std::string token = NewAccessToken();
  ASSERT_EQ(token.size(), 4u + 43u) << token;
  EXPECT_EQ(token.substr(0, 4), "ofl_");
  for (char c : token.substr(4)) {
    const bool url_safe =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    EXPECT_TRUE(url_safe) << "'" << c << "' in " << token;
  }
  EXPECT_EQ(token.find_first_of("+/="), std::string::npos) << token;
}

TEST(AccessTokenTest, NewTokensDiffer) {
  const std::string a = NewAccessToken();
  const std::string b = NewAccessToken();
  EXPECT_NE(a, b);
  EXPECT_NE(HexDigestOfToken(a), HexDigestOfToken(b));
}

}  // namespace
}  // namespace offload
