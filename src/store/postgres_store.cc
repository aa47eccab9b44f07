#include "store/postgres_store.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <set>
#include <thread>

#include "store/pg_connection.h"
#include "store/postgres_rows.h"

namespace offload {

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

// Version 2: the cluster. offload_nodes holds one row per server (its lease, renewed
// by its own thread; its epoch, which fences a server that lost its lease; when a
// rescue found it expired); a running job names the node and epoch that claimed it. fillfactor 50 keeps
// a lease's renewal a HOT update (lease_until is in no index). The partial indexes
// keep a claim's and a rescue's scans on the live jobs only, however many finished
// ones the table holds.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE offload_nodes (
  id           text        PRIMARY KEY,
  epoch        bigint      NOT NULL,
  lease_until  timestamptz NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  expired_at   timestamptz,
  info         text        NOT NULL DEFAULT '{}'
) WITH (fillfactor = 50);
ALTER TABLE offload_jobs ADD COLUMN node_id text;
ALTER TABLE offload_jobs ADD COLUMN node_epoch bigint NOT NULL DEFAULT 0;
CREATE INDEX offload_jobs_queued ON offload_jobs (priority DESC, seq) WHERE status = 0;
CREATE INDEX offload_jobs_running_on ON offload_jobs (node_id, node_epoch) WHERE status = 1;
)sql";

// Version 3: nodes share the queue. Seqs come from a sequence, so that submission
// order holds across nodes (an insert of seq 0 takes the next); run_after holds a
// retry's back-off in the table, where any node may take the job up once it passes;
// files_node names the node whose disk holds a job's files, the one that runs it;
// an Idempotency-Key is unique per task in the table, which is what makes it hold
// across nodes (of keys repeated before, when a server reused an expired one, the
// newest keeps it).
constexpr const char* kSchemaV3 = R"sql(
CREATE SEQUENCE offload_job_seq AS bigint;
SELECT setval('offload_job_seq', GREATEST(MAX(seq), 1), COUNT(*) > 0) FROM offload_jobs;
ALTER TABLE offload_jobs ADD COLUMN run_after bigint NOT NULL DEFAULT 0;
ALTER TABLE offload_jobs ADD COLUMN files_node text;
UPDATE offload_jobs SET idem_key = NULL WHERE idem_key IS NOT NULL AND seq NOT IN
  (SELECT MAX(seq) FROM offload_jobs WHERE idem_key IS NOT NULL GROUP BY task, idem_key);
CREATE UNIQUE INDEX offload_jobs_idem_key ON offload_jobs (task, idem_key) WHERE idem_key IS NOT NULL;
)sql";

// Version 4: maps across nodes (cluster/map_chunks.h). A chunk's seq comes from the
// jobs' sequence, so that claims order chunks and jobs as one queue; status is 0
// offered, 1 running (on node_id at node_epoch), 2 done (its outcome in result).
constexpr const char* kSchemaV4 = R"sql(
CREATE TABLE offload_map_chunks (
  seq          bigint   PRIMARY KEY DEFAULT nextval('offload_job_seq'),
  job_id       text     NOT NULL,
  chunk        bigint   NOT NULL,
  task         text     NOT NULL,
  priority     integer  NOT NULL,
  timeout_ms   bigint   NOT NULL,
  collect      boolean  NOT NULL,
  owner_id     text     NOT NULL,
  owner_epoch  bigint   NOT NULL,
  status       smallint NOT NULL DEFAULT 0,
  node_id      text,
  node_epoch   bigint   NOT NULL DEFAULT 0,
  indices      text     NOT NULL,
  attempts     text     NOT NULL,
  input        text     NOT NULL,
  result       text
);
CREATE INDEX offload_map_chunks_offered ON offload_map_chunks (priority DESC, seq) WHERE status = 0;
CREATE INDEX offload_map_chunks_of_job ON offload_map_chunks (job_id);
)sql";

// Version 5: a retry names the job it retries (POST /v1/jobs/{id}/retry).
constexpr const char* kSchemaV5 = "ALTER TABLE offload_jobs ADD COLUMN retry_of text;";

