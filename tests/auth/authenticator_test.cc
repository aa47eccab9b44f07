// Authenticator: which principal a request's Authorization header names, and the
// bearer header itself (RFC 6750, the scheme in any case as RFC 9110 11.1 says).
#include "auth/authenticator.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

#include "auth/access_token.h"

namespace offload {
namespace {

TEST(BearerTokenTest, TakesTheSchemeInAnyCase) {
  EXPECT_EQ(BearerToken("Bearer X"), "X");
  EXPECT_EQ(BearerToken("bearer X"), "X");
  EXPECT_EQ(BearerToken("BEARER X"), "X");
  EXPECT_EQ(BearerToken("bEaReR ofl_abc-_9"), "ofl_abc-_9");
}

TEST(BearerTokenTest, SpacesAroundTheTokenAreNotPartOfIt) {
  EXPECT_EQ(BearerToken("BEARER   X  "), "X");
  EXPECT_EQ(BearerToken("Bearer  X"), "X");
}

TEST(BearerTokenTest, RefusesWhatIsNotABearerCredential) {
  for (const char* bad : {"", "Bearer", "Bearer ", "Bearer    ", "Basic X", "Basic dXNlcjpwYXNz", "BearerX", "X",
                          "Token X", " Bearer X"}) {
    EXPECT_EQ(BearerToken(bad), "") << '"' << bad << '"';
  }
}

TokenConfig MakeToken(const std::string& name, const std::string& token, std::initializer_list<Scope> scopes) {
  TokenConfig t;
  t.name = name;
  t.sha256 = HexDigestOfToken(token);
  for (Scope s : scopes) t.scopes.Add(s);
  return t;
}

// Three tokens: two of tenant alice (an old one and its replacement while it is
// rotated, with different scopes), one admin. One of alice's comes from the tokens
// file, and its digest is written in upper case.
class AuthenticatorTest : public ::testing::Test {
 protected:
  static constexpr const char* kAliceOld = "ofl_alice-old";
  static constexpr const char* kAliceNew = "ofl_alice-new";
  static constexpr const char* kOps = "ofl_ops";

  AuthenticatorTest() : auth_(Config()) {}

  static AuthConfig Config() {
    AuthConfig c;
    c.enabled = true;
    c.tokens.push_back(MakeToken("alice", kAliceOld, {Scope::kSubmit, Scope::kRead}));
    c.tokens.push_back(MakeToken("ops", kOps, {Scope::kAdmin}));
    TokenConfig rotated = MakeToken("alice", kAliceNew, {Scope::kRead});
    for (char& ch : rotated.sha256) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    c.file_tokens.push_back(rotated);
    return c;
  }

  Authenticator auth_;
};

TEST_F(AuthenticatorTest, HoldsEveryToken) { EXPECT_EQ(auth_.size(), 3u); }

TEST_F(AuthenticatorTest, EachTokenNamesItsPrincipal) {
  const Principal* old_token = auth_.Authenticate(std::string("Bearer ") + kAliceOld);
  ASSERT_NE(old_token, nullptr);
  EXPECT_EQ(old_token->tenant, "alice");
  EXPECT_TRUE(old_token->scopes.Has(Scope::kSubmit));
  EXPECT_TRUE(old_token->scopes.Has(Scope::kRead));
  EXPECT_FALSE(old_token->scopes.Has(Scope::kCancel));
  EXPECT_FALSE(old_token->admin());

  const Principal* new_token = auth_.Authenticate(std::string("bearer ") + kAliceNew);
  ASSERT_NE(new_token, nullptr);
  EXPECT_NE(new_token, old_token) << "each token has its own scopes";
  EXPECT_EQ(new_token->tenant, "alice");
  EXPECT_TRUE(new_token->scopes.Has(Scope::kRead));
  EXPECT_FALSE(new_token->scopes.Has(Scope::kSubmit));
  EXPECT_FALSE(new_token->admin());

  const Principal* ops = auth_.Authenticate(std::string("BEARER  ") + kOps + " ");
  ASSERT_NE(ops, nullptr);
  EXPECT_EQ(ops->tenant, "ops");
  EXPECT_TRUE(ops->admin());
  for (Scope s : {Scope::kSubmit, Scope::kRead, Scope::kCancel, Scope::kAdmin}) EXPECT_TRUE(ops->scopes.Has(s));
}

TEST_F(AuthenticatorTest, UnknownTokensNameNobody) {
  EXPECT_EQ(auth_.Authenticate("Bearer ofl_nobody"), nullptr);
  EXPECT_EQ(auth_.Authenticate(std::string("Bearer ") + kOps + "x"), nullptr);
  EXPECT_EQ(auth_.Authenticate(std::string("Bearer ") + std::string(kOps).substr(0, 5)), nullptr);
  // What the tokens file holds is no token: knowing it lets nobody in.
  EXPECT_EQ(auth_.Authenticate("Bearer " + HexDigestOfToken(kOps)), nullptr);
}

TEST_F(AuthenticatorTest, HeadersThatAreNotBearerCredentialsNameNobody) {
  EXPECT_EQ(auth_.Authenticate(""), nullptr);
  EXPECT_EQ(auth_.Authenticate("Bearer"), nullptr);
  EXPECT_EQ(auth_.Authenticate("Bearer "), nullptr);
  EXPECT_EQ(auth_.Authenticate(std::string("Basic ") + kOps), nullptr);
  EXPECT_EQ(auth_.Authenticate(kOps), nullptr);
}

TEST(AuthenticatorEmptyTest, NoTokensNameNobody) {
  Authenticator auth{AuthConfig{}};
  EXPECT_EQ(auth.size(), 0u);
  EXPECT_EQ(auth.Authenticate("Bearer ofl_anything"), nullptr);
  EXPECT_EQ(auth.Authenticate(""), nullptr);
}

}  // namespace
}  // namespace offload
