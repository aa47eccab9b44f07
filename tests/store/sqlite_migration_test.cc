// SqliteStore's file format and its migrations: a database left by an older offload
// opens, is migrated in place, and keeps its jobs; one from a newer offload is refused;
// the numbers the file holds for job statuses never change.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "store/sqlite_store.h"

namespace offload {
namespace {

// The jobs table as version 1 of offload created it.
constexpr const char* kVersionOneTable = R"sql(
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, task TEXT NOT NULL, status INTEGER NOT NULL,
  priority INTEGER NOT NULL, attempts INTEGER NOT NULL, input TEXT NOT NULL, created_at INTEGER NOT NULL,
  started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL, result_type TEXT, result BLOB, error_type TEXT,
  error_message TEXT, progress REAL, error_history TEXT, idem_key TEXT, request_hash INTEGER);
)sql";

// The schema version this offload writes (sqlite_store.cc's kSchemaVersion).
constexpr int kCurrentVersion = 8;

// The numbers of include/offload/job.h's JobStatus are on disk (jobs.status). A change
// here is a change of the file format: it needs a schema version and a migration, not
// an edit of these lines.
static_assert(static_cast<int>(JobStatus::kQueued) == 0);
static_assert(static_cast<int>(JobStatus::kRunning) == 1);
static_assert(static_cast<int>(JobStatus::kSucceeded) == 2);
static_assert(static_cast<int>(JobStatus::kFailed) == 3);
static_assert(static_cast<int>(JobStatus::kCanceled) == 4);

// What each number on disk means, written out rather than derived from the enum.
const std::map<int, JobStatus> kStatusOnDisk = {
    {0, JobStatus::kQueued}, {1, JobStatus::kRunning},  {2, JobStatus::kSucceeded},
    {3, JobStatus::kFailed}, {4, JobStatus::kCanceled},
};

class SqliteMigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/offload-migrate-XXXXXX";
    dir_ = mkdtemp(tmpl.data());
    path_ = dir_ + "/jobs.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // PRAGMA user_version of the file, read directly.
  int UserVersion() {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    int version = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      version = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return version;
  }

  // Runs `sql` on the file directly, as another program (or an older offload) would.
  void Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    const std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << msg;
  }

  // The first column of the first row `sql` gives, as an int, read directly.
  int QueryInt(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    int out = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
      out = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  // Every (id, status) row of the jobs table, read directly.
  std::map<std::string, int> StatusColumn() {
    std::map<std::string, int> out;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT id, status FROM jobs", -1, &st, nullptr), SQLITE_OK);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
      out[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))] = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  std::string dir_;
  std::string path_;
};

// Before the fix SQLite took the empty file for an empty database and the server
// started with no jobs, hiding every one the real file held.
TEST_F(SqliteMigrationTest, AnEmptyFileIsRefusedAndLeftAsItIs) {
  { std::ofstream(path_).flush(); }
  ASSERT_EQ(std::filesystem::file_size(path_), 0u);
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_FALSE(store.has_value());
  EXPECT_NE(store.error().detail.find("empty file"), std::string::npos) << store.error().detail;
  EXPECT_NE(store.error().detail.find(path_), std::string::npos) << store.error().detail;
  EXPECT_EQ(std::filesystem::file_size(path_), 0u) << "the file was written to";
}

TEST_F(SqliteMigrationTest, AFileThatDoesNotExistIsANewStore) {
  ASSERT_FALSE(std::filesystem::exists(path_));
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  EXPECT_GE(UserVersion(), 3);
}

TEST_F(SqliteMigrationTest, AVersionOneDatabaseIsMigratedAndKeepsItsJobs) {
  Exec(std::string(kVersionOneTable) + R"sql(
INSERT INTO jobs VALUES (7, 'old-job', 'sleep', 0, 3, 0, '{"ms":5}', 1700000000000, 0, 0,
                         NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0);
PRAGMA user_version = 1;
)sql");
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  auto job = (*store)->Get("old-job");
  ASSERT_TRUE(job.has_value()) << job.error().detail;
  ASSERT_TRUE(job->has_value());
  EXPECT_EQ((*job)->seq, 7u);
  EXPECT_EQ((*job)->priority, 3);
  EXPECT_EQ((*job)->timeout_ms, 0) << "the new column's default";
  EXPECT_EQ((*job)->input->at("ms"), 5);
  EXPECT_EQ((*job)->map, std::nullopt) << "a job from before maps is a plain job";
  auto unfinished = (*store)->LoadUnfinished();
  ASSERT_TRUE(unfinished.has_value());
  EXPECT_EQ(unfinished->size(), 1u);
  store->reset();
  EXPECT_EQ(UserVersion(), kCurrentVersion);
}

