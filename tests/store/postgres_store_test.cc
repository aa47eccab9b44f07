// What PostgresStore promises beyond the conformance suite (store_test.cc): its schema
// is migrated once however many servers start together, a newer schema is refused,
// one server holds a schema at a time, a connection cut between calls (a restart of
// PostgreSQL) fails none, large batches and values go through the pipeline, and a password
// never shows in a message.
#include "store/postgres_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "store/pg_connection.h"
#include "store/store.h"
#include "support/postgres_schema.h"

namespace offload {
namespace {

namespace json = boost::json;

constexpr UnixMillis kT0 = 1'700'000'000'000;

JobRecord MakeJob(std::uint64_t seq) {
  JobRecord r;
  r.id = "job-" + std::to_string(seq);
  r.task = "noop";
  r.seq = seq;
  r.input = std::make_shared<const json::value>(json::object{{"n", seq}});
  r.created_at = kT0 + static_cast<UnixMillis>(seq);
  return r;
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::TestPostgresConnInfo();
    ASSERT_TRUE(server.has_value());
    // A name of this test's own, so that it can find (and cut) its own connections.
    app_ = "offload_test_" + std::to_string(::getpid()) + "_" + std::to_string(next_app_++);
    conninfo_ = testing::FreshPostgresSchema(*server);
    ASSERT_FALSE(conninfo_.empty());
    conninfo_ += " application_name=" + app_;
  }

  ErrorOr<std::unique_ptr<Store>> Open() { return OpenStore("postgres:" + conninfo_); }

  std::string conninfo_;
  std::string app_;
  static inline std::atomic<int> next_app_{0};
};

TEST_F(PostgresStoreTest, AFreshSchemaIsCreatedAtTheCurrentVersion) {
  auto store = Open();
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT version FROM offload_schema"),
            std::to_string(PostgresStore::kSchemaVersion));
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT count(*) FROM offload_schema"), "1");
}

TEST_F(PostgresStoreTest, ASchemaFromANewerOffloadIsRefusedAndLeftAlone) {
  { ASSERT_TRUE(Open().has_value()); }
  testing::Sql(conninfo_, "UPDATE offload_schema SET version = 999");
  auto store = Open();
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(store.error().detail.find("newer than this offload"), std::string::npos) << store.error().detail;
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT version FROM offload_schema"), "999");
}

TEST_F(PostgresStoreTest, AVersionOneSchemaIsMigratedInPlaceAndKeepsItsJobs) {
  {
    auto store = Open();
    ASSERT_TRUE(store.has_value()) << store.error().detail;
    ASSERT_TRUE((*store)->Insert(MakeJob(1)).has_value());
  }
  // Back to what version 1 made: no cluster tables or columns.
  testing::Sql(conninfo_,
               "DROP TABLE offload_map_chunks; DROP TABLE offload_nodes; DROP INDEX offload_jobs_queued; DROP INDEX "
               "offload_jobs_running_on; "
               "DROP INDEX offload_jobs_idem_key; DROP INDEX offload_jobs_by_tenant; DROP SEQUENCE offload_job_seq; "
               "ALTER TABLE offload_jobs DROP COLUMN node_id, DROP COLUMN node_epoch, DROP COLUMN run_after, "
               "DROP COLUMN files_node, DROP COLUMN retry_of, DROP COLUMN tenant; "
               "UPDATE offload_schema SET version = 1");
  auto store = Open();
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT version FROM offload_schema"),
            std::to_string(PostgresStore::kSchemaVersion));
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT count(*) FROM offload_nodes"), "0");
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT count(*) FROM offload_map_chunks"), "0");
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT node_epoch || ' ' || run_after FROM offload_jobs WHERE id = 'job-1'"),
            "0 0");
  auto job = (*store)->Get("job-1");
  ASSERT_TRUE(job.has_value() && job->has_value());
  EXPECT_EQ((*job)->seq, 1u);
  EXPECT_EQ((*job)->tenant, "");
  // The sequence that numbers new jobs starts past the jobs kept.
  JobRecord next = MakeJob(0);
  next.id = "job-next";
  ASSERT_TRUE((*store)->Insert(next).has_value());
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT seq FROM offload_jobs WHERE id = 'job-next'"), "2");
}

