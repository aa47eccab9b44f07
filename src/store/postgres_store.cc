#include "store/postgres_store.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "store/pg_connection.h"
#include "store/record_text.h"
#include "util/json_reader.h"
#include "util/json_writer.h"

namespace offload {

namespace json = boost::json;

namespace {

// Version 1. Times are Unix milliseconds; status is JobStatus's number (the same on
// disk as SQLite's: tests/store/sqlite_migration_test.cc pins them); seq and
// request_hash are unsigned 64-bit values kept in bigint's bits. Inputs and results
// stay in the row: PostgreSQL moves a large value out of line (TOAST) and an UPDATE
// that does not change it does not write it again.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE offload_jobs (
  seq            bigint   PRIMARY KEY,
  id             text     NOT NULL UNIQUE,
  task           text     NOT NULL,
  status         smallint NOT NULL,
  priority       integer  NOT NULL,
  attempts       integer  NOT NULL,
  input          text     NOT NULL,
  created_at     bigint   NOT NULL,
  started_at     bigint   NOT NULL,
  finished_at    bigint   NOT NULL,
  result_type    text,
  result         bytea,
  error_type     text,
  error_message  text,
  error_detail   text,
  progress       double precision,
  error_history  text,
  idem_key       text,
  request_hash   bigint   NOT NULL DEFAULT 0,
  timeout_ms     bigint   NOT NULL DEFAULT 0,
  map_spec       text,
  files          text,
  result_file    text
);
CREATE INDEX offload_jobs_by_status ON offload_jobs (status, seq);
CREATE INDEX offload_jobs_by_task ON offload_jobs (task, seq);
CREATE INDEX offload_jobs_by_finish ON offload_jobs (finished_at) WHERE finished_at > 0;
CREATE INDEX offload_jobs_by_idem ON offload_jobs (created_at) WHERE idem_key IS NOT NULL;
)sql";

// Advisory lock keys, per schema: the migration's (held while a server migrates) and
// the server's (held by the write connection while the server runs).
constexpr const char* kMigrationLock = "hashtextextended('offload migrate ' || current_schema(), 0)";
constexpr const char* kServerLock = "hashtextextended('offload server ' || current_schema(), 0)";

// What ReadRow reads, in its order; column 6 is the input, 11 the result.
constexpr const char* kColumns =
    "seq, id, task, status, priority, attempts, input, created_at, started_at, finished_at, result_type, result, "
    "error_type, error_message, progress, error_history, idem_key, request_hash, timeout_ms, map_spec, "
    "error_detail, files, result_file";

// kColumns with `expr` read in the result's place.
std::string ColumnsWithResultAs(std::string_view expr) {
  constexpr std::string_view kPlain = ", result, ";
  std::string c = kColumns;
  c.replace(c.find(kPlain), kPlain.size(), ", " + std::string(expr) + ", ");
  return c;
}

JobRecord ReadRow(const PgResult& res, int row, std::shared_ptr<const Output> shared = nullptr,
                  ResultCache* cache = nullptr) {
  auto text = [&](int col) { return res.Bytes(row, col); };
  JobRecord r;
  r.seq = static_cast<std::uint64_t>(res.Int(row, 0));
  r.id = text(1);
  r.task = text(2);
  r.status = static_cast<JobStatus>(res.Int(row, 3));
  r.priority = static_cast<int>(res.Int(row, 4));
  r.attempts = static_cast<int>(res.Int(row, 5));
  ErrorOr<json::value> input = ParseJson(text(6));
  if (!input) {
    spdlog::warn("job {}: its stored input is not readable ({}); it reads as null", r.id, input.error().detail);
  }
  r.input = std::make_shared<const json::value>(input ? std::move(*input) : json::value(nullptr));
  r.created_at = res.Int(row, 7);
  r.started_at = res.Int(row, 8);
  r.finished_at = res.Int(row, 9);
  if (!res.null(row, 10)) {
    const std::string_view type = text(10);
    if (shared && shared->content_type == type) {
      r.result = std::move(shared);
    } else {
      auto out = std::make_shared<Output>();
      out->content_type = type;
      if (!res.null(row, 22)) {
        out->file = ResultFileFromText(text(22));
      } else if (!res.null(row, 11)) {
        // (A null here is a result the query left out: its content type alone.)
        const std::string_view bytes = text(11);
        if (out->is_json()) {
          ErrorOr<json::value> result = ParseJson(bytes);
          if (!result) {
            spdlog::warn("job {}: its stored result is not readable ({}); it reads as null", r.id,
                         result.error().detail);
          }
          out->json = result ? std::move(*result) : json::value(nullptr);
        } else {
          out->bytes = bytes;
        }
        if (cache) cache->Remember(r.id, out, bytes.size());
      }
      r.result = std::move(out);
    }
  }
  if (!res.null(row, 12)) r.error = JobError{std::string(text(12)), std::string(text(13)), std::string(text(20))};
  if (!res.null(row, 14)) r.progress = res.Double(row, 14);
  r.error_history = HistoryFromText(text(15));
  r.idempotency_key = text(16);
  r.request_hash = static_cast<std::uint64_t>(res.Int(row, 17));
  r.timeout_ms = res.Int(row, 18);
  if (!res.null(row, 19)) r.map = MapSpecFromText(text(19));
  if (!res.null(row, 21)) r.files = FilesFromText(text(21));
  return r;
}

