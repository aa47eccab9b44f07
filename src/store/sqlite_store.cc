#include "store/sqlite_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "store/record_text.h"
#include "util/json_reader.h"
#include "util/json_writer.h"

namespace offload {

namespace json = boost::json;

namespace {

constexpr int kSchemaVersion = 8;

constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE jobs (
  seq            INTEGER PRIMARY KEY,
  id             TEXT    NOT NULL UNIQUE,
  task           TEXT    NOT NULL,
  status         INTEGER NOT NULL,
  priority       INTEGER NOT NULL,
  attempts       INTEGER NOT NULL,
  input          TEXT    NOT NULL,
  created_at     INTEGER NOT NULL,
  started_at     INTEGER NOT NULL,
  finished_at    INTEGER NOT NULL,
  result_type    TEXT,
  result         BLOB,
  error_type     TEXT,
  error_message  TEXT,
  progress       REAL,
  error_history  TEXT,
  idem_key       TEXT,
  request_hash   INTEGER
);
CREATE INDEX jobs_by_status ON jobs(status, seq);
CREATE INDEX jobs_by_task ON jobs(task, seq);
CREATE INDEX jobs_by_finish ON jobs(finished_at) WHERE finished_at > 0;
CREATE INDEX jobs_by_idem ON jobs(created_at) WHERE idem_key IS NOT NULL;
)sql";

// Version 2: a job may carry its own timeout (capped by its task's).
constexpr const char* kSchemaV2 = "ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 0;";

// Version 3: the parent of a parallel map keeps its MapSpec, as a JSON object
// {"chunk":K,"on_error":"collect"|"fail_fast","failed_index":I}; NULL for a plain job.
constexpr const char* kSchemaV3 = "ALTER TABLE jobs ADD COLUMN map_spec TEXT;";

// Version 4: an error may carry a detail (a worker's traceback); NULL when it has none.
constexpr const char* kSchemaV4 = "ALTER TABLE jobs ADD COLUMN error_detail TEXT;";

// Version 5: inputs in a table of their own. SQLite rewrites a whole row on UPDATE, so
// with the input in it every change of status wrote the input again: three times per
// job, 6 MB for a map over 2 MB of input, and as much again at each checkpoint.
constexpr const char* kSchemaV5 = R"sql(
CREATE TABLE job_inputs (seq INTEGER PRIMARY KEY, input TEXT NOT NULL);
INSERT INTO job_inputs (seq, input) SELECT seq, input FROM jobs;
ALTER TABLE jobs DROP COLUMN input;
CREATE TRIGGER job_input_goes_with_its_job AFTER DELETE ON jobs BEGIN
  DELETE FROM job_inputs WHERE seq = OLD.seq;
END;
)sql";

// Version 6: files. `files` lists the files that came with a job, as a JSON array of
// {"field","filename","content_type","size","sha256"} (NULL: none); `result_file` is
// {"size","sha256"} for a result kept in a file under files_dir (its blob is then NULL).
constexpr const char* kSchemaV6 = R"sql(
ALTER TABLE jobs ADD COLUMN files TEXT;
ALTER TABLE jobs ADD COLUMN result_file TEXT;
)sql";

// Version 7: a retry names the job it retries (POST /v1/jobs/{id}/retry).
constexpr const char* kSchemaV7 = "ALTER TABLE jobs ADD COLUMN retry_of TEXT;";

// Version 8: a job names its tenant (JobRecord::tenant); '' for one submitted without
// auth, as was every job before. The index serves a tenant's listing. It is partial so
// that a server without auth, whose jobs are all '', keeps no entries in it; SQLite
// uses a partial index only for a query whose WHERE holds the index's term (a bound
// `tenant = ?` does not imply it), so List says `tenant <> ''` too.
constexpr const char* kSchemaV8 = R"sql(
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_tenant ON jobs(tenant, seq) WHERE tenant <> '';
)sql";

// What a row reads as (ReadRow), FROM jobs; column 6 is the input.
constexpr const char* kColumns =
    "seq, id, task, status, priority, attempts, (SELECT input FROM job_inputs WHERE job_inputs.seq = jobs.seq), "
    "created_at, started_at, finished_at, result_type, result, error_type, error_message, progress, error_history, "
    "idem_key, request_hash, timeout_ms, map_spec, error_detail, files, result_file, retry_of, tenant";
