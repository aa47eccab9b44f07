#include "files/multipart.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload {
namespace {

constexpr std::string_view kBoundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";

// Records what the parser reported, regardless of how the data was chunked; and
// checks that the calls come in order (begin, data..., end).
class Recorder : public MultipartHandler {
 public:
  struct Part {
    MultipartPartHeader header;
    std::string data;
    bool ended = false;
  };

  Status OnPartBegin(const MultipartPartHeader& part) override {
    EXPECT_TRUE(parts.empty() || parts.back().ended) << "a part began before the last one ended";
    parts.push_back(Part{part, "", false});
    return {};
  }
  Status OnPartData(std::string_view bytes) override {
    EXPECT_FALSE(bytes.empty());
    EXPECT_TRUE(!parts.empty() && !parts.back().ended) << "data outside a part";
    if (!parts.empty()) parts.back().data += bytes;
    return {};
  }
  Status OnPartEnd() override {
    EXPECT_TRUE(!parts.empty() && !parts.back().ended) << "end outside a part";
    if (!parts.empty()) parts.back().ended = true;
    return {};
  }

  std::vector<Part> parts;
};

// Feeds `body` cut at `cuts` (ascending offsets), then finishes.
Status Parse(std::string_view body, Recorder* recorder, std::vector<std::size_t> cuts = {}, MultipartLimits limits = {},
             std::string_view boundary = kBoundary) {
  MultipartParser parser{std::string(boundary), recorder, limits};
  std::size_t at = 0;
  cuts.push_back(body.size());
  for (std::size_t cut : cuts) {
    if (Status s = parser.Feed(body.substr(at, cut - at)); !s) return s;
    at = cut;
  }
  return parser.Finish();
}

std::string ErrorDetail(const Status& s) { return s ? std::string("(ok)") : s.error().detail; }

// A body as a browser sends it, with a preamble and an epilogue that must be ignored.
std::string BrowserBody() {
  const std::string b(kBoundary);
  return "preamble, ignored\r\n"
         "--" +
         b +
         "\r\n"
         "Content-Disposition: form-data; name=\"title\"\r\n"
         "\r\n"
         "A report\r\n"
         "--" +
         b +
         "\r\n"
         "Content-Disposition: form-data; name=\"file\"; filename=\"data.csv\"\r\n"
         "Content-Type: text/csv\r\n"
         "\r\n"
         "a,b\r\n1,2\r\n"
         "\r\n"
         "--" +
         b +
         "\r\n"
         "Content-Disposition: form-data; name=\"empty\"\r\n"
         "\r\n"
         "\r\n"
         "--" +
         b +
         "--\r\n"
         "epilogue, ignored\r\n";
}

void ExpectBrowserParts(const Recorder& r) {
  ASSERT_EQ(r.parts.size(), 3u);
  EXPECT_EQ(r.parts[0].header.name, "title");
  EXPECT_EQ(r.parts[0].header.filename, "");
  EXPECT_EQ(r.parts[0].header.content_type, "");
  EXPECT_EQ(r.parts[0].data, "A report");
  EXPECT_EQ(r.parts[1].header.name, "file");
  EXPECT_EQ(r.parts[1].header.filename, "data.csv");
  EXPECT_EQ(r.parts[1].header.content_type, "text/csv");
  EXPECT_EQ(r.parts[1].data, "a,b\r\n1,2\r\n") << "the CRLF before a delimiter is the delimiter's, not the data's";
  EXPECT_EQ(r.parts[2].header.name, "empty");
  EXPECT_EQ(r.parts[2].data, "");
  for (const auto& part : r.parts) EXPECT_TRUE(part.ended);
}

TEST(MultipartParserTest, ReadsNamesFilenamesContentTypesAndData) {
  Recorder r;
  ASSERT_TRUE(Parse(BrowserBody(), &r));
  ExpectBrowserParts(r);
}

TEST(MultipartParserTest, ReadsTheSameWhereverTheBodyIsCut) {
  const std::string body = BrowserBody();
  for (std::size_t i = 0; i <= body.size(); ++i) {
    Recorder r;
    ASSERT_TRUE(Parse(body, &r, {i})) << "cut at " << i;
    ExpectBrowserParts(r);
    if (HasFatalFailure() || HasNonfatalFailure()) FAIL() << "cut at " << i;
  }
}

TEST(MultipartParserTest, ReadsTheSameWhereverTheBodyIsCutTwice) {
  const std::string body = BrowserBody();
  for (std::size_t i = 0; i <= body.size(); ++i) {
    for (std::size_t j = i; j <= body.size(); ++j) {
      Recorder r;
      ASSERT_TRUE(Parse(body, &r, {i, j})) << "cut at " << i << " and " << j;
      ASSERT_EQ(r.parts.size(), 3u) << "cut at " << i << " and " << j;
      ASSERT_EQ(r.parts[1].data, "a,b\r\n1,2\r\n") << "cut at " << i << " and " << j;
    }
  }
}

TEST(MultipartParserTest, ReadsOneByteAtATime) {
  const std::string body = BrowserBody();
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < body.size(); ++i) cuts.push_back(i);
  Recorder r;
  ASSERT_TRUE(Parse(body, &r, cuts));
  ExpectBrowserParts(r);
}

