// offload-claim-soak: does a claim stay as fast after a million jobs went through the
// table as on an empty one? Jobs are queued, claimed and finished in rounds, with a
// steady backlog and every finished row left in place (no retention: the worst case
// for dead tuples and index bloat), and the latency of each claim (ClaimJobs, one
// transaction) is recorded. Prints one JSON object: the claim latency at the start and
// at the end, and the rates.
//
//   offload-claim-soak --conninfo "host=127.0.0.1 port=5432 dbname=x" [--jobs 1000000]
//                      [--backlog 10000] [--batch 256]
//
// The tables are created in the connection's current schema (add options='-csearch_path=...').
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cluster/cluster_tables.h"
#include "store/pg_connection.h"
#include "store/postgres_store.h"

namespace {

using offload::JobRecord;
using offload::StoreOp;
using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "offload-claim-soak: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string conninfo;
  std::uint64_t jobs = 1'000'000, backlog = 10'000, batch = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--conninfo")
      conninfo = argv[i + 1];
    else if (flag == "--jobs")
      jobs = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--backlog")
      backlog = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--batch")
      batch = std::strtoull(argv[i + 1], nullptr, 10);
    else
      return Fail("unknown flag " + flag);
  }
  if (conninfo.empty() || jobs == 0 || backlog == 0 || batch == 0) return Fail("--conninfo is required");
  spdlog::set_level(spdlog::level::warn);  // stdout carries the JSON only.
  auto store = offload::PostgresStore::Open(offload::PostgresOptions{conninfo, 2});
  if (!store) return Fail(store.error().detail);
  auto conn = offload::PgConnection::Connect(conninfo);
  if (!conn) return Fail(conn.error().detail);

  offload::ResourceDemand one_cpu;
  one_cpu.Add(0, 1);
  offload::ClaimRequest claim;
  claim.node = {"soak", 1};
  claim.capacity = {static_cast<std::int64_t>(batch)};
  claim.in_use = {0};
  claim.tasks = {{"noop", one_cpu}};
  claim.limit = batch;
  const auto input = std::make_shared<const boost::json::value>(boost::json::object{});

  std::uint64_t inserted = 0, finished = 0;
  // Latencies (ms) of the claims of the first and of the last `window` jobs.
  const std::uint64_t window = std::min<std::uint64_t>(jobs / 10, 20'000);
  std::vector<double> start_ms, end_ms;
  const auto began = Clock::now();
  while (finished < jobs) {
    // Top the backlog up.
    std::vector<StoreOp> ops;
    while (inserted < jobs && inserted - finished < backlog) {
      JobRecord r;
      r.seq = ++inserted;
      r.id = "soak-" + std::to_string(r.seq);
      r.task = "noop";
      r.input = input;
      r.created_at = static_cast<offload::UnixMillis>(r.seq);
      ops.push_back({StoreOp::Kind::kInsert, std::move(r)});
      if (ops.size() == 2000) {
        if (auto s = (*store)->Apply(ops); !s) return Fail(s.error().detail);
        ops.clear();
      }
    }
    if (!ops.empty()) {
      if (auto s = (*store)->Apply(ops); !s) return Fail(s.error().detail);
    }
    // One claim, timed, then its jobs finished in one batch.
    const auto t0 = Clock::now();
    auto claimed = offload::ClaimJobs(**conn, claim);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!claimed) return Fail(claimed.error().detail);
    if (claimed->jobs.empty())
      return Fail("a claim found nothing with " + std::to_string(inserted - finished) + " queued");
    if (finished < window) start_ms.push_back(ms);
    if (finished >= jobs - std::min(jobs, window)) end_ms.push_back(ms);
    std::vector<StoreOp> done;
    for (JobRecord& r : claimed->jobs) {
      r.status = offload::JobStatus::kSucceeded;
      r.attempts = 1;
      r.started_at = r.finished_at = static_cast<offload::UnixMillis>(r.seq) + 1;
      done.push_back({StoreOp::Kind::kUpdate, std::move(r)});
    }
    if (auto s = (*store)->Apply(done); !s) return Fail(s.error().detail);
    finished += done.size();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - began).count();
  boost::json::object out{
      {"jobs", jobs},
      {"backlog", backlog},
      {"batch", batch},
      {"seconds", seconds},
      {"jobs_per_s", static_cast<double>(jobs) / seconds},
      {"start",
       boost::json::object{
           {"claims", start_ms.size()}, {"p50_ms", Percentile(start_ms, 0.5)}, {"p99_ms", Percentile(start_ms, 0.99)}}},
      {"end",
       boost::json::object{
           {"claims", end_ms.size()}, {"p50_ms", Percentile(end_ms, 0.5)}, {"p99_ms", Percentile(end_ms, 0.99)}}},
  };
  std::printf("%s\n", boost::json::serialize(out).c_str());
  return 0;
}