// Version 6 gave jobs a tenant and made an Idempotency-Key unique per task and tenant;
// version 8 gave chunks of maps one.
TEST_F(PostgresStoreTest, AVersionFiveSchemaGainsTenantsAndItsKeysStayHeld) {
  {
    auto store = Open();
    ASSERT_TRUE(store.has_value()) << store.error().detail;
    JobRecord keyed = MakeJob(1);
    keyed.idempotency_key = "order-7";
    ASSERT_TRUE((*store)->Insert(keyed).has_value());
  }
  // Back to what version 5 made.
  testing::Sql(conninfo_,
               "DROP INDEX offload_jobs_by_tenant; DROP INDEX offload_jobs_idem_key; "
               "ALTER TABLE offload_jobs DROP COLUMN tenant; ALTER TABLE offload_map_chunks DROP COLUMN tenant; "
               "CREATE UNIQUE INDEX offload_jobs_idem_key ON offload_jobs (task, idem_key) WHERE idem_key IS NOT NULL; "
               "UPDATE offload_schema SET version = 5");
  auto store = Open();
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT version FROM offload_schema"),
            std::to_string(PostgresStore::kSchemaVersion));
  auto job = (*store)->Get("job-1");
  ASSERT_TRUE(job.has_value() && job->has_value());
  EXPECT_EQ((*job)->tenant, "") << "a job from before tenants has none";
  auto keys = (*store)->LoadIdempotencyKeys(kT0);
  ASSERT_TRUE(keys.has_value()) << keys.error().detail;
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].tenant, "");
  JobQuery none;
  none.tenant = "";
  auto listed = (*store)->List(none);
  ASSERT_TRUE(listed.has_value()) << listed.error().detail;
  ASSERT_EQ(listed->jobs.size(), 1u);
  // The old job still holds its key for jobs without a tenant, and only for them.
  JobRecord again = MakeJob(2);
  again.idempotency_key = "order-7";
  auto dup = (*store)->Insert(again);
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);
  again.tenant = "alice";
  auto other = (*store)->Insert(again);
  EXPECT_TRUE(other.has_value()) << other.error().detail;
}

// What makes a key hold across nodes (cluster_node.h's KeyHolder): the table takes one
// job per task, tenant and key. Another tenant's job may use the same key.
TEST_F(PostgresStoreTest, AnIdempotencyKeyIsHeldOncePerTaskAndTenant) {
  auto opened = Open();
  ASSERT_TRUE(opened.has_value()) << opened.error().detail;
  Store& store = **opened;
  auto keyed = [](std::uint64_t seq, const std::string& task, const std::string& tenant) {
    JobRecord r = MakeJob(seq);
    r.task = task;
    r.tenant = tenant;
    r.idempotency_key = "order-7";
    return r;
  };
  for (const JobRecord& r :
       {keyed(1, "noop", "alice"), keyed(2, "noop", "bob"), keyed(3, "noop", ""), keyed(4, "other", "alice")}) {
    auto ok = store.Insert(r);
    ASSERT_TRUE(ok.has_value()) << r.id << ": " << ok.error().detail;
  }
  for (const JobRecord& r : {keyed(5, "noop", "alice"), keyed(6, "noop", "")}) {
    auto dup = store.Insert(r);
    ASSERT_FALSE(dup.has_value()) << r.id << " took a key its tenant holds";
    EXPECT_EQ(dup.error().code, ErrorCode::kConflict) << dup.error().detail;
  }
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT count(*) FROM offload_jobs"), "4");
  // Once the holder lets its key go (its ttl is over), the tenant may use it again.
  testing::Sql(conninfo_, "UPDATE offload_jobs SET idem_key = NULL WHERE id = 'job-1'");
  auto reused = store.Insert(keyed(5, "noop", "alice"));
  EXPECT_TRUE(reused.has_value()) << reused.error().detail;
}