// The columns an UPDATE changes, as parameters, in kUpdate's order (from $3).
void AddState(const JobRecord& r, PgParams* p) {
  p->Int(static_cast<int>(r.status)).Int(r.attempts).Int(r.started_at).Int(r.finished_at);
  if (r.result) {
    p->Text(r.result->content_type);
    if (r.result->file) {
      p->Null();
    } else if (r.result->is_json()) {
      p->OwnBinary(WriteJson(r.result->json, JsonNumbers::kKeepKind));
    } else {
      p->Binary(r.result->bytes);
    }
  } else {
    p->Null().Null();
  }
  if (r.error) {
    p->Text(r.error->type).Text(r.error->message).TextOrNull(r.error->detail);
  } else {
    p->Null().Null().Null();
  }
  if (r.progress) {
    p->Double(*r.progress);
  } else {
    p->Null();
  }
  p->OwnOrNull(HistoryToText(r.error_history)).OwnOrNull(MapSpecToText(r.map));
  p->OwnOrNull(r.result && r.result->file ? ResultFileToText(*r.result->file) : std::string());
}

constexpr const char* kUpdate =
    "UPDATE offload_jobs SET status = $3, attempts = $4, started_at = $5, finished_at = $6, result_type = $7, "
    "result = $8, error_type = $9, error_message = $10, error_detail = $11, progress = $12, error_history = $13, "
    "map_spec = $14, result_file = $15 WHERE seq = $1 AND id = $2";

// kUpdate's columns first, then those only an INSERT sets.
constexpr const char* kInsert =
    "INSERT INTO offload_jobs (seq, id, status, attempts, started_at, finished_at, result_type, result, error_type, "
    "error_message, error_detail, progress, error_history, map_spec, result_file, task, priority, input, "
    "created_at, idem_key, request_hash, timeout_ms, files) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, "
    "$23)";

PgCall WriteCall(const StoreOp& op) {
  const JobRecord& r = op.job;
  PgCall call{op.kind == StoreOp::Kind::kInsert ? kInsert : kUpdate, {}};
  call.params.Int(static_cast<std::int64_t>(r.seq)).Text(r.id);
  AddState(r, &call.params);
  if (op.kind == StoreOp::Kind::kInsert) {
    call.params.Text(r.task).Int(r.priority).Own(r.input ? WriteJson(*r.input, JsonNumbers::kKeepKind) : "null");
    call.params.Int(r.created_at).TextOrNull(r.idempotency_key).Int(static_cast<std::int64_t>(r.request_hash));
    call.params.Int(r.timeout_ms).OwnOrNull(FilesToText(r.files));
  }
  return call;
}

}  // namespace

// A read connection borrowed from the pool, returned on destruction (or dropped, when
// it broke).
class PostgresStore::ReadLease {
 public:
  ReadLease(PostgresStore* store, std::unique_ptr<PgConnection> conn) : store_(store), conn_(std::move(conn)) {}
  ReadLease(ReadLease&& o) noexcept : store_(o.store_), conn_(std::move(o.conn_)) { o.store_ = nullptr; }
  ReadLease& operator=(ReadLease&&) = delete;
  ~ReadLease() {
    if (!store_) return;
    MutexLock lock(&store_->read_mu_);
    --store_->readers_out_;
    if (conn_ && !conn_->broken()) store_->idle_readers_.push_back(std::move(conn_));
    store_->reader_free_.Signal();
  }
  PgConnection* get() const { return conn_.get(); }
  void Hold(std::unique_ptr<PgConnection> conn) { conn_ = std::move(conn); }