TEST(MultipartParserTest, StartsWithoutAPreamble) {
  Recorder r;
  ASSERT_TRUE(Parse("--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--", &r, {}, {}, "b"));
  ASSERT_EQ(r.parts.size(), 1u);
  EXPECT_EQ(r.parts[0].data, "1");
}

TEST(MultipartParserTest, ReadsNoPartsWhenTheCloseDelimiterComesFirst) {
  Recorder r;
  EXPECT_TRUE(Parse("--b--", &r, {}, {}, "b"));
  EXPECT_TRUE(Parse("preamble\r\n--b--\r\nepilogue", &r, {}, {}, "b"));
  EXPECT_TRUE(r.parts.empty());
}

TEST(MultipartParserTest, TakesWhatLooksLikeADelimiterButIsNotOneAsData) {
  // Each lookalike is data: "\r\n--" and prefixes of the boundary, the boundary
  // without the CRLF before it or with only CR or LF, and the delimiter's first bytes
  // at the very end of the data.
  const std::string data =
      "\r\n--\r\n--boundar\r\n-\r\n\r\n--bo--boundary\r--boundary\n--boundary x--boundary\r\n--boundar\r\n--b\r";
  const std::string body =
      "--boundary\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n" + data + "\r\n--boundary--\r\n";
  for (std::size_t i = 0; i <= body.size(); ++i) {
    Recorder r;
    ASSERT_TRUE(Parse(body, &r, {i}, {}, "boundary")) << "cut at " << i;
    ASSERT_EQ(r.parts.size(), 1u);
    ASSERT_EQ(r.parts[0].data, data) << "cut at " << i;
  }
  std::vector<std::size_t> every_byte;
  for (std::size_t i = 1; i < body.size(); ++i) every_byte.push_back(i);
  Recorder r;
  ASSERT_TRUE(Parse(body, &r, every_byte, {}, "boundary"));
  ASSERT_EQ(r.parts.size(), 1u);
  EXPECT_EQ(r.parts[0].data, data);
}

TEST(MultipartParserTest, PassesBinaryDataThroughUnchanged) {
  std::string data;
  for (int round = 0; round < 3; ++round) {
    for (int c = 0; c < 256; ++c) data += static_cast<char>(c);
    data += std::string("\0\r\n\r\n\0\r\r\n\n", 11);
  }
  const std::string body =
      "--bin\r\nContent-Disposition: form-data; name=\"blob\"; filename=\"a.bin\"\r\n"
      "Content-Type: application/octet-stream\r\n\r\n" +
      data + "\r\n--bin--";
  for (std::size_t i = 0; i <= body.size(); i += 7) {
    Recorder r;
    ASSERT_TRUE(Parse(body, &r, {i}, {}, "bin")) << "cut at " << i;
    ASSERT_EQ(r.parts.size(), 1u);
    EXPECT_EQ(r.parts[0].header.content_type, "application/octet-stream");
    ASSERT_EQ(r.parts[0].data, data) << "cut at " << i;
  }
}

// Everything that cannot begin a delimiter is handed over in the Feed that brought it.
TEST(MultipartParserTest, HoldsBackOnlyWhatMayBeADelimiter) {
  Recorder r;
  MultipartParser parser("bnd", &r);
  ASSERT_TRUE(parser.Feed("--bnd\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nabc"));
  ASSERT_EQ(r.parts.size(), 1u);
  EXPECT_EQ(r.parts[0].data, "abc");
  ASSERT_TRUE(parser.Feed("def\r\n--bn"));
  EXPECT_EQ(r.parts[0].data, "abcdef") << "\"\\r\\n--bn\" may begin the delimiter";
  ASSERT_TRUE(parser.Feed("x"));
  EXPECT_EQ(r.parts[0].data, "abcdef\r\n--bnx");
  ASSERT_TRUE(parser.Feed("\r"));
  EXPECT_EQ(r.parts[0].data, "abcdef\r\n--bnx");
  ASSERT_TRUE(parser.Feed("y"));
  EXPECT_EQ(r.parts[0].data, "abcdef\r\n--bnx\ry");
  EXPECT_FALSE(r.parts[0].ended);
  ASSERT_TRUE(parser.Feed("\r\n--bnd"));
  EXPECT_TRUE(r.parts[0].ended) << "the part ends with its delimiter, before the line's CRLF";
  EXPECT_FALSE(parser.Finish()) << "no close delimiter yet";
}

