// Bearer tokens against the real binary (docs/security.md): who may take which route
// (401, 403, 400 for a token in the query), what a tenant sees of another's jobs
// (nothing: 404, empty lists, filtered streams), idempotency keys per tenant, the
// tokens file reloaded on SIGHUP, and the refusal to listen beyond loopback without
// [auth]. Tokens are made by `offload token create`, as an operator makes them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/command.h"
#include "support/event_reader.h"
#include "support/raw_exchange.h"
#include "support/server_fixture.h"
#include "support/tokens.h"

namespace offload::testing {
namespace {

namespace json = boost::json;
namespace http = boost::beast::http;
using std::chrono::milliseconds;

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class AuthTest : public ServerTest {
 protected:
  // alice may submit, read and cancel; bob too; reader only reads; submitter only
  // submits; ops is an admin.
  void SetUp() override {
    alice_ = CreateToken("alice", "submit,read,cancel");
    bob_ = CreateToken("bob", "submit,read,cancel");
    reader_ = CreateToken("reader", "read");
    submitter_ = CreateToken("submitter", "submit");
    ops_ = CreateToken("ops", "admin");
  }

  std::string TokensArray() const {
    return "[" + alice_.Toml() + ", " + bob_.Toml() + ", " + reader_.Toml() + ", " + submitter_.Toml() + ", " +
           ops_.Toml() + "]";
  }

  // `top`: more top-level keys; `auth`: more keys of [auth].
  void StartWithAuth(const std::string& top = "", const std::string& auth = "") {
    ASSERT_NO_FATAL_FAILURE(StartServer("shutdown_grace = \"200ms\"\naccess_log = \"access.log\"\n" + top + R"(
[resources]
cpu = 2

[tasks.upload]
command = ["cat"]
accept = ["text/plain"]

[auth]
tokens = )" + TokensArray() + "\n" + auth));
  }

  // Submits `body` as `who`; the job object, or an empty one (and a failure).
  json::object Submit(const Token& who, const std::string& body, const Headers& more = {}) {
    Headers headers = who.JsonBearer();
    headers.insert(headers.end(), more.begin(), more.end());
    Response res = client().Post("/v1/jobs", body, headers);
    if (res.status != 202 && res.status != 200) {
      ADD_FAILURE() << "submit as " << who.name << ": " << Describe(res);
      return {};
    }
    return res.json().as_object();
  }

  Response Get(const Token& who, const std::string& target) {
    return client().Request(http::verb::get, target, {}, who.Bearer());
  }

  json::object GetJobAs(const Token& who, const std::string& id) {
    Response res = Get(who, "/v1/jobs/" + id);
    if (res.status != 200) {
      ADD_FAILURE() << "GET job " << id << " as " << who.name << ": " << Describe(res);
      return {};
    }
    return res.json().as_object();
  }

  Token alice_, bob_, reader_, submitter_, ops_;
};

TEST_F(AuthTest, EveryRouteButHealthzAndTheUiFilesNeedsAToken) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth());
  Response none = client().Get("/v1/jobs");
  EXPECT_EQ(none.status, 401) << Describe(none);
  EXPECT_EQ(none.header("www-authenticate"), "Bearer realm=\"offload\"");
  EXPECT_EQ(none.header("content-type"), "application/problem+json");
  EXPECT_EQ(Field(none.json().as_object(), "type"), "urn:offload:problem:unauthorized");

  for (const std::string& wrong :
       {"Bearer " + alice_.token + "x", std::string("Bearer ofl_nosuchtoken"), "Basic " + alice_.token, alice_.token}) {
    Response res = client().Request(http::verb::get, "/v1/jobs", {}, {{"Authorization", wrong}});
    EXPECT_EQ(res.status, 401) << wrong << ": " << Describe(res);
    EXPECT_EQ(res.header("www-authenticate"), "Bearer realm=\"offload\", error=\"invalid_token\"") << wrong;
  }
  // The scheme is case-insensitive (RFC 9110 11.1).
  EXPECT_EQ(client().Request(http::verb::get, "/v1/jobs", {}, {{"Authorization", "bearer " + alice_.token}}).status,
            200);