 private:
  PostgresStore* store_;
  std::unique_ptr<PgConnection> conn_;
};

PostgresStore::PostgresStore(PostgresOptions options) : options_(std::move(options)) {}

PostgresStore::~PostgresStore() = default;

ErrorOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(const PostgresOptions& options) {
  if (options.connections < 2) {
    return MakeError(ErrorCode::kInvalidArgument, "postgres_connections must be at least 2");
  }
  std::unique_ptr<PostgresStore> store(new PostgresStore(options));
  auto writer = store->Connect(/*writer=*/true, /*migrate=*/true);
  if (!writer) return writer.error();
  MutexLock lock(&store->write_mu_);
  store->writer_ = std::move(*writer);
  return store;
}

ErrorOr<std::unique_ptr<PgConnection>> PostgresStore::Connect(bool writer, bool migrate) {
  auto conn = PgConnection::Connect(options_.conninfo);
  if (!conn || !writer) return conn;
  PgConnection& c = **conn;
  if (migrate) {
    // Servers starting together take turns: the first migrates, the rest find it done.
    if (auto r = c.Exec(std::string("SELECT pg_advisory_lock(") + kMigrationLock + ")"); !r) return r.error();
    struct Unlock {
      PgConnection* c;
      ~Unlock() { (void)c->Exec(std::string("SELECT pg_advisory_unlock(") + kMigrationLock + ")"); }
    } unlock{&c};
    if (Status s = c.ExecScript("CREATE TABLE IF NOT EXISTS offload_schema (version integer NOT NULL)"); !s) {
      return s.error();
    }
    auto v = c.Exec("SELECT version FROM offload_schema");
    if (!v) return v.error();
    const int version = v->rows() > 0 ? static_cast<int>(v->Int(0, 0)) : 0;
    if (version > kSchemaVersion) {
      return MakeError(ErrorCode::kUnavailable, "the PostgreSQL schema has version " + std::to_string(version) +
                                                    ", newer than this offload (" + std::to_string(kSchemaVersion) +
                                                    ")");
    }
    struct Migration {
      int to;
      const char* sql;
    };
    static const Migration kMigrations[] = {{1, kSchemaV1}};
    for (const Migration& m : kMigrations) {
      if (version >= m.to) continue;
      // Each migration in the transaction that records it: a failure leaves the schema
      // at the last version it fully reached.
      const std::string bump = version == 0 && m.to == 1
                                   ? "INSERT INTO offload_schema (version) VALUES (1);"
                                   : "UPDATE offload_schema SET version = " + std::to_string(m.to) + ";";
      if (Status s = c.ExecScript(std::string("BEGIN;") + m.sql + bump + "COMMIT;"); !s) {
        (void)c.ExecScript("ROLLBACK");
        return MakeError(s.error().code, "cannot migrate the PostgreSQL schema to version " + std::to_string(m.to) +
                                             ": " + s.error().detail);
      }
      spdlog::info("store: the PostgreSQL schema is at version {}", m.to);
    }
  }
  auto locked = c.Exec(std::string("SELECT pg_try_advisory_lock(") + kServerLock + ")");
  if (!locked) return locked.error();
  if (locked->Bytes(0, 0) != std::string_view("\x01", 1)) {
    return MakeError(ErrorCode::kUnavailable,
                     "another offload server is using this PostgreSQL schema (" + RedactConnInfo(options_.conninfo) +
                         "); until offload runs as a cluster, give each server its own schema or database");
  }
  return conn;
}

ErrorOr<PgConnection*> PostgresStore::WriterLocked() {
  if (!writer_ || writer_->broken()) {
    writer_.reset();
    auto conn = Connect(/*writer=*/true, /*migrate=*/false);
    if (!conn) return conn.error();
    writer_ = std::move(*conn);
  }
  return writer_.get();
}