TEST_F(PostgresStoreTest, ServersStartingTogetherMigrateOnceAndShareTheSchema) {
  constexpr int kServers = 4;
  std::vector<ErrorOr<std::unique_ptr<Store>>> opened;
  for (int i = 0; i < kServers; ++i) opened.emplace_back(MakeError(ErrorCode::kInternal, "not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kServers; ++i) threads.emplace_back([&, i] { opened[i] = Open(); });
  for (auto& t : threads) t.join();
  // Never refused for a half-made schema: the one that migrates holds the others off.
  for (const auto& o : opened) EXPECT_TRUE(o.has_value()) << o.error().detail;
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT count(*) FROM offload_schema"), "1");
  EXPECT_EQ(testing::Sql(conninfo_, "SELECT version FROM offload_schema"),
            std::to_string(PostgresStore::kSchemaVersion));
}

TEST_F(PostgresStoreTest, AnOlderServerThatUsesTheSchemaAloneKeepsClusterNodesOut) {
  { ASSERT_TRUE(Open().has_value()); }
  // What a server of schema version 2 held for as long as it ran.
  auto old_server = PgConnection::Connect(conninfo_);
  ASSERT_TRUE(old_server.has_value()) << old_server.error().detail;
  ASSERT_TRUE(
      (*old_server)->Exec("SELECT pg_advisory_lock(hashtextextended('offload server ' || current_schema(), 0))"));
  auto refused = Open();
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().detail.find("older offload"), std::string::npos) << refused.error().detail;
  old_server->reset();
  auto opened = Open();
  EXPECT_TRUE(opened.has_value()) << opened.error().detail;
}

TEST_F(PostgresStoreTest, ACutConnectionIsReplacedWithoutFailingTheNextCalls) {
  auto opened = Open();
  ASSERT_TRUE(opened.has_value()) << opened.error().detail;
  Store& store = **opened;
  ASSERT_TRUE(store.Insert(MakeJob(1)).has_value());
  ASSERT_TRUE(store.Get("job-1").has_value());
  // Cut every connection of this store, as a restart of PostgreSQL would.
  const std::string cut_count = testing::Sql(
      conninfo_, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" + app_ +
                     "' AND pid <> pg_backend_pid()");
  ASSERT_NE(cut_count, "0") << "the store's connections were not found";
  // The next write and read find their connections cut before they sent anything
  // that could have been applied: each runs again on a new connection, and succeeds.
  auto write = store.Insert(MakeJob(2));
  ASSERT_TRUE(write.has_value()) << write.error().detail;
  auto read = store.Get("job-2");
  ASSERT_TRUE(read.has_value()) << read.error().detail;
  ASSERT_TRUE(read->has_value());
  auto all = store.LoadUnfinished();
  ASSERT_TRUE(all.has_value()) << all.error().detail;
  EXPECT_EQ(all->size(), 2u);
}

TEST_F(PostgresStoreTest, AfterARestartEveryCutReaderIsReplacedNotJustTheFirst) {
  auto opened = Open();
  ASSERT_TRUE(opened.has_value()) << opened.error().detail;
  Store& store = **opened;
  ASSERT_TRUE(store.Insert(MakeJob(1)).has_value());
  // Three reads at once leave three idle readers (the default pool).
  std::vector<std::thread> readers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      for (int k = 0; k < 50; ++k) ok += store.Get("job-1").has_value() ? 1 : 0;
    });
  }
  for (auto& t : readers) t.join();
  ASSERT_EQ(ok.load(), 150);
  const std::string cut = testing::Sql(
      conninfo_, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" + app_ +
                     "' AND pid <> pg_backend_pid()");
  ASSERT_GE(std::stoi(cut), 2) << "expected the writer and more than one reader";
  for (int i = 0; i < 5; ++i) {
    auto read = store.Get("job-1");
    ASSERT_TRUE(read.has_value()) << "read " << i << ": " << read.error().detail;
  }
}

TEST_F(PostgresStoreTest, TextThatIsNotUtf8IsStoredNotRefused) {
  auto opened = Open();
  ASSERT_TRUE(opened.has_value()) << opened.error().detail;
  Store& store = **opened;
  JobRecord failed = MakeJob(1);
  failed.status = JobStatus::kFailed;
  failed.finished_at = kT0 + 5;
  // A process's stderr cut in the middle of "é", with a NUL: as a failure message.
  failed.error = JobError{"exit", std::string("boom \xc3", 6) + std::string("\0tail", 5), "trace \xff"};
  failed.idempotency_key = "key-\xfe";
  ASSERT_TRUE(store.Insert(failed).has_value());
  auto got = store.Get("job-1");
  ASSERT_TRUE(got.has_value() && got->has_value()) << (got ? "" : got.error().detail);
  EXPECT_EQ((*got)->error->message, "boom \xEF\xBF\xBDtail");
  EXPECT_EQ((*got)->error->detail, "trace \xEF\xBF\xBD");
  EXPECT_EQ((*got)->idempotency_key, "key-\xEF\xBF\xBD");
}

