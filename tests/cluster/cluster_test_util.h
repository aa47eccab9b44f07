// Helpers of the cluster tests: a fresh schema with offload's tables, and jobs placed
// as a node's claim would leave them.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <memory>
#include <string>

#include "store/pg_connection.h"
#include "store/postgres_store.h"
#include "support/postgres_schema.h"

namespace offload::testing {

// A schema of its own with offload's tables, and a store on it for inserting jobs.
class ClusterSchemaTest : public PostgresSchemaTest {
 protected:
  void SetUp() override {
    PostgresSchemaTest::SetUp();
    if (HasFatalFailure()) return;
    auto store = PostgresStore::Open(PostgresOptions{conninfo_, 2});
    ASSERT_TRUE(store.has_value()) << store.error().detail;
    store_ = std::move(*store);
    auto conn = PgConnection::Connect(conninfo_);
    ASSERT_TRUE(conn.has_value()) << conn.error().detail;
    conn_ = std::move(*conn);
  }

  // Inserts job `seq`, running on `node` at `epoch` (a claim's mark).
  void InsertRunning(std::uint64_t seq, const std::string& node, std::int64_t epoch, int attempts = 1) {
    JobRecord r;
    r.id = "job-" + std::to_string(seq);
    r.task = "sleep";
    r.seq = seq;
    r.status = JobStatus::kRunning;
    r.attempts = attempts;
    r.input = std::make_shared<const boost::json::value>(boost::json::object{{"ms", 1}});
    r.created_at = 1000 + static_cast<UnixMillis>(seq);
    r.started_at = r.created_at + 1;
    ASSERT_TRUE(store_->Insert(r).has_value());
    Sql(conninfo_, "UPDATE offload_jobs SET node_id = '" + node + "', node_epoch = " + std::to_string(epoch) +
                       " WHERE seq = " + std::to_string(seq));
  }

  std::string Status(std::uint64_t seq) {
    return Sql(conninfo_, "SELECT status FROM offload_jobs WHERE seq = " + std::to_string(seq));
  }

  std::unique_ptr<PostgresStore> store_;
  std::unique_ptr<PgConnection> conn_;
};

}  // namespace offload::testing
