#include "cli/commands.h"

#include <unistd.h>

#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "cli/api_client.h"
#include "util/json_writer.h"

namespace offload::cli {

namespace json = boost::json;
using boost::beast::http::verb;
using std::chrono::milliseconds;

namespace {

// ---- Reading what the user gave -------------------------------------------------

struct InputBytes {
  std::string bytes;
  bool from_file = false;  // @FILE or -: may be a binary upload.
  std::string name;        // The file's name, for its content type.
};

// INPUT as given: JSON text, @FILE, or - (stdin). Empty error string on success.
std::string ReadInput(const std::string& arg, InputBytes* out) {
  if (arg == "-") {
    out->bytes.assign(std::istreambuf_iterator<char>(std::cin), {});
    out->from_file = true;
    return "";
  }
  if (!arg.empty() && arg[0] == '@') {
    std::ifstream in(arg.substr(1), std::ios::binary);
    if (!in) return "cannot read " + arg.substr(1);
    out->bytes.assign(std::istreambuf_iterator<char>(in), {});
    out->from_file = true;
    out->name = arg.substr(1);
    return "";
  }
  out->bytes = arg;
  return "";
}

std::optional<json::value> ParseJsonText(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return std::nullopt;
  return v;
}

std::string ContentTypeOfName(const std::string& name) {
  auto ends = [&](std::string_view ext) { return name.size() >= ext.size() && name.ends_with(ext); };
  if (ends(".png")) return "image/png";
  if (ends(".jpg") || ends(".jpeg")) return "image/jpeg";
  if (ends(".gif")) return "image/gif";
  if (ends(".webp")) return "image/webp";
  if (ends(".pdf")) return "application/pdf";
  if (ends(".txt")) return "text/plain";
  if (ends(".csv")) return "text/csv";
  return "application/octet-stream";
}

std::string Encode(std::string_view s) { return boost::urls::encode(s, boost::urls::unreserved_chars); }

// ---- Talking to the server ---------------------------------------------------------

// Prints why a request failed and returns the exit status for it.
int Fail(const Error& e) {
  std::cerr << "offload: " << e.detail << "\n";
  return e.code == ErrorCode::kUnavailable ? kUnreachable : kUsage;
}

int Refused(const ApiResponse& res) {
  std::cerr << "offload: " << res.ProblemText() << "\n";
  return res.status >= 500 ? kServerError : kRefused;
}

// Connects to --url; on failure prints why and sets *code.
std::optional<ApiClient> Open(const GlobalOptions& g, int* code) {
  auto client = ApiClient::Connect(g.url, g.token, g.cacert);
  if (!client) {
    *code = Fail(client.error());
    return std::nullopt;
  }
  return std::move(*client);
}

std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || v->is_null()) return "";
  if (v->is_string()) return std::string(v->as_string());
  return WriteJson(*v);
}

// A job's end: its status and error, the way a person reads them.
std::string Outcome(const json::object& job) {
  std::string line = Str(job, "id") + " " + Str(job, "status");
  if (const auto* e = job.if_contains("error"); e && e->is_object()) {
    line += ": " + Str(e->as_object(), "type") + ": " + Str(e->as_object(), "message");
  }
  return line;
}

int ExitForFinished(const json::object& job) { return Str(job, "status") == "succeeded" ? kOk : kJobFailed; }

bool IsFinished(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "canceled";
}

// ---- wait ----------------------------------------------------------------------------

