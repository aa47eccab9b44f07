#include "files/multipart.h"

#include <algorithm>
#include <cassert>
#include <utility>
#include <vector>

namespace offload {
namespace {

// What is wrong with the framing of a body: the detail says it is about the body, not
// about the request's own headers.
Error Malformed(std::string detail) { return MakeError(ErrorCode::kMalformed, "multipart body: " + detail); }

// What is wrong with a header or parameter; the caller says whose.
Error Bad(std::string detail) { return MakeError(ErrorCode::kMalformed, std::move(detail)); }

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return Lower(x) == Lower(y); });
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 9110 tchar: what a header name, a parameter name or an unquoted value is made of.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// RFC 2045 tspecials: the characters a backslash may escape in a quoted value (below).
bool IsTSpecial(char c) { return std::string_view("()<>@,;:\\\"/[]?=").find(c) != std::string_view::npos; }

// A byte as a person can read it in an error detail.
std::string Describe(char c) {
  if (c >= 0x21 && c <= 0x7e) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  const auto u = static_cast<unsigned char>(c);
  return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 15];
}

// Text from a client, shortened and made printable for an error detail.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 64)) out += c >= 0x20 && c <= 0x7e ? c : '?';
  out += s.size() > 64 ? "...\"" : "\"";
  return out;
}

struct Parameter {
  std::string name;  // Lower case.
  std::string value;
};

// Reads the parameters after a media type or a disposition type: *( OWS ";" OWS
// name OWS "=" OWS ( token / quoted-string ) ), empty ones (";;", a trailing ";")
// allowed. `s` starts at the first ';'. A parameter named twice is refused: two
// parsers that took different ones would read two different bodies.
//
// Inside quotes, a backslash escapes only a tspecial ('"', '\\', ...); before any other
// character it is a plain backslash. That is Go's mime package's rule, for the sake of
// clients that send a Windows path unescaped ("C:\dir\a.txt") - browsers escape '"'
// as %22 and leave a backslash alone.
ErrorOr<std::vector<Parameter>> ParseParameters(std::string_view s, std::string_view header) {
  std::vector<Parameter> params;
  auto bad = [&](std::string what) { return Bad(std::string(header) + ": " + what); };
  s = Trim(s);
  while (!s.empty()) {
    if (s.front() != ';') return bad("expected ';' before " + Quote(s));
    s = Trim(s.substr(1));
    if (s.empty() || s.front() == ';') continue;
    std::size_t n = 0;
    while (n < s.size() && IsTokenChar(s[n])) ++n;
    if (n == 0) return bad("expected a parameter name at " + Quote(s));
    Parameter p;
    for (char c : s.substr(0, n)) p.name += Lower(c);
    s = Trim(s.substr(n));
    if (s.empty() || s.front() != '=') return bad("parameter " + p.name + " has no '=' and value");
    s = Trim(s.substr(1));
    if (!s.empty() && s.front() == '"') {
      std::size_t i = 1;
      for (; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size() && IsTSpecial(s[i + 1])) ++i;
        p.value += s[i];
      }
      if (i == s.size()) return bad("the quoted value of " + p.name + " has no closing '\"'");
      s = Trim(s.substr(i + 1));
    } else {
      n = 0;
      while (n < s.size() && IsTokenChar(s[n])) ++n;
      if (n == 0) return bad("parameter " + p.name + " has no value (quote it if it has spaces or separators)");
      p.value = std::string(s.substr(0, n));
      s = Trim(s.substr(n));
    }
    for (const Parameter& q : params) {
      if (q.name == p.name) return bad("parameter " + p.name + " appears twice");
    }
    params.push_back(std::move(p));
  }
  return params;
}

