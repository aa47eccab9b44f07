#include "cluster/map_chunks.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "store/postgres_rows.h"

namespace offload {

namespace json = boost::json;

namespace {

std::string JsonList(const auto& values) {
  json::array list;
  for (auto v : values) list.emplace_back(v);
  return json::serialize(list);
}

// A JSON list of non-negative integers (what OfferChunks wrote), into `out`.
template <typename T>
bool ReadList(std::string_view text, std::vector<T>* out) {
  if (text.empty()) return true;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return false;
  for (const json::value& e : v.get_array()) {
    if (!e.is_int64() || e.get_int64() < 0) return false;
    out->push_back(static_cast<T>(e.get_int64()));
  }
  return true;
}

bool True(std::string_view bytes) { return bytes == std::string_view("\x01", 1); }

}  // namespace

const char* const kOfferedChunksHead =
    "SELECT seq, task, priority, true, tenant FROM offload_map_chunks WHERE status = 0 AND task = ANY($1::text[]) AND "
    "owner_id <> $3 "
    "ORDER BY priority DESC, seq LIMIT $2";

const char* const kClaimChunks =
    "UPDATE offload_map_chunks SET status = 1, node_id = $1, node_epoch = $2 WHERE seq = ANY($3::bigint[]) AND "
    "status = 0 RETURNING seq, job_id, task, priority, timeout_ms, collect, indices, attempts, input, tenant";

Status OfferChunks(PgConnection& conn, const OfferedMap& map, const std::vector<ChunkOffer>& offers) {
  std::vector<PgCall> calls;
  for (const ChunkOffer& offer : offers) {
    PgParams p;
    p.Text(map.job_id)
        .Int(offer.chunk)
        .Text(map.task)
        .Int(map.priority)
        .Int(map.timeout_ms)
        .Own(map.collect ? "t" : "f")
        .Text(map.owner.id)
        .Int(map.owner.epoch)
        .Own(JsonList(offer.indices))
        .Own(offer.attempts.empty() ? std::string() : JsonList(offer.attempts))
        .Text(offer.input)
        .Text(map.tenant);
    calls.push_back(PgCall{
        "INSERT INTO offload_map_chunks (job_id, chunk, task, priority, timeout_ms, collect, owner_id, owner_epoch, "
        "indices, attempts, input, tenant) SELECT $1, $2, $3, $4, $5, $6::boolean, $7, $8, $9, $10, $11, $12 WHERE "
        "EXISTS "
        "(SELECT 1 FROM offload_jobs WHERE id = $1 AND status = 1 AND node_id = $7 AND node_epoch = $8)",
        std::move(p)});
  }
  // The map no longer runs under the owner's claim: nothing is offered.
  auto check = [&offers, &map](const std::vector<PgResult>& results) -> Status {
    for (std::size_t i = 0; i < offers.size(); ++i) {
      if (results[i].changed() != 1) {
        return MakeError(ErrorCode::kConflict, "map " + map.job_id + " no longer runs under the claim of node " +
                                                   map.owner.id + " (epoch " + std::to_string(map.owner.epoch) + ")");
      }
    }
    return {};
  };
  return conn.Transaction(calls, check);
}

std::vector<ClaimedChunk> ReadClaimedChunks(const PgResult& rows, std::vector<std::uint64_t>* bad) {
  std::vector<ClaimedChunk> out;
  for (int row = 0; row < rows.rows(); ++row) {
    ClaimedChunk c;
    c.seq = static_cast<std::uint64_t>(rows.Int(row, 0));
    c.job_id = std::string(rows.Bytes(row, 1));
    c.task = std::string(rows.Bytes(row, 2));
    c.priority = static_cast<int>(rows.Int(row, 3));
    c.timeout_ms = rows.Int(row, 4);
    c.collect = True(rows.Bytes(row, 5));
    c.tenant = std::string(rows.Bytes(row, 9));
    boost::system::error_code ec;
    auto input = std::make_shared<json::value>(json::parse(rows.Bytes(row, 8), ec));
    if (ec || !input->is_array() || !ReadList(rows.Bytes(row, 6), &c.indices) ||
        !ReadList(rows.Bytes(row, 7), &c.attempts) || c.indices.size() != input->get_array().size() ||
        (!c.attempts.empty() && c.attempts.size() != c.indices.size())) {
      bad->push_back(c.seq);
      continue;
    }
    c.input = std::move(input);
    out.push_back(std::move(c));
  }
  return out;
}

ErrorOr<std::string> FinishChunk(PgConnection& conn, std::uint64_t seq, const NodeIdentity& runner,
                                 const std::string& outcome) {
  auto res = conn.Exec(
      "UPDATE offload_map_chunks SET status = 2, result = $4 WHERE seq = $1 AND status = 1 AND node_id = $2 AND "
      "node_epoch = $3 RETURNING job_id",
      PgParams().Int(static_cast<std::int64_t>(seq)).Text(runner.id).Int(runner.epoch).Text(outcome));
  if (!res) return res.error();
  return res->rows() > 0 ? std::string(res->Bytes(0, 0)) : std::string();
}

ErrorOr<ChunkStates> ReadChunks(PgConnection& conn, const std::string& job_id, const NodeIdentity& owner) {
  auto res = conn.Exec(
      "SELECT chunk, status, result FROM offload_map_chunks WHERE job_id = $1 AND owner_id = $2 AND owner_epoch = $3",
      PgParams().Text(job_id).Text(owner.id).Int(owner.epoch));
  if (!res) return res.error();
  ChunkStates out;
  for (int row = 0; row < res->rows(); ++row) {
    const std::int64_t chunk = res->Int(row, 0);
    out.present.push_back(chunk);
    const std::int64_t status = res->Int(row, 1);
    if (status == 0) ++out.unclaimed;
    if (status == 2) out.done.push_back(ChunkResult{chunk, std::string(res->Bytes(row, 2))});
  }
  return out;
}

ErrorOr<std::vector<std::int64_t>> WithdrawChunks(PgConnection& conn, const std::string& job_id,
                                                  const NodeIdentity& owner) {
  auto res = conn.Exec(
      "DELETE FROM offload_map_chunks WHERE job_id = $1 AND owner_id = $2 AND owner_epoch = $3 AND status = 0 "
      "RETURNING chunk",
      PgParams().Text(job_id).Text(owner.id).Int(owner.epoch));
  if (!res) return res.error();
  std::vector<std::int64_t> out;
  for (int row = 0; row < res->rows(); ++row) out.push_back(res->Int(row, 0));
  return out;
}

ErrorOr<std::size_t> RemoveChunks(PgConnection& conn, const std::string& job_id, const NodeIdentity& owner,
                                  const std::vector<std::int64_t>& chunks) {
  auto res = conn.Exec(
      "DELETE FROM offload_map_chunks WHERE job_id = $1 AND owner_id = $2 AND owner_epoch = $3 AND "
      "chunk = ANY($4::bigint[])",
      PgParams().Text(job_id).Text(owner.id).Int(owner.epoch).Own(PgIntArray(chunks)));
  if (!res) return res.error();
  return static_cast<std::size_t>(res->changed());
}

Status RemoveChunkRows(PgConnection& conn, const std::vector<std::uint64_t>& seqs) {
  auto res =
      conn.Exec("DELETE FROM offload_map_chunks WHERE seq = ANY($1::bigint[])", PgParams().Own(PgIntArray(seqs)));
  if (!res) return res.error();
  return {};
}

ErrorOr<std::size_t> OfferAgain(PgConnection& conn, const NodeIdentity& runner,
                                const std::vector<std::uint64_t>& seqs) {
  auto res = conn.Exec(
      "UPDATE offload_map_chunks SET status = 0, node_id = NULL, node_epoch = 0 WHERE seq = ANY($1::bigint[]) AND "
      "status = 1 AND node_id = $2 AND node_epoch = $3",
      PgParams().Own(PgIntArray(seqs)).Text(runner.id).Int(runner.epoch));
  if (!res) return res.error();
  return static_cast<std::size_t>(res->changed());
}

ErrorOr<std::vector<std::uint64_t>> ChunksRunningUnder(PgConnection& conn, const NodeIdentity& runner) {
  auto res = conn.Exec("SELECT seq FROM offload_map_chunks WHERE status = 1 AND node_id = $1 AND node_epoch = $2",
                       PgParams().Text(runner.id).Int(runner.epoch));
  if (!res) return res.error();
  std::vector<std::uint64_t> out;
  for (int row = 0; row < res->rows(); ++row) out.push_back(static_cast<std::uint64_t>(res->Int(row, 0)));
  return out;
}

ErrorOr<ChunkRescue> RescueChunks(PgConnection& conn) {
  ChunkRescue report;
  auto removed = conn.Exec(
      "DELETE FROM offload_map_chunks c WHERE NOT EXISTS (SELECT 1 FROM offload_jobs j WHERE j.id = c.job_id AND "
      "j.status = 1 AND j.node_id = c.owner_id AND j.node_epoch = c.owner_epoch)");
  if (!removed) return removed.error();
  report.removed = static_cast<std::size_t>(removed->changed());
  auto again = conn.Exec(
      "UPDATE offload_map_chunks c SET status = 0, node_id = NULL, node_epoch = 0 WHERE status = 1 AND NOT EXISTS "
      "(SELECT 1 FROM offload_nodes n WHERE n.id = c.node_id AND n.epoch = c.node_epoch AND n.expired_at IS NULL)");
  if (!again) return again.error();
  report.offered_again = static_cast<std::size_t>(again->changed());
  return report;
}

}  // namespace offload