TEST_F(SqliteMigrationTest, AVersionTwoDatabaseIsMigratedAndItsJobsAreNotMaps) {
  // Version 2 added timeout_ms.
  Exec(std::string(kVersionOneTable) + R"sql(
ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 0;
INSERT INTO jobs VALUES (3, 'queued-job', 'sleep', 0, 1, 0, '{"ms":5}', 1700000000000, 0, 0,
                         NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 250);
INSERT INTO jobs VALUES (4, 'done-job', 'sleep', 2, 0, 1, '{"ms":1}', 1700000000001, 1700000000002,
                         1700000000003, NULL, NULL, NULL, NULL, 1.0, NULL, NULL, 0, 0);
PRAGMA user_version = 2;
)sql");
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  for (const char* id : {"queued-job", "done-job"}) {
    auto job = (*store)->Get(id);
    ASSERT_TRUE(job.has_value()) << job.error().detail;
    ASSERT_TRUE(job->has_value()) << id;
    EXPECT_EQ((*job)->map, std::nullopt) << id;
  }
  auto queued = (*store)->Get("queued-job");
  EXPECT_EQ((*queued)->timeout_ms, 250) << "version 2's column is kept";
  auto unfinished = (*store)->LoadUnfinished();
  ASSERT_TRUE(unfinished.has_value());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ((*unfinished)[0].map, std::nullopt);
  store->reset();
  EXPECT_EQ(UserVersion(), kCurrentVersion);
}

TEST_F(SqliteMigrationTest, AVersionThreeDatabaseIsMigratedAndItsErrorsHaveNoDetail) {
  // Version 3 added map_spec.
  Exec(std::string(kVersionOneTable) + R"sql(
ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN map_spec TEXT;
INSERT INTO jobs VALUES (5, 'failed-job', 'sleep', 3, 0, 1, '{"ms":1}', 1700000000001, 1700000000002,
                         1700000000003, NULL, NULL, 'boom', 'it broke', NULL, NULL, NULL, 0, 0, NULL);
PRAGMA user_version = 3;
)sql");
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  auto job = (*store)->Get("failed-job");
  ASSERT_TRUE(job.has_value() && job->has_value());
  ASSERT_TRUE((*job)->error);
  EXPECT_EQ((*job)->error->type, "boom");
  EXPECT_EQ((*job)->error->message, "it broke");
  EXPECT_EQ((*job)->error->detail, "");
  store->reset();
  EXPECT_EQ(UserVersion(), kCurrentVersion);
}

// Version 5 moved inputs out of the jobs rows (an update rewrites a whole row); a
// job's input goes when the job does.
TEST_F(SqliteMigrationTest, AVersionFourDatabaseKeepsItsInputsInATableOfTheirOwn) {
  Exec(std::string(kVersionOneTable) + R"sql(
ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN map_spec TEXT;
ALTER TABLE jobs ADD COLUMN error_detail TEXT;
INSERT INTO jobs VALUES (7, 'queued-job', 'sleep', 0, 0, 0, '{"ms":5}', 1700000000000, 0, 0,
                         NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL);
INSERT INTO jobs VALUES (8, 'done-job', 'sleep', 2, 0, 1, '[1,2.0]', 1700000000001, 1700000000002,
                         1700000000003, 'application/json', '3', NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL);
PRAGMA user_version = 4;
)sql");
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  auto queued = (*store)->Get("queued-job");
  ASSERT_TRUE(queued.has_value() && queued->has_value());
  EXPECT_EQ(*(*queued)->input, (boost::json::object{{"ms", 5}}));
  auto done = (*store)->Get("done-job");
  ASSERT_TRUE(done.has_value() && done->has_value());
  EXPECT_EQ(*(*done)->input, (boost::json::array{1, 2.0}));
  EXPECT_EQ(QueryInt("SELECT count(*) FROM pragma_table_info('jobs') WHERE name = 'input'"), 0);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM job_inputs"), 2);

  auto removed = (*store)->RemoveFinishedBefore(1800000000000);
  ASSERT_TRUE(removed.has_value()) << removed.error().detail;
  EXPECT_EQ(*removed, 1u);
  store->reset();
  EXPECT_EQ(QueryInt("SELECT count(*) FROM job_inputs"), 1) << "the removed job's input stayed";
  EXPECT_EQ(QueryInt("SELECT seq FROM job_inputs"), 7);
  EXPECT_EQ(UserVersion(), kCurrentVersion);
}

