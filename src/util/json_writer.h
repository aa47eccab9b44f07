// Writing a boost::json::value as JSON text: every body the server sends, every line it
// writes to a process, every value it stores.
//
// Why not boost::json::serialize: Boost.JSON 1.81 writes 2.5 as "2.5E0", an infinite
// or NaN double as a bare word no JSON reader accepts, and copies a string's bytes as
// they are, so a request path with invalid UTF-8 came back inside a 404 body that was
// not UTF-8. This writer guarantees valid JSON in valid UTF-8:
// - doubles in the shortest form that reads back to the same double (std::to_chars:
//   "2.5", "0.1", "1e+300"); a double that is not finite (only code can make one: the
//   readers refuse them) is written as null; a double is never written as an integer
//   literal outside the int64 range ("1.8446744073709552e+19", not "18446744073709552000")
//   so that ParseJson reads it back.
// - strings and keys escaped (", \, control characters) with each ill-formed UTF-8
//   sequence (its maximal subpart, as Unicode §3.9 recommends) replaced by U+FFFD.
// It appends into one string, reserved up front, with no other allocation.
//
// Thread-safe: pure functions.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace offload {

enum class JsonNumbers {
  // For people and HTTP clients: a double with an integral value is written as an
  // integer ("1" for 1.0, "-0" for -0.0), as JavaScript does.
  kShortest,
  // For the store and for processes: an integral double keeps a fraction ("1.0",
  // "-0.0"), so that reading the text back gives a double again, not an integer
  // (a Python worker gets the float its client sent; a restart gives back -0.0).
  kKeepKind,
};

// Appends `v` as compact JSON (no spaces) to *out.
void AppendJson(std::string* out, const boost::json::value& v, JsonNumbers numbers = JsonNumbers::kShortest);
std::string WriteJson(const boost::json::value& v, JsonNumbers numbers = JsonNumbers::kShortest);
// Appends the elements of `a` at `indices`, in that order, as a JSON list: a map
// chunk's inputs, written as one value rather than an AppendJson per element.
void AppendJsonList(std::string* out, const boost::json::array& a, std::span<const std::size_t> indices,
                    JsonNumbers numbers = JsonNumbers::kShortest);

// Appends `s` as a quoted JSON string, escaped, invalid UTF-8 replaced by U+FFFD.
void AppendJsonString(std::string* out, std::string_view s);

}  // namespace offload