// How many they are: a query that selects more columns after them reads those from here.
constexpr int kColumnCount = 25;

// kColumns as List reads them: the result (column 11) only when ?5 asks for results
// and it is JSON, else NULL, so that SQLite never reads the blob (its overflow pages);
// and, as column kColumnCount, the size of the result read, so that List can stop
// before a page's results pass their budget. length() of a blob does not read it.
// kColumns with `expr` read in the result's place.
std::string ColumnsWithResultAs(std::string_view expr) {
  constexpr std::string_view kPlain = ", result, ";
  std::string c = kColumns;
  c.replace(c.find(kPlain), kPlain.size(), ", " + std::string(expr) + ", ");
  return c;
}

const std::string& ListColumns() {
  static const std::string cols = [] {
    constexpr std::string_view kIfAsked = "(?5 AND result_type = 'application/json')";
    return ColumnsWithResultAs("CASE WHEN " + std::string(kIfAsked) + " THEN result END") + ", CASE WHEN " +
           std::string(kIfAsked) + " THEN length(result) ELSE 0 END";
  }();
  return cols;
}

// The SELECT of Get: with `without_result`, NULL in the result's place (SQLite then
// never reads the blob).
const std::string& GetColumns(bool without_result) {
  static const std::string with = std::string("SELECT ") + kColumns + " FROM jobs WHERE id = ?1";
  static const std::string without = "SELECT " + ColumnsWithResultAs("NULL") + " FROM jobs WHERE id = ?1";
  return without_result ? without : with;
}

// Disk trouble is kUnavailable (the client gets 503 and may retry); a broken
// constraint is a conflict; anything else is internal.
Error SqliteError(sqlite3* db, int rc, const std::string& what) {
  std::string msg = what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      return MakeError(ErrorCode::kConflict, msg);
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PERM:
    case SQLITE_NOMEM:
      return MakeError(ErrorCode::kUnavailable, msg);
    default:
      return MakeError(ErrorCode::kInternal, msg);
  }
}

}  // namespace

// One sqlite3 handle and its prepared statements. Not thread-safe: the store hands a
// connection to one thread at a time.
class SqliteStore::Connection {
 public:
  explicit Connection(sqlite3* db) : db_(db) {}
  ~Connection() {
    for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  sqlite3* db() const { return db_; }

  // A cached statement, reset and with bindings cleared. nullptr on error.
  sqlite3_stmt* Prepare(const std::string& sql) {
    auto it = stmts_.find(sql);
    if (it != stmts_.end()) {
      sqlite3_reset(it->second);
      sqlite3_clear_bindings(it->second);
      return it->second;
    }
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
      return nullptr;
    }
    stmts_.emplace(sql, stmt);
    return stmt;
  }

  int Exec(const char* sql) { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }

 private:
  sqlite3* db_;
  std::map<std::string, sqlite3_stmt*> stmts_;
};

// A read connection borrowed from the pool, returned on destruction.
class SqliteStore::ReadLease {
 public:
  ReadLease(SqliteStore* store, std::unique_ptr<Connection> conn, Error error)
      : store_(store), conn_(std::move(conn)), error_(std::move(error)) {}
  ReadLease(ReadLease&&) = default;
  ~ReadLease() {
    if (!conn_) return;
    MutexLock lock(&store_->read_mu_);
    store_->idle_readers_.push_back(std::move(conn_));
  }
  Connection* get() const { return conn_.get(); }
  const Error& error() const { return error_; }

 private:
  SqliteStore* store_;
  std::unique_ptr<Connection> conn_;
  Error error_;
};

