#include "store/pg_pool.h"

namespace offload {

PgPool::Lease::~Lease() {
  if (pool_) pool_->GiveBack(std::move(conn_));
}

ErrorOr<PgPool::Lease> PgPool::Acquire() {
  {
    MutexLock lock(&mu_);
    while (lent_ >= size_) free_.Wait(&mu_);
    ++lent_;
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
  }
  // The place counts from here (connecting takes a while), so a failed connect gives
  // it back.
  Lease lease(this, nullptr);
  auto conn = connect_();
  if (!conn) return conn.error();
  lease.conn_ = std::move(*conn);
  return lease;
}

void PgPool::Add(std::unique_ptr<PgConnection> conn) {
  MutexLock lock(&mu_);
  idle_.push_back(std::move(conn));
}

void PgPool::DropIdle() {
  std::vector<std::unique_ptr<PgConnection>> idle;  // Closed outside the lock.
  MutexLock lock(&mu_);
  idle.swap(idle_);
}

void PgPool::GiveBack(std::unique_ptr<PgConnection> conn) {
  {
    MutexLock lock(&mu_);
    --lent_;
    if (conn && !conn->broken()) idle_.push_back(std::move(conn));
  }
  free_.Signal();
}

}  // namespace offload