TEST_F(SqliteMigrationTest, AVersionFiveDatabaseGainsFilesAndKeepsThemApart) {
  Exec(std::string(kVersionOneTable) + R"sql(
ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN map_spec TEXT;
ALTER TABLE jobs ADD COLUMN error_detail TEXT;
CREATE TABLE job_inputs (seq INTEGER PRIMARY KEY, input TEXT NOT NULL);
ALTER TABLE jobs DROP COLUMN input;
INSERT INTO jobs VALUES (7, 'old-job', 'sleep', 2, 0, 1, 1700000000000, 1700000000001, 1700000000002,
                         'image/png', x'89504e47', NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL);
INSERT INTO job_inputs VALUES (7, 'null');
PRAGMA user_version = 5;
)sql");
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  EXPECT_EQ(UserVersion(), kCurrentVersion);
  auto old = (*store)->Get("old-job");
  ASSERT_TRUE(old.has_value() && old->has_value());
  EXPECT_TRUE((*old)->files.empty());
  ASSERT_TRUE((*old)->result);
  EXPECT_FALSE((*old)->result->file);
  EXPECT_EQ((*old)->result->bytes, "\x89PNG");

  // A job with files and a result in a file: the row holds what they are, not their bytes.
  JobRecord j;
  j.id = "with-files";
  j.task = "thumb";
  j.seq = 8;
  j.status = JobStatus::kSucceeded;
  j.input = std::make_shared<const boost::json::value>(nullptr);
  j.files = {JobFile{"body", "", "image/png", 1234, std::string(64, 'a'), "/ignored"},
             JobFile{"extra", "b.bin", "application/octet-stream", 5, std::string(64, 'b'), {}}};
  auto out = std::make_shared<Output>();
  out->content_type = "image/png";
  out->file = OutputFile{"/ignored", 99'000'000, std::string(64, 'c')};
  j.result = out;
  j.finished_at = 1700000000005;
  ASSERT_TRUE((*store)->Insert(j).has_value());
  auto back = (*store)->Get("with-files");
  ASSERT_TRUE(back.has_value() && back->has_value());
  ASSERT_EQ((*back)->files.size(), 2u);
  EXPECT_EQ((*back)->files[0], (JobFile{"body", "", "image/png", 1234, std::string(64, 'a'), {}}));
  EXPECT_EQ((*back)->files[1].filename, "b.bin");
  ASSERT_TRUE((*back)->result && (*back)->result->file);
  EXPECT_EQ(*(*back)->result->file, (OutputFile{{}, 99'000'000, std::string(64, 'c')}));
  EXPECT_EQ((*back)->result->content_type, "image/png");
  EXPECT_EQ(QueryInt("SELECT count(*) FROM jobs WHERE id = 'with-files' AND result IS NULL"), 1);
  auto expiring = (*store)->FinishedWithFilesBefore(1800000000000);
  ASSERT_TRUE(expiring.has_value()) << expiring.error().detail;
  EXPECT_EQ(*expiring, std::vector<std::string>{"with-files"});
}