TEST(MultipartParserTest, FailsATruncatedBodyWhereverItIsCut) {
  const std::string body = BrowserBody();
  const std::size_t complete = body.find("--" + std::string(kBoundary) + "--") + kBoundary.size() + 4;
  for (std::size_t n = 0; n < body.size(); ++n) {
    Recorder r;
    Status s = Parse(std::string_view(body).substr(0, n), &r);
    if (n < complete) {
      ASSERT_FALSE(s) << "a body cut at " << n << " passed for complete";
      EXPECT_EQ(s.error().code, ErrorCode::kMalformed);
      EXPECT_NE(s.error().detail.find("truncated"), std::string::npos) << n << ": " << s.error().detail;
    } else {
      ASSERT_TRUE(s) << n << ": " << ErrorDetail(s);
    }
  }
  Recorder r;
  Status s = Parse("", &r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().detail.find("no delimiter"), std::string::npos) << s.error().detail;
}

TEST(MultipartParserTest, AcceptsTransportPaddingOnTheDelimiterLine) {
  Recorder r;
  ASSERT_TRUE(
      Parse("--b \t \r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b\t\r\n"
            "Content-Disposition: form-data; name=y\r\n\r\n2\r\n--b-- \r\n",
            &r, {}, {}, "b"));
  ASSERT_EQ(r.parts.size(), 2u);
  EXPECT_EQ(r.parts[1].data, "2");
}

TEST(MultipartParserTest, RefusesADelimiterFollowedByAnythingElse) {
  for (const char* body : {"--bX\r\n", "--b-X", "--b \rX", "--b\rX", "--b x\r\n",
                           "--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--bc\r\n"}) {
    Recorder r;
    Status s = Parse(body, &r, {}, {}, "b");
    ASSERT_FALSE(s) << body;
    EXPECT_EQ(s.error().code, ErrorCode::kMalformed);
  }
  Recorder r;
  Status s = Parse("--bX", &r, {}, {}, "b");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().detail,
            "multipart body: the delimiter \"--b\" is followed by 'X', not CRLF or \"--\" "
            "(is the boundary in the data?)");
}

// A part's header block alone, in a body of that one part.
Status ParseHeader(std::string_view header, Recorder* r, std::size_t cut = 0) {
  return Parse("--b\r\n" + std::string(header) + "\r\n\r\ndata\r\n--b--", r, {cut}, {}, "b");
}

MultipartPartHeader ExpectHeader(std::string_view header) {
  Recorder r;
  Status s = ParseHeader(header, &r);
  EXPECT_TRUE(s) << header << ": " << ErrorDetail(s);
  EXPECT_EQ(r.parts.size(), 1u) << header;
  return r.parts.empty() ? MultipartPartHeader{} : r.parts[0].header;
}

TEST(MultipartParserTest, ReadsHeaderNamesInAnyCaseAndIgnoresOthers) {
  MultipartPartHeader h = ExpectHeader(
      "X-Other: 1\r\ncontent-DISPOSITION:Form-Data;NAME=\"a\";  FileName = \"b.txt\"  \r\n"
      "CONTENT-TYPE:  image/png; q=1 ");
  EXPECT_EQ(h.name, "a");
  EXPECT_EQ(h.filename, "b.txt");
  EXPECT_EQ(h.content_type, "image/png; q=1");
}

TEST(MultipartParserTest, AcceptsBareLfInTheHeader) {
  Recorder r;
  ASSERT_TRUE(
      Parse("--b\r\nContent-Disposition: form-data; name=a\nContent-Type: text/plain\n\nxy\r\n--b--", &r, {}, {}, "b"));
  ASSERT_EQ(r.parts.size(), 1u);
  EXPECT_EQ(r.parts[0].header.content_type, "text/plain");
  EXPECT_EQ(r.parts[0].data, "xy");
}

