// Fuzzes the HTTP request path in-process: an input is the bytes a client sends on
// one connection. They are read by Beast's request parser as the session reads them
// (src/http/server.cc: the header within its limit, then the checks of the framing,
// Api::Screen, Api::PlanUpload, the body within max_body or the task's max_input,
// streamed into an Upload for a file body) and each request is answered by
// Api::Handle or Api::HandleUpload over a JobService on the memory store, through an
// Exchange that records the response and serializes it as the session would.
//
// What an input may hold (docs/fuzzing.md):
//  - Several requests, pipelined, as on a keep-alive connection (kMaxRequests at
//    most); a request that closes the connection (Connection: close, HTTP/1.0, an
//    error answered before the body) ends the input. The end of the input is the
//    client closing its side.
//  - "_last" in a request target: the id of the last job a response named, so that
//    one input can submit a job and then get, cancel, retry or stream it (job ids are
//    random, and a fuzzer could never guess one).
//  - Authorization: Bearer with one of the tokens below ([auth] is on), so that the
//    fuzzer reaches the 401, 403 and per-tenant paths as well as the routes behind them.
//
// Each answer is also counted in the HTTP metrics and written to two access logs
// (JSON and common, to /dev/null) as the session would, and the harness checks that a
// token given in the query never reaches a log line unredacted.
//
// Each input's work is bounded: max_wait is 0, so ?wait= and Prefer: wait= are capped
// to no wait at all (Api caps both by it); run_timeout is 20 ms; every task's handler
// returns at once but "hold"'s, which runs until canceled or until the input ends
// (its one "gate" makes a second job of it wait, queued). After each request the
// harness waits (2 s at most) until no other job runs, so that the next request sees
// them finished whatever the threads' timing; at the end of an input every job ends.
// A request that gets no answer within 5 s is reported as a crash: the Api promises
// exactly one answer, and without waits it is due at once.
//
// The service is built once, at the first input, and lives for the whole run: state
// carries over between inputs (jobs, idempotency keys), as on a real server, and
// retention (1 s) keeps it small. It is taken down at exit, so that LeakSanitizer's
// check at the end of a run sees what it leaked.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "auth/access_token.h"
#include "auth/authenticator.h"
#include "config/config.h"
#include "config/tokens_file.h"
#include "exec/task_executors.h"
#include "http/access_log.h"
#include "http/api.h"
#include "http/exchange.h"
#include "http/http_metrics.h"
#include "http/problem.h"
#include "http/upload.h"
#include "offload/task_registry.h"
#include "service/job_service.h"
#include "util/thread_pool.h"

