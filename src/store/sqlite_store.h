// SqliteStore: jobs in an embedded SQLite database, the default store.
//
// WAL mode; one write connection (used by ThreadedStoreQueue's writer thread, and by
// the retention sweep) and a pool of read connections, so reads never wait for a commit.
// `synchronous` is FULL by default (a committed job survives a power loss) or NORMAL
// (survives a crash of offload, may lose the last commits on an OS crash or power
// loss); see docs/config.md. A lock file next to the database keeps a second server
// from opening it.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "store/result_cache.h"
#include "store/store.h"
#include "util/mutex.h"

struct sqlite3;

namespace offload {

struct SqliteOptions {
  std::string path;  // The database file; its folder is created if missing.
  bool synchronous_full = true;
  // Caps the database file (SQLite's max_page_count); 0: no cap. A write past it
  // fails like a full disk: the submit gets 503 and nothing is lost.
  std::int64_t max_bytes = 0;
};

// Thread-safe: write_mu_ serializes the write connection; each read takes a
// connection from the pool for its duration.
class SqliteStore final : public Store {
 public:
  static ErrorOr<std::unique_ptr<SqliteStore>> Open(const SqliteOptions& options);
  ~SqliteStore() override;

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
  // Checkpoints the WAL once it holds kCheckpointFrames.
  void OnIdle() override;

  // SQLite's own checkpoint runs inside the commit that takes the WAL past 1,000
  // pages, so that write (a submit's, a large result's) waits for it. Here no write
  // waits for the checkpoint of its own pages: once the WAL holds kCheckpointFrames,
  // the next idle moment checkpoints it, or the next write, before it begins, when the
  // writer is never idle.
  static constexpr int kCheckpointFrames = 1000;

  class Connection;

 private:
  class ReadLease;
  explicit SqliteStore(SqliteOptions options);
  ErrorOr<std::unique_ptr<Connection>> Connect(bool migrate);
  ReadLease AcquireReader();

  // Constant after construction.
  const SqliteOptions options_;
  int lock_fd_ = -1;
  ResultCache results_;  // Large results readers hold now; thread-safe.

  Mutex write_mu_;
  // Set by Open before the store is shared, then constant; the connection itself is
  // used only with write_mu_ held.
  std::unique_ptr<Connection> writer_ PT_GUARDED_BY(write_mu_);
  // Pages in the WAL after the last commit, as SQLite's WAL hook reports them. The
  // hook runs inside a commit of the writer connection, so always under write_mu_
  // (the analysis cannot see through the hook's void*).
  int wal_frames_ GUARDED_BY(write_mu_) = 0;
  // When a failed checkpoint was last logged.
  std::chrono::steady_clock::time_point last_checkpoint_warning_ GUARDED_BY(write_mu_);
  // A passive checkpoint: what readers still need stays in the WAL.
  void CheckpointLocked() EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  Mutex read_mu_;
  std::vector<std::unique_ptr<Connection>> idle_readers_ GUARDED_BY(read_mu_);
};

}  // namespace offload
