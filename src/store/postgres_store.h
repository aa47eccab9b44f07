// PostgresStore: jobs in a PostgreSQL database (15 or later), for a server whose jobs
// must outlive its machine, and for the cluster (docs/cluster.md).
//
// The tables live in the connection's current schema (its search_path), so that one
// database can hold several offload installations, each in its schema. The schema is
// created and migrated at Open, under an advisory lock, so that servers starting
// together migrate it once; a schema newer than this offload is refused.
//
// One write connection, used by ThreadedStoreQueue's writer thread and by the
// retention sweep: a batch of writes is one transaction sent as one pipeline (two
// round trips whatever its size). Reads take a connection from a pool; the write
// connection and the pool together hold at most `connections`. A connection that
// fails is dropped and made again on the next call, so a restart of PostgreSQL costs
// the calls made while it was down (they fail kUnavailable), nothing more.
//
// Any number of servers share a schema (docs/cluster.md): an update that names the
// job's claimant (StoreOp::claimant) is fenced by it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/pg_pool.h"
#include "store/result_cache.h"
#include "store/store.h"
#include "util/mutex.h"

namespace offload {

class PgConnection;

struct PostgresOptions {
  std::string conninfo;  // A libpq URI or key=value string.
  // At least 2: a writer and a reader. From 4, two of them write (writers()).
  int connections = 4;
};

// Thread-safe: each call takes a connection from its pool (a writer's or a reader's)
// for its duration, waiting when all are busy.
class PostgresStore final : public Store {
 public:
  static ErrorOr<std::unique_ptr<PostgresStore>> Open(const PostgresOptions& options);
  ~PostgresStore() override;

  Status Apply(const std::vector<StoreOp>& ops) override;
  ErrorOr<std::optional<JobRecord>> Get(const std::string& id) override;
  ErrorOr<JobPage> List(const JobQuery& query) override;
  ErrorOr<std::size_t> RemoveFinishedBefore(UnixMillis cutoff) override;
  ErrorOr<std::vector<std::string>> FinishedWithFilesBefore(UnixMillis cutoff) override;
  ErrorOr<std::vector<JobRecord>> LoadUnfinished() override;
  ErrorOr<std::uint64_t> MaxSeq() override;
  ErrorOr<std::vector<IdempotencyEntry>> LoadIdempotencyKeys(UnixMillis since) override;
  bool blocking() const override { return true; }
  bool durable() const override { return true; }
  std::size_t writers() const override { return static_cast<std::size_t>(writers_.size()); }

  // The schema version this offload creates.
  static constexpr int kSchemaVersion = 8;

 private:
  explicit PostgresStore(PostgresOptions options);
  // A new connection; at Open, the one that migrates the schema.
  ErrorOr<std::unique_ptr<PgConnection>> Connect(bool migrate);
  // After a connection was found cut, the idle ones were most likely cut with it (a
  // restart of PostgreSQL): they go, so that a retry gets a new one.
  void DropIdle();
  // fn(connection) on a reader, run again once on a new one if the first was cut.
  template <typename Fn>
  auto WithReader(Fn fn) -> decltype(fn(std::declval<PgConnection&>()));

  // Constant after construction.
  const PostgresOptions options_;
  ResultCache results_;  // Large results readers hold now; thread-safe.
  // Writes of different jobs run at once on the writers (StoreQueue keeps each job's
  // on one), so that one batch's commit does not wait for another's.
  PgPool writers_;
  PgPool readers_;
};

}  // namespace offload