namespace offload {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

// The session's is 64 KiB (src/http/server.cc); the same path (431) within the
// inputs' -max_len (16 KiB, scripts/fuzz.sh) and of a small seed.
constexpr std::uint32_t kHeaderLimit = 2 * 1024;
// Requests read from one input at most.
constexpr int kMaxRequests = 8;
constexpr auto kAnswerDeadline = std::chrono::seconds(5);
constexpr Millis kIdleDeadline{2000};

// The tokens of the harness's [auth]; the seeds use them (corpus/http_request/).
constexpr const char* kAdminToken = "ofl_fuzz-admin";
constexpr const char* kAliceToken = "ofl_fuzz-alice";    // submit, read, cancel
constexpr const char* kReaderToken = "ofl_fuzz-reader";  // read only

[[noreturn]] void Die(const char* why) {
  std::fprintf(stderr, "http_request_fuzzer: %s\n", why);
  std::abort();
}

TokenConfig Token(const char* name, const char* token, std::initializer_list<Scope> scopes) {
  TokenConfig t;
  t.name = name;
  t.sha256 = HexDigestOfToken(token);
  for (Scope s : scopes) t.scopes.Add(s);
  return t;
}

TaskConfig Task(const char* name, std::vector<std::string> accept = {}) {
  TaskConfig t;
  t.name = name;
  t.run = std::string("builtin:") + name;
  t.max_queued = 64;
  t.accept = std::move(accept);
  t.max_input = 8 * 1024;
  return t;
}

ServerConfig FuzzConfig() {
  ServerConfig c = DefaultConfig();
  c.store = "memory";
  c.threads = 1;
  c.max_body = 8 * 1024;
  c.max_wait = Millis(0);
  c.run_timeout = Millis(20);
  c.retention = Millis(1000);
  c.idempotency_ttl = Millis(1000);
  c.max_list_bytes = 16 * 1024;
  c.max_memory_result = 256;
  c.log_jobs = false;
  c.allowed_origins = {"https://app.example"};
  c.resources = {{"cpu", 2}, {"gate", 1}};
  c.tasks.clear();
  c.tasks["echo"] = Task("echo");
  c.tasks["text"] = Task("text");
  c.tasks["text"].content_type = "text/plain";
  c.tasks["fail"] = Task("fail");
  c.tasks["files"] = Task("files", {"text/plain", "image/*"});
  c.tasks["hold"] = Task("hold");
  c.tasks["hold"].uses = {{"gate", 1}};
  c.auth.enabled = true;
  c.auth.tokens = {Token("admin", kAdminToken, {Scope::kAdmin}),
                   Token("alice", kAliceToken, {Scope::kSubmit, Scope::kRead, Scope::kCancel}),
                   Token("reader", kReaderToken, {Scope::kRead})};
  return c;
}

// Open while the harness ends an input: the jobs of "hold" run until then (or until
// canceled), so that one input finds a job running, and another queued behind it.
std::atomic<bool> hold_gate_open{false};

// The handlers. All but "hold" return at once. "text" returns its input's "text" (or
// the input as JSON) as text/plain: over max_memory_result it is a file result,
// served with an ETag and by range.
TaskRegistry FuzzRegistry() {
  TaskRegistry r;
  r.Register("hold", TaskDefinition{[](const Job&, Context& ctx) {
                                      while (!hold_gate_open.load()) {
                                        if (!ctx.SleepFor(std::chrono::milliseconds(1))) {
                                          return Result::Fail("canceled", "canceled while held");
                                        }
                                      }
                                      return Result::Json(nullptr);
                                    },
                                    {}});
  r.Register("echo", TaskDefinition{[](const Job& job, Context&) { return Result::Json(job.input); }, {}});
  r.Register("text", TaskDefinition{[](const Job& job, Context&) {
                                      const json::object* in = job.input.if_object();
                                      const json::value* text = in ? in->if_contains("text") : nullptr;
                                      std::string bytes = text && text->is_string() ? std::string(text->get_string())
                                                                                    : json::serialize(job.input);
                                      return Result::Bytes("text/plain", std::move(bytes));
                                    },
                                    {},
                                    "text/plain"});
  r.Register("fail", TaskDefinition{[](const Job&, Context&) { return Result::Fail("bad_luck", "it failed"); }, {}});
  r.Register("files", TaskDefinition{[](const Job& job, Context&) {
                                       std::uint64_t bytes = 0;
                                       for (const JobFile& f : job.files) bytes += f.size;
                                       return Result::Json(json::object{{"files", job.files.size()}, {"bytes", bytes}});
                                     },
                                     {}});
  return r;
}

// Answers recorded; Respond may come from any thread (a store or pool thread).
class RecordingExchange final : public Exchange {
 public:
  explicit RecordingExchange(asio::io_context& io) : io_(io) {}

  asio::any_io_executor executor() override { return io_.get_executor(); }

  void Respond(HttpResponse response) override {
    {
      std::lock_guard lock(mu_);
      if (answered_) return;
      answered_ = true;
      response_ = std::move(response);
    }
    asio::post(io_, [] {});  // Wakes the harness's run_one_for.
  }

  void RespondStream(HttpResponse header, std::shared_ptr<BodySource> source) override {
    {
      std::lock_guard lock(mu_);
      if (answered_) return;
      answered_ = true;
      response_ = std::move(header);
      source_ = std::move(source);
    }
    asio::post(io_, [] {});
  }

  // Never called: the client of a fuzz input does not leave before its answer.
  void OnClientGone(std::function<void()>) override {}

  bool answered() {
    std::lock_guard lock(mu_);
    return answered_;
  }
  // REQUIRES: answered().
  HttpResponse& response() { return *response_; }
  std::shared_ptr<BodySource>& source() { return source_; }