  // What anyone may take: probes, and the dashboard's files (its data needs a token).
  EXPECT_EQ(client().Get("/healthz").status, 200);
  EXPECT_EQ(client().Get("/ui").status, 200);
  // An unknown path says nothing to a stranger, not even that it is unknown.
  EXPECT_EQ(client().Get("/v1/nothing-here").status, 401);
  EXPECT_EQ(Get(alice_, "/v1/nothing-here").status, 404);

  // The API's description and the metrics are an admin's.
  EXPECT_EQ(client().Get("/openapi.json").status, 401);
  Response doc = Get(alice_, "/openapi.json");
  EXPECT_EQ(doc.status, 403) << Describe(doc);
  EXPECT_EQ(doc.header("www-authenticate"), "Bearer realm=\"offload\", error=\"insufficient_scope\", scope=\"admin\"");
  EXPECT_EQ(Get(ops_, "/openapi.json").status, 200);
  EXPECT_EQ(Get(reader_, "/metrics").status, 403);
  EXPECT_EQ(Get(ops_, "/metrics").status, 200);
}

TEST_F(AuthTest, ARequestWithoutATokenIsRefusedBeforeItsBodyIsRead) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth());
  // A header that announces 10 MB and sends none of it: the answer cannot wait for it
  // (RawExchange gives up after 10 s, and the answer would be missing).
  const std::string head = "Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n";
  const std::string refused = RawExchange(server_.port(), "POST /v1/jobs HTTP/1.1\r\n" + head);
  EXPECT_EQ(refused.rfind("HTTP/1.1 401 ", 0), 0u) << refused;
  EXPECT_NE(refused.find("WWW-Authenticate: Bearer realm=\"offload\""), std::string::npos) << refused;
  const std::string query = RawExchange(server_.port(), "POST /v1/jobs?token=x HTTP/1.1\r\n" + head);
  EXPECT_EQ(query.rfind("HTTP/1.1 400 ", 0), 0u) << query;
}

TEST_F(AuthTest, ACorsPreflightNeedsNoTokenAndAForeignOriginIsRefusedFirst) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth("allowed_origins = [\"http://app.example\"]\n"));
  // Browsers send no Authorization with a preflight: it must pass, or the request that
  // carries the token is never sent.
  Response preflight = client().Request(http::verb::options, "/v1/jobs", {},
                                        {{"Origin", "http://app.example"},
                                         {"Access-Control-Request-Method", "POST"},
                                         {"Access-Control-Request-Headers", "authorization, content-type"}});
  EXPECT_EQ(preflight.status, 204) << Describe(preflight);
  EXPECT_NE(preflight.header("Access-Control-Allow-Headers").find("Authorization"), std::string::npos)
      << "a page may send its token";
  // Refused before its body is read, the answer still lets the page read why.
  Response unsigned_in = client().Post("/v1/jobs", R"({"task": "noop"})",
                                       {{"Origin", "http://app.example"}, {"Content-Type", "application/json"}});
  EXPECT_EQ(unsigned_in.status, 401) << Describe(unsigned_in);
  EXPECT_EQ(unsigned_in.header("Access-Control-Allow-Origin"), "http://app.example");
  EXPECT_NE(unsigned_in.header("Access-Control-Expose-Headers").find("WWW-Authenticate"), std::string::npos);
  Headers from_app = alice_.JsonBearer();
  from_app.emplace_back("Origin", "http://app.example");
  EXPECT_EQ(client().Post("/v1/jobs", R"({"task": "noop"})", from_app).status, 202);
  Response foreign = client().Post("/v1/jobs", R"({"task": "noop"})",
                                   {{"Origin", "http://evil.example"}, {"Content-Type", "application/json"}});
  EXPECT_EQ(foreign.status, 403) << Describe(foreign);
  EXPECT_EQ(Field(foreign.json().as_object(), "type"), "urn:offload:problem:origin-not-allowed");
  EXPECT_EQ(foreign.header("Access-Control-Allow-Origin"), "");
}

