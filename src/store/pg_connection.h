// PgConnection: one libpq connection to PostgreSQL, with its prepared statements, the
// pipelined transaction that makes a batch of writes cost two round trips, and the
// mapping of PostgreSQL's failures to offload's errors.
//
// The connection is non-blocking, and every wait for the server (a flush, a result)
// goes through poll() with a deadline (kIoTimeout): a server that stops answering
// costs a caller an error (kUnavailable) after the deadline, never a thread forever.
// A connection that failed is broken() for good; its owner drops it and connects
// again.
//
// Results come in binary form: integers as PostgreSQL sends them (read with Int),
// text and bytea as their bytes.
//
// Not thread-safe: one thread uses a connection at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "util/error.h"

struct pg_conn;
struct pg_result;

namespace offload {

// The parameters of one statement, in order ($1, $2, ...). A string passed to Text or
// a view passed to Binary is borrowed: it must outlive the call that sends the
// statement. Move-only: the pointers it holds point into its own strings.
class PgParams {
 public:
  PgParams() = default;
  PgParams(PgParams&&) = default;
  PgParams& operator=(PgParams&&) = default;
  PgParams(const PgParams&) = delete;
  PgParams& operator=(const PgParams&) = delete;

  // Text as PostgreSQL takes it: valid UTF-8 without NUL (libpq reads a text value up
  // to its NUL, and the server refuses an invalid sequence). Such text is borrowed;
  // other bytes (a process's stderr cut mid-character, a header's obs-text) are kept as
  // a copy with each invalid sequence as U+FFFD and each NUL dropped.
  PgParams& Text(const std::string& v);
  PgParams& Binary(std::string_view v);  // A bytea, sent as its bytes.
  PgParams& Int(std::int64_t v);
  PgParams& Double(double v);
  PgParams& Null();
  // Text the params keep (a value written out for this statement); made valid as Text's.
  PgParams& Own(std::string v);
  PgParams& OwnBinary(std::string v);  // A bytea the params keep.
  PgParams& OwnOrNull(std::string v) { return v.empty() ? Null() : Own(std::move(v)); }
  // Text, or NULL when empty.
  PgParams& TextOrNull(const std::string& v) { return v.empty() ? Null() : Text(v); }

  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return values_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  PgParams& Add(const char* p, std::size_t n, int format);
  std::deque<std::string> owned_;  // Own's values; a deque keeps their addresses, even when moved.
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// A statement's rows. Columns are read by index, in the statement's order.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(pg_result* r);
  int rows() const;
  bool null(int row, int col) const;
  // An int2, int4 or int8 column (by its width); 0 for NULL.
  std::int64_t Int(int row, int col) const;
  double Double(int row, int col) const;  // A float8 column.
  // A text or bytea column's bytes; empty for NULL. Valid while the result lives.
  std::string_view Bytes(int row, int col) const;
  // Rows the statement changed (PQcmdTuples), for an INSERT, UPDATE or DELETE.
  std::int64_t changed() const;

 private:
  struct Free {
    void operator()(pg_result* r) const;
  };
  std::unique_ptr<pg_result, Free> result_;
};

// One statement of a pipelined transaction.
struct PgCall {
  std::string sql;
  PgParams params;
};

class PgConnection {
 public:
  // The longest wait for the server on one call, unless set_io_timeout says otherwise.
  static constexpr std::chrono::seconds kIoTimeout{30};

  // `conninfo`: a libpq URI (postgres://...) or key=value string. Connection failures
  // are kUnavailable. `io_timeout` bounds each later call (set_io_timeout) and, unless
  // the string sets connect_timeout, the connect too (in whole seconds, at least 2).
  static ErrorOr<std::unique_ptr<PgConnection>> Connect(const std::string& conninfo,
                                                        std::chrono::milliseconds io_timeout = kIoTimeout);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement, prepared once per connection.
  ErrorOr<PgResult> Exec(std::string_view sql, const PgParams& params = {});
  // Runs `sql` unprepared, as a simple query: DDL, or several statements in one.
  Status ExecScript(const std::string& sql);
  // Runs `calls` in one transaction: BEGIN and every call in one round trip, then
  // `check` on their results, then COMMIT when it returns OK (ROLLBACK otherwise) in a
  // second. A failed call rolls the transaction back and returns its error.
  using Check = std::function<Status(const std::vector<PgResult>&)>;
  Status Transaction(const std::vector<PgCall>& calls, const Check& check);

  // Runs `calls` in turn in one round trip (pipelined), in a transaction the caller
  // began (a BEGIN may be the first call) or each on its own, and returns their
  // results. The first that fails is the error; those after it are not run.
  ErrorOr<std::vector<PgResult>> Pipeline(const std::vector<PgCall>& calls);

  // A shorter bound on each call's waits (a lease renewal must fail before the lease
  // ends), applied on the server too, as its statement_timeout.
  Status set_io_timeout(std::chrono::milliseconds timeout);

  // True once the connection failed: its owner should drop it.
  bool broken() const;

  // For a listener (cluster/wake_listener.h): the socket to wait on, reading what
  // arrived on it, and the notifications read so far as (channel, payload). A false
  // ReadInput means the connection is lost.
  int socket() const;
  bool ReadInput();
  std::vector<std::pair<std::string, std::string>> TakeNotifications();
  // Whether the last Transaction sent its COMMIT. One that failed before it did was
  // not applied, so it may be run again on another connection; one that failed after
  // may or may not have been.
  bool commit_sent() const { return commit_sent_; }

 private:
  explicit PgConnection(pg_conn* conn) : conn_(conn) {}
  // The name of `sql`'s prepared statement, preparing it first if needed.
  ErrorOr<std::string> Prepared(std::string_view sql);
  Status Send(std::string_view sql, const PgParams& params);
  Status Flush(std::chrono::steady_clock::time_point deadline);
  // The next result, waiting for it until `deadline`; null between statements.
  ErrorOr<pg_result*> NextResult(std::chrono::steady_clock::time_point deadline);
  // The next result that is not the null between statements.
  ErrorOr<pg_result*> NextNonNull(std::chrono::steady_clock::time_point deadline);
  // Reads one statement's result and the null after it.
  ErrorOr<PgResult> ReadOne(std::chrono::steady_clock::time_point deadline, std::string_view what);
  // Reads results up to and including the pipeline's sync point.
  Status ReadToSync(std::chrono::steady_clock::time_point deadline);
  Error Fail(const std::string& what);

  pg_conn* conn_;
  std::chrono::milliseconds io_timeout_ = kIoTimeout;
  std::unordered_map<std::string, std::string> prepared_;  // SQL → statement name.
  bool failed_ = false;
  bool commit_sent_ = false;
};

// The error a failed result (or, with `result` null, the connection) stands for: a
// duplicate key is kConflict; a connection, resource or shutdown failure kUnavailable
// (the client may retry); anything else kInternal.
Error PgError(pg_conn* conn, const pg_result* result, const std::string& what);

// `conninfo` with its password replaced by "***", for logs and messages. A string
// libpq cannot parse comes back as "(unparseable)".
std::string RedactConnInfo(const std::string& conninfo);
// Whether libpq can parse `conninfo`; else why not, in `why`.
bool ValidConnInfo(const std::string& conninfo, std::string* why);

}  // namespace offload
