// MultipartParser: reads a multipart/form-data body (RFC 7578, framed as RFC 2046
// says) as it arrives, and hands each part's bytes to a MultipartHandler without ever
// holding a whole part.
//
// An upload may be far larger than memory, so the parser buffers only two things: one
// part's header block (at most MultipartLimits::max_header_bytes), and the tail of the
// last Feed() that could be the start of a delimiter, "\r\n--" + boundary, so at most
// boundary.size() + 3 bytes. Everything else is passed to OnPartData() in the call
// that brought it, as a view into the caller's buffer where possible.
//
// Finding the delimiter is the hot path: std::string_view::find over each Feed()'s
// bytes, which in libstdc++ is memchr for the delimiter's first byte ('\r') and a
// memcmp where one is found. Binary data rarely holds a '\r', and text has one a line,
// so a body goes by at several GB/s (measured: 11-16 GB/s random bytes, 6-7 GB/s text,
// in 64 KiB Feeds). The worst case is linear too: a part of nothing but CRs costs a
// memchr and a memcmp per byte, about 0.1 GB/s. std::boyer_moore_horspool_searcher
// would skip through CRs, but its worst case is quadratic in the boundary's length,
// which the client chooses: data "aaa..." with boundary "aaa..." runs at 0.02 GB/s.
//
// Framing, as RFC 2046 section 5.1.1 has it: the body is a preamble (ignored), then
// parts, each opened by a delimiter line "--boundary" + transport padding (spaces and
// tabs) + CRLF, and a close delimiter "--boundary--" after the last one; anything after
// it (the epilogue) is ignored. Every delimiter but one at the very start of the body
// is preceded by a CRLF that belongs to the delimiter, not to the data before it. So a
// boundary string inside a part's data, at the start of a line, is not data: it ends
// the part, and if it is not followed by "--" or padding and CRLF the body is
// malformed (RFC 2046 forbids the boundary inside the data; a sender picks one that
// does not occur).
//
// What is refused, all with kMalformed and a detail saying what is wrong: a delimiter
// followed by anything else; a part without `Content-Disposition: form-data;
// name="..."`; a header line that is not `Name: value`; a header block over
// max_header_bytes; more than max_parts parts; a body that ends before the close
// delimiter (Finish()), so that a truncated upload never passes for a complete one.
//
// Not thread-safe: one parser reads one body, from one thread at a time.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "util/error.h"

namespace offload {

struct MultipartPartHeader {
  // The form field's name: Content-Disposition: form-data; name="...". Present in
  // every part (a part without one is refused), though it may be empty.
  std::string name;
  // The file's name as the client sent it, empty when absent. From filename*
  // (RFC 5987: UTF-8''%e2%82%ac.txt, or ISO-8859-1 converted to UTF-8) when present,
  // else from filename. Not sanitised: it may hold "/", "..", or anything else a
  // client chooses, so it must not be used as a path as is.
  std::string filename;
  // The part's Content-Type as sent (parameters included), empty when absent. RFC 7578
  // says to read an absent one as text/plain; that is left to the caller.
  std::string content_type;
};

// Receives the parts of one body, in order: OnPartBegin, any number of OnPartData,
// OnPartEnd, then the next part. A non-OK Status stops the parser, and Feed() (and
// every later call) returns it unchanged.
class MultipartHandler {
 public:
  virtual ~MultipartHandler() = default;
  virtual Status OnPartBegin(const MultipartPartHeader& part) = 0;
  // The next bytes of the current part, in any number of calls of any sizes (never
  // empty). `bytes` is valid only during the call.
  virtual Status OnPartData(std::string_view bytes) = 0;
  // The part's data is complete: its closing delimiter has been seen.
  virtual Status OnPartEnd() = 0;
};

// The boundary parameter of a Content-Type "multipart/form-data; boundary=...", quoted
// or not. kMalformed when the type is not multipart/form-data, or when there is no
// boundary or it breaks RFC 2046 (1..70 of its characters, not ending in a space).
[[nodiscard]] ErrorOr<std::string> MultipartBoundary(std::string_view content_type);

// Whether the type/subtype of `content_type` is multipart/form-data, case-insensitive,
// parameters ignored.
bool IsMultipartFormData(std::string_view content_type);

// What one body may cost the server beyond the bytes it streams through.
struct MultipartLimits {
  // The most bytes of one part's header block, its blank line included. Browsers
  // send about 150; more than a few KiB is an attack or a bug.
  std::size_t max_header_bytes = 8 * 1024;
  // The most parts in one body. Each part costs the handler something (a file, a
  // field), so a body of a million empty parts is refused here.
  std::size_t max_parts = 64;
};

class MultipartParser {
 public:
  // REQUIRES: `boundary` is not empty (MultipartBoundary's result); `handler` outlives
  // the parser.
  MultipartParser(std::string boundary, MultipartHandler* handler, MultipartLimits limits = {});