 private:
  asio::io_context& io_;
  std::mutex mu_;
  bool answered_ = false;
  std::optional<HttpResponse> response_;
  std::shared_ptr<BodySource> source_;
};

// Session::CheckHeader of src/http/server.cc: what RFC 9112 says a server must not
// process (an ambiguous body length, a missing or repeated Host).
std::optional<Problem> CheckHeader(const HttpRequest& req, bool chunked) {
  auto te = req.find(http::field::transfer_encoding);
  if (te != req.end()) {
    if (req.count(http::field::transfer_encoding) > 1 || !chunked) {
      return MakeProblem(http::status::bad_request, "malformed-request", "Malformed request",
                         "Transfer-Encoding must end with chunked");
    }
    if (req.find(http::field::content_length) != req.end()) {
      return MakeProblem(http::status::bad_request, "malformed-request", "Malformed request",
                         "a request must not carry both Transfer-Encoding and Content-Length");
    }
    if (!beast::iequals(beast::string_view(te->value()), "chunked")) {
      return MakeProblem(http::status::not_implemented, "transfer-coding-not-implemented",
                         "Transfer coding not implemented", "the only transfer coding accepted is chunked");
    }
  }
  const std::size_t hosts = req.count(http::field::host);
  if (hosts > 1 || (hosts == 0 && req.version() >= 11)) {
    return MakeProblem(http::status::bad_request, "malformed-request", "Malformed request", "one Host header");
  }
  return std::nullopt;
}

// Feeds `*rest` to `parser` until `done` holds or it fails; consumed bytes leave
// *rest. The end of the input is the end of the stream (the client closed): once
// the parser wants more than there is, it gets put_eof, as a session's read of EOF.
template <class Parser, class Done>
beast::error_code Feed(Parser& parser, std::string_view* rest, Done done) {
  beast::error_code ec;
  while (!done()) {
    std::size_t n = 0;
    if (!rest->empty()) {
      n = parser.put(asio::buffer(rest->data(), rest->size()), ec);
      rest->remove_prefix(n);
      if (ec == http::error::need_more) {
        ec = {};
        if (n > 0) continue;
      } else if (ec) {
        return ec;
      } else if (n > 0) {
        continue;
      }
    }
    parser.put_eof(ec);
    if (!ec && !done()) ec = http::error::partial_message;
    return ec;
  }
  return ec;
}

class Harness {
 public:
  Harness() : config_(FuzzConfig()), work_(asio::make_work_guard(io_)) {
    if (!std::getenv("OFFLOAD_FUZZ_LOG")) spdlog::set_level(spdlog::level::off);
    if (Status valid = ValidateConfig(config_); !valid) Die(valid.error().detail.c_str());
    if (Status valid = ValidateTokens(config_.auth); !valid) Die(valid.error().detail.c_str());
    pool_ = std::make_unique<ThreadPool>(InProcessPoolSize(config_), 0);
    auto executors = MakeTaskExecutors(config_, FuzzRegistry(), pool_.get());
    if (!executors) Die(executors.error().detail.c_str());
    auto store = OpenStore(config_.store);
    if (!store) Die(store.error().detail.c_str());
    auto service = JobService::Create(config_, std::move(*executors), std::move(*store));
    if (!service) Die(service.error().detail.c_str());
    service_ = std::move(*service);
    metrics_ = std::make_unique<HttpMetrics>(1);
    api_ = std::make_unique<Api>(service_.get(), config_, metrics_.get(),
                                 std::make_shared<const Authenticator>(config_.auth));
    auto json_log = AccessLog::Open("/dev/null", "json");
    auto common_log = AccessLog::Open("/dev/null", "common");
    if (!json_log || !common_log) Die("cannot open /dev/null for the access log");
    json_log_ = std::move(*json_log);
    common_log_ = std::move(*common_log);
  }

  // As Server::Impl's: the service first (its waiters call into the Api), the pool
  // last (the executors run on it).
  ~Harness() {
    service_.reset();
    api_.reset();
    metrics_.reset();
    pool_.reset();
  }

  // One connection's bytes.
  void Connection(std::string_view bytes) {
    for (int i = 0; i < kMaxRequests && !bytes.empty(); ++i) {
      if (!OneRequest(&bytes)) break;
    }
    Release();
  }