namespace {

// `shared`: the job's result as a reader already holds it (see ResultCache); the row
// then has NULL in its place. `cache`: where to remember a large result read here.
JobRecord ReadRow(sqlite3_stmt* st, std::shared_ptr<const Output> shared = nullptr, ResultCache* cache = nullptr) {
  auto text = [&](int col) -> std::string_view {
    const unsigned char* p = sqlite3_column_text(st, col);
    return p ? std::string_view(reinterpret_cast<const char*>(p), sqlite3_column_bytes(st, col)) : std::string_view();
  };
  JobRecord r;
  r.seq = static_cast<std::uint64_t>(sqlite3_column_int64(st, 0));
  r.id = text(1);
  r.task = text(2);
  r.status = static_cast<JobStatus>(sqlite3_column_int(st, 3));
  r.priority = sqlite3_column_int(st, 4);
  r.attempts = sqlite3_column_int(st, 5);
  // Written by WriteJson in kKeepKind form, so it reads back as the same value. Only a
  // row an older offload wrote with a non-finite number ("Infinity") cannot be read.
  ErrorOr<json::value> input = ParseJson(text(6));
  if (!input) {
    spdlog::warn("job {}: its stored input is not readable ({}); it reads as null", r.id, input.error().detail);
  }
  r.input = std::make_shared<const json::value>(input ? std::move(*input) : json::value(nullptr));
  r.created_at = sqlite3_column_int64(st, 7);
  r.started_at = sqlite3_column_int64(st, 8);
  r.finished_at = sqlite3_column_int64(st, 9);
  if (shared && sqlite3_column_type(st, 10) != SQLITE_NULL && shared->content_type == text(10)) {
    r.result = std::move(shared);
  } else if (sqlite3_column_type(st, 10) != SQLITE_NULL && sqlite3_column_type(st, 22) != SQLITE_NULL) {
    auto out = std::make_shared<Output>();
    out->content_type = text(10);
    out->file = ResultFileFromText(text(22));
    r.result = std::move(out);
  } else if (sqlite3_column_type(st, 10) != SQLITE_NULL && sqlite3_column_type(st, 11) == SQLITE_NULL) {
    // Left out by the query (a listing without results): its content type alone.
    auto out = std::make_shared<Output>();
    out->content_type = text(10);
    r.result = std::move(out);
  } else if (sqlite3_column_type(st, 10) != SQLITE_NULL) {
    auto out = std::make_shared<Output>();
    out->content_type = text(10);
    const void* blob = sqlite3_column_blob(st, 11);
    std::string bytes(static_cast<const char*>(blob ? blob : ""), sqlite3_column_bytes(st, 11));
    if (out->is_json()) {
      ErrorOr<json::value> result = ParseJson(bytes);
      if (!result) {
        spdlog::warn("job {}: its stored result is not readable ({}); it reads as null", r.id, result.error().detail);
      }
      out->json = result ? std::move(*result) : json::value(nullptr);
    } else {
      out->bytes = std::move(bytes);
    }
    r.result = std::move(out);
    if (cache) cache->Remember(r.id, r.result, static_cast<std::size_t>(sqlite3_column_bytes(st, 11)));
  }
  if (sqlite3_column_type(st, 12) != SQLITE_NULL) {
    r.error = JobError{std::string(text(12)), std::string(text(13)), std::string(text(20))};
  }
  if (sqlite3_column_type(st, 14) != SQLITE_NULL) r.progress = sqlite3_column_double(st, 14);
  r.error_history = HistoryFromText(text(15));
  r.idempotency_key = text(16);
  r.request_hash = static_cast<std::uint64_t>(sqlite3_column_int64(st, 17));
  r.timeout_ms = sqlite3_column_int64(st, 18);
  if (sqlite3_column_type(st, 19) != SQLITE_NULL) r.map = MapSpecFromText(text(19));
  if (sqlite3_column_type(st, 21) != SQLITE_NULL) r.files = FilesFromText(text(21));
  if (sqlite3_column_type(st, 23) != SQLITE_NULL) r.retry_of = text(23);
  r.tenant = text(24);
  return r;
}

// Binds the mutable columns shared by INSERT and UPDATE, starting at index `i`.
void BindState(sqlite3_stmt* st, int i, const JobRecord& r, std::string* result_text, std::string* history_text) {
  sqlite3_bind_int(st, i, static_cast<int>(r.status));
  sqlite3_bind_int(st, i + 1, r.attempts);
  sqlite3_bind_int64(st, i + 2, r.started_at);
  sqlite3_bind_int64(st, i + 3, r.finished_at);
  if (r.result) {
    sqlite3_bind_text(st, i + 4, r.result->content_type.data(), static_cast<int>(r.result->content_type.size()),
                      SQLITE_STATIC);
    if (r.result->file) {
      sqlite3_bind_null(st, i + 5);
    } else if (r.result->is_json()) {
      *result_text = WriteJson(r.result->json, JsonNumbers::kKeepKind);
      sqlite3_bind_blob64(st, i + 5, result_text->data(), result_text->size(), SQLITE_STATIC);
    } else {
      sqlite3_bind_blob64(st, i + 5, r.result->bytes.data(), r.result->bytes.size(), SQLITE_STATIC);
    }
  } else {
    sqlite3_bind_null(st, i + 4);
    sqlite3_bind_null(st, i + 5);
  }
  if (r.error) {
    sqlite3_bind_text(st, i + 6, r.error->type.data(), static_cast<int>(r.error->type.size()), SQLITE_STATIC);
    sqlite3_bind_text(st, i + 7, r.error->message.data(), static_cast<int>(r.error->message.size()), SQLITE_STATIC);
  } else {
    sqlite3_bind_null(st, i + 6);
    sqlite3_bind_null(st, i + 7);
  }
  if (r.progress)
    sqlite3_bind_double(st, i + 8, *r.progress);
  else
    sqlite3_bind_null(st, i + 8);
  *history_text = HistoryToText(r.error_history);
  if (history_text->empty())
    sqlite3_bind_null(st, i + 9);
  else
    sqlite3_bind_text(st, i + 9, history_text->data(), static_cast<int>(history_text->size()), SQLITE_STATIC);
}

// The result's file at index `i`; NULL for a result held in the row (or none).
void BindResultFile(sqlite3_stmt* st, int i, const JobRecord& r, std::string* text) {
  if (!r.result || !r.result->file) return;
  *text = ResultFileToText(*r.result->file);
  sqlite3_bind_text(st, i, text->data(), static_cast<int>(text->size()), SQLITE_STATIC);
}

// The error's detail at index `i`; NULL without one (most errors).
void BindErrorDetail(sqlite3_stmt* st, int i, const JobRecord& r) {
  if (r.error && !r.error->detail.empty()) {
    sqlite3_bind_text(st, i, r.error->detail.data(), static_cast<int>(r.error->detail.size()), SQLITE_STATIC);
  }
}

}  // namespace

