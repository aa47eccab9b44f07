// Reading JSON text from clients, from processes and from the store into a
// boost::json::value, refusing the numbers a value cannot hold exactly.
//
// Why not boost::json::parse: Boost.JSON 1.81 turns 1e400 into an infinite double
// (which nothing can write back as JSON) and an integer literal past 64 bits into an
// inexact double, silently. And it rounds some decimal literals one ulp off. This
// reader runs Boost's own tokenizer (basic_parser) with a handler that sees each
// number's text: it converts real numbers with std::from_chars (correctly rounded),
// refuses a number whose magnitude a 64-bit float cannot reach (1e400, -1e400) and an
// integer literal outside -2^63 .. 2^64-1, and names where the number sits
// ("input.a[3]"). A number too small for a double (1e-400) is a loss of precision, not
// of magnitude, and is read as 0 with its sign, as every JSON library does.
//
// Thread-safe: a pure function.
#pragma once

#include <boost/json/value.hpp>
#include <string_view>

#include "util/error.h"

namespace offload {

// Parses one JSON document (the text must hold nothing else but whitespace), with
// Boost's default limits (depth 32, no comments, UTF-8 validated).
// kMalformed: not JSON; the detail is the tokenizer's message.
// kInvalidArgument: JSON, but a number no value can hold; the detail begins with the
// number's place: `root`, then ".key" for an object member (["key"] when the key is not
// a plain name) and "[i]" for an array element. With an empty `root` the place starts
// at the first key ("a.b[2]"), and a number that is the whole document has no prefix.
[[nodiscard]] ErrorOr<boost::json::value> ParseJson(std::string_view text, std::string_view root = {});

}  // namespace offload
