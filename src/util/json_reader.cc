#include "util/json_reader.h"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

namespace offload {

namespace json = boost::json;

namespace {

// Numbers quoted in an error are cut here: the detail stays readable for a
// 10,000-digit literal.
constexpr std::size_t kMaxQuotedNumber = 40;

// basic_parser's handler: builds the value in a value_stack (as Boost's own parser
// does) and keeps, beside it, where in the document the parser is, so that a refused
// number can be named. One per parse; not thread-safe.
class Handler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  Handler(unsigned char* temp, std::size_t temp_size) : st_(json::storage_ptr(), temp, temp_size) {}

  json::value_stack& stack() { return st_; }
  // Set when a handler call failed the parse because of a number.
  const std::string& range_error() const { return range_error_; }
  void set_root(std::string_view root) { root_ = root; }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    frames_.push_back(Frame{false, 0, keys_.size(), true});
    return true;
  }
  bool on_object_end(std::size_t n, json::error_code&) {
    Pop();
    st_.push_object(n);
    Next();
    return true;
  }
  bool on_array_begin(json::error_code&) {
    frames_.push_back(Frame{true, 0, keys_.size(), true});
    return true;
  }
  bool on_array_end(std::size_t n, json::error_code&) {
    Pop();
    st_.push_array(n);
    Next();
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    KeyText(s);
    st_.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    KeyText(s);
    frames_.back().key_done = true;
    st_.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    st_.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    st_.push_string(s);
    Next();
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    number_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    number_.clear();
    st_.push_int64(i);
    Next();
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    number_.clear();
    st_.push_uint64(u);
    Next();
    return true;
  }
  // Every number that is not a 64-bit integer comes here: a real number, or an
  // integer literal that overflowed. `d` is Boost's approximation.
  bool on_double(double d, json::string_view s, json::error_code& ec) {
    std::string_view text(s.data(), s.size());
    if (!number_.empty()) {
      number_.append(text);
      text = number_;
    }
    const bool integer_literal = text.find_first_of(".eE") == std::string_view::npos;
    if (integer_literal) {
      return Refuse(text,
                    "is outside the 64-bit integer range (-9223372036854775808 to "
                    "18446744073709551615); send a larger integer as a string",
                    ec);
    }
    double value = 0;
    const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (err == std::errc::result_out_of_range) {
      // Too large or too small; Boost's approximation tells which.
      if (std::isinf(d) || std::fabs(d) >= 1) {
        return Refuse(text, "is out of range of a 64-bit float (at most about 1.8e308)", ec);
      }
      value = text.front() == '-' ? -0.0 : 0.0;
    } else if (err != std::errc() || end != text.data() + text.size()) {
      value = d;  // Not expected: the tokenizer accepted it as a JSON number.
    }
    number_.clear();
    st_.push_double(value);
    Next();
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    st_.push_bool(b);
    Next();
    return true;
  }
  bool on_null(json::error_code&) {
    st_.push_null();
    Next();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  // One open array or object. The keys of all open objects sit end to end in keys_
  // (one buffer instead of a string per level); an object's key starts at key_begin
  // and ends where the next level's starts.
  struct Frame {
    bool array;
    std::size_t index;      // Array: the element being read.
    std::size_t key_begin;  // Object: the member being read, in keys_.
    bool key_done;          // Object: the key is complete; the next key part starts a new one.
  };

  void Pop() {
    keys_.resize(frames_.back().key_begin);
    frames_.pop_back();
  }

  void Next() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }

  void KeyText(json::string_view s) {
    Frame& f = frames_.back();
    if (f.key_done) {
      keys_.resize(f.key_begin);
      f.key_done = false;
    }
    keys_.append(s.data(), s.size());
  }

  bool Refuse(std::string_view text, std::string_view why, json::error_code& ec) {
    std::string place = Place();
    if (!place.empty()) place += ": ";
    range_error_ =
        place + "the number " +
        (text.size() > kMaxQuotedNumber ? std::string(text.substr(0, kMaxQuotedNumber)) + "…" : std::string(text)) +
        " " + std::string(why);
    ec = json::error::exception;  // Any error stops the parser; range_error_ says which.
    return false;
  }

  static bool PlainName(std::string_view key) {
    if (key.empty()) return false;
    for (char c : key) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
    }
    return true;
  }

  std::string Place() const {
    std::string out(root_);
    for (std::size_t i = 0; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      const std::size_t key_end = i + 1 < frames_.size() ? frames_[i + 1].key_begin : keys_.size();
      const std::string_view key = std::string_view(keys_).substr(f.key_begin, key_end - f.key_begin);
      if (f.array) {
        out += '[';
        out += std::to_string(f.index);
        out += ']';
      } else if (PlainName(key)) {
        if (!out.empty()) out += '.';
        out += key;
      } else {
        out += "[\"";
        out += key;
        out += "\"]";
      }
    }
    return out;
  }

  json::value_stack st_;
  std::vector<Frame> frames_;
  std::string keys_;
  std::string number_;  // The text of a number split over several parts.
  std::string_view root_;
  std::string range_error_;
};

}  // namespace

ErrorOr<json::value> ParseJson(std::string_view text, std::string_view root) {
  // As boost::json::parse: a stack buffer spares small documents the heap for the
  // value_stack's temporaries.
  unsigned char temp[BOOST_JSON_STACK_BUFFER_SIZE];
  json::basic_parser<Handler> p(json::parse_options(), temp, sizeof(temp));
  p.handler().set_root(root);
  p.handler().stack().reset();
  json::error_code ec;
  const std::size_t n = p.write_some(false, text.data(), text.size(), ec);
  if (!ec && n < text.size()) ec = json::error::extra_data;
  if (ec) {
    if (!p.handler().range_error().empty()) {
      return MakeError(ErrorCode::kInvalidArgument, p.handler().range_error());
    }
    return MakeError(ErrorCode::kMalformed, ec.message());
  }
  return p.handler().stack().release();
}

}  // namespace offload