SqliteStore::SqliteStore(SqliteOptions options) : options_(std::move(options)) {}

SqliteStore::~SqliteStore() {
  writer_.reset();
  idle_readers_.clear();
  if (lock_fd_ >= 0) close(lock_fd_);
}

ErrorOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const SqliteOptions& options) {
  std::unique_ptr<SqliteStore> store(new SqliteStore(options));
  std::error_code fs_ec;
  auto parent = std::filesystem::path(options.path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, fs_ec);
  if (fs_ec) {
    return MakeError(ErrorCode::kUnavailable, "cannot create " + parent.string() + ": " + fs_ec.message());
  }
  const std::string lock_path = options.path + ".lock";
  store->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (store->lock_fd_ < 0) {
    return MakeError(ErrorCode::kUnavailable, "cannot open " + lock_path + ": " + std::strerror(errno));
  }
  if (flock(store->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return MakeError(ErrorCode::kUnavailable,
                     "another offload server is using " + options.path + " (" + lock_path + " is locked)");
  }
  // Only a file that does not exist is a new store. SQLite takes an empty file for an
  // empty database, but an empty file where a database should be is nearly always a
  // truncated copy or a failed restore: starting on it would hide every job.
  struct stat st {};
  if (::stat(options.path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0) {
    return MakeError(ErrorCode::kUnavailable,
                     options.path +
                         " is an empty file (0 bytes), not an offload database (a truncated copy?); "
                         "restore the database, or remove the file to start an empty store");
  }
  auto writer = store->Connect(/*migrate=*/true);
  if (!writer) return writer.error();
  MutexLock lock(&store->write_mu_);
  store->writer_ = std::move(*writer);
  // Replaces SQLite's auto-checkpoint, which is a WAL hook too (OnIdle).
  sqlite3_wal_hook(
      store->writer_->db(),
      [](void* frames, sqlite3*, const char*, int n) {
        *static_cast<int*>(frames) = n;
        return SQLITE_OK;
      },
      &store->wal_frames_);
  return store;
}

ErrorOr<std::unique_ptr<SqliteStore::Connection>> SqliteStore::Connect(bool migrate) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(options_.path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  auto conn = std::make_unique<Connection>(raw);
  if (rc != SQLITE_OK) return SqliteError(raw, rc, "cannot open " + options_.path);
  sqlite3_busy_timeout(raw, 5000);
  sqlite3_extended_result_codes(raw, 1);
  std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") +
                        (options_.synchronous_full ? "FULL" : "NORMAL") +
                        "; PRAGMA temp_store=MEMORY; PRAGMA journal_size_limit=16777216;";
  if (!migrate) pragmas = "PRAGMA query_only=1;";
  if ((rc = conn->Exec(pragmas.c_str())) != SQLITE_OK) {
    return SqliteError(raw, rc, options_.path + " is not a usable SQLite database");
  }
  if (!migrate) return conn;
  if (options_.max_bytes > 0) {
    // Page size is 4096 unless the file says otherwise; the cap is approximate.
    const std::string cap =
        "PRAGMA max_page_count=" + std::to_string(std::max<std::int64_t>(options_.max_bytes / 4096, 16));
    if ((rc = conn->Exec(cap.c_str())) != SQLITE_OK) return SqliteError(raw, rc, "cannot set max_page_count");
  }

  sqlite3_stmt* st = conn->Prepare("PRAGMA user_version");
  if (!st || sqlite3_step(st) != SQLITE_ROW) {
    return SqliteError(raw, sqlite3_errcode(raw), options_.path + " is not a usable SQLite database");
  }
  const int version = sqlite3_column_int(st, 0);
  sqlite3_reset(st);
  if (version > kSchemaVersion) {
    return MakeError(ErrorCode::kUnavailable, options_.path + " has schema version " + std::to_string(version) +
                                                  ", newer than this offload (" + std::to_string(kSchemaVersion) + ")");
  }
  // Migrations run in order, each in the transaction that bumps user_version, so a
  // crash mid-way leaves the file at the last version it fully reached.
  struct Migration {
    int to;
    const char* sql;
  };
  static const Migration kMigrations[] = {{1, kSchemaV1}, {2, kSchemaV2}, {3, kSchemaV3}, {4, kSchemaV4},
                                          {5, kSchemaV5}, {6, kSchemaV6}, {7, kSchemaV7}, {8, kSchemaV8}};
  for (const Migration& m : kMigrations) {
    if (version >= m.to) continue;
    std::string sql = std::string(m.to == 1 ? "PRAGMA auto_vacuum=INCREMENTAL; " : "") + "BEGIN; " + m.sql +
                      "PRAGMA user_version=" + std::to_string(m.to) + "; COMMIT;";
    if ((rc = conn->Exec(sql.c_str())) != SQLITE_OK) {
      Error e = SqliteError(raw, rc, "cannot migrate " + options_.path + " to schema version " + std::to_string(m.to));
      conn->Exec("ROLLBACK");
      return e;
    }
    spdlog::info("store: {} is at schema version {}", options_.path, m.to);
  }
  return conn;
}

SqliteStore::ReadLease SqliteStore::AcquireReader() {
  {
    MutexLock lock(&read_mu_);
    if (!idle_readers_.empty()) {
      auto conn = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return ReadLease(this, std::move(conn), {});
    }
  }
  auto conn = Connect(/*migrate=*/false);
  if (!conn) return ReadLease(this, nullptr, conn.error());
  return ReadLease(this, std::move(*conn), {});
}

// Rolls back the open transaction and returns the error that caused it.
static Error RollBack(SqliteStore::Connection& c, const std::string& what) {
  Error e = SqliteError(c.db(), sqlite3_errcode(c.db()), what);
  c.Exec("ROLLBACK");
  return e;
}

Status SqliteStore::Apply(const std::vector<StoreOp>& ops) {
  MutexLock lock(&write_mu_);
  if (wal_frames_ >= kCheckpointFrames) CheckpointLocked();
  Connection& c = *writer_;
  int rc = c.Exec("BEGIN IMMEDIATE");
  if (rc != SQLITE_OK) return SqliteError(c.db(), rc, "cannot begin a transaction");
  std::string result_text, history_text, map_text, files_text, result_file_text;
  for (const StoreOp& op : ops) {
    const JobRecord& r = op.job;
    sqlite3_stmt* st;
    if (op.kind == StoreOp::Kind::kInsert) {
      st = c.Prepare(
          "INSERT INTO jobs (seq, id, task, status, priority, attempts, created_at, started_at, finished_at, "
          "result_type, result, error_type, error_message, progress, error_history, idem_key, request_hash, "
          "timeout_ms, map_spec, error_detail, files, result_file, retry_of, tenant) "
          "VALUES (?1, ?2, ?3, ?6, ?4, ?7, ?17, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?18, ?19, ?20, ?21, ?22, "
          "?23, ?24, ?25)");
      if (!st) return RollBack(c, "cannot prepare an insert");
      sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(r.seq));
      sqlite3_bind_text(st, 2, r.id.data(), static_cast<int>(r.id.size()), SQLITE_STATIC);
      sqlite3_bind_text(st, 3, r.task.data(), static_cast<int>(r.task.size()), SQLITE_STATIC);
      sqlite3_bind_int(st, 4, r.priority);
      BindState(st, 6, r, &result_text, &history_text);
      if (!r.idempotency_key.empty()) {
        sqlite3_bind_text(st, 16, r.idempotency_key.data(), static_cast<int>(r.idempotency_key.size()), SQLITE_STATIC);
      }
      sqlite3_bind_int64(st, 17, r.created_at);
      sqlite3_bind_int64(st, 18, static_cast<sqlite3_int64>(r.request_hash));
      sqlite3_bind_int64(st, 19, r.timeout_ms);
      map_text = MapSpecToText(r.map);
      if (r.map) sqlite3_bind_text(st, 20, map_text.data(), static_cast<int>(map_text.size()), SQLITE_STATIC);
      BindErrorDetail(st, 21, r);
      files_text = FilesToText(r.files);
      if (!files_text.empty()) {
        sqlite3_bind_text(st, 22, files_text.data(), static_cast<int>(files_text.size()), SQLITE_STATIC);
      }
      BindResultFile(st, 23, r, &result_file_text);
      if (!r.retry_of.empty()) {
        sqlite3_bind_text(st, 24, r.retry_of.data(), static_cast<int>(r.retry_of.size()), SQLITE_STATIC);
      }
      sqlite3_bind_text(st, 25, r.tenant.data(), static_cast<int>(r.tenant.size()), SQLITE_STATIC);
    } else {
      st = c.Prepare(
          "UPDATE jobs SET status = ?1, attempts = ?2, started_at = ?3, finished_at = ?4, result_type = ?5, "
          "result = ?6, error_type = ?7, error_message = ?8, progress = ?9, error_history = ?10, map_spec = ?13, "
          "error_detail = ?14, result_file = ?15 WHERE seq = ?11 AND id = ?12");
      if (!st) return RollBack(c, "cannot prepare an update");
      BindState(st, 1, r, &result_text, &history_text);
      sqlite3_bind_int64(st, 11, static_cast<sqlite3_int64>(r.seq));
      sqlite3_bind_text(st, 12, r.id.data(), static_cast<int>(r.id.size()), SQLITE_STATIC);
      map_text = MapSpecToText(r.map);
      if (r.map) sqlite3_bind_text(st, 13, map_text.data(), static_cast<int>(map_text.size()), SQLITE_STATIC);
      BindErrorDetail(st, 14, r);
      BindResultFile(st, 15, r, &result_file_text);
    }
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      Error e = SqliteError(c.db(), rc, "cannot write job " + r.id);
      if (e.code == ErrorCode::kConflict) e.detail = "job " + r.id + " exists";
      c.Exec("ROLLBACK");
      return e;
    }
    if (op.kind == StoreOp::Kind::kUpdate && sqlite3_changes(c.db()) == 0) {
      c.Exec("ROLLBACK");
      return MakeError(ErrorCode::kNotFound, "no job " + r.id);
    }
    if (op.kind == StoreOp::Kind::kInsert) {
      // After the job's row, so that a duplicate id fails there, as a conflict.
      sqlite3_stmt* in = c.Prepare("INSERT INTO job_inputs (seq, input) VALUES (?1, ?2)");
      if (!in) return RollBack(c, "cannot prepare an insert");
      const std::string input = r.input ? WriteJson(*r.input, JsonNumbers::kKeepKind) : "null";
      sqlite3_bind_int64(in, 1, static_cast<sqlite3_int64>(r.seq));
      sqlite3_bind_text(in, 2, input.data(), static_cast<int>(input.size()), SQLITE_STATIC);
      rc = sqlite3_step(in);
      sqlite3_reset(in);
      sqlite3_clear_bindings(in);  // `input` goes at the end of this block.
      if (rc != SQLITE_DONE) {
        Error e = SqliteError(c.db(), rc, "cannot write the input of job " + r.id);
        c.Exec("ROLLBACK");
        return e;
      }
    }
  }
  if ((rc = c.Exec("COMMIT")) != SQLITE_OK) {
    Error e = SqliteError(c.db(), rc, "cannot commit");
    c.Exec("ROLLBACK");
    return e;
  }
  // The job's own copy of a large binary result is what later readers share while
  // it lives (a response still sending it, say).
  for (const StoreOp& op : ops) {
    const auto& result = op.job.result;
    if (result && !result->is_json() && !result->file) results_.Remember(op.job.id, result, result->bytes.size());
  }
  return {};
}