  MultipartParser(const MultipartParser&) = delete;
  MultipartParser& operator=(const MultipartParser&) = delete;

  // Feeds the next bytes of the body, in any chunking, down to one byte at a time.
  // Calls the handler as parts are recognised. Returns the first error: the body is
  // malformed, has too many parts or too large a part header (all kMalformed), or the
  // handler's own error, passed through unchanged. After an error, every later call
  // returns the same error and calls the handler no more.
  [[nodiscard]] Status Feed(std::string_view bytes);

  // The body has ended. kMalformed unless the close delimiter "--boundary--" was seen:
  // a truncated upload must not look complete (the handler has then seen OnPartBegin
  // without OnPartEnd, or no part at all). Feed's error, when it returned one.
  [[nodiscard]] Status Finish();

 private:
  enum class State {
    kPreamble,     // Before the first delimiter: skipping.
    kDelimiter,    // Just after "--boundary": "--", padding or CRLF must follow.
    kCloseDash,    // After "--boundary-": the second '-' must follow.
    kPadding,      // After "--boundary" and spaces or tabs: more of them, or CR.
    kDelimiterCr,  // After the delimiter line's CR: LF must follow.
    kHeaders,      // Reading a part's header block into header_.
    kData,         // Inside a part's data.
    kEpilogue,     // After the close delimiter: skipping to the end.
    kFailed,       // error_ holds what every call returns.
  };

  // Runs the state machine over `data`, calling the handler. Returns how many bytes it
  // consumed: all but, in kPreamble and kData, a tail that may be the start of a
  // delimiter (shorter than delimiter_), which the next call must see again with more
  // bytes after it. Unconsumed bytes have left no trace in the state.
  ErrorOr<std::size_t> Process(std::string_view data);
  // The length of the longest tail of `data` that is a proper prefix of delimiter_.
  std::size_t HeldBack(std::string_view data) const;
  // kHeaders: adds `bytes` to header_ up to the blank line that ends the block, and
  // on that line begins the part. Returns how many bytes it used.
  ErrorOr<std::size_t> ProcessHeaderBytes(std::string_view bytes);
  // Makes `error` what this and every later call returns.
  Status Fail(Error error);

  // Constant after construction.
  const std::string delimiter_;  // "\r\n--" + boundary.
  MultipartHandler* const handler_;
  const MultipartLimits limits_;

  State state_ = State::kPreamble;
  // Bytes given to Feed() and not consumed yet: the start of a possible delimiter.
  // Starts as "\r\n", so that a delimiter at the very start of the body (no CRLF before
  // it) matches as every other does.
  std::string pending_;
  std::string header_;           // kHeaders: the header block read so far.
  std::size_t header_line_ = 0;  // kHeaders: where header_'s unfinished line starts.
  std::size_t parts_ = 0;        // Parts begun, the current one included.
  std::string part_name_;        // The current part's name, for error details.
  std::optional<Error> error_;   // Set with kFailed.
};

}  // namespace offload
