// Tokens made as an operator makes them, with `offload token create`, for the
// integration tests of [auth].
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <sstream>
#include <string>

#include "support/command.h"
#include "support/http_client.h"
#include "support/job_helpers.h"
#include "support/test_server.h"

namespace offload::testing {

struct Token {
  std::string name;
  std::string token;
  std::string sha256;
  std::string scopes;  // As given to --scopes: "submit,read".

  Headers Bearer() const { return {{"Authorization", "Bearer " + token}}; }
  Headers JsonBearer() const { return {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}}; }
  // Its table in a TOML array of tokens, with the keys `more` ("weight = 3") if any.
  std::string Toml(const std::string& more = "") const {
    std::string list;
    std::stringstream in(scopes);
    for (std::string s; std::getline(in, s, ',');) list += (list.empty() ? "\"" : ", \"") + s + "\"";
    return "{name = \"" + name + "\", sha256 = \"" + sha256 + "\", scopes = [" + list + "]" +
           (more.empty() ? "" : ", " + more) + "}";
  }
};

inline Token CreateToken(const std::string& name, const std::string& scopes) {
  CommandOutput made =
      RunCommand(std::string(OffloadBinary()) + " token create " + name + " --scopes " + scopes + " --json");
  EXPECT_TRUE(made.ExitedWith(0)) << made.out;
  auto parsed = ParseJson(made.out);
  if (!parsed || !parsed->is_object()) {
    ADD_FAILURE() << "offload token create printed " << made.out;
    return {};
  }
  const boost::json::object& o = parsed->as_object();
  return Token{name, Field(o, "token"), Field(o, "sha256"), scopes};
}

}  // namespace offload::testing
