// Maps across nodes (docs/cluster.md): the chunks of a map that the node running it
// (its owner) offers to the other nodes, in offload_map_chunks. A chunk row carries
// its elements, so that the node that claims it needs nothing else of the map; it
// goes offered → running (on the claimant, at its epoch) → done (its outcome in the
// row), and the owner takes the done ones out of the table as it folds them in.
//
// Fencing, as for jobs (cluster_tables.h): a runner's result is written only while
// the row still runs under its claim; an owner's calls name the claim it holds the
// map under. A rescue (RescueChunks, in the rescue's transaction) offers again the
// chunks of runners that are not live, and removes those of maps that no longer run
// under the claim that offered them (finished, canceled, rescued).
//
// Functions of a connection, no state of their own.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "store/pg_connection.h"
#include "store/store.h"

namespace offload {

// The map a node offers chunks of.
struct OfferedMap {
  std::string job_id;
  std::string task;
  int priority = 0;
  std::int64_t timeout_ms = 0;  // The job's own timeout per element (0: the task's).
  bool collect = false;         // Its spec's: failures are results, not the map's end.
  NodeIdentity owner;           // The claim the owner holds the map under.
  std::string tenant;           // The map's: its chunks count as its tenant's jobs.
};

struct ChunkOffer {
  std::int64_t chunk = 0;            // The owner's number for it, unique on the owner.
  std::vector<std::size_t> indices;  // Its elements' indices in the map.
  std::vector<int> attempts;         // Per element; empty when all are first attempts.
  std::string input;                 // Its elements, as a JSON array.
};

// Inserts the offers, while the map runs under `map.owner` (else kConflict, and none
// is inserted). Each takes its place in the cluster's queue now: after every job
// queued so far at the map's priority, as a map's next turn does on one node.
Status OfferChunks(PgConnection& conn, const OfferedMap& map, const std::vector<ChunkOffer>& offers);

// A chunk a node claimed (ClaimJobs, in the claim's transaction).
struct ClaimedChunk {
  std::uint64_t seq = 0;  // Its row; its place in the queue.
  std::string job_id;
  std::string task;
  int priority = 0;
  std::int64_t timeout_ms = 0;
  bool collect = false;
  std::vector<std::size_t> indices;
  std::vector<int> attempts;
  std::shared_ptr<const boost::json::value> input;  // Its elements: an array.
  std::string tenant;                               // The map's.
};

// The claim's part of the chunks: the head of the offered ones of `tasks` ($1, a text
// array), at most $2, not the claimant's own ($3, its id): seq, task, priority, true
// (a map's), tenant; the columns of the claim's head of jobs.
extern const char* const kOfferedChunksHead;
// Marks chunks running under node $1, epoch $2, by seq ($3, a bigint array), still
// offered; returns the columns ReadClaimedChunks reads.
extern const char* const kClaimChunks;
// The chunks of `rows`; the seqs of rows that are not what a node offered go to `bad`.
std::vector<ClaimedChunk> ReadClaimedChunks(const PgResult& rows, std::vector<std::uint64_t>* bad);

// Writes the outcome of chunk `seq`, while it runs under `runner`. Returns the map's
// job id, or "" when the chunk is no longer the runner's (dropped, or offered again).
ErrorOr<std::string> FinishChunk(PgConnection& conn, std::uint64_t seq, const NodeIdentity& runner,
                                 const std::string& outcome);

struct ChunkResult {
  std::int64_t chunk = 0;
  std::string outcome;
};
// The chunks of a map held under `owner`, as they are in the table.
struct ChunkStates {
  std::vector<ChunkResult> done;      // With their outcomes.
  std::vector<std::int64_t> present;  // Every chunk with a row, done or not.
  std::size_t unclaimed = 0;          // Offered, and no node claimed them yet.
};
// Reads, and removes nothing: a reply lost on the way costs nothing but a second read.
ErrorOr<ChunkStates> ReadChunks(PgConnection& conn, const std::string& job_id, const NodeIdentity& owner);
// Removes the chunks of the map that no node claimed yet; returns their numbers.
ErrorOr<std::vector<std::int64_t>> WithdrawChunks(PgConnection& conn, const std::string& job_id,
                                                  const NodeIdentity& owner);
// Removes chunks `chunks` of the map, offered under `owner` (folded in, or the map
// ended); returns how many were there.
ErrorOr<std::size_t> RemoveChunks(PgConnection& conn, const std::string& job_id, const NodeIdentity& owner,
                                  const std::vector<std::int64_t>& chunks);
// Removes the chunks `seqs`, whatever they are (rows that cannot be read).
Status RemoveChunkRows(PgConnection& conn, const std::vector<std::uint64_t>& seqs);
// Offers again the chunks `seqs` running under `runner` that it gives back unstarted.
ErrorOr<std::size_t> OfferAgain(PgConnection& conn, const NodeIdentity& runner, const std::vector<std::uint64_t>& seqs);
// The seqs of the chunks running under `runner`.
ErrorOr<std::vector<std::uint64_t>> ChunksRunningUnder(PgConnection& conn, const NodeIdentity& runner);

struct ChunkRescue {
  std::size_t offered_again = 0;  // Chunks of runners that are not live.
  std::size_t removed = 0;        // Chunks of maps that no longer run under their owner's claim.
};
// REQUIRES: the rescue's transaction, after its jobs moved.
ErrorOr<ChunkRescue> RescueChunks(PgConnection& conn);

}  // namespace offload