// The route-to-scope table (ScopeOf in api.cc) against the document: every operation
// of docs/openapi.json is refused, 403, to a token without the scope it names, and
// taken from one with it; an operation that names none needs no token.
TEST_F(AuthTest, EveryOperationTakesTheScopeTheOpenApiDocumentNames) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth());
  const std::string own = Field(Submit(alice_, R"({"task": "noop"})"), "id");
  auto doc = ParseJson(ReadFile(std::string(OFFLOAD_SOURCE_DIR) + "/docs/openapi.json"));
  ASSERT_TRUE(doc && doc->is_object());
  const std::map<std::string, http::verb> verbs{
      {"get", http::verb::get}, {"post", http::verb::post}, {"delete", http::verb::delete_}};
  int scoped = 0, open = 0;
  for (const auto& [path, ops] : doc->at("paths").as_object()) {
    for (const auto& [method, op] : ops.as_object()) {
      auto verb = verbs.find(std::string(method));
      if (verb == verbs.end()) continue;
      const std::string target =
          ReplaceAll(ReplaceAll(ReplaceAll(std::string(path), "{id}", own), "{name}", "noop"), "{file}", "index.html");
      const std::string what = std::string(method) + " " + std::string(path);
      const std::string body = verb->second == http::verb::post ? "{}" : "";
      const json::value* scope = op.as_object().if_contains("x-offload-scope");
      if (!scope) {
        Response res = client().Request(verb->second, target);
        EXPECT_NE(res.status, 401) << what << " names no scope, yet asks for a token";
        ++open;
        continue;
      }
      const std::string needs(scope->as_string());
      // Tokens of every scope but the one needed, and of just that one (or admin).
      const Token& without = needs == "read" ? submitter_ : needs == "admin" ? alice_ : reader_;
      const Token& with = needs == "admin" ? ops_ : needs == "read" ? reader_ : alice_;
      Response refused = client().Request(verb->second, target, body, without.JsonBearer());
      EXPECT_EQ(refused.status, 403) << what << " as " << without.name << ": " << Describe(refused);
      if (refused.status == 403) {
        EXPECT_EQ(Field(refused.json().as_object(), "type"), "urn:offload:problem:insufficient-scope") << what;
      }
      // (A stream would stay open: its taking is in the events tests.)
      if (target.find("events") == std::string::npos) {
        Response taken = client().Request(verb->second, target, body, with.JsonBearer());
        EXPECT_TRUE(taken.status != 401 && taken.status != 403)
            << what << " as " << with.name << ": " << Describe(taken);
      }
      ++scoped;
    }
  }
  EXPECT_GE(scoped, 14);
  EXPECT_GE(open, 3);
}

TEST_F(AuthTest, MetricsScopeReadLetsAReadTokenScrape) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer("[auth]\nmetrics_scope = \"read\"\ntokens = [" + reader_.Toml() + ", " + submitter_.Toml() + "]\n"));
  EXPECT_EQ(Get(reader_, "/metrics").status, 200);
  EXPECT_EQ(Get(submitter_, "/metrics").status, 403);
  EXPECT_EQ(client().Get("/metrics").status, 401);
}

TEST_F(AuthTest, ATokenInTheQueryIsRefusedAndNeverLogged) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth());
  for (const std::string& name : {"access_token", "token", "api_key"}) {
    Response res = Get(alice_, "/v1/jobs?limit=5&" + name + "=" + alice_.token);
    EXPECT_EQ(res.status, 400) << name << ": " << Describe(res);
    EXPECT_EQ(Field(res.json().as_object(), "type"), "urn:offload:problem:token-in-query");
    EXPECT_EQ(res.body.find(alice_.token), std::string::npos);
  }
  // Even without the header, and on a route that needs none.
  EXPECT_EQ(client().Get("/healthz?access_token=" + alice_.token).status, 400);
  // A marker request: once its line is in the log, so are the four before it.
  EXPECT_EQ(client().Get("/healthz?marker=1").status, 200);
  const std::string log_path = server_.dir() + "/access.log";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ReadFile(log_path).find("marker=1") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  const std::string log = ReadFile(log_path);
  ASSERT_NE(log.find("marker=1"), std::string::npos) << log;
  EXPECT_EQ(log.find(alice_.token), std::string::npos) << log;
  EXPECT_NE(log.find("access_token=REDACTED"), std::string::npos) << log;
  EXPECT_NE(log.find("api_key=REDACTED"), std::string::npos) << log;
  EXPECT_EQ(server_.log().find(alice_.token), std::string::npos);
}