void SqliteStore::OnIdle() {
  MutexLock lock(&write_mu_);
  if (wal_frames_ >= kCheckpointFrames) CheckpointLocked();
}

void SqliteStore::CheckpointLocked() {
  int log = 0, done = 0;
  const int rc = sqlite3_wal_checkpoint_v2(writer_->db(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
  if (rc != SQLITE_OK) {
    // Tried again at the next write or idle moment: said once a minute.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_checkpoint_warning_ >= std::chrono::minutes(1)) {
      last_checkpoint_warning_ = now;
      spdlog::warn("store: WAL checkpoint failed: {}", sqlite3_errmsg(writer_->db()));
    }
    return;
  }
  // Pages a reader still needs stay: the WAL starts over only once they are copied.
  wal_frames_ = log - done;
}

ErrorOr<std::optional<JobRecord>> SqliteStore::Get(const std::string& id) {
  ReadLease lease = AcquireReader();
  if (!lease.get()) return lease.error();
  // A result some reader holds is shared, and not read from the file (nor held) again.
  std::shared_ptr<const Output> shared = results_.Find(id);
  sqlite3_stmt* st = lease.get()->Prepare(GetColumns(shared != nullptr));
  if (!st) return SqliteError(lease.get()->db(), SQLITE_ERROR, "cannot read");
  sqlite3_bind_text(st, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
  int rc = sqlite3_step(st);
  std::optional<JobRecord> out;
  if (rc == SQLITE_ROW)
    out = ReadRow(st, std::move(shared), &results_);
  else if (rc != SQLITE_DONE)
    return SqliteError(lease.get()->db(), rc, "cannot read job " + id);
  sqlite3_reset(st);
  return out;
}

ErrorOr<JobPage> SqliteStore::List(const JobQuery& q) {
  ReadLease lease = AcquireReader();
  if (!lease.get()) return lease.error();
  std::string sql = "SELECT " + ListColumns() + " FROM jobs WHERE seq < ?1";
  if (q.status) sql += " AND status = ?2";
  if (q.task) sql += " AND task = ?3";
  // The second term lets SQLite use jobs_by_tenant (see kSchemaV8).
  if (q.tenant) sql += q.tenant->empty() ? " AND tenant = ''" : " AND tenant = ?6 AND tenant <> ''";
  sql += " ORDER BY seq DESC LIMIT ?4";
  sqlite3_stmt* st = lease.get()->Prepare(sql);
  if (!st) return SqliteError(lease.get()->db(), SQLITE_ERROR, "cannot list");
  sqlite3_bind_int64(
      st, 1,
      q.before_seq > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<sqlite3_int64>(q.before_seq));
  if (q.status) sqlite3_bind_int(st, 2, static_cast<int>(*q.status));
  if (q.task) sqlite3_bind_text(st, 3, q.task->data(), static_cast<int>(q.task->size()), SQLITE_STATIC);
  if (q.tenant && !q.tenant->empty()) {
    sqlite3_bind_text(st, 6, q.tenant->data(), static_cast<int>(q.tenant->size()), SQLITE_STATIC);
  }
  sqlite3_bind_int64(st, 4, static_cast<sqlite3_int64>(q.limit) + 1);
  sqlite3_bind_int(st, 5, q.include_result ? 1 : 0);
  JobPage page;
  std::size_t result_bytes = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (page.jobs.size() == q.limit) {
      page.next_before_seq = page.jobs.back().seq;
      break;
    }
    result_bytes += static_cast<std::size_t>(sqlite3_column_int64(st, kColumnCount));
    if (q.max_result_bytes > 0 && result_bytes > q.max_result_bytes) {
      sqlite3_reset(st);
      return MakeError(ErrorCode::kResponseTooLarge,
                       "the results of the first " + std::to_string(page.jobs.size() + 1) +
                           " jobs of this page are over " + std::to_string(q.max_result_bytes) + " bytes");
    }
    page.jobs.push_back(ReadRow(st));
  }
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqliteError(lease.get()->db(), rc, "cannot list jobs");
  return page;
}

ErrorOr<std::size_t> SqliteStore::RemoveFinishedBefore(UnixMillis cutoff) {
  std::size_t removed = 0;
  // In chunks, so that submits queued behind the write lock wait milliseconds, not
  // the whole sweep.
  for (;;) {
    MutexLock lock(&write_mu_);
    Connection& c = *writer_;
    sqlite3_stmt* st = c.Prepare(
        "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE finished_at > 0 AND finished_at < ?1 "
        "LIMIT 5000)");
    if (!st) return SqliteError(c.db(), SQLITE_ERROR, "cannot prepare retention");
    sqlite3_bind_int64(st, 1, cutoff);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return SqliteError(c.db(), rc, "cannot delete expired jobs");
    const int n = sqlite3_changes(c.db());
    removed += static_cast<std::size_t>(n);
    if (n < 5000 && removed > 0) c.Exec("PRAGMA incremental_vacuum(2000)");
    // Not a write of the queue's, so no OnIdle follows it.
    if (wal_frames_ >= kCheckpointFrames) CheckpointLocked();
    if (n < 5000) break;
  }
  return removed;
}

ErrorOr<std::vector<std::string>> SqliteStore::FinishedWithFilesBefore(UnixMillis cutoff) {
  ReadLease lease = AcquireReader();
  if (!lease.get()) return lease.error();
  sqlite3_stmt* st = lease.get()->Prepare(
      "SELECT id FROM jobs WHERE finished_at > 0 AND finished_at < ?1 AND (files IS NOT NULL OR result_file IS NOT "
      "NULL)");
  if (!st) return SqliteError(lease.get()->db(), SQLITE_ERROR, "cannot read");
  sqlite3_bind_int64(st, 1, cutoff);
  std::vector<std::string> out;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), sqlite3_column_bytes(st, 0));
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return SqliteError(lease.get()->db(), rc, "cannot list expired jobs with files");
  return out;
}