TEST(MultipartParserTest, ReadsQuotedAndTokenParameterValues) {
  EXPECT_EQ(ExpectHeader("Content-Disposition: form-data; name=field-1").name, "field-1");
  EXPECT_EQ(ExpectHeader("Content-Disposition: form-data; name=\"a \\\"b\\\" ;c\"").name, "a \"b\" ;c");
  EXPECT_EQ(ExpectHeader("Content-Disposition: form-data; name=\"\"").name, "");
  // A backslash before anything but a special character is a backslash, as a Windows
  // path sent unescaped needs.
  EXPECT_EQ(ExpectHeader("Content-Disposition: form-data; name=f; filename=\"C:\\dir\\a.txt\"").filename,
            "C:\\dir\\a.txt");
  EXPECT_EQ(ExpectHeader("Content-Disposition: form-data; name=f; filename=\"a\\\\b\"").filename, "a\\b");
  EXPECT_EQ(ExpectHeader("Content-Disposition: form-data;\r\n name=folded").name, "folded");
}

TEST(MultipartParserTest, PrefersADecodedFilenameStar) {
  MultipartPartHeader h = ExpectHeader(
      "Content-Disposition: form-data; name=f; filename=\"EUR rates.txt\"; filename*=UTF-8''%E2%82%ac%20rates.txt");
  EXPECT_EQ(h.filename, "\xE2\x82\xAC rates.txt");
  EXPECT_EQ(ExpectHeader("Content-Disposition: form-data; name=f; filename*=iso-8859-1'en'caf%E9").filename,
            "caf\xC3\xA9");
  EXPECT_EQ(ExpectHeader("Content-Disposition: form-data; name=f; filename*=\"utf-8''a.txt\"").filename, "a.txt");
}

TEST(MultipartParserTest, RefusesABadHeader) {
  struct Case {
    const char* header;
    const char* says;
  };
  for (const Case& c : {
           Case{"Content-Disposition: form-data; filename=\"a\"", "has no name"},
           Case{"Content-Type: text/plain", "no Content-Disposition"},
           Case{"Content-Disposition: attachment; name=a", "not form-data"},
           Case{"Content-Disposition: form-data; name=\"a", "no closing"},
           Case{"Content-Disposition: form-data; name=a b", "expected ';'"},
           Case{"Content-Disposition: form-data; name", "no '='"},
           Case{"Content-Disposition: form-data; name=", "has no value"},
           Case{"Content-Disposition: form-data; name=a; name=b", "appears twice"},
           Case{"Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b", "two Content-D"},
           Case{"Content-Disposition: form-data; name=a; filename*=UTF-8''%E2%8", "bad %-escape"},
           Case{"Content-Disposition: form-data; name=a; filename*=UTF-8''%zz", "bad %-escape"},
           Case{"Content-Disposition: form-data; name=a; filename*=a.txt", "charset'language'value"},
           Case{"Content-Disposition: form-data; name=a; filename*=koi8-r''a", "not UTF-8 or ISO-8859-1"},
           Case{"Content-Disposition form-data; name=a", "not \"Name: value\""},
           Case{"Content Disposition: form-data; name=a", "not a token"},
           Case{" Content-Disposition: form-data; name=a", "starts with a space"},
           Case{"Content-Disposition: form-data; name=a\rb", "bare CR"},
       }) {
    Recorder r;
    Status s = ParseHeader(c.header, &r);
    ASSERT_FALSE(s) << c.header;
    EXPECT_EQ(s.error().code, ErrorCode::kMalformed);
    EXPECT_NE(s.error().detail.find(c.says), std::string::npos) << c.header << ": " << s.error().detail;
    EXPECT_EQ(s.error().detail.rfind("multipart body: part 1: ", 0), 0u) << s.error().detail;
    EXPECT_TRUE(r.parts.empty()) << "the handler saw a part whose header is malformed";
  }
}

TEST(MultipartParserTest, RefusesMoreThanMaxParts) {
  const std::string part = "--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n";
  MultipartLimits limits;
  limits.max_parts = 2;
  Recorder ok;
  EXPECT_TRUE(Parse(part + part + "--b--", &ok, {}, limits, "b"));
  Recorder r;
  Status s = Parse(part + part + part + "--b--", &r, {}, limits, "b");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(s.error().detail, "multipart body: more than 2 parts");
  EXPECT_EQ(r.parts.size(), 2u);
}