TEST_F(AuthTest, AScopeDecidesWhatATokenMayDo) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth());
  // Submit alone: it submits (and sees what it ran in the answer), but reads nothing.
  const std::string id = Field(Submit(submitter_, R"({"task": "sleep", "input": {"ms": 60000}})"), "id");
  ASSERT_FALSE(id.empty());
  Response read = Get(submitter_, "/v1/jobs/" + id);
  EXPECT_EQ(read.status, 403) << Describe(read);
  EXPECT_EQ(Field(read.json().as_object(), "type"), "urn:offload:problem:insufficient-scope");
  EXPECT_NE(read.header("www-authenticate").find("scope=\"read\""), std::string::npos);
  Response ran = client().Post("/v1/tasks/noop/run", "{}", submitter_.JsonBearer());
  EXPECT_EQ(ran.status, 200) << Describe(ran);
  EXPECT_EQ(client().Request(http::verb::delete_, "/v1/jobs/" + id, {}, submitter_.Bearer()).status, 403);

  // Read alone: it reads, but neither submits nor cancels.
  Response submitted = client().Post("/v1/jobs", R"({"task": "noop"})", reader_.JsonBearer());
  EXPECT_EQ(submitted.status, 403) << Describe(submitted);
  EXPECT_NE(submitted.header("www-authenticate").find("scope=\"submit\""), std::string::npos);
  EXPECT_EQ(Get(reader_, "/v1/tasks").status, 200);
  EXPECT_EQ(Get(reader_, "/v1/resources").status, 200);
  Response bulk = client().Post("/v1/jobs/cancel", R"({"all": true})", reader_.JsonBearer());
  EXPECT_EQ(bulk.status, 403) << Describe(bulk);

  // The submitter's job is the submitter's: the admin sees and cancels it.
  Response seen = Get(ops_, "/v1/jobs/" + id);
  ASSERT_EQ(seen.status, 200) << Describe(seen);
  EXPECT_EQ(Field(seen.json().as_object(), "tenant"), "submitter");
  EXPECT_EQ(client().Request(http::verb::delete_, "/v1/jobs/" + id, {}, ops_.Bearer()).status, 200);
}

