// PgPool: at most `size` connections to one PostgreSQL, made when first needed and
// lent to one caller at a time. PostgresStore keeps one pool for its writers and one
// for its readers.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "store/pg_connection.h"
#include "util/error.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace offload {

// Thread-safe: mu_ guards the idle connections and the count lent.
class PgPool {
 public:
  using Connector = std::function<ErrorOr<std::unique_ptr<PgConnection>>()>;

  // A connection lent by the pool; back to it on destruction, unless it broke.
  class Lease {
   public:
    Lease(Lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)) { o.pool_ = nullptr; }
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    PgConnection* get() const { return conn_.get(); }

   private:
    friend class PgPool;
    Lease(PgPool* pool, std::unique_ptr<PgConnection> conn) : pool_(pool), conn_(std::move(conn)) {}
    PgPool* pool_;
    std::unique_ptr<PgConnection> conn_;
  };

  PgPool(int size, Connector connect) : size_(size), connect_(std::move(connect)) {}
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  int size() const { return size_; }
  // An idle connection, or a new one; waits while all `size` are lent. A failed
  // connect is returned (and takes no place in the pool).
  ErrorOr<Lease> Acquire() LOCKS_EXCLUDED(mu_);
  // Adds `conn`, open already, to the idle ones.
  void Add(std::unique_ptr<PgConnection> conn) LOCKS_EXCLUDED(mu_);
  // Closes the idle connections: after one was found cut, the rest most likely were
  // cut with it (a restart of PostgreSQL), and a retry should get a new one.
  void DropIdle() LOCKS_EXCLUDED(mu_);

 private:
  void GiveBack(std::unique_ptr<PgConnection> conn) LOCKS_EXCLUDED(mu_);

  const int size_;
  const Connector connect_;
  Mutex mu_;
  CondVar free_;  // A connection came back, or its place did.
  std::vector<std::unique_ptr<PgConnection>> idle_ GUARDED_BY(mu_);
  int lent_ GUARDED_BY(mu_) = 0;
};

}  // namespace offload