const Parameter* FindParameter(const std::vector<Parameter>& params, std::string_view name) {
  for (const Parameter& p : params) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = Lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// An RFC 5987 ext-value, charset'language'percent-encoded, as UTF-8. RFC 5987 asks
// for UTF-8 and ISO-8859-1; any other charset is refused rather than guessed.
ErrorOr<std::string> DecodeExtValue(std::string_view v) {
  const std::size_t q1 = v.find('\'');
  const std::size_t q2 = q1 == std::string_view::npos ? q1 : v.find('\'', q1 + 1);
  if (q2 == std::string_view::npos) {
    return Bad("Content-Disposition: filename* is not charset'language'value (RFC 5987): " + Quote(v));
  }
  const std::string_view charset = v.substr(0, q1);
  const bool latin1 = EqualsIgnoreCase(charset, "iso-8859-1");
  if (!latin1 && !EqualsIgnoreCase(charset, "utf-8")) {
    return Bad("Content-Disposition: filename* has charset " + Quote(charset) + ", not UTF-8 or ISO-8859-1");
  }
  std::string out;
  const std::string_view encoded = v.substr(q2 + 1);
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(encoded[i]);
    if (c == '%') {
      const int hi = i + 2 < encoded.size() ? HexValue(encoded[i + 1]) : -1;
      const int lo = hi < 0 ? -1 : HexValue(encoded[i + 2]);
      if (lo < 0) return Bad("Content-Disposition: filename* has a bad %-escape: " + Quote(v));
      c = static_cast<unsigned char>(hi << 4 | lo);
      i += 2;
    }
    if (latin1 && c >= 0x80) {
      out += static_cast<char>(0xc0 | c >> 6);
      out += static_cast<char>(0x80 | (c & 0x3f));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

Status ParseContentDisposition(std::string_view value, MultipartPartHeader* part) {
  const std::string_view type = Trim(value.substr(0, value.find(';')));
  if (!EqualsIgnoreCase(type, "form-data")) {
    return Bad("Content-Disposition is " + Quote(type) + ", not form-data");
  }
  auto params = ParseParameters(value.substr(std::min(value.find(';'), value.size())), "Content-Disposition");
  if (!params) return params.error();
  const Parameter* name = FindParameter(*params, "name");
  if (name == nullptr) return Bad("Content-Disposition has no name=\"...\" (the form field's name)");
  part->name = name->value;
  if (const Parameter* ext = FindParameter(*params, "filename*")) {
    auto decoded = DecodeExtValue(ext->value);
    if (!decoded) return decoded.error();
    part->filename = std::move(*decoded);
  } else if (const Parameter* plain = FindParameter(*params, "filename")) {
    part->filename = plain->value;
  }
  return {};
}

// A part's header block, without the blank line that ends it: lines ending in CRLF
// or LF. A line that starts with a space or tab continues the one before (obsolete
// folding, RFC 5322); headers other than Content-Disposition and Content-Type are
// ignored.
ErrorOr<MultipartPartHeader> ParseHeaderBlock(std::string_view block) {
  std::vector<std::pair<std::string_view, std::string>> headers;
  while (!block.empty()) {
    const std::size_t nl = block.find('\n');
    std::string_view line = block.substr(0, nl);
    block.remove_prefix(nl + 1);  // Every line of the block ends in '\n'.
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\r') != std::string_view::npos) return Bad("a header line holds a bare CR: " + Quote(line));
    if (!line.empty() && IsSpace(line.front())) {
      if (headers.empty()) return Bad("the first header line starts with a space: " + Quote(line));
      headers.back().second += ' ';
      headers.back().second += Trim(line);
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return Bad("a header line is not \"Name: value\": " + Quote(line));
    const std::string_view name = line.substr(0, colon);
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar)) {
      return Bad("a header name is not a token: " + Quote(name));
    }
    headers.emplace_back(name, std::string(Trim(line.substr(colon + 1))));
  }
  MultipartPartHeader part;
  bool has_disposition = false;
  bool has_type = false;
  for (const auto& [name, value] : headers) {
    if (EqualsIgnoreCase(name, "content-disposition")) {
      if (has_disposition) return Bad("two Content-Disposition headers");
      has_disposition = true;
      if (Status s = ParseContentDisposition(value, &part); !s) return s.error();
    } else if (EqualsIgnoreCase(name, "content-type")) {
      if (has_type) return Bad("two Content-Type headers");
      has_type = true;
      part.content_type = value;
    }
  }
  if (!has_disposition) return Bad("no Content-Disposition header (each part needs form-data; name=\"...\")");
  return part;
}

// RFC 2046 bcharsnospace; a boundary may also hold spaces, though not as its last
// character.
bool IsBoundaryChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("'()+_,-./:=? ").find(c) != std::string_view::npos;
}

}  // namespace