TEST_F(AuthTest, AnotherTenantsJobIsNotFoundAndNotListed) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth());
  const std::string id = Field(Submit(alice_, R"({"task": "sleep", "input": {"ms": 60000}})"), "id");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(Field(GetJobAs(alice_, id), "tenant"), "alice");

  // To bob, alice's job answers as an id that never existed.
  const std::string unknown = std::string(id.size(), 'z');
  const std::string not_there = ReplaceAll(Get(bob_, "/v1/jobs/" + unknown).body, unknown, "ID");
  for (const std::string& target : {"/v1/jobs/" + id, "/v1/jobs/" + id + "/result", "/v1/jobs/" + id + "/events",
                                    "/v1/jobs/" + id + "?wait=5", "/v1/jobs/" + id + "?include=input"}) {
    Response res = Get(bob_, target);
    EXPECT_EQ(res.status, 404) << target << ": " << Describe(res);
    EXPECT_EQ(ReplaceAll(res.body, id, "ID"), not_there) << target;
  }
  Response cancel = client().Request(http::verb::delete_, "/v1/jobs/" + id, {}, bob_.Bearer());
  EXPECT_EQ(cancel.status, 404) << Describe(cancel);
  Response retry = client().Post("/v1/jobs/" + id + "/retry", "", bob_.Bearer());
  EXPECT_EQ(retry.status, 404) << Describe(retry);

  // Lists and bulk cancels are the tenant's own.
  Response bobs = Get(bob_, "/v1/jobs");
  ASSERT_EQ(bobs.status, 200) << Describe(bobs);
  EXPECT_TRUE(bobs.json().at("jobs").as_array().empty()) << bobs.body;
  Response swept = client().Post("/v1/jobs/cancel", R"({"all": true})", bob_.JsonBearer());
  ASSERT_EQ(swept.status, 200) << Describe(swept);
  EXPECT_EQ(swept.json().at("canceled").as_int64(), 0);
  EXPECT_EQ(Field(GetJobAs(alice_, id), "status"), "running");
  Response alices = Get(alice_, "/v1/jobs");
  ASSERT_EQ(alices.status, 200);
  ASSERT_EQ(alices.json().at("jobs").as_array().size(), 1u) << alices.body;

  // The admin sees every tenant's, and a retry it asks for is the job's tenant's.
  const std::string bobs_id = Field(Submit(bob_, R"({"task": "noop"})"), "id");
  Response all = Get(ops_, "/v1/jobs");
  ASSERT_EQ(all.status, 200);
  EXPECT_EQ(all.json().at("jobs").as_array().size(), 2u) << all.body;
  ASSERT_EQ(client().Request(http::verb::delete_, "/v1/jobs/" + id, {}, alice_.Bearer()).status, 200);
  Response again = client().Post("/v1/jobs/" + id + "/retry", "", ops_.Bearer());
  ASSERT_EQ(again.status, 202) << Describe(again);
  const std::string retry_id = Field(again.json().as_object(), "id");
  EXPECT_EQ(Field(again.json().as_object(), "tenant"), "alice");
  EXPECT_EQ(Field(GetJobAs(alice_, retry_id), "retry_of"), id);
  EXPECT_EQ(Get(bob_, "/v1/jobs/" + retry_id).status, 404);
  EXPECT_EQ(Get(alice_, "/v1/jobs/" + bobs_id).status, 404);
}

TEST_F(AuthTest, IdempotencyKeysArePerTenant) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth());
  const std::string body = R"({"task": "noop", "input": {"n": 1}})";
  const Headers key = {{"Idempotency-Key", "order-1"}};
  const std::string alices = Field(Submit(alice_, body, key), "id");
  const std::string bobs = Field(Submit(bob_, body, key), "id");
  ASSERT_FALSE(alices.empty());
  ASSERT_FALSE(bobs.empty());
  EXPECT_NE(alices, bobs);
  EXPECT_EQ(Field(Submit(alice_, body, key), "id"), alices);
  EXPECT_EQ(Field(Submit(bob_, body, key), "id"), bobs);
}

TEST_F(AuthTest, AnEventStreamCarriesOnlyItsTenantsJobs) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth());
  EXPECT_EQ(EventReader(server_.port(), "/v1/events").status(), 401u);
  EventReader bobs(server_.port(), "/v1/events", "", bob_.Bearer());
  EventReader all(server_.port(), "/v1/events", "", ops_.Bearer());
  ASSERT_EQ(bobs.status(), 200u);
  ASSERT_EQ(all.status(), 200u);
  const std::string alices_job = Field(Submit(alice_, R"({"task": "noop"})"), "id");
  const std::string bobs_job = Field(Submit(bob_, R"({"task": "noop"})"), "id");
  const auto& seen_by_bob = bobs.ReadUntil(HasStatus(bobs_job, "succeeded"));
  ASSERT_TRUE(HasStatus(bobs_job, "succeeded")(seen_by_bob));
  for (const Message& m : seen_by_bob) {
    EXPECT_EQ(Field(m.object(), "tenant"), "bob") << m.data;
    EXPECT_NE(Field(m.object(), "id"), alices_job) << m.data;
  }
  const auto& seen_by_ops = all.ReadUntil([&](const std::vector<Message>& m) {
    return HasStatus(alices_job, "succeeded")(m) && HasStatus(bobs_job, "succeeded")(m);
  });
  EXPECT_TRUE(HasStatus(alices_job, "succeeded")(seen_by_ops));
  EXPECT_TRUE(HasStatus(bobs_job, "succeeded")(seen_by_ops));
}

