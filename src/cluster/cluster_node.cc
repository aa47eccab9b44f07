#include "cluster/cluster_node.h"

#include <spdlog/spdlog.h>

#include <unordered_set>

#include "cluster/node_lease.h"
#include "cluster/wake_listener.h"
#include "store/pg_connection.h"
#include "store/postgres_rows.h"

namespace offload {

namespace {

// The most a notification's payload holds is 8000 bytes: ids go in batches below it.
constexpr std::size_t kMaxPayload = 7000;
// Between two notifications of the same kind.
constexpr auto kDebounce = std::chrono::milliseconds(50);

// Rolls back the open transaction and returns `e`.
Error Abort(PgConnection& conn, Error e) {
  if (!conn.broken()) (void)conn.ExecScript("ROLLBACK");
  return e;
}

std::vector<std::string> SplitIds(const std::string& payload) {
  std::vector<std::string> ids;
  std::size_t start = 0;
  while (start < payload.size()) {
    std::size_t end = payload.find(',', start);
    if (end == std::string::npos) end = payload.size();
    if (end > start) ids.push_back(payload.substr(start, end - start));
    start = end + 1;
  }
  return ids;
}

// Sends `ids` on `channel` in payloads under the limit; false when a send failed.
bool NotifyIds(PgConnection& conn, const std::string& channel, const std::vector<std::string>& ids) {
  std::string payload;
  for (std::size_t i = 0; i <= ids.size(); ++i) {
    if (i == ids.size() || payload.size() + ids[i].size() + 1 > kMaxPayload) {
      if (!payload.empty() && !Notify(conn, channel, payload)) return false;
      payload.clear();
      if (i == ids.size()) break;
    }
    if (!payload.empty()) payload += ',';
    payload += ids[i];
  }
  return true;
}

// Those of `ids` that are not in the first column of `rows`.
std::vector<std::string> Absent(const std::vector<std::string>& ids, const PgResult& rows) {
  std::unordered_set<std::string> present;
  for (int row = 0; row < rows.rows(); ++row) present.emplace(rows.Bytes(row, 0));
  std::vector<std::string> out;
  for (const std::string& id : ids) {
    if (!present.count(id)) out.push_back(id);
  }
  return out;
}

}  // namespace

ClusterNode::ClusterNode(ClusterNodeOptions options) : options_(std::move(options)) {}

ErrorOr<std::unique_ptr<ClusterNode>> ClusterNode::Start(ClusterNodeOptions options, const WallClock& clock) {
  std::unique_ptr<ClusterNode> node(new ClusterNode(std::move(options)));
  const ClusterNodeOptions& o = node->options_;
  auto conn = PgConnection::Connect(o.conninfo);
  if (!conn) return conn.error();
  auto schema = (*conn)->Exec("SELECT substr(md5(current_schema()), 1, 12)");
  if (!schema) return schema.error();
  const std::string tag(schema->Bytes(0, 0));
  node->work_channel_ = "offload_work_" + tag;
  node->done_channel_ = "offload_done_" + tag;
  node->cancel_channel_ = "offload_cancel_" + tag;
  node->chunks_channel_ = "offload_chunks_" + tag;
  node->events_channel_ = "offload_events_" + tag;
  {
    MutexLock lock(&node->calls_mu_);
    node->calls_conn_ = std::move(*conn);
  }
  auto lease = NodeLease::Start(
      NodeLeaseOptions{o.conninfo, o.node_id, o.info, o.lease_ttl, o.lease_grace, o.decide, o.on_lost, o.on_regained},
      clock);
  if (!lease) return lease.error();
  node->lease_ = std::move(*lease);
  ClusterNode* self = node.get();
  auto listener = WakeListener::Start(WakeListenerOptions{
      o.conninfo,
      {node->work_channel_, node->done_channel_, node->cancel_channel_, node->chunks_channel_, node->events_channel_},
      [self](const std::string& channel, const std::string& payload) {
        const ClusterNodeOptions& opts = self->options_;
        if (channel == self->work_channel_) {
          if (opts.on_work) opts.on_work();
        } else if (channel == self->done_channel_) {
          if (opts.on_done) opts.on_done(SplitIds(payload));
        } else if (channel == self->cancel_channel_) {
          if (opts.on_canceled) opts.on_canceled(SplitIds(payload));
        } else if (channel == self->chunks_channel_) {
          self->OnChunksNotified(payload);
        } else if (channel == self->events_channel_) {
          self->OnEventsNotified(payload);
        }
      },
      [self] {
        if (self->options_.on_reconnect) self->options_.on_reconnect();
      }});
  if (!listener) return listener.error();
  node->listener_ = std::move(*listener);
  node->notifier_ = std::thread([self] { self->NotifyLoop(); });
  return node;
}

ClusterNode::~ClusterNode() {
  {
    MutexLock lock(&out_mu_);
    stopping_ = true;
  }
  out_cv_.SignalAll();
  if (notifier_.joinable()) notifier_.join();
  listener_.reset();
  lease_.reset();
}

NodeIdentity ClusterNode::identity() const { return lease_->identity(); }

bool ClusterNode::held() const { return lease_->held(); }

bool ClusterNode::listening() const { return listener_->listening(); }

PgConnection* ClusterNode::Connection(std::unique_ptr<PgConnection>* conn) {
  if (*conn && !(*conn)->broken()) return conn->get();
  conn->reset();
  auto fresh = PgConnection::Connect(options_.conninfo);
  if (!fresh) return nullptr;
  *conn = std::move(*fresh);
  return conn->get();
}

void ClusterNode::OnChunksNotified(const std::string& payload) {
  std::vector<std::string> done, dropped;
  for (std::string& entry : SplitIds(payload)) {
    if (entry.size() < 2) continue;
    (entry[0] == '+' ? done : dropped).push_back(entry.substr(1));
  }
  if (!done.empty() && options_.on_chunks_done) options_.on_chunks_done(done);
  if (!dropped.empty() && options_.on_chunks_dropped) options_.on_chunks_dropped(dropped);
}

ErrorOr<std::pair<NodeIdentity, ClaimedWork>> ClusterNode::Claim(ClaimRequest request) {
  request.node = identity();
  MutexLock lock(&claim_mu_);
  PgConnection* conn = Connection(&claim_conn_);
  if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL to claim jobs");
  auto claimed = ClaimJobs(*conn, request);
  if (!claimed) return claimed.error();
  return std::make_pair(std::move(request.node), std::move(*claimed));
}

ErrorOr<std::size_t> ClusterNode::RescueUnheld(const NodeIdentity& claim, const std::vector<std::string>& held,
                                               UnixMillis now, const RescueDecision& decide) {
  MutexLock lock(&claim_mu_);  // On the claims' connection: no claim runs meanwhile.
  PgConnection* conn = Connection(&claim_conn_);
  if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL");
  return offload::RescueUnheld(*conn, claim, held, now, decide);
}

ErrorOr<std::vector<std::uint64_t>> ClusterNode::ReconcileChunks(const NodeIdentity& claim,
                                                                 const std::vector<std::uint64_t>& held) {
  MutexLock lock(&claim_mu_);  // On the claims' connection: no claim runs meanwhile.
  PgConnection* conn = Connection(&claim_conn_);
  if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL");
  auto running = ChunksRunningUnder(*conn, claim);
  if (!running) return running.error();
  const std::unordered_set<std::uint64_t> here(held.begin(), held.end());
  const std::unordered_set<std::uint64_t> there(running->begin(), running->end());
  std::vector<std::uint64_t> lost;
  for (std::uint64_t seq : *running) {
    if (!here.count(seq)) lost.push_back(seq);
  }
  if (!lost.empty()) {
    auto again = offload::OfferAgain(*conn, claim, lost);
    if (!again) return again.error();
    if (*again > 0) AnnounceWork();
  }
  std::vector<std::uint64_t> gone;
  for (std::uint64_t seq : held) {
    if (!there.count(seq)) gone.push_back(seq);
  }
  return gone;
}

Status ClusterNode::OfferChunks(const OfferedMap& map, const std::vector<ChunkOffer>& offers) {
  {
    MutexLock lock(&calls_mu_);
    PgConnection* conn = Connection(&calls_conn_);
    if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL to offer chunks");
    if (Status s = offload::OfferChunks(*conn, map, offers); !s) return s;
  }
  AnnounceWork();
  return {};
}

ErrorOr<bool> ClusterNode::FinishChunk(std::uint64_t seq, const NodeIdentity& runner, const std::string& outcome) {
  std::string job_id;
  {
    MutexLock lock(&calls_mu_);
    PgConnection* conn = Connection(&calls_conn_);
    if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL to store a chunk's outcome");
    auto written = offload::FinishChunk(*conn, seq, runner, outcome);
    if (!written) return written.error();
    job_id = std::move(*written);
  }
  if (job_id.empty()) return false;
  Post([&job_id](Outbox* box) { box->chunks.push_back("+" + job_id); });
  return true;
}

ErrorOr<ChunkStates> ClusterNode::ReadChunks(const std::string& job_id, const NodeIdentity& owner) {
  MutexLock lock(&calls_mu_);
  PgConnection* conn = Connection(&calls_conn_);
  if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL");
  return offload::ReadChunks(*conn, job_id, owner);
}

ErrorOr<std::vector<std::int64_t>> ClusterNode::WithdrawChunks(const std::string& job_id, const NodeIdentity& owner) {
  MutexLock lock(&calls_mu_);
  PgConnection* conn = Connection(&calls_conn_);
  if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL");
  return offload::WithdrawChunks(*conn, job_id, owner);
}

ErrorOr<std::size_t> ClusterNode::RemoveChunks(const std::string& job_id, const NodeIdentity& owner,
                                               const std::vector<std::int64_t>& chunks) {
  MutexLock lock(&calls_mu_);
  PgConnection* conn = Connection(&calls_conn_);
  if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL");
  return offload::RemoveChunks(*conn, job_id, owner, chunks);
}

Status ClusterNode::DropChunks(const std::string& job_id, const NodeIdentity& owner,
                               const std::vector<std::int64_t>& chunks) {
  auto removed = RemoveChunks(job_id, owner, chunks);
  if (!removed) return removed.error();
  // None there: nothing of this owner's runs anywhere (and a later owner's chunks of
  // the same map must not be stopped).
  if (*removed > 0) Post([&job_id](Outbox* box) { box->chunks.push_back("-" + job_id); });
  return {};
}

Status ClusterNode::OfferAgain(const NodeIdentity& runner, const std::vector<std::uint64_t>& seqs) {
  std::size_t again = 0;
  {
    MutexLock lock(&calls_mu_);
    PgConnection* conn = Connection(&calls_conn_);
    if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL");
    auto offered = offload::OfferAgain(*conn, runner, seqs);
    if (!offered) return offered.error();
    again = *offered;
  }
  if (again > 0) AnnounceWork();
  return {};
}

void ClusterNode::AnnounceChunksClaimed(const std::string& job_id) {
  Post([&job_id](Outbox* box) { box->chunks.push_back("+" + job_id); });
}

ErrorOr<RemoteCancel> ClusterNode::Cancel(const std::string& id, const std::function<void(JobRecord*)>& to_canceled) {
  RemoteCancel out;
  bool was_running = false;
  {
    MutexLock lock(&calls_mu_);
    PgConnection* conn = Connection(&calls_conn_);
    if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL to cancel job " + id);
    if (Status s = conn->ExecScript("BEGIN"); !s) return Abort(*conn, s.error());
    auto row = conn->Exec(std::string("SELECT ") + kPgJobColumns + " FROM offload_jobs WHERE id = $1 FOR UPDATE",
                          PgParams().Text(id));
    if (!row) return Abort(*conn, row.error());
    if (row->rows() > 0) {
      JobRecord job = ReadPgJobRow(*row, 0);
      if (!IsFinished(job.status)) {
        const auto before = static_cast<std::int64_t>(job.status);
        was_running = job.status == JobStatus::kRunning;
        to_canceled(&job);
        const StoreOp op{StoreOp::Kind::kUpdate, std::move(job)};  // The call borrows its strings.
        PgCall write = PgJobWrite(op, "status = $17");
        write.params.Int(before);
        auto written = conn->Exec(write.sql, write.params);
        if (!written) return Abort(*conn, written.error());
        if (op.job.map) {
          // Its chunks on other nodes go with it; those nodes hear of it on the cancel channel.
          auto chunks = conn->Exec("DELETE FROM offload_map_chunks WHERE job_id = $1", PgParams().Text(id));
          if (!chunks) return Abort(*conn, chunks.error());
        }
        out.canceled = true;
        out.job = op.job;
      } else {
        out.job = std::move(job);
      }
    }
    if (Status s = conn->ExecScript("COMMIT"); !s) return s.error();
  }
  if (out.canceled) {
    Post([&](Outbox* box) {
      if (was_running) box->canceled.push_back(id);
      box->done.push_back(id);
    });
  }
  return out;
}

ErrorOr<ClusterNode::Ended> ClusterNode::Finished(const std::vector<std::string>& ids) {
  MutexLock lock(&calls_mu_);
  PgConnection* conn = Connection(&calls_conn_);
  if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL");
  // Every id, so that the unknown ones are known too; the finished ones with their rows.
  auto rows =
      conn->Exec("SELECT id, status FROM offload_jobs WHERE id = ANY($1::text[])", PgParams().Own(PgTextArray(ids)));
  if (!rows) return rows.error();
  Ended out;
  out.unknown = Absent(ids, *rows);
  std::vector<std::string> finished;
  for (int row = 0; row < rows->rows(); ++row) {
    if (IsFinished(static_cast<JobStatus>(rows->Int(row, 1)))) finished.emplace_back(rows->Bytes(row, 0));
  }
  if (finished.empty()) return out;
  auto jobs = conn->Exec(std::string("SELECT ") + kPgJobColumns + " FROM offload_jobs WHERE id = ANY($1::text[])",
                         PgParams().Own(PgTextArray(finished)));
  if (!jobs) return jobs.error();
  for (int row = 0; row < jobs->rows(); ++row) out.finished.push_back(ReadPgJobRow(*jobs, row));
  return out;
}

ErrorOr<std::vector<std::string>> ClusterNode::NoLongerHeld(const std::vector<std::string>& ids,
                                                            const NodeIdentity& claim) {
  MutexLock lock(&calls_mu_);
  PgConnection* conn = Connection(&calls_conn_);
  if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL");
  auto held = conn->Exec(
      "SELECT id FROM offload_jobs WHERE id = ANY($1::text[]) AND status = 1 AND node_id = $2 AND node_epoch = $3",
      PgParams().Own(PgTextArray(ids)).Text(claim.id).Int(claim.epoch));
  if (!held) return held.error();
  return Absent(ids, *held);
}

ErrorOr<std::optional<JobRecord>> ClusterNode::KeyHolder(const std::string& task, const std::string& tenant,
                                                         const std::string& key, UnixMillis expired_before) {
  MutexLock lock(&calls_mu_);
  PgConnection* conn = Connection(&calls_conn_);
  if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL");
  if (Status s = conn->ExecScript("BEGIN"); !s) return Abort(*conn, s.error());
  // offload_jobs_idem_key's columns. A job without auth has tenant '', never NULL.
  auto freed = conn->Exec(
      "UPDATE offload_jobs SET idem_key = NULL WHERE task = $1 AND tenant = $2 AND idem_key = $3 AND created_at < $4",
      PgParams().Text(task).Text(tenant).Text(key).Int(expired_before));
  if (!freed) return Abort(*conn, freed.error());
  auto held = conn->Exec(
      std::string("SELECT ") + kPgJobColumns + " FROM offload_jobs WHERE task = $1 AND tenant = $2 AND idem_key = $3",
      PgParams().Text(task).Text(tenant).Text(key));
  if (!held) return Abort(*conn, held.error());
  if (Status s = conn->ExecScript("COMMIT"); !s) return s.error();
  if (held->rows() == 0) return std::optional<JobRecord>();
  return std::optional<JobRecord>(ReadPgJobRow(*held, 0));
}

ErrorOr<std::vector<std::pair<std::string, std::int64_t>>> ClusterNode::QueuedByTask() {
  MutexLock lock(&calls_mu_);
  PgConnection* conn = Connection(&calls_conn_);
  if (!conn) return MakeError(ErrorCode::kUnavailable, "cannot reach PostgreSQL");
  auto counts = conn->Exec("SELECT task, count(*) FROM offload_jobs WHERE status = 0 GROUP BY task");
  if (!counts) return counts.error();
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (int row = 0; row < counts->rows(); ++row) out.emplace_back(counts->Bytes(row, 0), counts->Int(row, 1));
  return out;
}

void ClusterNode::AnnounceWork() {
  Post([](Outbox* box) { box->work = true; });
}

void ClusterNode::AnnounceDone(const std::string& id) {
  Post([&id](Outbox* box) { box->done.push_back(id); });
}

void ClusterNode::AnnounceEvent(std::string event) {
  Post([&event](Outbox* box) {
    if (box->events.size() < kMaxEventsPending) box->events.push_back(std::move(event));
  });
}

void ClusterNode::WantEvents() {
  Post([](Outbox* box) { box->want_events = true; });
}

void ClusterNode::OnEventsNotified(const std::string& payload) {
  // "W" or "E", the sender's node id, then (for "E") a line per event.
  if (payload.empty()) return;
  const std::size_t end = payload.find('\n');
  const std::string_view sender = std::string_view(payload).substr(1, end == std::string::npos ? end : end - 1);
  if (sender == options_.node_id) return;
  if (payload[0] == 'W') {
    if (options_.on_events_wanted) options_.on_events_wanted();
    return;
  }
  if (payload[0] != 'E' || end == std::string::npos || !options_.on_events) return;
  std::vector<std::string> events;
  std::size_t start = end + 1;
  while (start < payload.size()) {
    std::size_t line_end = payload.find('\n', start);
    if (line_end == std::string::npos) line_end = payload.size();
    if (line_end > start) events.push_back(payload.substr(start, line_end - start));
    start = line_end + 1;
  }
  options_.on_events(events);
}

bool ClusterNode::NotifyEvents(PgConnection& conn, bool want, const std::vector<std::string>& events) {
  if (want && !Notify(conn, events_channel_, "W" + options_.node_id)) return false;
  const std::string head = "E" + options_.node_id;
  std::string payload = head;
  for (std::size_t i = 0; i <= events.size(); ++i) {
    if (i == events.size() || payload.size() + events[i].size() + 1 > kMaxPayload) {
      if (payload.size() > head.size() && !Notify(conn, events_channel_, payload)) return false;
      payload = head;
      if (i == events.size()) break;
    }
    // An event over the limit alone is not sent: a client reads it with GET.
    if (head.size() + events[i].size() + 1 > kMaxPayload) continue;
    payload += '\n';
    payload += events[i];
  }
  return true;
}

void ClusterNode::Post(const std::function<void(Outbox*)>& add) {
  {
    MutexLock lock(&out_mu_);
    add(&outbox_);
  }
  out_cv_.Signal();
}

// Leading edge and trailing edge: what comes while a send is in its 50 ms window goes
// at the end of it, all together.
void ClusterNode::NotifyLoop() {
  auto last_sent = std::chrono::steady_clock::now() - kDebounce;
  for (;;) {
    Outbox box;
    {
      MutexLock lock(&out_mu_);
      while (!stopping_ && outbox_.empty()) out_cv_.Wait(&out_mu_);
      if (outbox_.empty()) return;  // Stopping, with nothing left to send.
      const auto due = last_sent + kDebounce;
      // A cancel goes at once: the node running the job should stop it now.
      while (!stopping_ && outbox_.canceled.empty() && std::chrono::steady_clock::now() < due) {
        out_cv_.WaitUntil(&out_mu_, due);
      }
      std::swap(box, outbox_);
    }
    last_sent = std::chrono::steady_clock::now();
    PgConnection* conn = Connection(&notify_conn_);
    // A notification that cannot be sent is lost: the others' polls find the work.
    const bool sent = conn && (!box.work || Notify(*conn, work_channel_)) &&
                      NotifyIds(*conn, cancel_channel_, box.canceled) && NotifyIds(*conn, done_channel_, box.done) &&
                      NotifyIds(*conn, chunks_channel_, box.chunks) && NotifyEvents(*conn, box.want_events, box.events);
    if (!sent) spdlog::debug("cluster: a notification could not be sent; the other nodes' polls find what it said");
  }
}

}  // namespace offload
