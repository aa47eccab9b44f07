// The private PostgreSQL server of a test run (scripts/postgres-test-server.sh, started
// by CTest as a fixture) and a fresh schema in it per use, so that tests share one
// server without seeing each other's tables.
#pragma once

#include <optional>
#include <string>

namespace offload::testing {

// The test server's libpq connection string, from the file the fixture writes (its
// path is compiled in). When there is none, fails the test, saying how to start the
// server by hand, and returns nullopt.
std::optional<std::string> TestPostgresConnInfo();

// Creates an empty schema with a name of its own and returns a connection string
// whose search_path is that schema; an empty string (and a test failure) when the
// server cannot be reached.
std::string FreshPostgresSchema(const std::string& conninfo);

}  // namespace offload::testing