TEST(MultipartParserTest, RefusesAHeaderOverMaxHeaderBytes) {
  const std::string disposition = "Content-Disposition: form-data; name=x\r\n";
  MultipartLimits limits;
  // The block's own bytes and its blank line.
  limits.max_header_bytes = disposition.size() + 2;
  const std::string fits = "--b\r\n" + disposition + "\r\n1\r\n--b--";
  const std::string over = "--b\r\n" + disposition + "X: 1\r\n\r\n1\r\n--b--";
  for (std::size_t cut = 0; cut <= fits.size(); ++cut) {
    Recorder ok;
    EXPECT_TRUE(Parse(fits, &ok, {cut}, limits, "b")) << "cut at " << cut;
    Recorder r;
    Status s = Parse(over, &r, {cut}, limits, "b");
    ASSERT_FALSE(s) << "cut at " << cut;
    EXPECT_EQ(s.error().detail,
              "multipart body: the header of part 1 is over " + std::to_string(limits.max_header_bytes) + " bytes");
    EXPECT_TRUE(r.parts.empty());
  }
  // A header without an end is refused at the limit, not buffered on and on.
  Recorder r;
  MultipartParser parser("b", &r, limits);
  ASSERT_TRUE(parser.Feed("--b\r\nX: "));
  Status s;
  for (int i = 0; i < 1000 && s; ++i) s = parser.Feed("xxxxxxxxxx");
  EXPECT_FALSE(s);
}

// A handler that fails at its Nth call, and counts the calls made.
class FailingHandler : public MultipartHandler {
 public:
  explicit FailingHandler(int fail_at) : fail_at_(fail_at) {}
  Status OnPartBegin(const MultipartPartHeader&) override { return Call(); }
  Status OnPartData(std::string_view) override { return Call(); }
  Status OnPartEnd() override { return Call(); }
  int calls = 0;

 private:
  Status Call() {
    if (++calls == fail_at_) return MakeError(ErrorCode::kUnavailable, "disk full");
    return {};
  }
  int fail_at_;
};

TEST(MultipartParserTest, PassesTheHandlersErrorThroughAndStops) {
  const std::string body = BrowserBody();
  FailingHandler all(0);
  {
    MultipartParser parser(std::string(kBoundary), &all);
    ASSERT_TRUE(parser.Feed(body));
    ASSERT_TRUE(parser.Finish());
  }
  for (int n = 1; n <= all.calls; ++n) {
    FailingHandler h(n);
    MultipartParser parser(std::string(kBoundary), &h);
    Status s = parser.Feed(body);
    ASSERT_FALSE(s) << "call " << n;
    EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
    EXPECT_EQ(s.error().detail, "disk full");
    EXPECT_EQ(h.calls, n);
    Status again = parser.Feed("more");
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().detail, "disk full");
    Status finish = parser.Finish();
    ASSERT_FALSE(finish);
    EXPECT_EQ(finish.error().detail, "disk full");
    EXPECT_EQ(h.calls, n) << "the handler was called after its error";
  }
}

TEST(MultipartParserTest, RepeatsAMalformedBodysError) {
  Recorder r;
  MultipartParser parser("b", &r);
  Status s = parser.Feed("--b!");
  ASSERT_FALSE(s);
  Status again = parser.Feed("--b--");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().detail, s.error().detail);
  ASSERT_FALSE(parser.Finish());
  EXPECT_EQ(parser.Finish().error().detail, s.error().detail);
}

// splitmix64, for data that is the same on every run without being stored.
std::uint64_t Mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Hashes what it is given (FNV-1a) and keeps a few bytes at chosen offsets.
class HashingHandler : public MultipartHandler {
 public:
  Status OnPartBegin(const MultipartPartHeader&) override { return {}; }
  Status OnPartData(std::string_view bytes) override {
    for (auto& [at, byte] : spots) {
      if (at >= size && at - size < bytes.size()) byte = bytes[at - size];
    }
    for (char c : bytes) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    size += bytes.size();
    return {};
  }
  Status OnPartEnd() override {
    ++ended;
    return {};
  }
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  std::uint64_t size = 0;
  int ended = 0;
  std::vector<std::pair<std::uint64_t, std::optional<char>>> spots;
};