bool IsMultipartFormData(std::string_view content_type) {
  return EqualsIgnoreCase(Trim(content_type.substr(0, content_type.find(';'))), "multipart/form-data");
}

ErrorOr<std::string> MultipartBoundary(std::string_view content_type) {
  const std::size_t semicolon = std::min(content_type.find(';'), content_type.size());
  if (!IsMultipartFormData(content_type)) {
    return MakeError(ErrorCode::kMalformed,
                     "Content-Type " + Quote(Trim(content_type.substr(0, semicolon))) + " is not multipart/form-data");
  }
  auto params = ParseParameters(content_type.substr(semicolon), "Content-Type");
  if (!params) return params.error();
  const Parameter* boundary = FindParameter(*params, "boundary");
  if (boundary == nullptr) return MakeError(ErrorCode::kMalformed, "Content-Type multipart/form-data has no boundary");
  const std::string& b = boundary->value;
  if (b.empty() || b.size() > 70 || b.back() == ' ' || !std::all_of(b.begin(), b.end(), IsBoundaryChar)) {
    return MakeError(ErrorCode::kMalformed, "Content-Type: the boundary " + Quote(b) +
                                                " breaks RFC 2046 (1 to 70 letters, digits and '()+_,-./:=?, "
                                                "not ending in a space)");
  }
  return b;
}

MultipartParser::MultipartParser(std::string boundary, MultipartHandler* handler, MultipartLimits limits)
    : delimiter_("\r\n--" + boundary), handler_(handler), limits_(limits), pending_("\r\n") {
  assert(!boundary.empty());
  assert(handler_ != nullptr);
}

Status MultipartParser::Feed(std::string_view bytes) {
  if (state_ == State::kFailed) return *error_;
  while (!bytes.empty()) {
    if (pending_.empty()) {
      // The fast path, taken for all but the first few bytes of a Feed: the bytes are
      // read where they lie, and only an undecided tail is copied.
      auto consumed = Process(bytes);
      if (!consumed) return Fail(std::move(consumed).error());
      pending_.assign(bytes.substr(*consumed));
      return {};
    }
    // A tail of the last Feed waits in pending_. Give it enough new bytes to decide
    // whether a delimiter starts in it, then go back to reading `bytes` in place as
    // soon as what is left undecided lies within them.
    const std::size_t take = std::min(bytes.size(), delimiter_.size());
    pending_.append(bytes.substr(0, take));
    auto consumed = Process(pending_);
    if (!consumed) return Fail(std::move(consumed).error());
    const std::size_t left = pending_.size() - *consumed;
    if (left <= take) {
      bytes.remove_prefix(take - left);
      pending_.clear();
    } else {
      pending_.erase(0, *consumed);
      bytes.remove_prefix(take);
    }
  }
  return {};
}

Status MultipartParser::Finish() {
  switch (state_) {
    case State::kFailed:
      return *error_;
    case State::kEpilogue:
      return {};
    case State::kPreamble:
      return Fail(Malformed("no delimiter \"" + delimiter_.substr(2) +
                            "\" in the body: it is empty, truncated, or not split by the boundary its Content-Type "
                            "names"));
    case State::kData:
      return Fail(Malformed("the body ends inside part " + std::to_string(parts_) + " (" + Quote(part_name_) +
                            ") without the close delimiter \"" + delimiter_.substr(2) + "--\": it is truncated"));
    case State::kHeaders:
      return Fail(Malformed("the body ends inside the header of part " + std::to_string(parts_) + ": it is truncated"));
    default:
      return Fail(Malformed("the body ends in a delimiter line, without the close delimiter \"" + delimiter_.substr(2) +
                            "--\": it is truncated"));
  }
}

