#include "store/pg_connection.h"

#include <endian.h>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

namespace offload {

namespace {

using Clock = std::chrono::steady_clock;

// The defaults offload sets before the user's connection string, which overrides
// them: a name in pg_stat_activity, and a connect that fails in seconds, not
// minutes, when the server is unreachable; keepalives so that a dead peer is noticed.
constexpr const char* kDefaultKeys[] = {"application_name", "connect_timeout", "keepalives_idle", "keepalives_interval",
                                        "keepalives_count"};
constexpr const char* kDefaultValues[] = {"offload", "5", "10", "3", "3"};

bool Retryable(std::string_view sqlstate) {
  // 08: connection exception; 53: insufficient resources (a full disk); 57: operator
  // intervention (a shutdown, a restart); 40: a serialization failure or deadlock;
  // 55P03: a lock not available; 25006: a read-only transaction (a standby).
  return sqlstate.substr(0, 2) == "08" || sqlstate.substr(0, 2) == "53" || sqlstate.substr(0, 2) == "57" ||
         sqlstate.substr(0, 2) == "40" || sqlstate == "55P03" || sqlstate == "25006";
}

}  // namespace

PgParams& PgParams::Add(const char* p, std::size_t n, int format) {
  values_.push_back(p);
  lengths_.push_back(static_cast<int>(n));
  formats_.push_back(format);
  return *this;
}

namespace {

// The length of the valid UTF-8 sequence at s[i], or 0 when it is not one.
std::size_t Utf8Length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return c == 0 ? 0 : 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;  // No surrogates.
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size() || b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
  }
  return n;
}