// Follows job `id` until it ends or `timeout` (0: none) passes; on a terminal, a
// progress bar on stderr, else a line per change of status or per tenth of progress.
// Sets *job to the job as last read.
int Follow(ApiClient& client, const std::string& id, double timeout_s, json::object* job) {
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  const auto began = std::chrono::steady_clock::now();
  std::string last_status;
  int last_tenth = -1;
  for (;;) {
    // A short server-side wait: the answer comes at once when the job ends, and the
    // bar moves twice a second meanwhile.
    auto res = client.Get("/v1/jobs/" + Encode(id) + (tty ? "?wait=0.5" : "?wait=1"), milliseconds(15'000));
    if (!res) return Fail(res.error());
    if (res->status != 200) return Refused(*res);
    *job = res->json().as_object();
    const std::string status = Str(*job, "status");
    const json::value* p = job->if_contains("progress");
    const double progress = p && p->is_number() ? p->to_number<double>() : -1;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    if (tty) {
      constexpr int kWidth = 30;
      const int filled = progress >= 0 ? static_cast<int>(std::lround(progress * kWidth)) : 0;
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.append(static_cast<std::size_t>(kWidth - filled), '.');
      std::fprintf(stderr, "\r\033[K%s [%s] %s %-9s %.1fs", id.c_str(), bar.c_str(),
                   progress >= 0 ? (std::to_string(static_cast<int>(progress * 100)) + "%").c_str() : "  -",
                   status.c_str(), elapsed);
      if (IsFinished(status)) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else {
      const int tenth = progress >= 0 ? static_cast<int>(progress * 10) : -1;
      if (status != last_status || tenth > last_tenth) {
        std::fprintf(stderr, "%s %s%s\n", id.c_str(), status.c_str(),
                     progress >= 0 && !IsFinished(status) ? (" " + std::to_string(tenth * 10) + "%").c_str() : "");
        std::fflush(stderr);
      }
      last_tenth = tenth;
    }
    last_status = status;
    if (IsFinished(status)) return kOk;
    if (timeout_s > 0 && elapsed >= timeout_s) {
      if (tty) std::fprintf(stderr, "\n");
      std::cerr << "offload: job " << id << " is still " << status << " after " << timeout_s << " s\n";
      return kTimedOut;
    }
  }
}

// Writes the result of finished job `id` to `path` ("": stdout). A job that did not
// succeed writes nothing: its error goes to stderr and the status is kJobFailed.
int WriteResult(ApiClient& client, const std::string& id, const std::string& path) {
  auto res = client.Get("/v1/jobs/" + Encode(id) + "/result", milliseconds(300'000));
  if (!res) return Fail(res.error());
  if (res->status == 200) {
    if (path.empty()) {
      std::cout << res->body;
      if (res->header("content-type") == "application/json" && ::isatty(STDOUT_FILENO)) std::cout << "\n";
      std::cout.flush();
      return kOk;
    }
    // Written beside, then renamed: an interrupted write leaves no half file under the name.
    const std::string tmp = path + ".offload-partial";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(res->body.data(), static_cast<std::streamsize>(res->body.size()));
      if (!out) {
        std::cerr << "offload: cannot write " << path << "\n";
        std::remove(tmp.c_str());
        return kUsage;
      }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      std::cerr << "offload: cannot write " << path << "\n";
      std::remove(tmp.c_str());
      return kUsage;
    }
    return kOk;
  }
  const json::value problem = res->json();
  const std::string type = problem.is_object() ? Str(problem.as_object(), "type") : "";
  // A failed or canceled job's result is its error, as a problem of its own type
  // (http/problem.cc, ProblemFromJobError).
  const bool job_failed = type == "urn:offload:problem:job-failed" || type == "urn:offload:problem:job-timeout" ||
                          type == "urn:offload:problem:job-canceled";
  std::cerr << "offload: job " << id << ": " << res->ProblemText() << "\n";
  if (job_failed) return kJobFailed;
  if (res->status == 409) std::cerr << "offload: wait for it with: offload wait " << id << "\n";
  return res->status >= 500 ? kServerError : kRefused;
}

// ---- Tables ----------------------------------------------------------------------------

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

// "1.2s" between two RFC 3339 times of a job, or "" when either is missing.
std::string Span(const json::object& job, std::string_view from, std::string_view to) {
  auto millis = [](const std::string& t) -> std::optional<double> {
    std::tm tm{};
    int ms = 0;
    if (t.size() < 20 || std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6) {
      return std::nullopt;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<double>(timegm(&tm)) * 1000 + ms;
  };
  auto a = millis(Str(job, from)), b = millis(Str(job, to));
  if (!a || !b) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", std::max(0.0, (*b - *a) / 1000));
  return buf;
}

std::string Uses(const json::object& task) {
  std::string out;
  if (const auto* u = task.if_contains("uses"); u && u->is_object()) {
    for (const auto& [k, v] : u->as_object()) out += (out.empty() ? "" : ",") + std::string(k) + "=" + WriteJson(v);
  }
  return out.empty() ? "-" : out;
}

std::string Workers(const json::object& task) {
  const auto* w = task.if_contains("workers");
  if (!w || !w->is_object()) return "-";
  const json::object& o = w->as_object();
  std::string s = Str(o, "busy") + " busy/" + Str(o, "ready") + " ready/" + Str(o, "configured");
  if (!Str(o, "trouble").empty()) s += " TROUBLE";
  return s;
}

int PrintTasks(ApiClient& client, const GlobalOptions& g) {
  auto res = client.Get("/v1/tasks");
  if (!res) return Fail(res.error());
  if (res->status != 200) return Refused(*res);
  if (g.json) {
    std::cout << res->body << "\n";
    return kOk;
  }
  std::vector<std::vector<std::string>> rows = {{"TASK", "QUEUED", "RUNNING", "USES", "WORKERS", "RUN"}};
  const json::value doc = res->json();  // Kept: the loop walks into it.
  for (const auto& t : doc.at("tasks").as_array()) {
    const json::object& o = t.as_object();
    rows.push_back({Str(o, "name"), Str(o, "queued"), Str(o, "running"), Uses(o), Workers(o), Str(o, "run")});
  }
  PrintTable(rows);
  return kOk;
}

// ---- top -------------------------------------------------------------------------------

volatile std::sig_atomic_t g_interrupted = 0;

// One frame: tasks, resources and the latest jobs. Returns false when the server
// could not be read (the reason goes in *why).
bool DrawTop(ApiClient& client, std::string* frame, std::string* why, int* code) {
  auto tasks = client.Get("/v1/tasks", milliseconds(5'000));
  auto resources = tasks ? client.Get("/v1/resources", milliseconds(5'000)) : tasks;
  auto jobs = resources ? client.Get("/v1/jobs?limit=15", milliseconds(5'000)) : resources;
  for (auto* r : {&tasks, &resources, &jobs}) {
    if (!*r) {
      *why = r->error().detail;
      *code = kUnreachable;
      return false;
    }
    if ((*r)->status != 200) {
      *why = (*r)->ProblemText();
      *code = (*r)->status >= 500 ? kServerError : kRefused;
      return false;
    }
  }
  std::ostringstream out;
  std::streambuf* saved = std::cout.rdbuf(out.rdbuf());
  std::cout << "offload " << client.url() << "\n\n";
  std::vector<std::vector<std::string>> t = {{"TASK", "QUEUED", "RUNNING", "WORKERS"}};
  const json::value tasks_doc = tasks->json();  // Kept: the loop walks into it.
  for (const auto& v : tasks_doc.at("tasks").as_array()) {
    const json::object& o = v.as_object();
    t.push_back({Str(o, "name"), Str(o, "queued"), Str(o, "running"), Workers(o)});
  }
  PrintTable(t);
  std::cout << "\n";
  std::vector<std::vector<std::string>> r = {{"RESOURCE", "IN USE", "CAPACITY", "QUEUED DEMAND"}};
  const json::value resources_doc = resources->json();  // Kept: the loop walks into it.
  for (const auto& v : resources_doc.at("resources").as_array()) {
    const json::object& o = v.as_object();
    r.push_back({Str(o, "name"), Str(o, "in_use"), Str(o, "capacity"), Str(o, "queued_demand")});
  }
  PrintTable(r);
  std::cout << "\n";
  std::vector<std::vector<std::string>> j = {{"JOB", "TASK", "STATUS", "PROGRESS", "RAN"}};
  const json::value jobs_doc = jobs->json();  // Kept: the loop walks into it.
  for (const auto& v : jobs_doc.at("jobs").as_array()) {
    const json::object& o = v.as_object();
    const json::value* p = o.if_contains("progress");
    j.push_back({Str(o, "id"), Str(o, "task"), Str(o, "status"),
                 p && p->is_number() ? std::to_string(static_cast<int>(p->to_number<double>() * 100)) + "%" : "",
                 Span(o, "started_at", "finished_at")});
  }
  PrintTable(j);
  std::cout.rdbuf(saved);
  *frame = out.str();
  return true;
}

int Top(ApiClient& client, double interval_s, int count) {
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  std::signal(SIGINT, [](int) { g_interrupted = 1; });
  if (tty) std::cout << "\033[?1049h";  // The terminal's alternate screen, left on exit.
  int code = kOk;
  for (int i = 0; (count <= 0 || i < count) && !g_interrupted; ++i) {
    std::string frame, why;
    if (!DrawTop(client, &frame, &why, &code)) {
      if (tty) std::cout << "\033[?1049l";
      std::cerr << "offload: " << why << "\n";
      return code;
    }
    if (tty) std::cout << "\033[H\033[2J";
    std::cout << frame << (tty ? "" : "\n") << std::flush;
    if (count > 0 && i + 1 == count) break;
    const auto until = std::chrono::steady_clock::now() + milliseconds(static_cast<long>(interval_s * 1000));
    while (!g_interrupted && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(milliseconds(50));
  }
  if (tty) std::cout << "\033[?1049l" << std::flush;
  return code;
}

}  // namespace

void AddClientCommands(CLI::App* app, GlobalOptions* g, std::function<int()>* run) {
  const char* env_url = std::getenv("OFFLOAD_URL");
  g->url = env_url && *env_url ? env_url : "http://127.0.0.1:8080";
  const char* env_token = std::getenv("OFFLOAD_TOKEN");
  g->token = env_token ? env_token : "";
  const char* env_cacert = std::getenv("OFFLOAD_CACERT");
  g->cacert = env_cacert ? env_cacert : "";
  auto global = [g](CLI::App* sub) {
    sub->add_option("--url", g->url, "The server (default $OFFLOAD_URL, else http://127.0.0.1:8080)");
    // $OFFLOAD_TOKEN is the better way: a command line shows in ps and shell history.
    sub->add_option("--token", g->token, "The server's access token (default $OFFLOAD_TOKEN; docs/security.md)");
    sub->add_option("--cacert", g->cacert,
                    "With https://: the PEM file of the CA that signed the server's certificate (default "
                    "$OFFLOAD_CACERT, else the system's)");
    sub->add_flag("--json", g->json, "Print what the server answered, as JSON, for scripts");
  };

  struct SubmitArgs {
    std::string task, input, map;
    int priority = 0;
    double timeout = 0;
    std::string idempotency_key;
    bool wait = false;
    std::string output;
  };
  auto submit_args = std::make_shared<SubmitArgs>();
  CLI::App* submit = app->add_subcommand("submit", "Submit a job: offload submit TASK [INPUT|@FILE|-]");
  global(submit);
  submit->add_option("task", submit_args->task, "The task")->required();
  submit->add_option("input", submit_args->input,
                     "The input: JSON text, @FILE (JSON, or any other file for a task that takes files), or - for "
                     "stdin. Default: null");
  submit->add_option("--map", submit_args->map, "A parallel map over the elements of a JSON array: text or @FILE");
  submit->add_option("--priority", submit_args->priority, "Higher runs first (default 0)");
  submit->add_option("--timeout", submit_args->timeout, "The job's own time limit in seconds");
  submit->add_option("--idempotency-key", submit_args->idempotency_key, "Submit at most once under this key");
  submit->add_flag("--wait", submit_args->wait,
                   "Wait for the job and print its result (as `offload wait` and `result`)");
  submit->add_option("-o,--output", submit_args->output, "With --wait: write the result to this file");
  submit->callback([g, run, a = submit_args] {
    *run = [g, a]() -> int {
      int code = kOk;
      auto client = Open(*g, &code);
      if (!client) return code;
      InputBytes in;
      if (!a->input.empty()) {
        if (std::string e = ReadInput(a->input, &in); !e.empty()) {
          std::cerr << "offload: " << e << "\n";
          return kUsage;
        }
      }
      std::optional<json::value> input = a->input.empty() ? json::value(nullptr) : ParseJsonText(in.bytes);
      ErrorOr<ApiResponse> res = MakeError(ErrorCode::kInternal, "");
      std::vector<std::pair<std::string, std::string>> headers;
      if (!a->idempotency_key.empty()) headers.emplace_back("Idempotency-Key", a->idempotency_key);
      if (!input && !in.from_file) {
        std::cerr << "offload: INPUT is not JSON (pass a file as @FILE)\n";
        return kUsage;
      }
      if (!input) {
        // Not JSON: the file itself is the job's input, uploaded as the body.
        std::string target = "/v1/jobs?task=" + Encode(a->task) + "&priority=" + std::to_string(a->priority);
        if (a->timeout > 0) target += "&timeout=" + std::to_string(a->timeout);
        res = client->Request(verb::post, target, in.bytes, ContentTypeOfName(in.name), headers, milliseconds(300'000));
      } else {
        json::object body{{"task", a->task}, {"priority", a->priority}};
        if (!a->map.empty()) {
          InputBytes m;
          if (std::string e = ReadInput(a->map, &m); !e.empty()) {
            std::cerr << "offload: " << e << "\n";
            return kUsage;
          }
          auto elements = ParseJsonText(m.bytes);
          if (!elements || !elements->is_array()) {
            std::cerr << "offload: --map must be a JSON array\n";
            return kUsage;
          }
          body["map"] = std::move(*elements);
        } else {
          body["input"] = std::move(*input);
        }
        if (a->timeout > 0) body["timeout"] = a->timeout;
        res = client->Request(verb::post, "/v1/jobs", WriteJson(body), "application/json", headers);
      }
      if (!res) return Fail(res.error());
      if (res->status != 202 && res->status != 200) return Refused(*res);
      json::object job = res->json().as_object();
      const std::string id = Str(job, "id");
      if (!a->wait) {
        if (g->json) {
          std::cout << res->body << "\n";
        } else {
          std::cout << id << "\n";
        }
        return kOk;
      }
      if (int c = Follow(*client, id, 0, &job); c != kOk) return c;
      if (g->json) {
        std::cout << WriteJson(job) << "\n";
        return ExitForFinished(job);
      }
      return WriteResult(*client, id, a->output);
    };
  });

  auto id = std::make_shared<std::string>();
  CLI::App* status = app->add_subcommand("status", "Show a job: offload status ID");
  global(status);
  status->add_option("id", *id, "The job's id")->required();
  status->callback([g, run, id] {
    *run = [g, id]() -> int {
      int code = kOk;
      auto client = Open(*g, &code);
      if (!client) return code;
      auto res = client->Get("/v1/jobs/" + Encode(*id));
      if (!res) return Fail(res.error());
      if (res->status != 200) return Refused(*res);
      if (g->json) {
        std::cout << res->body << "\n";
        return kOk;
      }
      const json::object job = res->json().as_object();
      std::vector<std::vector<std::string>> rows = {{"id", Str(job, "id")},
                                                    {"task", Str(job, "task")},
                                                    {"status", Str(job, "status")},
                                                    {"attempts", Str(job, "attempts")}};
      if (const auto* p = job.if_contains("progress"); p && p->is_number()) {
        rows.push_back({"progress", std::to_string(static_cast<int>(p->to_number<double>() * 100)) + "%"});
      }
      if (!Str(job, "position").empty()) rows.push_back({"position", Str(job, "position")});
      for (const char* t : {"created_at", "started_at", "finished_at"}) {
        if (!Str(job, t).empty()) rows.push_back({t, Str(job, t)});
      }
      if (!Span(job, "started_at", "finished_at").empty())
        rows.push_back({"ran", Span(job, "started_at", "finished_at")});
      if (const auto* e = job.if_contains("error"); e && e->is_object()) {
        rows.push_back({"error", Str(e->as_object(), "type") + ": " + Str(e->as_object(), "message")});
      }
      if (!Str(job, "retry_of").empty()) rows.push_back({"retry_of", Str(job, "retry_of")});
      if (!Str(job, "result_url").empty()) rows.push_back({"result", Str(job, "result_url")});
      PrintTable(rows);
      return kOk;
    };
  });

  struct WaitArgs {
    std::string id;
    double timeout = 0;
  };
  auto wait_args = std::make_shared<WaitArgs>();
  CLI::App* wait = app->add_subcommand("wait", "Wait for a job to end, with its progress: offload wait ID");
  global(wait);
  wait->add_option("id", wait_args->id, "The job's id")->required();
  wait->add_option("--timeout", wait_args->timeout, "Give up after this many seconds (exit 6)");
  wait->callback([g, run, a = wait_args] {
    *run = [g, a]() -> int {
      int code = kOk;
      auto client = Open(*g, &code);
      if (!client) return code;
      json::object job;
      if (int c = Follow(*client, a->id, a->timeout, &job); c != kOk) return c;
      if (g->json) {
        std::cout << WriteJson(job) << "\n";
      } else if (Str(job, "status") != "succeeded") {
        std::cerr << Outcome(job) << "\n";
      }
      return ExitForFinished(job);
    };
  });

  struct ResultArgs {
    std::string id, output;
  };
  auto result_args = std::make_shared<ResultArgs>();
  CLI::App* result =
      app->add_subcommand("result", "Print or save a finished job's result: offload result ID [-o FILE]");
  global(result);
  result->add_option("id", result_args->id, "The job's id")->required();
  result->add_option("-o,--output", result_args->output,
                     "Write the result to this file (never written for a job that did not succeed)");
  result->callback([g, run, a = result_args] {
    *run = [g, a]() -> int {
      int code = kOk;
      auto client = Open(*g, &code);
      if (!client) return code;
      return WriteResult(*client, a->id, a->output);
    };
  });

  auto ids = std::make_shared<std::vector<std::string>>();
  CLI::App* cancel = app->add_subcommand("cancel", "Cancel jobs: offload cancel ID...");
  global(cancel);
  cancel->add_option("ids", *ids, "The jobs' ids")->required();
  cancel->callback([g, run, ids] {
    *run = [g, ids]() -> int {
      int code = kOk;
      auto client = Open(*g, &code);
      if (!client) return code;
      int worst = kOk;
      for (const std::string& id : *ids) {
        auto res = client->Request(verb::delete_, "/v1/jobs/" + Encode(id));
        if (!res) return Fail(res.error());
        if (res->status != 200) {
          std::cerr << "offload: " << id << ": " << res->ProblemText() << "\n";
          worst = std::max(worst, res->status >= 500 ? int{kServerError} : int{kRefused});
          continue;
        }
        if (g->json) {
          std::cout << res->body << "\n";
        } else {
          std::cout << id << " canceled\n";
        }
      }
      return worst;
    };
  });

  struct LsArgs {
    std::string status, task, cursor;
    int limit = 20;
  };
  auto ls_args = std::make_shared<LsArgs>();
  CLI::App* ls = app->add_subcommand("ls", "List jobs, newest first");
  global(ls);
  ls->add_option("--status", ls_args->status, "queued, running, succeeded, failed or canceled");
  ls->add_option("--task", ls_args->task, "Only this task's jobs");
  ls->add_option("--limit", ls_args->limit, "How many (1 to 1000, default 20)");
  ls->add_option("--cursor", ls_args->cursor, "The next page: the cursor the previous one printed");
  ls->callback([g, run, a = ls_args] {
    *run = [g, a]() -> int {
      int code = kOk;
      auto client = Open(*g, &code);
      if (!client) return code;
      std::string target = "/v1/jobs?limit=" + std::to_string(a->limit);
      if (!a->status.empty()) target += "&status=" + Encode(a->status);
      if (!a->task.empty()) target += "&task=" + Encode(a->task);
      if (!a->cursor.empty()) target += "&cursor=" + Encode(a->cursor);
      auto res = client->Get(target);
      if (!res) return Fail(res.error());
      if (res->status != 200) return Refused(*res);
      if (g->json) {
        std::cout << res->body << "\n";
        return kOk;
      }
      const json::object page = res->json().as_object();
      std::vector<std::vector<std::string>> rows = {{"JOB", "TASK", "STATUS", "ATTEMPTS", "CREATED", "RAN"}};
      for (const auto& v : page.at("jobs").as_array()) {
        const json::object& o = v.as_object();
        rows.push_back({Str(o, "id"), Str(o, "task"), Str(o, "status"), Str(o, "attempts"), Str(o, "created_at"),
                        Span(o, "started_at", "finished_at")});
      }
      PrintTable(rows);
      if (!Str(page, "next_cursor").empty()) std::cerr << "more: --cursor " << Str(page, "next_cursor") << "\n";
      return kOk;
    };
  });

  CLI::App* tasks = app->add_subcommand("tasks", "List the server's tasks, their queues and workers");
  global(tasks);
  tasks->callback([g, run] {
    *run = [g]() -> int {
      int code = kOk;
      auto client = Open(*g, &code);
      if (!client) return code;
      return PrintTasks(*client, *g);
    };
  });

  struct TopArgs {
    double interval = 1;
    int count = 0;
  };
  auto top_args = std::make_shared<TopArgs>();
  CLI::App* top = app->add_subcommand("top", "A live view of queues, resources and the latest jobs (Ctrl-C ends it)");
  global(top);
  top->add_option("--interval", top_args->interval, "Seconds between refreshes (default 1)");
  top->add_option("--count", top_args->count, "Stop after this many refreshes (default: until Ctrl-C)");
  top->callback([g, run, a = top_args] {
    *run = [g, a]() -> int {
      int code = kOk;
      auto client = Open(*g, &code);
      if (!client) return code;
      return Top(*client, std::max(a->interval, 0.1), a->count);
    };
  });

  auto retry_id = std::make_shared<std::string>();
  CLI::App* retry = app->add_subcommand("retry", "Run a failed or canceled job again, as a new job: offload retry ID");
  global(retry);
  retry->add_option("id", *retry_id, "The job's id")->required();
  retry->callback([g, run, retry_id] {
    *run = [g, retry_id]() -> int {
      int code = kOk;
      auto client = Open(*g, &code);
      if (!client) return code;
      auto res = client->Request(verb::post, "/v1/jobs/" + Encode(*retry_id) + "/retry");
      if (!res) return Fail(res.error());
      // 200: this job was retried already, and that retry is the answer.
      if (res->status != 202 && res->status != 200) return Refused(*res);
      if (g->json) {
        std::cout << res->body << "\n";
      } else {
        std::cout << Str(res->json().as_object(), "id") << "\n";
      }
      return kOk;
    };
  });
}

}  // namespace offload::cli