// Version 6: a job names its tenant (JobRecord::tenant); '' for one submitted without
// auth, as was every job before. An Idempotency-Key is unique per task and tenant: two
// tenants may use the same one. The column is NOT NULL so that jobs without a tenant
// still collide in that index (NULLs would not). The listing index is partial so that
// a server without auth, whose jobs are all '', keeps no entries in it; List says
// `tenant <> ''` too, without which a plan made for any value of the parameter (a
// prepared statement's generic plan) could not use it.
constexpr const char* kSchemaV6 = R"sql(
ALTER TABLE offload_jobs ADD COLUMN tenant text NOT NULL DEFAULT '';
DROP INDEX offload_jobs_idem_key;
CREATE UNIQUE INDEX offload_jobs_idem_key ON offload_jobs (task, tenant, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX offload_jobs_by_tenant ON offload_jobs (tenant, seq) WHERE tenant <> '';
)sql";

// A tenant's queued jobs, counted at each of its submits when it has max_queued.
constexpr const char* kSchemaV7 = R"sql(
CREATE INDEX offload_jobs_queued_by_tenant ON offload_jobs (tenant) WHERE status = 0 AND tenant <> '';
)sql";

// Version 8: a map's offered chunk names the map's tenant, so that a claim caps and
// counts it as the tenant's (max_running), and the node running it charges the
// tenant's share. '' for chunks offered before, as for jobs without auth.
constexpr const char* kSchemaV8 = "ALTER TABLE offload_map_chunks ADD COLUMN tenant text NOT NULL DEFAULT '';";

// The migration's advisory lock key, per schema: held while a server migrates.
constexpr const char* kMigrationLock = "hashtextextended('offload migrate ' || current_schema(), 0)";
// What a server of schema version 2 (which used a schema alone) held while it ran.
constexpr const char* kSingleServerLock = "hashtextextended('offload server ' || current_schema(), 0)";

}  // namespace

namespace {

int WritersOf(int connections) { return connections >= 4 ? 2 : 1; }

}  // namespace

PostgresStore::PostgresStore(PostgresOptions options)
    : options_(std::move(options)),
      writers_(WritersOf(options_.connections), [this] { return Connect(/*migrate=*/false); }),
      readers_(options_.connections - WritersOf(options_.connections), [this] { return Connect(/*migrate=*/false); }) {}

PostgresStore::~PostgresStore() = default;

ErrorOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(const PostgresOptions& options) {
  if (options.connections < 2) {
    return MakeError(ErrorCode::kInvalidArgument, "postgres_connections must be at least 2");
  }
  std::unique_ptr<PostgresStore> store(new PostgresStore(options));
  auto writer = store->Connect(/*migrate=*/true);
  if (!writer) return writer.error();
  store->writers_.Add(std::move(*writer));
  return store;
}

