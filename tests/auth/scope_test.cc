// Scopes: their names in the tokens file, and admin holding every scope.
#include "auth/scope.h"

#include <gtest/gtest.h>

#include <string>

namespace offload {
namespace {

constexpr Scope kAll[] = {Scope::kSubmit, Scope::kRead, Scope::kCancel, Scope::kAdmin};

TEST(ScopeTest, NamesRoundTrip) {
  for (Scope s : kAll) {
    SCOPED_TRACE(std::string(ScopeName(s)));
    Scope parsed = s == Scope::kAdmin ? Scope::kSubmit : Scope::kAdmin;  // Anything but s, to see it written.
    ASSERT_TRUE(ParseScope(ScopeName(s), &parsed));
    EXPECT_EQ(parsed, s);
  }
  EXPECT_EQ(ScopeName(Scope::kSubmit), "submit");
  EXPECT_EQ(ScopeName(Scope::kRead), "read");
  EXPECT_EQ(ScopeName(Scope::kCancel), "cancel");
  EXPECT_EQ(ScopeName(Scope::kAdmin), "admin");
}

TEST(ScopeTest, UnknownNamesAreRefusedAndLeaveTheOutputAlone) {
  for (const char* bad : {"", "Admin", "READ", "write", "submit ", " read", "all", "*", "admin,read"}) {
    Scope out = Scope::kCancel;
    EXPECT_FALSE(ParseScope(bad, &out)) << '"' << bad << '"';
    EXPECT_EQ(out, Scope::kCancel) << '"' << bad << '"';
  }
}

TEST(ScopeSetTest, EmptyHoldsNothing) {
  ScopeSet set;
  EXPECT_TRUE(set.empty());
  for (Scope s : kAll) EXPECT_FALSE(set.Has(s)) << ScopeName(s);
}

TEST(ScopeSetTest, AScopeOtherThanAdminHoldsOnlyItself) {
  for (Scope given : {Scope::kSubmit, Scope::kRead, Scope::kCancel}) {
    SCOPED_TRACE(std::string(ScopeName(given)));
    ScopeSet set;
    set.Add(given);
    EXPECT_FALSE(set.empty());
    for (Scope s : kAll) EXPECT_EQ(set.Has(s), s == given) << ScopeName(s);
  }
}

TEST(ScopeSetTest, SeveralScopesHoldEachOfThemAndNotAdmin) {
  ScopeSet set;
  set.Add(Scope::kSubmit);
  set.Add(Scope::kRead);
  EXPECT_TRUE(set.Has(Scope::kSubmit));
  EXPECT_TRUE(set.Has(Scope::kRead));
  EXPECT_FALSE(set.Has(Scope::kCancel));
  EXPECT_FALSE(set.Has(Scope::kAdmin));
}

TEST(ScopeSetTest, AdminHoldsEveryScope) {
  ScopeSet set;
  set.Add(Scope::kAdmin);
  for (Scope s : kAll) EXPECT_TRUE(set.Has(s)) << ScopeName(s);
}

TEST(ScopeSetTest, EqualWhenTheyHoldTheSameScopes) {
  ScopeSet a, b;
  a.Add(Scope::kRead);
  a.Add(Scope::kCancel);
  b.Add(Scope::kCancel);
  b.Add(Scope::kRead);
  b.Add(Scope::kRead);
  EXPECT_EQ(a, b);
  b.Add(Scope::kAdmin);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace offload