TEST(MultipartParserTest, StreamsA64MiBPartIn64KiBChunks) {
  constexpr std::uint64_t kSize = 64 << 20;
  constexpr std::size_t kChunk = 64 << 10;
  const std::string b = "stream-boundary";
  const std::string head = "--" + b + "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big\"\r\n\r\n";
  const std::string tail = "\r\n--" + b + "--\r\n";
  // Where a lookalike of the delimiter (its last byte changed) straddles a chunk's end.
  const std::string lookalike = "\r\n--" + b.substr(0, b.size() - 1) + "Y";
  auto data_byte = [&](std::uint64_t i) {
    const std::uint64_t in_chunk = (i + head.size()) % kChunk;
    if (in_chunk >= kChunk - 5 || in_chunk < lookalike.size() - 5) {
      return lookalike[(in_chunk + 5) % kChunk];
    }
    return static_cast<char>(Mix(i / 8) >> (i % 8 * 8));
  };
  HashingHandler h;
  h.spots = {
      {0, std::nullopt}, {kChunk - head.size() - 5, std::nullopt}, {12345679, std::nullopt}, {kSize - 1, std::nullopt}};
  std::uint64_t want = 0xcbf29ce484222325ULL;
  MultipartParser parser(b, &h);
  std::string chunk = head;
  std::uint64_t sent = 0;  // Of the data, not the body.
  bool done = false;
  while (!done) {
    for (; chunk.size() < kChunk && sent < kSize; ++sent) {
      const char c = data_byte(sent);
      want = (want ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
      chunk += c;
    }
    if (sent == kSize && chunk.size() + tail.size() <= kChunk) {
      chunk += tail;
      done = true;
    }
    ASSERT_TRUE(parser.Feed(chunk));
    chunk.clear();
  }
  ASSERT_TRUE(parser.Finish());
  EXPECT_EQ(h.ended, 1);
  EXPECT_EQ(h.size, kSize);
  EXPECT_EQ(h.hash, want);
  for (const auto& [at, byte] : h.spots) {
    ASSERT_TRUE(byte.has_value()) << at;
    EXPECT_EQ(*byte, data_byte(at)) << at;
  }
  EXPECT_EQ(*h.spots[1].second, '\r') << "the spot is the lookalike's first byte";
}

TEST(MultipartBoundaryTest, ReadsAQuotedOrUnquotedBoundary) {
  EXPECT_EQ(MultipartBoundary("multipart/form-data; boundary=----WebKitFormBoundaryABC").value(),
            "----WebKitFormBoundaryABC");
  EXPECT_EQ(MultipartBoundary("Multipart/Form-Data;BOUNDARY=\"a b:c?\"; charset=utf-8").value(), "a b:c?");
  EXPECT_EQ(MultipartBoundary(" multipart/form-data ; charset=utf-8 ; boundary = x ").value(), "x");
  EXPECT_EQ(MultipartBoundary("multipart/form-data; boundary=" + std::string(70, 'a')).value(), std::string(70, 'a'));
}

TEST(MultipartBoundaryTest, RefusesAMissingOrBadBoundary) {
  for (const std::string& type : {
           std::string("multipart/form-data"),
           std::string("multipart/form-data; charset=utf-8"),
           std::string("multipart/form-data; boundary="),
           std::string("multipart/form-data; boundary=\"\""),
           std::string("multipart/form-data; boundary=" + std::string(71, 'a')),
           std::string("multipart/form-data; boundary=\"ends in space \""),
           std::string("multipart/form-data; boundary=\"no<angle>\""),
           std::string("multipart/form-data; boundary=\"unclosed"),
           std::string("multipart/form-data; boundary=a; boundary=b"),
           std::string("multipart/mixed; boundary=a"),
           std::string("application/json"),
           std::string(""),
       }) {
    auto b = MultipartBoundary(type);
    ASSERT_FALSE(b) << type;
    EXPECT_EQ(b.error().code, ErrorCode::kMalformed);
  }
  EXPECT_EQ(MultipartBoundary("multipart/form-data").error().detail,
            "Content-Type multipart/form-data has no boundary");
  EXPECT_EQ(MultipartBoundary("text/plain; boundary=a").error().detail,
            "Content-Type \"text/plain\" is not multipart/form-data");
}

TEST(MultipartBoundaryTest, TellsMultipartFormDataByTypeAndSubtype) {
  EXPECT_TRUE(IsMultipartFormData("multipart/form-data"));
  EXPECT_TRUE(IsMultipartFormData("MULTIPART/Form-Data; boundary=x"));
  EXPECT_TRUE(IsMultipartFormData("  multipart/form-data  ;"));
  EXPECT_FALSE(IsMultipartFormData("multipart/form-datax"));
  EXPECT_FALSE(IsMultipartFormData("multipart/mixed; boundary=x"));
  EXPECT_FALSE(IsMultipartFormData(""));
}

}  // namespace
}  // namespace offload