ErrorOr<std::unique_ptr<PgConnection>> PostgresStore::Connect(bool migrate) {
  auto conn = PgConnection::Connect(options_.conninfo);
  if (!conn || !migrate) return conn;
  PgConnection& c = **conn;
  {
    // A migration may build indexes over a large table: it gets minutes, not 30 s.
    if (Status s = c.set_io_timeout(std::chrono::minutes(30)); !s) return s.error();
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
    // An older server runs on this schema as if alone: no node of a cluster may join it.
    auto alone = c.Exec(std::string("SELECT pg_try_advisory_lock(") + kSingleServerLock + ")");
    if (!alone) return alone.error();
    if (alone->Bytes(0, 0) != std::string_view("\x01", 1)) {
      return MakeError(ErrorCode::kUnavailable,
                       "a server of an older offload, which uses a PostgreSQL schema alone, is using this one (" +
                           RedactConnInfo(options_.conninfo) + "); stop it before starting this one");
    }
    if (auto r = c.Exec(std::string("SELECT pg_advisory_unlock(") + kSingleServerLock + ")"); !r) return r.error();
    if (version > kSchemaVersion) {
      return MakeError(ErrorCode::kUnavailable, "the PostgreSQL schema has version " + std::to_string(version) +
                                                    ", newer than this offload (" + std::to_string(kSchemaVersion) +
                                                    ")");
    }
    struct Migration {
      int to;
      const char* sql;
    };
    static const Migration kMigrations[] = {{1, kSchemaV1}, {2, kSchemaV2}, {3, kSchemaV3}, {4, kSchemaV4},
                                            {5, kSchemaV5}, {6, kSchemaV6}, {7, kSchemaV7}, {8, kSchemaV8}};
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
  if (Status s = c.set_io_timeout(PgConnection::kIoTimeout); !s) return s.error();
  return conn;
}

Status PostgresStore::Apply(const std::vector<StoreOp>& ops) {
  std::vector<PgCall> calls;
  calls.reserve(ops.size());
  std::vector<std::size_t> call_of(ops.size());
  std::vector<std::pair<std::size_t, std::size_t>> quota_counts;  // (op, call of its count).
  // The queued jobs of a tenant with max_queued are counted under a lock of the
  // tenant's own that its inserts on every node take, so that two nodes cannot both
  // take the last place. A batch takes its tenants' locks first and in one order: two
  // batches never wait for each other's.
  std::set<std::string> quota_tenants;
  for (const StoreOp& op : ops) {
    if (op.kind == StoreOp::Kind::kInsert && op.tenant_max_queued > 0) quota_tenants.insert(op.job.tenant);
  }
  for (const std::string& tenant : quota_tenants) {
    PgParams lock;
    lock.Text(tenant);
    calls.push_back(
        PgCall{"SELECT pg_advisory_xact_lock(hashtextextended('offload tenant ' || current_schema() || ' ' || $1, 0))",
               std::move(lock)});
  }
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const StoreOp& op = ops[i];
    if (op.kind == StoreOp::Kind::kInsert && op.tenant_max_queued > 0) {
      PgParams count;
      count.Text(op.job.tenant);
      quota_counts.emplace_back(i, calls.size());
      // (tenant <> '' lets the plan use offload_jobs_queued_by_tenant.)
      calls.push_back(PgCall{"SELECT count(*) FROM offload_jobs WHERE tenant = $1 AND tenant <> '' AND status = 0",
                             std::move(count)});
    }
    call_of[i] = calls.size();
    if (op.kind == StoreOp::Kind::kUpdate && op.claimant) {
      // Fenced: only while the job still runs under this claim (cluster_tables.h).
      calls.push_back(PgJobWrite(op, "node_id = $17 AND node_epoch = $18 AND status = 1"));
      calls.back().params.Text(op.claimant->id).Int(op.claimant->epoch);
    } else {
      calls.push_back(PgJobWrite(op));
    }
  }
  // An update that finds no row fails the batch: a missing job, or a fenced write.
  auto check = [&](const std::vector<PgResult>& results) -> Status {
    for (auto [op, call] : quota_counts) {
      if (results[call].Int(0, 0) >= ops[op].tenant_max_queued) {
        return TenantQueuedError(ops[op].job.tenant, ops[op].tenant_max_queued);
      }
    }
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].kind != StoreOp::Kind::kUpdate || results[call_of[i]].changed() != 0) continue;
      if (ops[i].claimant) {
        return MakeError(ErrorCode::kConflict, "job " + ops[i].job.id + " no longer runs under the claim of node " +
                                                   ops[i].claimant->id + " (epoch " +
                                                   std::to_string(ops[i].claimant->epoch) + ")");
      }
      return MakeError(ErrorCode::kNotFound, "no job " + ops[i].job.id);
    }
    return {};
  };
  {
    std::optional<PgPool::Lease> writer;
    if (auto lease = writers_.Acquire(); lease) {
      writer.emplace(std::move(*lease));
    } else {
      return lease.error();
    }
    Status s = writer->get()->Transaction(calls, check);
    if (!s && writer->get()->broken() && !writer->get()->commit_sent()) {
      // Cut before its commit was sent (PostgreSQL restarted since the last write, say):
      // nothing was applied, so it runs once more, on a new connection.
      writer.reset();
      DropIdle();
      auto again = writers_.Acquire();
      if (!again) return again.error();
      s = again->get()->Transaction(calls, check);
    }
    if (!s) {
      if (s.error().code == ErrorCode::kConflict && ops.size() == 1 && ops[0].kind == StoreOp::Kind::kInsert) {
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
    auto lease = readers_.Acquire();
    if (!lease) return lease.error();
    auto out = fn(*lease->get());
    // A connection cut since its last use (a restart of PostgreSQL): reads are
    // harmless to repeat, once, on a new one.
    if (out || attempt > 0 || !lease->get()->broken()) return out;
    DropIdle();
  }
}

void PostgresStore::DropIdle() {
  readers_.DropIdle();
  writers_.DropIdle();
}

ErrorOr<std::optional<JobRecord>> PostgresStore::Get(const std::string& id) {
  // A result some reader holds is shared, and not read (nor held) again.
  std::shared_ptr<const Output> shared = results_.Find(id);
  static const std::string with = std::string("SELECT ") + kPgJobColumns + " FROM offload_jobs WHERE id = $1";
  static const std::string without = "SELECT " + PgJobColumnsWithResultAs("NULL") + " FROM offload_jobs WHERE id = $1";
  auto res = WithReader([&](PgConnection& c) { return c.Exec(shared ? without : with, PgParams().Text(id)); });
  if (!res) return res.error();
  if (res->rows() == 0) return std::optional<JobRecord>();
  return std::optional<JobRecord>(ReadPgJobRow(*res, 0, std::move(shared), &results_));
}

ErrorOr<JobPage> PostgresStore::List(const JobQuery& q) {
  // The result only when asked for and JSON, and its size, so that a page can stop
  // before its results pass their budget.
  static const std::string kIfAsked = "($2::boolean AND result_type = 'application/json')";
  static const std::string kSelect =
      "SELECT " + PgJobColumnsWithResultAs("CASE WHEN " + kIfAsked + " THEN result END") + ", CASE WHEN " + kIfAsked +
      " THEN octet_length(result) ELSE 0 END " + "FROM offload_jobs WHERE seq < $1";
  PgParams params;
  params.Int(q.before_seq > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX
                                                                  : static_cast<std::int64_t>(q.before_seq));
  params.Own(q.include_result ? "true" : "false");
  std::string sql = kSelect;
  if (q.status) {
    params.Int(static_cast<int>(*q.status));
    sql += " AND status = $" + std::to_string(params.size());
  }
  if (q.task) {
    params.Text(*q.task);
    sql += " AND task = $" + std::to_string(params.size());
  }
  if (q.tenant) {
    params.Text(*q.tenant);
    sql += " AND tenant = $" + std::to_string(params.size());
    // Lets the planner use offload_jobs_by_tenant (see kSchemaV6).
    if (!q.tenant->empty()) sql += " AND tenant <> ''";
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
    result_bytes += static_cast<std::size_t>(res->Int(row, kPgJobColumnCount));
    if (q.max_result_bytes > 0 && result_bytes > q.max_result_bytes) {
      return MakeError(ErrorCode::kResponseTooLarge,
                       "the results of the first " + std::to_string(page.jobs.size() + 1) +
                           " jobs of this page are over " + std::to_string(q.max_result_bytes) + " bytes");
    }
    page.jobs.push_back(ReadPgJobRow(*res, row));
  }
  return page;
}

ErrorOr<std::size_t> PostgresStore::RemoveFinishedBefore(UnixMillis cutoff) {
  std::size_t removed = 0;
  // In batches, so that writes queued behind the writer wait milliseconds, not the
  // whole sweep.
  constexpr int kBatch = 5000;
  for (;;) {
    auto writer = writers_.Acquire();
    if (!writer) return writer.error();
    auto res = writer->get()->Exec(
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
    return c.Exec(std::string("SELECT ") + kPgJobColumns + " FROM offload_jobs WHERE status IN (0, 1) ORDER BY seq");
  });
  if (!res) return res.error();
  std::vector<JobRecord> out;
  out.reserve(static_cast<std::size_t>(res->rows()));
  for (int row = 0; row < res->rows(); ++row) out.push_back(ReadPgJobRow(*res, row));
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
        "SELECT task, tenant, idem_key, id, request_hash, created_at FROM offload_jobs "
        "WHERE idem_key IS NOT NULL AND created_at >= $1 ORDER BY seq",
        PgParams().Int(since));
  });
  if (!res) return res.error();
  std::vector<IdempotencyEntry> out;
  for (int row = 0; row < res->rows(); ++row) {
    out.push_back(IdempotencyEntry{std::string(res->Bytes(row, 0)), std::string(res->Bytes(row, 1)),
                                   std::string(res->Bytes(row, 2)), std::string(res->Bytes(row, 3)),
                                   static_cast<std::uint64_t>(res->Int(row, 4)), res->Int(row, 5)});
  }
  return out;
}

}  // namespace offload
