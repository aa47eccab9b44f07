#include "cluster/node_lease.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "store/pg_connection.h"
#include "util/id_generator.h"

namespace offload {

namespace {

using Steady = std::chrono::steady_clock;

// Renewals per ttl, and so the bound on each call: a third of the ttl.
constexpr int kRenewalsPerTtl = 3;

}  // namespace

std::string NewNodeId() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || !*host) std::snprintf(host, sizeof host, "node");
  return std::string(host) + "-" + std::to_string(::getpid()) + "-" + NewJobId().substr(0, 6);
}

ErrorOr<std::unique_ptr<NodeLease>> NodeLease::Start(NodeLeaseOptions options, const WallClock& clock) {
  auto conn = PgConnection::Connect(options.conninfo);
  if (!conn) return conn.error();
  if (Status s = (*conn)->set_io_timeout(options.ttl / kRenewalsPerTtl); !s) return s.error();
  auto identity = RegisterNode(**conn, options.node_id, options.info, options.ttl);
  if (!identity) return identity.error();
  spdlog::info("cluster: node {} joined (epoch {}, lease {} ms)", identity->id, identity->epoch, options.ttl.count());
  return std::unique_ptr<NodeLease>(new NodeLease(std::move(options), clock, std::move(*conn), std::move(*identity)));
}

NodeLease::NodeLease(NodeLeaseOptions options, const WallClock& clock, std::unique_ptr<PgConnection> conn,
                     NodeIdentity identity)
    : options_(std::move(options)), clock_(clock), conn_(std::move(conn)), last_renewed_(Steady::now()) {
  {
    MutexLock lock(&mu_);
    identity_ = std::move(identity);
  }
  thread_ = std::thread([this] { Loop(); });
}

NodeLease::~NodeLease() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.SignalAll();
  thread_.join();
  const NodeIdentity node = identity();
  if (held() && Connection()) {
    if (Status s = DeregisterNode(*conn_, node); !s) {
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

PgConnection* NodeLease::Connection() {
  if (conn_ && !conn_->broken()) return conn_.get();
  conn_.reset();
  auto conn = PgConnection::Connect(options_.conninfo);
  if (!conn) return nullptr;
  if (Status s = (*conn)->set_io_timeout(options_.ttl / kRenewalsPerTtl); !s) return nullptr;
  conn_ = std::move(*conn);
  return conn_.get();
}

void NodeLease::Loop() {
  const auto period = std::chrono::duration_cast<Steady::duration>(options_.ttl / kRenewalsPerTtl);
  auto due = Steady::now() + period;
  for (;;) {
    {
      MutexLock lock(&mu_);
      while (!stopping_ && Steady::now() < due) wake_.WaitUntil(&mu_, due);
      if (stopping_) return;
    }
    Tick(Steady::now());
    // On the schedule, not after the work: a slow tick does not push the next one back.
    due += period;
    if (due < Steady::now()) due = Steady::now() + period;
  }
}

void NodeLease::Tick(Steady::time_point now) {
  NodeIdentity node;
  bool held;
  {
    MutexLock lock(&mu_);
    node = identity_;
    held = held_;
  }
  PgConnection* conn = Connection();
  if (!held) {
    // Lost before: join again, at the next epoch.
    if (!conn) return;
    auto again = RegisterNode(*conn, options_.node_id, options_.info, options_.ttl);
    if (!again) return;
    last_renewed_ = now;
    {
      MutexLock lock(&mu_);
      identity_ = *again;
      held_ = true;
    }
    spdlog::warn("cluster: node {} joined again at epoch {}", again->id, again->epoch);
    if (options_.on_regained) options_.on_regained(*again);
  } else {
    bool fenced = false;
    std::string why;
    if (conn) {
      auto renewed = RenewLease(*conn, node, options_.ttl);
      if (renewed && *renewed) {
        last_renewed_ = now;
      } else if (renewed) {
        fenced = true;
        why = "a rescue took its jobs (the node was paused or cut off past its lease)";
      } else {
        why = renewed.error().detail;
      }
    } else {
      why = "PostgreSQL cannot be reached";
    }
    const Millis since = std::chrono::duration_cast<Millis>(now - last_renewed_);
    if (fenced || since > options_.ttl - options_.ttl / kRenewalsPerTtl) {
      {
        MutexLock lock(&mu_);
        held_ = false;
      }
      spdlog::error("cluster: node {} lost its lease (epoch {}): {}; stopping its jobs", node.id, node.epoch,
                    fenced ? why : "no renewal for " + std::to_string(since.count()) + " ms: " + why);
      if (options_.on_lost) options_.on_lost(node);
      return;
    }
  }
  if (!conn || !options_.decide) return;
  auto rescued = RescueExpiredNodes(*conn, options_.grace, clock_.Now(), options_.decide);
  if (!rescued) {
    spdlog::warn("cluster: rescue failed: {}", rescued.error().detail);
  } else if (rescued->nodes > 0) {
    spdlog::warn("cluster: {} node(s) past their lease; {} of their running jobs moved on", rescued->nodes,
                 rescued->jobs);
  }
}

}  // namespace offload