ErrorOr<PostgresStore::ReadLease> PostgresStore::AcquireReader() {
  {
    MutexLock lock(&read_mu_);
    // The writer holds one of the connections.
    while (idle_readers_.empty() && readers_out_ >= options_.connections - 1) reader_free_.Wait(&read_mu_);
    ++readers_out_;
    if (!idle_readers_.empty()) {
      auto conn = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return ReadLease(this, std::move(conn));
    }
  }
  // The lease counts from here, so a failed connect gives its place back.
  ReadLease lease(this, nullptr);
  auto conn = Connect(/*writer=*/false, /*migrate=*/false);
  if (!conn) return conn.error();
  lease.Hold(std::move(*conn));
  return lease;
}

Status PostgresStore::Apply(const std::vector<StoreOp>& ops) {
  std::vector<PgCall> calls;
  calls.reserve(ops.size());
  for (const StoreOp& op : ops) calls.push_back(WriteCall(op));
  // An update that finds no row fails the batch, as a missing job.
  auto check = [&ops](const std::vector<PgResult>& results) -> Status {
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].kind == StoreOp::Kind::kUpdate && results[i].changed() == 0) {
        return MakeError(ErrorCode::kNotFound, "no job " + ops[i].job.id);
      }
    }
    return {};
  };
  {
    MutexLock lock(&write_mu_);
    auto writer = WriterLocked();
    if (!writer) return writer.error();
    Status s = (*writer)->Transaction(calls, check);
    if (!s && (*writer)->broken() && !(*writer)->commit_sent()) {
      // Cut before its commit was sent (PostgreSQL restarted since the last write, say):
      // nothing was applied, so it runs once more, on a new connection.
      writer = WriterLocked();
      if (!writer) return writer.error();
      s = (*writer)->Transaction(calls, check);
    }
    if (!s) {
      if (s.error().code == ErrorCode::kConflict && ops.size() == 1) {
        return MakeError(ErrorCode::kConflict, "job " + ops[0].job.id + " exists");
      }
      return s;
    }
  }
  for (const StoreOp& op : ops) {
    const auto& result = op.job.result;
    if (result && !result->is_json() && !result->file) results_.Remember(op.job.id, result, result->bytes.size());
  }
  return {};
}

template <typename Fn>
auto PostgresStore::WithReader(Fn fn) -> decltype(fn(std::declval<PgConnection&>())) {
  for (int attempt = 0;; ++attempt) {
    auto lease = AcquireReader();
    if (!lease) return lease.error();
    auto out = fn(*lease->get());
    // A connection cut since its last use (a restart of PostgreSQL): reads are
    // harmless to repeat, once, on a new one.
    if (out || attempt > 0 || !lease->get()->broken()) return out;
  }
}

ErrorOr<std::optional<JobRecord>> PostgresStore::Get(const std::string& id) {
  // A result some reader holds is shared, and not read (nor held) again.
  std::shared_ptr<const Output> shared = results_.Find(id);
  static const std::string with = std::string("SELECT ") + kColumns + " FROM offload_jobs WHERE id = $1";
  static const std::string without = "SELECT " + ColumnsWithResultAs("NULL") + " FROM offload_jobs WHERE id = $1";
  auto res = WithReader([&](PgConnection& c) { return c.Exec(shared ? without : with, PgParams().Text(id)); });
  if (!res) return res.error();
  if (res->rows() == 0) return std::optional<JobRecord>();
  return std::optional<JobRecord>(ReadRow(*res, 0, std::move(shared), &results_));
}