TEST_F(AuthTest, AnUploadIsRefusedBeforeItsBodyWithoutAToken) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth());
  Response refused = client().Post("/v1/jobs?task=upload", "hello", {{"Content-Type", "text/plain"}});
  EXPECT_EQ(refused.status, 401) << Describe(refused);
  EXPECT_EQ(refused.header("www-authenticate"), "Bearer realm=\"offload\"");
  Headers headers = alice_.Bearer();
  headers.emplace_back("Content-Type", "text/plain");
  Response sent = client().Post("/v1/jobs?task=upload", "hello", headers);
  ASSERT_EQ(sent.status, 202) << Describe(sent);
  const std::string id = Field(sent.json().as_object(), "id");
  EXPECT_EQ(Field(sent.json().as_object(), "tenant"), "alice");
  EXPECT_EQ(Get(bob_, "/v1/jobs/" + id).status, 404);
  Response reader = client().Post("/v1/jobs?task=upload", "hello",
                                  {{"Authorization", "Bearer " + reader_.token}, {"Content-Type", "text/plain"}});
  EXPECT_EQ(reader.status, 403) << Describe(reader);
}

TEST_F(AuthTest, TheCliSendsItsToken) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth());
  const std::string url = "http://127.0.0.1:" + std::to_string(server_.port());
  const std::string cli = std::string(OffloadBinary()) + " ls --url " + url;
  CommandOutput without = RunCommand("env -u OFFLOAD_TOKEN " + cli + " 2>&1");
  EXPECT_TRUE(without.ExitedWith(4)) << without.out;
  EXPECT_NE(without.out.find("A token is needed"), std::string::npos) << without.out;
  const std::string id = Field(Submit(alice_, R"({"task": "noop"})"), "id");
  CommandOutput with_env = RunCommand("OFFLOAD_TOKEN=" + alice_.token + " " + cli + " --json");
  EXPECT_TRUE(with_env.ExitedWith(0)) << with_env.out;
  EXPECT_NE(with_env.out.find(id), std::string::npos) << with_env.out;
  CommandOutput bobs = RunCommand("env -u OFFLOAD_TOKEN " + cli + " --json --token " + bob_.token);
  EXPECT_TRUE(bobs.ExitedWith(0)) << bobs.out;
  EXPECT_EQ(bobs.out.find(id), std::string::npos) << bobs.out;
}