TEST_F(PostgresStoreTest, LargeBatchesAndLargeValuesGoThroughThePipeline) {
  auto opened = Open();
  ASSERT_TRUE(opened.has_value()) << opened.error().detail;
  Store& store = **opened;
  std::vector<StoreOp> batch;
  for (std::uint64_t i = 1; i <= 3000; ++i) batch.push_back({StoreOp::Kind::kInsert, MakeJob(i)});
  // A value of many megabytes: the pipeline must read results while it still sends.
  JobRecord big = MakeJob(3001);
  big.input = std::make_shared<const json::value>(json::string(std::string(8 << 20, 'x')));
  batch.push_back({StoreOp::Kind::kInsert, big});
  ASSERT_TRUE(store.Apply(batch).has_value());
  auto max = store.MaxSeq();
  ASSERT_TRUE(max.has_value());
  EXPECT_EQ(*max, 3001u);
  auto got = store.Get("job-3001");
  ASSERT_TRUE(got.has_value() && got->has_value());
  EXPECT_EQ((*got)->input->as_string().size(), std::size_t{8 << 20});
}

TEST_F(PostgresStoreTest, ResultsKeepEveryByteAndEveryEscape) {
  auto opened = Open();
  ASSERT_TRUE(opened.has_value()) << opened.error().detail;
  Store& store = **opened;
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  JobRecord binary = MakeJob(1);
  binary.status = JobStatus::kSucceeded;
  binary.result = Result::Bytes("application/octet-stream", bytes).output();
  JobRecord text = MakeJob(2);
  text.status = JobStatus::kSucceeded;
  const json::value tricky = json::parse(R"({"path": "C:\\temp\\x", "quote": "\"", "nul": "\u0000", "x": "\\x00"})");
  text.result = Result::Json(tricky).output();
  ASSERT_TRUE(store.Apply({{StoreOp::Kind::kInsert, binary}, {StoreOp::Kind::kInsert, text}}).has_value());
  auto b = store.Get("job-1");
  ASSERT_TRUE(b.has_value() && b->has_value());
  EXPECT_EQ((*b)->result->bytes, bytes);
  auto t = store.Get("job-2");
  ASSERT_TRUE(t.has_value() && t->has_value());
  EXPECT_EQ((*t)->result->json, tricky);
}

TEST(PostgresStoreSpecTest, APasswordNeverShowsInLogsOrErrors) {
  const std::string spec = "postgres://someone:s3cret-pw@127.0.0.1:1/offload";
  EXPECT_EQ(RedactStoreSpec(spec).find("s3cret-pw"), std::string::npos) << RedactStoreSpec(spec);
  EXPECT_NE(RedactStoreSpec(spec).find("user=someone"), std::string::npos) << RedactStoreSpec(spec);
  const std::string keyvalue = "postgres:host=127.0.0.1 port=1 password=s3cret-pw sslpassword=s3cret-pw dbname=x";
  EXPECT_EQ(RedactStoreSpec(keyvalue).find("s3cret-pw"), std::string::npos) << RedactStoreSpec(keyvalue);
  // A URI libpq cannot parse: its message would quote it.
  auto bad = OpenStore("postgres://someone:s3cret-pw@[::1/offload");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().detail.find("s3cret-pw"), std::string::npos) << bad.error().detail;
  // Port 1: nothing listens, so the connect fails; its message names the server, not
  // the password.
  auto store = OpenStore(spec);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(store.error().detail.find("s3cret-pw"), std::string::npos) << store.error().detail;
  EXPECT_NE(store.error().detail.find("127.0.0.1"), std::string::npos) << store.error().detail;
}

}  // namespace
}  // namespace offload