 private:
  // Reads and answers one request; false when the connection ends with it.
  bool OneRequest(std::string_view* rest) {
    http::request_parser<http::string_body> parser;
    // As the session: no body limit until PlanUpload says which applies.
    parser.body_limit(boost::none);
    parser.header_limit(kHeaderLimit);
    if (beast::error_code ec = Feed(parser, rest, [&] { return parser.is_header_done(); })) {
      ReadError(ec, nullptr);
      return false;
    }
    HttpRequest& req = parser.get();
    // What Session::OnHeader takes of the header for the metrics and the access log.
    route_ = HttpMetrics::RouteOf(req.target());
    method_ = req.method();
    request_id_.assign(AccessLog::Acceptable(req["X-Request-Id"]));
    if (request_id_.empty()) request_id_ = json_log_->NewRequestId();
    log_method_.assign(req.method_string());
    log_target_.assign(req.target());
    log_agent_.assign(req[http::field::user_agent]);
    version_ = req.version() == 10 ? 10 : 11;
    SubstituteLast(&req);
    if (auto problem = CheckHeader(req, parser.chunked())) return AnswerProblem(*problem);
    std::variant<Caller, HttpResponse> screened = api_->Screen(req);
    if (auto* refused = std::get_if<HttpResponse>(&screened)) {
      Render(refused, /*head=*/false);
      return false;
    }
    caller_ = std::get<Caller>(std::move(screened));
    UploadPlan plan = api_->PlanUpload(req, caller_);
    if (plan.refusal) return AnswerProblem(*plan.refusal);
    if (parser.is_done()) {
      if (!plan.upload) return Dispatch(parser.release());
      if (!plan.upload->Finish()) return AnswerProblem(ProblemFromError(plan.upload->failure()));
      HttpRequest header = parser.release();
      const bool keep_alive = header.keep_alive();
      return DispatchUpload(std::move(plan.upload), std::move(header.base()), keep_alive);
    }
    if (plan.upload) {
      http::request_parser<UploadBody> upload_parser(std::move(parser));
      upload_parser.body_limit(plan.limit);
      upload_parser.get().body() = std::move(plan.upload);
      if (auto len = upload_parser.content_length(); len && *len > plan.limit) return TooLarge();
      if (beast::error_code ec = Feed(upload_parser, rest, [&] { return upload_parser.is_done(); })) {
        return ReadError(ec, upload_parser.get().body().get());
      }
      http::request<UploadBody> done = upload_parser.release();
      std::unique_ptr<Upload> upload = std::move(done.body());
      const bool keep_alive = done.keep_alive();
      return DispatchUpload(std::move(upload), std::move(done.base()), keep_alive);
    }
    const std::uint64_t limit = static_cast<std::uint64_t>(config_.max_body);
    parser.body_limit(limit);
    if (auto len = parser.content_length(); len && *len > limit) return TooLarge();
    if (beast::error_code ec = Feed(parser, rest, [&] { return parser.is_done(); })) return ReadError(ec, nullptr);
    return Dispatch(parser.release());
  }

  void SubstituteLast(HttpRequest* req) {
    const std::string_view target = req->target();
    const std::size_t at = target.find("_last");
    if (at == std::string_view::npos) return;
    std::string next(target.substr(0, at));
    next += last_id_;
    next += target.substr(at + 5);
    req->target(next);
  }

  // Session::OnReadError: what a failed read answers; false (the connection closes).
  bool ReadError(beast::error_code ec, Upload* upload) {
    if (ec == http::error::body_limit) return TooLarge();
    if (ec == boost::system::errc::io_error && upload) return AnswerProblem(ProblemFromError(upload->failure()));
    if (ec == http::error::header_limit) {
      return AnswerProblem(MakeProblem(http::status::request_header_fields_too_large, "header-too-large",
                                       "Request Header Fields Too Large", "over 2 KiB"));
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      return AnswerProblem(MakeProblem(http::status::bad_request, "malformed-request", "Malformed request",
                                       "the request is not valid HTTP/1.1: " + ec.message()));
    }
    return false;
  }