TEST_F(AuthTest, SighupReloadsTheTokensFileAndKeepsTheOldTokensWhenItDoesNotParse) {
  const std::filesystem::path dir = MakeTestDir("offload-auth-");
  const std::string tokens = (dir / "tokens.toml").string();
  const Token carol = CreateToken("carol", "read");
  auto write_tokens = [&](const std::vector<const Token*>& list) {
    std::ofstream out(tokens, std::ios::trunc);
    for (const Token* t : list)
      out << "[[tokens]]\nname = \"" << t->name << "\"\nsha256 = \"" << t->sha256 << "\"\nscopes = [\"read\"]\n";
  };
  write_tokens({&alice_});
  ASSERT_NO_FATAL_FAILURE(StartServer("[auth]\ntokens_file = \"" + tokens + "\"\n"));
  EXPECT_EQ(Get(alice_, "/v1/jobs").status, 200);
  EXPECT_EQ(Get(carol, "/v1/jobs").status, 401);

  // Bounded: a reload takes effect within milliseconds, and 10 s means it never did.
  auto wait_for_status = [&](const Token& who, int status) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int got = 0;
    while ((got = Get(who, "/v1/jobs").status) != status && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    return got;
  };
  write_tokens({&alice_, &carol});
  server_.Signal(SIGHUP);
  EXPECT_EQ(wait_for_status(carol, 200), 200) << server_.log();

  {
    std::ofstream out(tokens, std::ios::trunc);
    out << "[[tokens]]\nname = \"mallory\"\nsha256 = \"not-a-digest\"\nscopes = [\"admin\"]\n";
  }
  server_.Signal(SIGHUP);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (server_.log().find("the tokens are unchanged") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_NE(server_.log().find("the tokens are unchanged"), std::string::npos) << server_.log();
  EXPECT_EQ(Get(alice_, "/v1/jobs").status, 200);
  EXPECT_EQ(Get(carol, "/v1/jobs").status, 200);

  // Revoked: carol's line is gone.
  write_tokens({&alice_});
  server_.Signal(SIGHUP);
  EXPECT_EQ(wait_for_status(carol, 401), 401) << server_.log();
  EXPECT_EQ(Get(alice_, "/v1/jobs").status, 200);
  // The last one too: nobody gets in, as the file says.
  write_tokens({});
  server_.Signal(SIGHUP);
  EXPECT_EQ(wait_for_status(alice_, 401), 401) << server_.log();
  EXPECT_NE(server_.log().find("no tokens left"), std::string::npos) << server_.log();
  std::filesystem::remove_all(dir);
}

TEST_F(AuthTest, ATenantHoldsAtMostMaxStreamsStreams) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth("", "max_streams = 2\n"));
  auto first = std::make_unique<EventReader>(server_.port(), "/v1/events", "", alice_.Bearer());
  EventReader second(server_.port(), "/v1/events?latest=1", "", alice_.Bearer());
  ASSERT_EQ(first->status(), 200u);
  ASSERT_EQ(second.status(), 200u);
  Response third = Get(alice_, "/v1/events");
  EXPECT_EQ(third.status, 429) << Describe(third);
  EXPECT_EQ(Field(third.json().as_object(), "type"), "urn:offload:problem:too-many-streams");
  EXPECT_EQ(third.header("retry-after"), "1");
  // A job's own stream counts too; another tenant has streams of its own.
  const std::string id = Field(Submit(alice_, R"({"task": "sleep", "input": {"ms": 60000}})"), "id");
  EXPECT_EQ(Get(alice_, "/v1/jobs/" + id + "/events").status, 429);
  EXPECT_EQ(EventReader(server_.port(), "/v1/events", "", bob_.Bearer()).status(), 200u);
  // A stream that ends gives its slot back (once the server sees the client gone).
  first->Close();
  first.reset();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  unsigned status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    EventReader again(server_.port(), "/v1/events", "", alice_.Bearer());
    if ((status = again.status()) == 200u) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(status, 200u);
  client().Request(http::verb::delete_, "/v1/jobs/" + id, {}, alice_.Bearer());
}

