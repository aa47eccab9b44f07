#include "support/postgres_schema.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace offload::testing {

std::optional<std::string> TestPostgresConnInfo() {
  std::ifstream in(OFFLOAD_TEST_POSTGRES_FILE);
  std::string conninfo;
  std::getline(in, conninfo);
  if (conninfo.empty()) {
    ADD_FAILURE() << "no PostgreSQL test server: " << OFFLOAD_TEST_POSTGRES_FILE
                  << " is missing. CTest starts one (the postgres fixture); to run this binary by hand, start it "
                     "with scripts/postgres-test-server.sh start "
                  << std::filesystem::path(OFFLOAD_TEST_POSTGRES_FILE).parent_path().string();
    return std::nullopt;
  }
  return conninfo;
}

std::string FreshPostgresSchema(const std::string& conninfo) {
  static std::atomic<int> next{0};
  const std::string schema = "t" + std::to_string(::getpid()) + "_" + std::to_string(next++);
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    ADD_FAILURE() << "cannot reach the PostgreSQL test server: " << PQerrorMessage(conn);
    PQfinish(conn);
    return {};
  }
  PGresult* r = PQexec(conn, ("DROP SCHEMA IF EXISTS " + schema + " CASCADE; CREATE SCHEMA " + schema).c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) ADD_FAILURE() << "cannot create schema " << schema << ": " << PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);
  return ok ? conninfo + " options='-csearch_path=" + schema + "'" : std::string();
}

SqlSession::SqlSession(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
  EXPECT_EQ(PQstatus(conn_), CONNECTION_OK) << PQerrorMessage(conn_);
}

SqlSession::~SqlSession() { PQfinish(conn_); }

std::string SqlSession::Run(const std::string& sql) {
  PGresult* r = PQexec(conn_, sql.c_str());
  std::string out;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) out = PQgetvalue(r, 0, 0);
  EXPECT_TRUE(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)
      << sql << ": " << PQresultErrorMessage(r);
  PQclear(r);
  return out;
}

std::string Sql(const std::string& conninfo, const std::string& sql) { return SqlSession(conninfo).Run(sql); }

PrivatePostgres::PrivatePostgres() {
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/offload-pgstate-XXXXXX";
  state_ = mkdtemp(tmpl.data());
}

PrivatePostgres::~PrivatePostgres() {
  (void)Run("stop");
  std::filesystem::remove_all(state_);
}

bool PrivatePostgres::Run(const std::string& action) {
  const std::string cmd = std::string(OFFLOAD_POSTGRES_SCRIPT) + " " + action + " " + state_ + " >/dev/null";
  return std::system(cmd.c_str()) == 0;
}

std::string PrivatePostgres::conninfo() const {
  std::ifstream in(state_ + "/conninfo");
  std::string line;
  std::getline(in, line);
  return line;
}

std::string PostgresConfig(const std::string& conninfo, const std::string& more) {
  std::string quoted;
  for (char c : conninfo) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return "store = \"postgres:" + quoted + "\"\n" + more;
}

}  // namespace offload::testing