  bool TooLarge() { return AnswerProblem(ProblemFromError(MakeError(ErrorCode::kTooLarge, "the body is too large"))); }

  // Session::SendProblemAndClose.
  bool AnswerProblem(const Problem& p) {
    HttpResponse res{p.status, 11};
    res.set(http::field::content_type, "application/problem+json");
    res.body() = ProblemBody(p);
    Render(&res, /*head=*/false);
    return false;
  }

  bool Dispatch(HttpRequest req) {
    const bool keep_alive = req.keep_alive();
    const bool head = req.method() == http::verb::head;
    if (trace_) trace_line_ = std::string(req.method_string()) + " " + std::string(req.target());
    auto ex = std::make_shared<RecordingExchange>(io_);
    api_->Handle(std::move(req), caller_, ex);
    Answered(*ex, head);
    return keep_alive;
  }

  bool DispatchUpload(std::unique_ptr<Upload> upload, HttpRequestHeader header, bool keep_alive) {
    if (trace_) trace_line_ = "upload " + std::string(header.target());
    auto ex = std::make_shared<RecordingExchange>(io_);
    api_->HandleUpload(std::move(upload), std::move(header), ex);
    Answered(*ex, /*head=*/false);
    return keep_alive;
  }

  // Runs the session's executor until `ex` is answered, then handles the answer as
  // the session would, and waits for the jobs it started.
  void Answered(RecordingExchange& ex, bool head) {
    const auto deadline = std::chrono::steady_clock::now() + kAnswerDeadline;
    while (!ex.answered()) {
      if (std::chrono::steady_clock::now() > deadline) Die("a request got no answer within 5 s");
      io_.run_one_for(std::chrono::milliseconds(10));
    }
    io_.poll();
    HttpResponse& res = ex.response();
    if (std::shared_ptr<BodySource> source = std::move(ex.source())) {
      // An event stream: what it has now, then the client goes.
      source->Start([] {});
      std::string out;
      for (int i = 0; i < 4 && source->Pull(&out) == BodySource::Next::kMore; ++i) {
      }
      source->Stop();
      Log(res, std::nullopt);
    } else {
      Remember(res);
      Render(&res, head);
    }
    if (trace_ && !trace_line_.empty()) {
      std::fprintf(stderr, "%s -> %d (stream)\n", trace_line_.c_str(), res.result_int());
      trace_line_.clear();
    }
    Settle();
    io_.poll();
  }

  // Waits until every job but those of "hold" has finished (2 s at most), so that the
  // next request finds them finished, whatever the threads' timing.
  void Settle() {
    const auto deadline = std::chrono::steady_clock::now() + kIdleDeadline;
    for (;;) {
      bool held = false, busy = false;
      for (const TaskInfo& t : service_->Tasks()) {
        if (t.queued > 0 || t.running > 0) (t.name == "hold" ? held : busy) = true;
      }
      if (!busy || std::chrono::steady_clock::now() > deadline) return;
      // WaitForIdle would wait for the held jobs too.
      if (held) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      } else {
        service_->WaitForIdle(kIdleDeadline);
      }
    }
  }

  // The end of an input: the held jobs finish, and every job with them.
  void Release() {
    hold_gate_open.store(true);
    const auto deadline = std::chrono::steady_clock::now() + kIdleDeadline;
    for (;;) {
      bool busy = false;
      for (const TaskInfo& t : service_->Tasks()) busy = busy || t.queued > 0 || t.running > 0;
      if (!busy || std::chrono::steady_clock::now() > deadline) break;
      service_->WaitForIdle(kIdleDeadline);
    }
    hold_gate_open.store(false);
    io_.poll();
  }

  // Keeps the id of a job answered (a job object, or the first of a list), for "_last".
  void Remember(const HttpResponse& res) {
    if (res.result_int() >= 300 || res[http::field::content_type] != "application/json") return;
    boost::system::error_code ec;
    json::value v = json::parse(res.body().view(), ec);
    const json::object* o = ec ? nullptr : v.if_object();
    if (!o) return;
    if (const json::value* jobs = o->if_contains("jobs"); jobs && jobs->is_array() && !jobs->get_array().empty()) {
      o = jobs->get_array()[0].if_object();
      if (!o) return;
    }
    if (const json::value* id = o->if_contains("id"); id && id->is_string()) last_id_ = std::string(id->get_string());
  }

