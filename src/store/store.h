// Store: where jobs live at rest. The interface is synchronous and small on purpose:
// JobService decides on which thread it is called (never an I/O thread once a store
// can block), and one conformance suite (tests/store/store_test.cc) runs against
// every implementation.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/job_record.h"
#include "util/error.h"

namespace offload {

struct JobQuery {
  std::optional<JobStatus> status;
  std::optional<std::string> task;
  // Only jobs of this tenant (JobRecord::tenant); unset: every tenant's.
  std::optional<std::string> tenant;
  std::size_t limit = 50;
  // Only jobs submitted before this seq (exclusive): the cursor of the previous page.
  std::uint64_t before_seq = UINT64_MAX;
  // Whether results come with the jobs. When false, a job's result (if it has one)
  // holds only its content_type, with a null json and empty bytes: enough to say what
  // and where it is, and a store on disk does not read it. Listings ask for results
  // only on ?include=result, so that a page of jobs with large results costs little.
  bool include_result = false;
  // With include_result: the most bytes of results one page may hold (0: no cap). Only
  // JSON results are loaded; a binary result is never inlined in a listing, so it comes
  // as if include_result were false. A store that reads results from disk (blocking())
  // stops reading once a page's results pass this and fails with kResponseTooLarge; one
  // that holds them in memory may leave the check to the caller, who measures what it
  // sends anyway.
  std::size_t max_result_bytes = 0;
};

struct JobPage {
  std::vector<JobRecord> jobs;  // Newest first.
  // Set when more jobs may match: pass it as before_seq for the next page.
  std::optional<std::uint64_t> next_before_seq;
};

// A node of a cluster as the shared store knows it: its id, and its epoch, which grows
// each time the node registers again (cluster/cluster_tables.h).
struct NodeIdentity {
  std::string id;
  std::int64_t epoch = 0;
  bool operator==(const NodeIdentity&) const = default;
};

// One write of a batch.
struct StoreOp {
  enum class Kind { kInsert, kUpdate };
  Kind kind;
  JobRecord job;
  // For an update on a shared store: the node that claimed the job, when it writes it.
  // The write applies only while the job is still running under that claim; else it
  // fails with kConflict (the job was rescued, canceled from another node, or the
  // node lost its lease: a fenced write). Stores of one server have no claims.
  std::optional<NodeIdentity> claimant = std::nullopt;
  // For an insert on a shared store: the most jobs of its tenant that may be queued
  // cluster-wide (0: no limit). Past it the insert fails with kQuotaExceeded. Stores
  // of one server leave the count to the service.
  std::int64_t tenant_max_queued = 0;
};

// The refusal of a submit of `tenant`, which has `max_queued` jobs queued already
// (kQuotaExceeded).
Error TenantQueuedError(const std::string& tenant, std::int64_t max_queued);

// An Idempotency-Key seen on a submit, as recovery reloads it.
struct IdempotencyEntry {
  std::string task;
  std::string tenant;  // Keys are per tenant: two tenants may use the same one.
  std::string key;
  std::string job_id;
  std::uint64_t request_hash = 0;
  UnixMillis created_at = 0;
};

// Implementations are thread-safe.
class Store {
 public:
  virtual ~Store() = default;

  // Applies the writes in order, all or none: one transaction (and, for a durable
  // store, one sync to disk) for the whole batch. An insert of an existing id fails
  // with kConflict, an update of a missing one with kNotFound; a disk that cannot
  // take the write fails with kUnavailable.
  [[nodiscard]] virtual Status Apply(const std::vector<StoreOp>& ops) = 0;
  [[nodiscard]] Status Insert(const JobRecord& job) { return Apply({StoreOp{StoreOp::Kind::kInsert, job}}); }
  [[nodiscard]] Status Update(const JobRecord& job) { return Apply({StoreOp{StoreOp::Kind::kUpdate, job}}); }
  [[nodiscard]] virtual ErrorOr<std::optional<JobRecord>> Get(const std::string& id) = 0;
  [[nodiscard]] virtual ErrorOr<JobPage> List(const JobQuery& query) = 0;
  // Deletes finished jobs whose finished_at is before `cutoff`; returns how many.
  [[nodiscard]] virtual ErrorOr<std::size_t> RemoveFinishedBefore(UnixMillis cutoff) = 0;
  // The ids of the jobs RemoveFinishedBefore(cutoff) would delete that have files
  // (inputs, or a result kept in a file), so that their files go with them.
  [[nodiscard]] virtual ErrorOr<std::vector<std::string>> FinishedWithFilesBefore(UnixMillis cutoff) = 0;

  // For recovery at start: every queued or running job, in submission order.
  [[nodiscard]] virtual ErrorOr<std::vector<JobRecord>> LoadUnfinished() = 0;
  // The largest seq ever stored (0 when empty), so new jobs sort after old ones.
  [[nodiscard]] virtual ErrorOr<std::uint64_t> MaxSeq() = 0;
  // Idempotency keys of jobs created at or after `since`.
  [[nodiscard]] virtual ErrorOr<std::vector<IdempotencyEntry>> LoadIdempotencyKeys(UnixMillis since) = 0;

  // True when calls do disk I/O: StoreQueue::Create then gives the store a
  // ThreadedStoreQueue, which keeps its calls off the caller's threads and batches
  // writes on a writer thread.
  virtual bool blocking() const { return false; }
  // True when jobs survive a restart.
  virtual bool durable() const { return false; }
  // How many Apply calls, each of other jobs, the store runs well at once (each on a
  // connection of its own): a ThreadedStoreQueue gives it that many writers.
  virtual std::size_t writers() const { return 1; }
  // Called by the writer when no write is waiting: upkeep that would otherwise delay
  // a write (SQLite's WAL checkpoint) runs here.
  virtual void OnIdle() {}
};

// How a store is opened: the config's `store` key ("memory", "sqlite:PATH", or a
// PostgreSQL connection string: "postgres://..." / "postgresql://..." URIs, or
// "postgres:" (or "postgresql:") followed by libpq's key=value form) and the settings
// of its kind.
struct StoreOptions {
  std::string spec = "memory";
  bool sqlite_synchronous_full = true;
  std::int64_t sqlite_max_bytes = 0;
  int postgres_connections = 4;
};
// The libpq connection string of a PostgreSQL store's spec; nullopt for another kind.
std::optional<std::string> PostgresConnInfo(const std::string& spec);
// `spec` as logs and messages show it: a PostgreSQL password replaced by "***".
std::string RedactStoreSpec(const std::string& spec);
ErrorOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options);
inline ErrorOr<std::unique_ptr<Store>> OpenStore(const std::string& spec) { return OpenStore(StoreOptions{spec}); }

}  // namespace offload
