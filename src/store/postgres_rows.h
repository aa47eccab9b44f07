// How a JobRecord is a row of PostgreSQL's offload_jobs table: the columns a read
// selects and how they read back, and the statement that writes a record. Shared by
// PostgresStore and the cluster's tables (cluster/cluster_tables.h), which read and
// write the same rows.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/pg_connection.h"
#include "store/result_cache.h"
#include "store/store.h"

namespace offload {

// What ReadPgJobRow reads, in its order; column 6 is the input, 11 the result.
inline constexpr const char* kPgJobColumns =
    "seq, id, task, status, priority, attempts, input, created_at, started_at, finished_at, result_type, result, "
    "error_type, error_message, progress, error_history, idem_key, request_hash, timeout_ms, map_spec, "
    "error_detail, files, result_file, run_after, files_node, retry_of, tenant";
// How many they are: a query that selects more columns after them reads those from here.
inline constexpr int kPgJobColumnCount = 27;

// `values` as a text[] literal ({"a","b"}, each quoted and escaped), for `= ANY($n::text[])`.
std::string PgTextArray(const std::vector<std::string>& values);

// `values` as a bigint[] literal ({1,2}), for `= ANY($n::bigint[])`.
template <typename Int>
std::string PgIntArray(const std::vector<Int>& values) {
  std::string out = "{";
  for (Int v : values) {
    if (out.size() > 1) out += ',';
    out += std::to_string(v);
  }
  return out + "}";
}

// kPgJobColumns with `expr` read in the result's place.
std::string PgJobColumnsWithResultAs(std::string_view expr);

// Row `row` of a result that selected kPgJobColumns. `shared`: the job's result as a
// reader already holds it (the row then has NULL in its place); `cache`: where to
// remember a large result read here.
JobRecord ReadPgJobRow(const PgResult& res, int row, std::shared_ptr<const Output> shared = nullptr,
                       ResultCache* cache = nullptr);

// The INSERT or UPDATE of `op`. An update's statement ends with its WHERE clause
// (by seq and id, $1 and $2; its values are $3..$16), so that a caller may add
// conditions, on parameters from $17. An insert of seq 0 takes the next of the
// sequence offload_job_seq: the order of submission across every node. The call's
// parameters borrow op's strings: op must outlive it.
PgCall PgJobWrite(const StoreOp& op, std::string_view extra_condition = {});

}  // namespace offload