  // Session::TakeAnswer: the request's metrics and its access log lines. `bytes`:
  // nullopt for a stream.
  void Log(const HttpResponse& res, std::optional<std::uint64_t> bytes) {
    if (route_ < 0) {  // Refused before its header was whole.
      route_ = HttpMetrics::RouteOf("");
      method_ = http::verb::unknown;
      request_id_ = json_log_->NewRequestId();
      log_method_ = log_target_ = "-";
    }
    metrics_->CountRequest(0, route_, method_, res.result_int(), 0.001);
    const AccessEntry entry{"127.0.0.1", log_method_, log_target_, version_,  res.result_int(),
                            bytes,       0.5,         request_id_, log_agent_};
    json_log_->Write(entry);
    common_log_->Write(entry);
    CheckRedacted(log_target_);
    route_ = -1;
    log_method_.clear();
    log_target_.clear();
    log_agent_.clear();
    request_id_.clear();
  }

  // What access_log.h promises: a token given in the query as access_token, token or
  // api_key is written REDACTED. Checked for the tokens the harness knows, given as
  // they are (an encoded one is not looked for).
  static void CheckRedacted(std::string_view target) {
    if (target.find('?') == std::string_view::npos) return;
    const std::string logged = RedactQueryTokens(target);
    const std::string_view query = std::string_view(logged).substr(logged.find('?') + 1);
    for (const char* name : {"access_token=", "token=", "api_key="}) {
      for (const char* token : {kAdminToken, kAliceToken, kReaderToken}) {
        const std::string param = std::string(name) + token;
        if (query.rfind(param, 0) == 0 || query.find("&" + param) != std::string_view::npos) {
          Die("the access log would write down a token given in the query");
        }
      }
    }
  }

  // Session::Write and WriteSome: the response as it goes on the wire.
  void Render(HttpResponse* res, bool head) {
    Log(*res, head ? 0 : res->body().size());
    if (trace_) {
      std::fprintf(stderr, "%s -> %d %.*s\n", trace_line_.empty() ? "(refused)" : trace_line_.c_str(),
                   res->result_int(), static_cast<int>(std::min<std::size_t>(res->body().view().size(), 160)),
                   res->body().view().data());
      trace_line_.clear();
    }
    res->set(http::field::server, "offload");
    res->prepare_payload();
    if (res->result() == http::status::not_modified) res->erase(http::field::content_length);
    if (head) res->body().KeepSizeOnly();
    http::response_serializer<ResponseBody> sr(*res);
    beast::error_code ec;
    std::size_t bytes = 0;
    while (!sr.is_done() && !ec) {
      sr.next(ec, [&](beast::error_code&, const auto& buffers) {
        const std::size_t n = beast::buffer_bytes(buffers);
        bytes += n;
        sr.consume(n);
      });
    }
    if (bytes == 0) Die("a response of no bytes");
  }

  const ServerConfig config_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<JobService> service_;
  std::unique_ptr<HttpMetrics> metrics_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<AccessLog> json_log_;
  std::unique_ptr<AccessLog> common_log_;
  // Of the request being answered, as the session keeps them (-1: no header read).
  int route_ = -1;
  http::verb method_ = http::verb::unknown;
  unsigned version_ = 11;
  Caller caller_;
  std::string request_id_;
  std::string log_method_;
  std::string log_target_;
  std::string log_agent_;
  std::string last_id_ = "none";
  // OFFLOAD_FUZZ_TRACE set: each request and its answer on stderr, to see what a seed reaches.
  const bool trace_ = std::getenv("OFFLOAD_FUZZ_TRACE") != nullptr;
  std::string trace_line_;
};

}  // namespace
}  // namespace offload

namespace {

offload::Harness* harness = nullptr;

// At the end of a run, before the statics its threads use (spdlog's registry) are
// destroyed, the service stops: what it still holds then is freed, so that a leak
// LeakSanitizer reports at exit is one.
void StopHarness() {
  delete harness;
  harness = nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!harness) {
    harness = new offload::Harness();
    std::atexit(StopHarness);
  }
  harness->Connection(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