ErrorOr<std::vector<JobRecord>> SqliteStore::LoadUnfinished() {
  ReadLease lease = AcquireReader();
  if (!lease.get()) return lease.error();
  sqlite3_stmt* st =
      lease.get()->Prepare(std::string("SELECT ") + kColumns + " FROM jobs WHERE status IN (0, 1) ORDER BY seq");
  if (!st) return SqliteError(lease.get()->db(), SQLITE_ERROR, "cannot read");
  std::vector<JobRecord> out;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) out.push_back(ReadRow(st));
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return SqliteError(lease.get()->db(), rc, "cannot load unfinished jobs");
  return out;
}

ErrorOr<std::uint64_t> SqliteStore::MaxSeq() {
  ReadLease lease = AcquireReader();
  if (!lease.get()) return lease.error();
  sqlite3_stmt* st = lease.get()->Prepare("SELECT COALESCE(MAX(seq), 0) FROM jobs");
  if (!st || sqlite3_step(st) != SQLITE_ROW) return SqliteError(lease.get()->db(), SQLITE_ERROR, "cannot read");
  auto seq = static_cast<std::uint64_t>(sqlite3_column_int64(st, 0));
  sqlite3_reset(st);
  return seq;
}

ErrorOr<std::vector<IdempotencyEntry>> SqliteStore::LoadIdempotencyKeys(UnixMillis since) {
  ReadLease lease = AcquireReader();
  if (!lease.get()) return lease.error();
  sqlite3_stmt* st = lease.get()->Prepare(
      "SELECT task, tenant, idem_key, id, request_hash, created_at FROM jobs "
      "WHERE idem_key IS NOT NULL AND created_at >= ?1 ORDER BY seq");
  if (!st) return SqliteError(lease.get()->db(), SQLITE_ERROR, "cannot read");
  sqlite3_bind_int64(st, 1, since);
  std::vector<IdempotencyEntry> out;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    auto col = [&](int i) { return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, i))); };
    out.push_back(IdempotencyEntry{col(0), col(1), col(2), col(3),
                                   static_cast<std::uint64_t>(sqlite3_column_int64(st, 4)),
                                   sqlite3_column_int64(st, 5)});
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return SqliteError(lease.get()->db(), rc, "cannot load idempotency keys");
  return out;
}

}  // namespace offload