TEST_F(AuthTest, ATenantHoldsAtMostMaxWaitsWaitingRequests) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth("", "max_waits = 1\n"));
  // A submit that waits takes its slot before its job is stored: once the job is
  // listed, the slot is held.
  HttpClient waiter(server_.port());
  Headers prefer = alice_.JsonBearer();
  prefer.emplace_back("Prefer", "wait=60");
  ASSERT_EQ(waiter.Send(http::verb::post, "/v1/jobs", R"({"task": "sleep", "input": {"ms": 60000}})", prefer), "");
  std::string id;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (id.empty() && std::chrono::steady_clock::now() < deadline) {
    Response listed = Get(alice_, "/v1/jobs");
    if (listed.status == 200 && !listed.json().at("jobs").as_array().empty()) {
      id = Field(listed.json().at("jobs").as_array()[0].as_object(), "id");
    } else {
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  ASSERT_FALSE(id.empty());
  // A second request waiting, of any kind, is refused.
  Response second = Get(alice_, "/v1/jobs/" + id + "?wait=60");
  EXPECT_EQ(second.status, 429) << Describe(second);
  EXPECT_EQ(Field(second.json().as_object(), "type"), "urn:offload:problem:too-many-waits");
  EXPECT_EQ(second.header("retry-after"), "1");
  Response submitted = client().Post("/v1/jobs", R"({"task": "noop"})", prefer);
  EXPECT_EQ(submitted.status, 429) << Describe(submitted);
  Response run = client().Post("/v1/tasks/noop/run", "{}", alice_.JsonBearer());
  EXPECT_EQ(run.status, 429) << Describe(run);
  // Nothing of the refused was stored; bob waits as he likes; a poll without waiting is fine.
  EXPECT_EQ(Get(alice_, "/v1/jobs").json().at("jobs").as_array().size(), 1u);
  EXPECT_EQ(client().Post("/v1/tasks/noop/run", "{}", bob_.JsonBearer()).status, 200);
  EXPECT_EQ(Get(alice_, "/v1/jobs/" + id).status, 200);
  // The wait ends (the job is canceled): its slot is free by the time its answer comes.
  ASSERT_EQ(client().Request(http::verb::delete_, "/v1/jobs/" + id, {}, alice_.Bearer()).status, 200);
  Response ended = waiter.Receive();
  EXPECT_EQ(ended.status, 200) << Describe(ended);
  Response again = client().Post("/v1/tasks/noop/run", "{}", alice_.JsonBearer());
  EXPECT_EQ(again.status, 200) << Describe(again);
}

TEST_F(AuthTest, RequestRatesHoldPerTenantAndPerConnection) {
  // One request a minute: the second at once is past it, whatever the machine's speed.
  ASSERT_NO_FATAL_FAILURE(StartWithAuth("", "request_rate = \"1/m\"\n"));
  EXPECT_EQ(Get(alice_, "/v1/jobs").status, 200);
  Response past = Get(alice_, "/v1/jobs");
  EXPECT_EQ(past.status, 429) << Describe(past);
  EXPECT_EQ(Field(past.json().as_object(), "type"), "urn:offload:problem:rate-limited");
  const int retry_after = std::atoi(past.header("retry-after").c_str());
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 60);
  EXPECT_EQ(Get(bob_, "/v1/jobs").status, 200);
  EXPECT_EQ(client().Get("/healthz").status, 200);  // Probes carry no token and count for no one.
  // An upload counts as any request, and is refused before its body.
  Headers upload = alice_.Bearer();
  upload.emplace_back("Content-Type", "text/plain");
  Response uploaded = client().Post("/v1/jobs?task=upload", "hello", upload);
  EXPECT_EQ(uploaded.status, 429) << Describe(uploaded);
}

TEST_F(AuthTest, AConnectionPastConnectionRateIsRefusedAndClosed) {
  ASSERT_NO_FATAL_FAILURE(StartWithAuth("connection_rate = \"1/m\"\n"));
  HttpClient one(server_.port());
  EXPECT_EQ(one.Request(http::verb::get, "/v1/jobs", {}, alice_.Bearer()).status, 200);
  Response past = one.Request(http::verb::get, "/v1/jobs", {}, alice_.Bearer());
  EXPECT_EQ(past.status, 429) << Describe(past);
  EXPECT_EQ(Field(past.json().as_object(), "type"), "urn:offload:problem:rate-limited");
  EXPECT_EQ(past.header("connection"), "close");
  // Another connection has its own rate.
  HttpClient other(server_.port());
  EXPECT_EQ(other.Request(http::verb::get, "/v1/jobs", {}, alice_.Bearer()).status, 200);
}

TEST(AuthStartTest, WithoutAuthAListenAddressBeyondLoopbackIsRefused) {
  // The check comes before the socket is opened: nothing listens beyond loopback.
  for (const std::string listen : {"0.0.0.0:0", "[::]:0"}) {
    CommandOutput refused = RunCommand(std::string(OffloadBinary()) + " serve --listen " + listen + " 2>&1");
    EXPECT_TRUE(refused.ExitedWith(2)) << refused.out;
    EXPECT_NE(refused.out.find("insecure_no_auth"), std::string::npos) << refused.out;
    EXPECT_NE(refused.out.find("[auth]"), std::string::npos) << refused.out;
  }
}

}  // namespace
}  // namespace offload::testing