ErrorOr<std::size_t> MultipartParser::Process(std::string_view data) {
  std::size_t pos = 0;
  while (pos < data.size()) {
    switch (state_) {
      case State::kPreamble:
      case State::kData: {
        const std::size_t hit = data.find(delimiter_, pos);
        const std::size_t end = hit != std::string_view::npos ? hit : data.size() - HeldBack(data.substr(pos));
        if (state_ == State::kData && end > pos) {
          if (Status s = handler_->OnPartData(data.substr(pos, end - pos)); !s) return s.error();
        }
        if (hit == std::string_view::npos) return end;
        if (state_ == State::kData) {
          if (Status s = handler_->OnPartEnd(); !s) return s.error();
        }
        state_ = State::kDelimiter;
        pos = hit + delimiter_.size();
        break;
      }
      case State::kDelimiter: {
        const char c = data[pos++];
        if (c == '-') {
          state_ = State::kCloseDash;
        } else if (IsSpace(c)) {
          state_ = State::kPadding;
        } else if (c == '\r') {
          state_ = State::kDelimiterCr;
        } else {
          return Malformed("the delimiter \"" + delimiter_.substr(2) + "\" is followed by " + Describe(c) +
                           ", not CRLF or \"--\" (is the boundary in the data?)");
        }
        break;
      }
      case State::kCloseDash: {
        const char c = data[pos++];
        if (c != '-') {
          return Malformed("the delimiter \"" + delimiter_.substr(2) + "-\" is followed by " + Describe(c) +
                           ", not a second '-'");
        }
        state_ = State::kEpilogue;
        break;
      }
      case State::kPadding: {
        const char c = data[pos++];
        if (c == '\r') {
          state_ = State::kDelimiterCr;
        } else if (!IsSpace(c)) {
          return Malformed("the delimiter line \"" + delimiter_.substr(2) + "\" has " + Describe(c) +
                           " after its spaces, not CRLF");
        }
        break;
      }
      case State::kDelimiterCr: {
        const char c = data[pos++];
        if (c != '\n') {
          return Malformed("the delimiter line \"" + delimiter_.substr(2) + "\" ends in CR and " + Describe(c) +
                           ", not CRLF");
        }
        if (parts_ == limits_.max_parts) {
          return Malformed("more than " + std::to_string(limits_.max_parts) + " parts");
        }
        ++parts_;
        state_ = State::kHeaders;
        header_.clear();
        header_line_ = 0;
        break;
      }
      case State::kHeaders: {
        auto consumed = ProcessHeaderBytes(data.substr(pos));
        if (!consumed) return consumed.error();
        pos += *consumed;
        break;
      }
      case State::kEpilogue:
        return data.size();
      case State::kFailed:
        assert(false && "Feed returns before Process in kFailed");
        return data.size();
    }
  }
  return pos;
}

std::size_t MultipartParser::HeldBack(std::string_view data) const {
  for (std::size_t k = std::min(data.size(), delimiter_.size() - 1); k > 0; --k) {
    if (data.compare(data.size() - k, k, delimiter_, 0, k) == 0) return k;
  }
  return 0;
}

ErrorOr<std::size_t> MultipartParser::ProcessHeaderBytes(std::string_view bytes) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const std::size_t nl = bytes.find('\n', pos);
    const std::size_t end = nl == std::string_view::npos ? bytes.size() : nl + 1;
    if (header_.size() + (end - pos) > limits_.max_header_bytes) {
      return Malformed("the header of part " + std::to_string(parts_) + " is over " +
                       std::to_string(limits_.max_header_bytes) + " bytes");
    }
    header_.append(bytes.substr(pos, end - pos));
    pos = end;
    if (nl == std::string_view::npos) break;
    std::string_view line = std::string_view(header_).substr(header_line_);
    line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      auto part = ParseHeaderBlock(std::string_view(header_).substr(0, header_line_));
      if (!part) {
        return Malformed("part " + std::to_string(parts_) + ": " + part.error().detail);
      }
      part_name_ = part->name;
      state_ = State::kData;
      if (Status s = handler_->OnPartBegin(*part); !s) return s.error();
      return pos;
    }
    header_line_ = header_.size();
  }
  return pos;
}

Status MultipartParser::Fail(Error error) {
  error_ = std::move(error);
  state_ = State::kFailed;
  return *error_;
}

}  // namespace offload
