#include "store/postgres_rows.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "store/record_text.h"
#include "util/json_reader.h"
#include "util/json_writer.h"

namespace offload {

namespace json = boost::json;

namespace {

// The columns an UPDATE changes, as parameters, in kUpdate's order (from $3).
void AddState(const JobRecord& r, PgParams* p) {
  p->Int(static_cast<int>(r.status)).Int(r.attempts).Int(r.started_at).Int(r.finished_at);
  if (r.result) {
    p->Text(r.result->content_type);
    if (r.result->file) {
      p->Null();
    } else if (r.result->is_json()) {
      p->OwnBinary(WriteJson(r.result->json, JsonNumbers::kKeepKind));
    } else {
      p->Binary(r.result->bytes);
    }
  } else {
    p->Null().Null();
  }
  if (r.error) {
    p->Text(r.error->type).Text(r.error->message).TextOrNull(r.error->detail);
  } else {
    p->Null().Null().Null();
  }
  if (r.progress) {
    p->Double(*r.progress);
  } else {
    p->Null();
  }
  p->OwnOrNull(HistoryToText(r.error_history)).OwnOrNull(MapSpecToText(r.map));
  p->OwnOrNull(r.result && r.result->file ? ResultFileToText(*r.result->file) : std::string());
  p->Int(r.run_after);
}

constexpr const char* kUpdate =
    "UPDATE offload_jobs SET status = $3, attempts = $4, started_at = $5, finished_at = $6, result_type = $7, "
    "result = $8, error_type = $9, error_message = $10, error_detail = $11, progress = $12, error_history = $13, "
    "map_spec = $14, result_file = $15, run_after = $16 WHERE seq = $1 AND id = $2";

// kUpdate's columns first, then those only an INSERT sets.
constexpr const char* kInsert =
    "INSERT INTO offload_jobs (seq, id, status, attempts, started_at, finished_at, result_type, result, error_type, "
    "error_message, error_detail, progress, error_history, map_spec, result_file, run_after, task, priority, input, "
    "created_at, idem_key, request_hash, timeout_ms, files, files_node, retry_of, tenant) "
    "VALUES (COALESCE(NULLIF($1::bigint, 0), nextval('offload_job_seq')), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
    "$12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)";

}  // namespace

std::string PgTextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (const std::string& v : values) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string PgJobColumnsWithResultAs(std::string_view expr) {
  constexpr std::string_view kPlain = ", result, ";
  std::string c = kPgJobColumns;
  c.replace(c.find(kPlain), kPlain.size(), ", " + std::string(expr) + ", ");
  return c;
}

JobRecord ReadPgJobRow(const PgResult& res, int row, std::shared_ptr<const Output> shared, ResultCache* cache) {
  auto text = [&](int col) { return res.Bytes(row, col); };
  JobRecord r;
  r.seq = static_cast<std::uint64_t>(res.Int(row, 0));
  r.id = text(1);
  r.task = text(2);
  r.status = static_cast<JobStatus>(res.Int(row, 3));
  r.priority = static_cast<int>(res.Int(row, 4));
  r.attempts = static_cast<int>(res.Int(row, 5));
  ErrorOr<json::value> input = ParseJson(text(6));
  if (!input) {
    spdlog::warn("job {}: its stored input is not readable ({}); it reads as null", r.id, input.error().detail);
  }
  r.input = std::make_shared<const json::value>(input ? std::move(*input) : json::value(nullptr));
  r.created_at = res.Int(row, 7);
  r.started_at = res.Int(row, 8);
  r.finished_at = res.Int(row, 9);
  if (!res.null(row, 10)) {
    const std::string_view type = text(10);
    if (shared && shared->content_type == type) {
      r.result = std::move(shared);
    } else {
      auto out = std::make_shared<Output>();
      out->content_type = type;
      if (!res.null(row, 22)) {
        out->file = ResultFileFromText(text(22));
      } else if (!res.null(row, 11)) {
        // (A null here is a result the query left out: its content type alone.)
        const std::string_view bytes = text(11);
        if (out->is_json()) {
          ErrorOr<json::value> result = ParseJson(bytes);
          if (!result) {
            spdlog::warn("job {}: its stored result is not readable ({}); it reads as null", r.id,
                         result.error().detail);
          }
          out->json = result ? std::move(*result) : json::value(nullptr);
        } else {
          out->bytes = bytes;
        }
        if (cache) cache->Remember(r.id, out, bytes.size());
      }
      r.result = std::move(out);
    }
  }
  if (!res.null(row, 12)) r.error = JobError{std::string(text(12)), std::string(text(13)), std::string(text(20))};
  if (!res.null(row, 14)) r.progress = res.Double(row, 14);
  r.error_history = HistoryFromText(text(15));
  r.idempotency_key = text(16);
  r.request_hash = static_cast<std::uint64_t>(res.Int(row, 17));
  r.timeout_ms = res.Int(row, 18);
  if (!res.null(row, 19)) r.map = MapSpecFromText(text(19));
  if (!res.null(row, 21)) r.files = FilesFromText(text(21));
  r.run_after = res.Int(row, 23);
  if (!res.null(row, 24)) r.files_node = text(24);
  if (!res.null(row, 25)) r.retry_of = text(25);
  r.tenant = text(26);
  return r;
}

PgCall PgJobWrite(const StoreOp& op, std::string_view extra_condition) {
  const JobRecord& r = op.job;
  PgCall call{op.kind == StoreOp::Kind::kInsert ? kInsert : kUpdate, {}};
  if (op.kind == StoreOp::Kind::kUpdate && !extra_condition.empty()) {
    call.sql = std::string(kUpdate) + " AND " + std::string(extra_condition);
  }
  call.params.Int(static_cast<std::int64_t>(r.seq)).Text(r.id);
  AddState(r, &call.params);
  if (op.kind == StoreOp::Kind::kInsert) {
    call.params.Text(r.task).Int(r.priority).Own(r.input ? WriteJson(*r.input, JsonNumbers::kKeepKind) : "null");
    call.params.Int(r.created_at).TextOrNull(r.idempotency_key).Int(static_cast<std::int64_t>(r.request_hash));
    call.params.Int(r.timeout_ms).OwnOrNull(FilesToText(r.files)).TextOrNull(r.files_node).TextOrNull(r.retry_of);
    call.params.Text(r.tenant);  // Never NULL: '' is the tenant of a job without auth.
  }
  return call;
}

}  // namespace offload