// Version 8 gave jobs a tenant; a job from before has none (''), and is listed and
// keeps its Idempotency-Key as such.
TEST_F(SqliteMigrationTest, AVersionSevenDatabaseIsMigratedAndItsJobsHaveNoTenant) {
  Exec(std::string(kVersionOneTable) + R"sql(
ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN map_spec TEXT;
ALTER TABLE jobs ADD COLUMN error_detail TEXT;
CREATE TABLE job_inputs (seq INTEGER PRIMARY KEY, input TEXT NOT NULL);
ALTER TABLE jobs DROP COLUMN input;
ALTER TABLE jobs ADD COLUMN files TEXT;
ALTER TABLE jobs ADD COLUMN result_file TEXT;
ALTER TABLE jobs ADD COLUMN retry_of TEXT;
INSERT INTO jobs VALUES (7, 'old-job', 'sleep', 0, 0, 0, 1700000000000, 0, 0,
                         NULL, NULL, NULL, NULL, NULL, NULL, 'order-7', 42, 0, NULL, NULL, NULL, NULL, NULL);
INSERT INTO job_inputs VALUES (7, '{"ms":5}');
PRAGMA user_version = 7;
)sql");
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  EXPECT_EQ(UserVersion(), kCurrentVersion);
  auto old = (*store)->Get("old-job");
  ASSERT_TRUE(old.has_value() && old->has_value());
  EXPECT_EQ((*old)->tenant, "");
  EXPECT_EQ((*old)->idempotency_key, "order-7");
  auto keys = (*store)->LoadIdempotencyKeys(0);
  ASSERT_TRUE(keys.has_value()) << keys.error().detail;
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].tenant, "");
  EXPECT_EQ((*keys)[0].job_id, "old-job");
  EXPECT_EQ((*keys)[0].request_hash, 42u);

  JobRecord j;
  j.id = "alices";
  j.task = "sleep";
  j.seq = 8;
  j.input = std::make_shared<const boost::json::value>(nullptr);
  j.created_at = 1700000000001;
  j.tenant = "alice";
  ASSERT_TRUE((*store)->Insert(j).has_value());
  auto ids = [&](std::optional<std::string> tenant) {
    JobQuery q;
    q.tenant = std::move(tenant);
    std::vector<std::string> out;
    auto page = (*store)->List(q);
    EXPECT_TRUE(page.has_value()) << page.error().detail;
    if (page) {
      for (const JobRecord& r : page->jobs) out.push_back(r.id + "/" + r.tenant);
    }
    return out;
  };
  EXPECT_EQ(ids(""), std::vector<std::string>{"old-job/"});
  EXPECT_EQ(ids("alice"), std::vector<std::string>{"alices/alice"});
  EXPECT_EQ(ids(std::nullopt), (std::vector<std::string>{"alices/alice", "old-job/"}));
  EXPECT_EQ(QueryInt("SELECT count(*) FROM jobs WHERE tenant IS NULL"), 0);
  EXPECT_EQ(QueryInt("SELECT count(*) FROM pragma_index_list('jobs') WHERE name = 'jobs_by_tenant'"), 1);
}

TEST_F(SqliteMigrationTest, AnUnreadableMapSpecReadsAsAMapWithDefaults) {
  {
    auto fresh = SqliteStore::Open(SqliteOptions{path_});  // Creates the current schema.
    ASSERT_TRUE(fresh.has_value()) << fresh.error().detail;
  }
  Exec(R"sql(
INSERT INTO jobs (seq, id, task, status, priority, attempts, created_at, started_at, finished_at, map_spec)
VALUES (1, 'garbled', 'sleep', 0, 0, 0, 1700000000000, 0, 0, '{not json'),
       (2, 'array', 'sleep', 0, 0, 0, 1700000000000, 0, 0, '[1,2]'),
       (3, 'wrong-types', 'sleep', 0, 0, 0, 1700000000000, 0, 0,
        '{"chunk":"7","on_error":1,"failed_index":null}');
INSERT INTO job_inputs (seq, input) VALUES (1, '[]'), (2, '[]'), (3, '[]');
)sql");
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  for (const char* id : {"garbled", "array", "wrong-types"}) {
    auto job = (*store)->Get(id);
    ASSERT_TRUE(job.has_value()) << job.error().detail;
    ASSERT_TRUE(job->has_value()) << id;
    EXPECT_EQ((*job)->map, MapSpec{}) << id;
  }
}