ErrorOr<JobPage> PostgresStore::List(const JobQuery& q) {
  // The result only when asked for and JSON, and its size, so that a page can stop
  // before its results pass their budget.
  static const std::string kIfAsked = "($2::boolean AND result_type = 'application/json')";
  static const std::string kSelect = "SELECT " + ColumnsWithResultAs("CASE WHEN " + kIfAsked + " THEN result END") +
                                     ", CASE WHEN " + kIfAsked + " THEN octet_length(result) ELSE 0 END " +
                                     "FROM offload_jobs WHERE seq < $1";
  PgParams params;
  params.Int(q.before_seq > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX
                                                                  : static_cast<std::int64_t>(q.before_seq));
  params.Text(q.include_result ? "true" : "false");
  std::string sql = kSelect;
  if (q.status) {
    params.Int(static_cast<int>(*q.status));
    sql += " AND status = $" + std::to_string(params.size());
  }
  if (q.task) {
    params.Text(*q.task);
    sql += " AND task = $" + std::to_string(params.size());
  }
  params.Int(static_cast<std::int64_t>(q.limit) + 1);
  sql += " ORDER BY seq DESC LIMIT $" + std::to_string(params.size());
  auto res = WithReader([&](PgConnection& c) { return c.Exec(sql, params); });
  if (!res) return res.error();
  JobPage page;
  std::size_t result_bytes = 0;
  for (int row = 0; row < res->rows(); ++row) {
    if (page.jobs.size() == q.limit) {
      page.next_before_seq = page.jobs.back().seq;
      break;
    }
    result_bytes += static_cast<std::size_t>(res->Int(row, 23));
    if (q.max_result_bytes > 0 && result_bytes > q.max_result_bytes) {
      return MakeError(ErrorCode::kResponseTooLarge,
                       "the results of the first " + std::to_string(page.jobs.size() + 1) +
                           " jobs of this page are over " + std::to_string(q.max_result_bytes) + " bytes");
    }
    page.jobs.push_back(ReadRow(*res, row));
  }
  return page;
}

ErrorOr<std::size_t> PostgresStore::RemoveFinishedBefore(UnixMillis cutoff) {
  std::size_t removed = 0;
  // In batches, so that writes queued behind the write connection wait milliseconds,
  // not the whole sweep.
  constexpr int kBatch = 5000;
  for (;;) {
    MutexLock lock(&write_mu_);
    auto writer = WriterLocked();
    if (!writer) return writer.error();
    auto res = (*writer)->Exec(
        "DELETE FROM offload_jobs WHERE seq IN (SELECT seq FROM offload_jobs WHERE finished_at > 0 AND "
        "finished_at < $1 LIMIT " +
            std::to_string(kBatch) + ")",
        PgParams().Int(cutoff));
    if (!res) return res.error();
    removed += static_cast<std::size_t>(res->changed());
    if (res->changed() < kBatch) break;
  }
  return removed;
}

ErrorOr<std::vector<std::string>> PostgresStore::FinishedWithFilesBefore(UnixMillis cutoff) {
  auto res = WithReader([&](PgConnection& c) {
    return c.Exec(
        "SELECT id FROM offload_jobs WHERE finished_at > 0 AND finished_at < $1 AND (files IS NOT NULL OR "
        "result_file IS NOT NULL)",
        PgParams().Int(cutoff));
  });
  if (!res) return res.error();
  std::vector<std::string> out;
  for (int row = 0; row < res->rows(); ++row) out.emplace_back(res->Bytes(row, 0));
  return out;
}

ErrorOr<std::vector<JobRecord>> PostgresStore::LoadUnfinished() {
  auto res = WithReader([&](PgConnection& c) {
    return c.Exec(std::string("SELECT ") + kColumns + " FROM offload_jobs WHERE status IN (0, 1) ORDER BY seq");
  });
  if (!res) return res.error();
  std::vector<JobRecord> out;
  out.reserve(static_cast<std::size_t>(res->rows()));
  for (int row = 0; row < res->rows(); ++row) out.push_back(ReadRow(*res, row));
  return out;
}

ErrorOr<std::uint64_t> PostgresStore::MaxSeq() {
  auto res =
      WithReader([&](PgConnection& c) { return c.Exec("SELECT COALESCE(MAX(seq), 0)::bigint FROM offload_jobs"); });
  if (!res) return res.error();
  return static_cast<std::uint64_t>(res->Int(0, 0));
}

ErrorOr<std::vector<IdempotencyEntry>> PostgresStore::LoadIdempotencyKeys(UnixMillis since) {
  auto res = WithReader([&](PgConnection& c) {
    return c.Exec(
        "SELECT task, idem_key, id, request_hash, created_at FROM offload_jobs "
        "WHERE idem_key IS NOT NULL AND created_at >= $1 ORDER BY seq",
        PgParams().Int(since));
  });
  if (!res) return res.error();
  std::vector<IdempotencyEntry> out;
  for (int row = 0; row < res->rows(); ++row) {
    out.push_back(IdempotencyEntry{std::string(res->Bytes(row, 0)), std::string(res->Bytes(row, 1)),
                                   std::string(res->Bytes(row, 2)), static_cast<std::uint64_t>(res->Int(row, 3)),
                                   res->Int(row, 4)});
  }
  return out;
}

}  // namespace offload
