// The private PostgreSQL server of a test run (scripts/postgres-test-server.sh, started
// by CTest as a fixture) and a fresh schema in it per use, so that tests share one
// server without seeing each other's tables; SQL run on the side; and a server of a
// test's own, for the tests that stop PostgreSQL.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>

struct pg_conn;

namespace offload::testing {

// The test server's libpq connection string, from the file the fixture writes (its
// path is compiled in). When there is none, fails the test, saying how to start the
// server by hand, and returns nullopt.
std::optional<std::string> TestPostgresConnInfo();

// Creates an empty schema with a name of its own and returns a connection string
// whose search_path is that schema; an empty string (and a test failure) when the
// server cannot be reached.
std::string FreshPostgresSchema(const std::string& conninfo);

// A connection of its own, held open: for a test that keeps a transaction, and the
// row locks it took, while the servers go on.
class SqlSession {
 public:
  explicit SqlSession(const std::string& conninfo);
  ~SqlSession();
  SqlSession(const SqlSession&) = delete;
  SqlSession& operator=(const SqlSession&) = delete;
  // Runs `sql` and returns the first value of the first row (empty when there is
  // none, or it is NULL); a failure fails the test.
  std::string Run(const std::string& sql);

 private:
  pg_conn* conn_;
};

// Runs `sql` on a connection of its own and returns the first value of the first row
// (empty when there is none, or it is NULL); a failure fails the test.
std::string Sql(const std::string& conninfo, const std::string& sql);

// A test with a schema of its own on the test server, in conninfo_.
class PostgresSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = TestPostgresConnInfo();
    ASSERT_TRUE(server.has_value());
    conninfo_ = FreshPostgresSchema(*server);
    ASSERT_FALSE(conninfo_.empty());
  }
  std::string conninfo_;
};

// The lines of a server's config that put its store on `conninfo`, then `more`.
std::string PostgresConfig(const std::string& conninfo, const std::string& more = "");

// A PostgreSQL server of a test's own (the same script, another state folder), which
// it may stop and start again. Removed on destruction.
class PrivatePostgres {
 public:
  PrivatePostgres();
  ~PrivatePostgres();
  PrivatePostgres(const PrivatePostgres&) = delete;
  PrivatePostgres& operator=(const PrivatePostgres&) = delete;
  // Runs the script's `action`: start, halt (stop, keep the data), resume, stop.
  bool Run(const std::string& action);
  std::string conninfo() const;

 private:
  std::string state_;
};

}  // namespace offload::testing
