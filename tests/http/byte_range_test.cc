#include "http/byte_range.h"

#include <gtest/gtest.h>

#include "http/upload.h"

namespace offload {
namespace {

using Kind = ByteRange::Kind;

TEST(ByteRangeTest, OneRangeIsServedAndClampedToTheEnd) {
  ByteRange r = ParseByteRange("bytes=100-199", 1000);
  EXPECT_EQ(r.kind, Kind::kPart);
  EXPECT_EQ(r.first, 100u);
  EXPECT_EQ(r.last, 199u);
  EXPECT_EQ(r.length(), 100u);
  r = ParseByteRange("bytes=990-5000", 1000);
  EXPECT_EQ(r.kind, Kind::kPart);
  EXPECT_EQ(r.last, 999u);
  r = ParseByteRange("bytes=500-", 1000);
  EXPECT_EQ(r.first, 500u);
  EXPECT_EQ(r.last, 999u);
  r = ParseByteRange("Bytes=-10", 1000);
  EXPECT_EQ(r.kind, Kind::kPart);
  EXPECT_EQ(r.first, 990u);
  r = ParseByteRange("bytes=-5000", 1000);
  EXPECT_EQ(r.first, 0u);
}

TEST(ByteRangeTest, ARangePastTheEndIsUnsatisfiable) {
  EXPECT_EQ(ParseByteRange("bytes=1000-", 1000).kind, Kind::kUnsatisfiable);
  EXPECT_EQ(ParseByteRange("bytes=-0", 1000).kind, Kind::kUnsatisfiable);
  EXPECT_EQ(ParseByteRange("bytes=0-", 0).kind, Kind::kUnsatisfiable);
}

TEST(ByteRangeTest, WhatIsNotOneByteRangeGetsTheWhole) {
  for (const char* h :
       {"", "items=0-1", "bytes=0-1,5-6", "bytes=5-1", "bytes=a-b", "bytes=-", "bytes=1-2x", "bytes 0-1"}) {
    SCOPED_TRACE(h);
    EXPECT_EQ(ParseByteRange(h, 1000).kind, Kind::kWhole);
  }
}

TEST(AcceptsMediaTypeTest, MatchesTypesWildcardsAndIgnoresParameters) {
  const std::vector<std::string> images{"image/png", "audio/*"};
  EXPECT_TRUE(AcceptsMediaType(images, "image/png"));
  EXPECT_TRUE(AcceptsMediaType(images, "IMAGE/PNG; q=1"));
  EXPECT_TRUE(AcceptsMediaType(images, "audio/ogg"));
  EXPECT_FALSE(AcceptsMediaType(images, "image/gif"));
  EXPECT_FALSE(AcceptsMediaType(images, "audiox/ogg"));
  EXPECT_FALSE(AcceptsMediaType(images, "png"));
  EXPECT_FALSE(AcceptsMediaType({}, "image/png"));
  EXPECT_TRUE(AcceptsMediaType({"*/*"}, "application/octet-stream"));
  EXPECT_EQ(MediaTypeOf(" application/json ; charset=utf-8"), "application/json");
}

}  // namespace
}  // namespace offload