// Rows that hold the raw numbers, as an older offload wrote them, read back as the
// statuses those numbers meant; only 0 (queued) and 1 (running) are recovered.
TEST_F(SqliteMigrationTest, StatusNumbersOnDiskReadAsTheStatusesTheyMeant) {
  {
    auto fresh = SqliteStore::Open(SqliteOptions{path_});  // Creates the current schema.
    ASSERT_TRUE(fresh.has_value()) << fresh.error().detail;
  }
  std::string sql;
  for (const auto& [number, status] : kStatusOnDisk) {
    const std::string n = std::to_string(number);
    sql +=
        "INSERT INTO jobs (seq, id, task, status, priority, attempts, created_at, started_at, "
        "finished_at) VALUES (" +
        std::to_string(number + 1) + ", 'n" + n + "', 'sleep', " + n + ", 0, 0, 1700000000000, 0, 0);\n";
    sql += "INSERT INTO job_inputs (seq, input) VALUES (" + std::to_string(number + 1) + ", '{}');\n";
  }
  Exec(sql);
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_TRUE(store.has_value()) << store.error().detail;
  for (const auto& [number, status] : kStatusOnDisk) {
    auto job = (*store)->Get("n" + std::to_string(number));
    ASSERT_TRUE(job.has_value()) << job.error().detail;
    ASSERT_TRUE(job->has_value()) << number;
    EXPECT_EQ((*job)->status, status) << "status " << number << " on disk";
  }
  auto unfinished = (*store)->LoadUnfinished();
  ASSERT_TRUE(unfinished.has_value()) << unfinished.error().detail;
  std::vector<std::string> ids;
  for (const JobRecord& r : *unfinished) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"n0", "n1"}));
}

// And the store writes each status as its number.
TEST_F(SqliteMigrationTest, EachStatusIsWrittenAsItsNumber) {
  {
    auto store = SqliteStore::Open(SqliteOptions{path_});
    ASSERT_TRUE(store.has_value()) << store.error().detail;
    for (const auto& [number, status] : kStatusOnDisk) {
      JobRecord r;
      r.id = "n" + std::to_string(number);
      r.task = "sleep";
      r.status = status;
      r.seq = static_cast<std::uint64_t>(number + 1);
      r.input = std::make_shared<const boost::json::value>(boost::json::object{});
      r.created_at = 1'700'000'000'000;
      if (IsFinished(status)) r.finished_at = r.created_at + 1;
      if (status == JobStatus::kFailed || status == JobStatus::kCanceled) r.error = JobError{"x", "y"};
      auto written = (*store)->Insert(r);
      ASSERT_TRUE(written) << written.error().detail;
    }
  }
  std::map<std::string, int> expected;
  for (const auto& [number, status] : kStatusOnDisk) expected["n" + std::to_string(number)] = number;
  EXPECT_EQ(StatusColumn(), expected);
}

TEST_F(SqliteMigrationTest, ADatabaseFromANewerOffloadIsRefused) {
  Exec("CREATE TABLE t (x); PRAGMA user_version = 99;");
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_FALSE(store.has_value());
  EXPECT_NE(store.error().detail.find("newer"), std::string::npos) << store.error().detail;
}

TEST_F(SqliteMigrationTest, AFileThatIsNotADatabaseIsRefusedWithTheReason) {
  Exec("");                                        // Creates the file...
  std::FILE* f = std::fopen(path_.c_str(), "wb");  // ...then overwrites it with garbage.
  ASSERT_NE(f, nullptr);
  std::fputs("this is not an SQLite database, just text long enough to fill a header....", f);
  std::fclose(f);
  auto store = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, ErrorCode::kUnavailable) << store.error().detail;
}

TEST_F(SqliteMigrationTest, ASecondServerCannotOpenTheSameDatabase) {
  auto first = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_TRUE(first.has_value()) << first.error().detail;
  auto second = SqliteStore::Open(SqliteOptions{path_});
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().detail.find("another offload server"), std::string::npos) << second.error().detail;
}

}  // namespace
}  // namespace offload