bool IsPgText(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = Utf8Length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ToPgText(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = Utf8Length(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      if (s[i] != '\0') out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
  return out;
}

}  // namespace

PgParams& PgParams::Text(const std::string& v) {
  if (!IsPgText(v)) return Own(v);
  return Add(v.c_str(), v.size(), 0);
}
PgParams& PgParams::Binary(std::string_view v) { return Add(v.empty() ? "" : v.data(), v.size(), 1); }
PgParams& PgParams::Null() { return Add(nullptr, 0, 0); }

PgParams& PgParams::Own(std::string v) {
  owned_.push_back(IsPgText(v) ? std::move(v) : ToPgText(v));
  return Add(owned_.back().data(), owned_.back().size(), 0);
}

PgParams& PgParams::OwnBinary(std::string v) {
  owned_.push_back(std::move(v));
  return Add(owned_.back().data(), owned_.back().size(), 1);
}

PgParams& PgParams::Int(std::int64_t v) { return Own(std::to_string(v)); }
PgParams& PgParams::Double(double v) { return Own(fmt::format("{:.17g}", v)); }

void PgResult::Free::operator()(pg_result* r) const { PQclear(r); }

PgResult::PgResult(pg_result* r) : result_(r) {}

int PgResult::rows() const { return result_ ? PQntuples(result_.get()) : 0; }

bool PgResult::null(int row, int col) const { return PQgetisnull(result_.get(), row, col) != 0; }

std::int64_t PgResult::Int(int row, int col) const {
  if (null(row, col)) return 0;
  const char* p = PQgetvalue(result_.get(), row, col);
  switch (PQgetlength(result_.get(), row, col)) {
    case 2: {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<std::int16_t>(be16toh(v));
    }
    case 4: {
      std::uint32_t v;
      std::memcpy(&v, p, 4);
      return static_cast<std::int32_t>(be32toh(v));
    }
    case 8: {
      std::uint64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<std::int64_t>(be64toh(v));
    }
    default:
      return 0;
  }
}

double PgResult::Double(int row, int col) const {
  if (null(row, col) || PQgetlength(result_.get(), row, col) != 8) return 0;
  std::uint64_t bits;
  std::memcpy(&bits, PQgetvalue(result_.get(), row, col), 8);
  bits = be64toh(bits);
  double v;
  std::memcpy(&v, &bits, 8);
  return v;
}

std::string_view PgResult::Bytes(int row, int col) const {
  if (null(row, col)) return {};
  return {PQgetvalue(result_.get(), row, col), static_cast<std::size_t>(PQgetlength(result_.get(), row, col))};
}

std::int64_t PgResult::changed() const {
  const char* n = result_ ? PQcmdTuples(result_.get()) : "";
  return *n ? std::strtoll(n, nullptr, 10) : 0;
}

Error PgError(pg_conn* conn, const pg_result* result, const std::string& what) {
  std::string message = result ? PQresultErrorMessage(result) : (conn ? PQerrorMessage(conn) : "no connection");
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string_view sqlstate = state ? state : "";
  const std::string detail = what + ": " + (message.empty() ? "unknown error" : message);
  if (sqlstate == "23505") return MakeError(ErrorCode::kConflict, detail);
  if (!result || Retryable(sqlstate) || (conn && PQstatus(conn) != CONNECTION_OK)) {
    return MakeError(ErrorCode::kUnavailable, detail);
  }
  return MakeError(ErrorCode::kInternal, detail);
}

ErrorOr<std::unique_ptr<PgConnection>> PgConnection::Connect(const std::string& conninfo,
                                                             std::chrono::milliseconds io_timeout) {
  // libpq's message about a string it cannot parse may quote it, password and all.
  if (!ValidConnInfo(conninfo, nullptr)) {
    return MakeError(ErrorCode::kInvalidArgument, "the PostgreSQL connection string cannot be parsed");
  }
  std::vector<const char*> keys(std::begin(kDefaultKeys), std::end(kDefaultKeys));
  std::vector<const char*> values(std::begin(kDefaultValues), std::end(kDefaultValues));
  const std::string connect_timeout = std::to_string(std::clamp<std::int64_t>((io_timeout.count() + 999) / 1000, 2, 5));
  values[1] = connect_timeout.c_str();  // kDefaultKeys[1] is connect_timeout.
  keys.push_back("dbname");             // Expanded (expand_dbname): the user's string, last, wins.
  values.push_back(conninfo.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  pg_conn* raw = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  std::unique_ptr<PgConnection> conn(new PgConnection(raw));
  if (!raw || PQstatus(raw) != CONNECTION_OK) {
    return MakeError(ErrorCode::kUnavailable,
                     "cannot connect to PostgreSQL (" + RedactConnInfo(conninfo) +
                         "): " + (raw ? std::string(PQerrorMessage(raw)) : std::string("out of memory")));
  }
  if (PQsetnonblocking(raw, 1) != 0) return conn->Fail("cannot make the connection non-blocking");
  // Text as offload sends it, whatever the server's default; calls bounded on both
  // sides, this first one too.
  conn->io_timeout_ = io_timeout;
  if (Status s = conn->ExecScript("SET client_encoding = 'UTF8'; SET statement_timeout = " +
                                  std::to_string(io_timeout.count()));
      !s) {
    return s.error();
  }
  return conn;
}

PgConnection::~PgConnection() {
  if (conn_) PQfinish(conn_);
}

Status PgConnection::set_io_timeout(std::chrono::milliseconds timeout) {
  io_timeout_ = timeout;
  return ExecScript("SET statement_timeout = " + std::to_string(timeout.count()));
}

bool PgConnection::broken() const { return failed_ || !conn_ || PQstatus(conn_) != CONNECTION_OK; }

int PgConnection::socket() const { return PQsocket(conn_); }

bool PgConnection::ReadInput() {
  if (broken()) return false;
  if (!PQconsumeInput(conn_)) {
    failed_ = true;
    return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> PgConnection::TakeNotifications() {
  std::vector<std::pair<std::string, std::string>> out;
  while (PGnotify* n = PQnotifies(conn_)) {
    out.emplace_back(n->relname, n->extra ? n->extra : "");
    PQfreemem(n);
  }
  return out;
}

Error PgConnection::Fail(const std::string& what) {
  failed_ = true;
  return PgError(conn_, nullptr, what);
}

Status PgConnection::Flush(Clock::time_point deadline) {
  for (;;) {
    const int r = PQflush(conn_);
    if (r == 0) return {};
    if (r < 0) return Fail("cannot send to PostgreSQL");
    // The server may be writing results while it reads: take them, or both sides wait.
    pollfd p{PQsocket(conn_), POLLIN | POLLOUT, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0)
      return Fail("PostgreSQL did not take a request within " + std::to_string(io_timeout_.count()) + " ms");
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno != EINTR) return Fail(std::string("poll: ") + std::strerror(errno));
    if (n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(conn_)) {
      return Fail("lost the connection to PostgreSQL");
    }
  }
}

ErrorOr<pg_result*> PgConnection::NextResult(Clock::time_point deadline) {
  while (PQisBusy(conn_)) {
    pollfd p{PQsocket(conn_), POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Fail("PostgreSQL did not answer within " + std::to_string(io_timeout_.count()) + " ms");
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno != EINTR) return Fail(std::string("poll: ") + std::strerror(errno));
    if (n > 0 && !PQconsumeInput(conn_)) return Fail("lost the connection to PostgreSQL");
  }
  return PQgetResult(conn_);
}

ErrorOr<pg_result*> PgConnection::NextNonNull(Clock::time_point deadline) {
  // In pipeline mode a null ends each statement's results; two in a row mean none is left.
  for (int nulls = 0; nulls < 2;) {
    auto r = NextResult(deadline);
    if (!r) return r.error();
    if (*r) return *r;
    if (PQstatus(conn_) != CONNECTION_OK) return Fail("lost the connection to PostgreSQL");
    ++nulls;
  }
  return Fail("PostgreSQL sent fewer results than statements");
}

ErrorOr<std::string> PgConnection::Prepared(std::string_view sql) {
  std::string key(sql);
  if (auto it = prepared_.find(key); it != prepared_.end()) return it->second;
  std::string name = "offload_" + std::to_string(prepared_.size() + 1);
  if (!PQsendPrepare(conn_, name.c_str(), key.c_str(), 0, nullptr)) return Fail("cannot prepare a statement");
  const auto deadline = Clock::now() + io_timeout_;
  if (Status s = Flush(deadline); !s) return s.error();
  auto result = ReadOne(deadline, "cannot prepare a statement");
  if (!result) return result.error();
  prepared_.emplace(std::move(key), name);
  return name;
}

Status PgConnection::Send(std::string_view sql, const PgParams& params) {
  auto name = Prepared(sql);
  if (!name) return name.error();
  if (!PQsendQueryPrepared(conn_, name->c_str(), params.size(), params.values(), params.lengths(), params.formats(),
                           /*resultFormat=*/1)) {
    return Fail("cannot send a statement");
  }
  return {};
}

ErrorOr<PgResult> PgConnection::ReadOne(Clock::time_point deadline, std::string_view what) {
  auto first = NextResult(deadline);
  if (!first) return first.error();
  if (!*first) return Fail(std::string(what) + ": no result");
  PgResult result(*first);
  const ExecStatusType status = PQresultStatus(*first);
  // The null that ends this statement's results (in pipeline mode too).
  auto end = NextResult(deadline);
  if (!end) return end.error();
  if (*end) PQclear(*end);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    Error e = PgError(conn_, *first, std::string(what));
    if (PQstatus(conn_) != CONNECTION_OK) failed_ = true;
    return e;
  }
  return result;
}

ErrorOr<PgResult> PgConnection::Exec(std::string_view sql, const PgParams& params) {
  if (broken()) return Fail("the connection to PostgreSQL is broken");
  if (Status s = Send(sql, params); !s) return s.error();
  const auto deadline = Clock::now() + io_timeout_;
  if (Status s = Flush(deadline); !s) return s.error();
  return ReadOne(deadline, "statement failed");
}

Status PgConnection::ExecScript(const std::string& sql) {
  if (!PQsendQuery(conn_, sql.c_str())) return Fail("cannot send a statement");
  const auto deadline = Clock::now() + io_timeout_;
  if (Status s = Flush(deadline); !s) return s;
  // A script gives one result per statement; the first failure is what it returns.
  Status out;
  for (;;) {
    auto r = NextResult(deadline);
    if (!r) return r.error();
    if (!*r) break;
    PgResult result(*r);
    const ExecStatusType status = PQresultStatus(*r);
    if (out && status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) out = PgError(conn_, *r, "script failed");
  }
  if (PQstatus(conn_) != CONNECTION_OK) failed_ = true;
  return out;
}

Status PgConnection::ReadToSync(Clock::time_point deadline) {
  for (;;) {
    auto r = NextNonNull(deadline);
    if (!r) return r.error();
    const bool sync = PQresultStatus(*r) == PGRES_PIPELINE_SYNC;
    PQclear(*r);
    if (sync) return {};
  }
}

Status PgConnection::Transaction(const std::vector<PgCall>& calls, const Check& check) {
  commit_sent_ = false;
  if (broken()) return Fail("the connection to PostgreSQL is broken");
  // Prepared before the pipeline begins: a prepare waits for its answer.
  for (std::string_view sql : {"BEGIN", "COMMIT", "ROLLBACK"}) {
    if (auto name = Prepared(sql); !name) return name.error();
  }
  for (const PgCall& c : calls) {
    if (auto name = Prepared(c.sql); !name) return name.error();
  }
  const auto deadline = Clock::now() + io_timeout_;
  if (!PQenterPipelineMode(conn_)) return Fail("cannot enter pipeline mode");
  struct ExitPipeline {
    pg_conn* conn;
    ~ExitPipeline() { PQexitPipelineMode(conn); }
  } exit_pipeline{conn_};

  static const PgParams kNone;
  if (Status s = Send("BEGIN", kNone); !s) return s;
  for (const PgCall& c : calls) {
    if (Status s = Send(c.sql, c.params); !s) return s;
  }
  if (!PQsendFlushRequest(conn_)) return Fail("cannot send a flush request");
  if (Status s = Flush(deadline); !s) return s;

  // Each call's result, in order. After the first failure the rest come back aborted.
  std::vector<PgResult> results;
  results.reserve(calls.size());
  Status outcome;
  bool aborted = false;
  for (std::size_t i = 0; i <= calls.size(); ++i) {
    auto r = NextNonNull(deadline);
    if (!r) return r.error();
    PgResult result(*r);
    const ExecStatusType status = PQresultStatus(*r);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      aborted = true;
      if (outcome) outcome = PgError(conn_, *r, "write failed");
    }
    if (i > 0) results.push_back(std::move(result));
  }
  if (outcome) outcome = check(results);
  if (aborted) {
    // The server skips what follows a failure until a sync, and the transaction stays
    // aborted after it: sync first, then roll back.
    if (!PQpipelineSync(conn_)) return Fail("cannot send a sync");
    if (Status s = Flush(deadline); !s) return s;
    if (Status s = ReadToSync(deadline); !s) return s;
  }
  commit_sent_ = outcome.has_value();
  if (Status s = Send(outcome ? "COMMIT" : "ROLLBACK", kNone); !s) return s;
  if (!PQpipelineSync(conn_)) return Fail("cannot send a sync");
  if (Status s = Flush(deadline); !s) return s;
  auto end = NextNonNull(deadline);
  if (!end) return end.error();
  PgResult end_result(*end);
  const ExecStatusType end_status = PQresultStatus(*end);
  Error end_error =
      end_status == PGRES_COMMAND_OK ? Error{} : PgError(conn_, *end, outcome ? "cannot commit" : "cannot roll back");
  if (Status s = ReadToSync(deadline); !s) return s;
  if (!outcome) return outcome;
  if (end_status != PGRES_COMMAND_OK) return end_error;
  return {};
}

ErrorOr<std::vector<PgResult>> PgConnection::Pipeline(const std::vector<PgCall>& calls) {
  if (broken()) return Fail("the connection to PostgreSQL is broken");
  for (const PgCall& c : calls) {
    if (auto name = Prepared(c.sql); !name) return name.error();
  }
  const auto deadline = Clock::now() + io_timeout_;
  if (!PQenterPipelineMode(conn_)) return Fail("cannot enter pipeline mode");
  struct ExitPipeline {
    pg_conn* conn;
    ~ExitPipeline() { PQexitPipelineMode(conn); }
  } exit_pipeline{conn_};
  for (const PgCall& c : calls) {
    if (Status s = Send(c.sql, c.params); !s) return s.error();
  }
  if (!PQpipelineSync(conn_)) return Fail("cannot send a sync");
  if (Status s = Flush(deadline); !s) return s.error();
  std::vector<PgResult> results;
  results.reserve(calls.size());
  std::optional<Error> failure;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    auto r = NextNonNull(deadline);
    if (!r) return r.error();
    PgResult result(*r);
    const ExecStatusType status = PQresultStatus(*r);
    if (!failure && status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      failure = PgError(conn_, *r, "statement failed");
    }
    results.push_back(std::move(result));
  }
  if (Status s = ReadToSync(deadline); !s) return s.error();
  if (failure) return *failure;
  return results;
}

std::string RedactConnInfo(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &err);
  if (err) PQfreemem(err);
  if (!options) return "(unparseable)";
  std::string out;
  for (PQconninfoOption* o = options; o->keyword; ++o) {
    if (!o->val || !*o->val) continue;
    if (!out.empty()) out += ' ';
    out += o->keyword;
    out += '=';
    // dispchar "*": a secret (password, sslpassword).
    out += o->dispchar && o->dispchar[0] == '*' ? "***" : o->val;
  }
  PQconninfoFree(options);
  return out;
}

bool ValidConnInfo(const std::string& conninfo, std::string* why) {
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &err);
  if (options) PQconninfoFree(options);
  if (err) {
    if (why) {
      *why = err;
      while (!why->empty() && why->back() == '\n') why->pop_back();
    }
    PQfreemem(err);
  }
  return options != nullptr;
}

}  // namespace offload
