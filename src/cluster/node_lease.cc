#include "cluster/node_lease.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "store/pg_connection.h"
#include "util/id_generator.h"

namespace offload {

namespace {

// Renewals per ttl, and so the bound on each call: a third of the ttl.
constexpr int kRenewalsPerTtl = 3;

std::string HostName() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || !*host) return "node";
  return host;
}

}  // namespace

std::string NewNodeId() { return HostName() + "-" + std::to_string(::getpid()) + "-" + NewJobId().substr(0, 6); }

std::string NodeIdOf(const std::string& files_root) { return HostName() + ":" + files_root; }

ErrorOr<std::unique_ptr<NodeLease>> NodeLease::Start(NodeLeaseOptions options, const WallClock& clock) {
  const Millis period = options.ttl / kRenewalsPerTtl;
  auto conn = PgConnection::Connect(options.conninfo, period);
  if (!conn) return conn.error();
  const auto began = Steady::now();
  auto identity = RegisterNode(**conn, options.node_id, options.info, options.ttl);
  if (!identity) return identity.error();
  spdlog::info("cluster: node {} joined (epoch {}, lease {} ms)", identity->id, identity->epoch, options.ttl.count());
  return std::unique_ptr<NodeLease>(
      new NodeLease(std::move(options), clock, std::move(*conn), std::move(*identity), began));
}

NodeLease::NodeLease(NodeLeaseOptions options, const WallClock& clock, std::unique_ptr<PgConnection> conn,
                     NodeIdentity identity, Steady::time_point renewed)
    : options_(std::move(options)),
      clock_(clock),
      period_(options_.ttl / kRenewalsPerTtl),
      renew_conn_(std::move(conn)) {
  {
    MutexLock lock(&mu_);
    identity_ = std::move(identity);
    last_renewed_ = renewed;
  }
  renew_thread_ = std::thread([this] { RenewLoop(); });
  watch_thread_ = std::thread([this] { WatchLoop(); });
  rescue_thread_ = std::thread([this] { RescueLoop(); });
}

NodeLease::~NodeLease() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.SignalAll();
  renew_thread_.join();
  watch_thread_.join();
  rescue_thread_.join();
  const NodeIdentity node = identity();
  if (held() && Connection(&renew_conn_)) {
    if (Status s = DeregisterNode(*renew_conn_, node); !s) {
      spdlog::warn("cluster: node {} could not leave cleanly ({}); it is rescued once its lease ends", node.id,
                   s.error().detail);
    }
  }
}

NodeIdentity NodeLease::identity() const {
  MutexLock lock(&mu_);
  return identity_;
}

bool NodeLease::held() const {
  MutexLock lock(&mu_);
  return held_;
}

PgConnection* NodeLease::Connection(std::unique_ptr<PgConnection>* conn) {
  if (*conn && !(*conn)->broken()) return conn->get();
  conn->reset();
  auto fresh = PgConnection::Connect(options_.conninfo, period_);
  if (!fresh) return nullptr;
  *conn = std::move(*fresh);
  return conn->get();
}

bool NodeLease::SleepUntil(Steady::time_point due) {
  MutexLock lock(&mu_);
  while (!stopping_ && Steady::now() < due) wake_.WaitUntil(&mu_, due);
  return !stopping_;
}

void NodeLease::RenewLoop() {
  const auto period = std::chrono::duration_cast<Steady::duration>(period_);
  auto due = Steady::now() + period;
  while (SleepUntil(due)) {
    Renew();
    // On the schedule, not after the work: a slow renewal does not push the next back.
    due += period;
    if (due < Steady::now()) due = Steady::now() + period;
  }
}

void NodeLease::Renew() {
  NodeIdentity node;
  bool held;
  {
    MutexLock lock(&mu_);
    node = identity_;
    held = held_;
  }
  const auto began = Steady::now();
  PgConnection* conn = Connection(&renew_conn_);
  if (!conn) return;  // The watchdog counts the time.
  if (!held) {
    // Lost before: join again, at the next epoch.
    auto again = RegisterNode(*conn, options_.node_id, options_.info, options_.ttl);
    if (!again) return;
    {
      MutexLock lock(&mu_);
      identity_ = *again;
      held_ = true;
      last_renewed_ = began;
    }
    wake_.SignalAll();
    spdlog::warn("cluster: node {} joined again at epoch {}", again->id, again->epoch);
    if (options_.on_regained) options_.on_regained(*again);
    return;
  }
  auto renewed = RenewLease(*conn, node, options_.ttl);
  if (!renewed) return;  // Tried again on schedule; the watchdog counts the time.
  if (!*renewed) {
    Lose(node, "a rescue took its jobs (the node was paused or cut off past its lease)");
    return;
  }
  {
    MutexLock lock(&mu_);
    if (identity_ == node && held_) last_renewed_ = began;
  }
  wake_.SignalAll();
}

void NodeLease::Lose(const NodeIdentity& node, const std::string& why) {
  {
    MutexLock lock(&mu_);
    // Once per epoch: the watchdog and a refused renewal may both see it.
    if (!held_ || !(identity_ == node)) return;
    held_ = false;
  }
  spdlog::error("cluster: node {} lost its lease (epoch {}): {}; stopping its jobs", node.id, node.epoch, why);
  if (options_.on_lost) options_.on_lost(node);
}

void NodeLease::WatchLoop() {
  // The database's lease runs at least ttl from the start of the last renewal that
  // succeeded; the node gives up a third of the ttl before that.
  const auto limit = std::chrono::duration_cast<Steady::duration>(options_.ttl - period_);
  for (;;) {
    NodeIdentity node;
    Steady::time_point deadline;
    {
      MutexLock lock(&mu_);
      for (;;) {
        if (stopping_) return;
        deadline = last_renewed_ + limit;
        if (held_ && Steady::now() >= deadline) break;
        // Woken by a renewal (the deadline moves) or the stop.
        wake_.WaitUntil(&mu_, held_ ? deadline : Steady::now() + limit);
      }
      node = identity_;
    }
    Lose(node, "no renewal for " + std::to_string(options_.ttl.count() - period_.count()) + " ms");
  }
}

void NodeLease::RescueLoop() {
  if (!options_.decide) return;
  const auto period = std::chrono::duration_cast<Steady::duration>(period_);
  while (SleepUntil(Steady::now() + period)) {
    PgConnection* conn = Connection(&rescue_conn_);
    if (!conn) continue;
    auto rescued = RescueExpiredNodes(*conn, options_.grace, clock_.Now(), options_.decide);
    if (!rescued) {
      spdlog::warn("cluster: rescue failed: {}", rescued.error().detail);
    } else if (rescued->nodes > 0 || rescued->jobs > 0 || rescued->chunks.offered_again > 0) {
      spdlog::warn("cluster: {} node(s) past their lease; {} running job(s) and {} map chunk(s) of theirs moved on",
                   rescued->nodes, rescued->jobs, rescued->chunks.offered_again);
    }
  }
}

}  // namespace offload
