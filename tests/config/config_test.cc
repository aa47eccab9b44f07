// Config: defaults, the TOML file, errors a person can act on (file and line), and
// the settings table behind --help and docs/config.md.
#include "config/config.h"

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "auth/access_token.h"
#include "config/defaults.h"
#include "config/setting_table.h"
#include "config/settings.h"
#include "config/tokens_file.h"
#include "support/temp_dirs.h"

namespace offload {
namespace {

constexpr const char* kFile = "test.toml";

ServerConfig ParseOk(std::string_view text) {
  auto c = ParseConfig(text, kFile);
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().detail);
  return c ? *c : ServerConfig{};
}

// Parses text that must fail; returns the error detail.
std::string ParseError(std::string_view text) {
  auto c = ParseConfig(text, kFile);
  EXPECT_FALSE(c.has_value()) << "accepted:\n" << text;
  if (c) return "";
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  return c.error().detail;
}

std::string AtLine(int line) { return std::string(kFile) + ":" + std::to_string(line) + ":"; }

TEST(DefaultConfigTest, CpuIsTheNumberOfCores) {
  ServerConfig c = DefaultConfig();
  ASSERT_EQ(c.resources.count("cpu"), 1u);
  EXPECT_EQ(c.resources.at("cpu"), static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency())));
  EXPECT_EQ(c.resources.size(), 1u);
}

TEST(DefaultConfigTest, HoldsTheBuiltinTasksEachUsingOneCpu) {
  ServerConfig c = DefaultConfig();
  for (const char* name : {"noop", "sleep", "cpu", "mandelbrot"}) {
    SCOPED_TRACE(name);
    ASSERT_EQ(c.tasks.count(name), 1u);
    const TaskConfig& t = c.tasks.at(name);
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(t.run, std::string("builtin:") + name);
    EXPECT_EQ(t.uses, (std::map<std::string, std::int64_t>{{"cpu", 1}}));
    EXPECT_EQ(t.timeout, Millis(0));
    EXPECT_EQ(t.max_queued, 100000);
  }
  EXPECT_EQ(c.tasks.size(), 4u);
}

TEST(DefaultConfigTest, ServerDefaults) {
  ServerConfig c = DefaultConfig();
  EXPECT_EQ(c.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.max_body, 16 << 20);
  EXPECT_EQ(c.retention, Millis(24 * 3600 * 1000));
  EXPECT_EQ(c.shutdown_grace, Millis(30'000));
  EXPECT_TRUE(ValidateConfig(c).has_value());
}

TEST(ParseConfigTest, EmptyFileGivesTheDefaults) {
  ServerConfig c = ParseOk("");
  ServerConfig d = DefaultConfig();
  EXPECT_EQ(c.listen, d.listen);
  EXPECT_EQ(c.resources, d.resources);
  EXPECT_EQ(c.tasks.size(), d.tasks.size());
}

TEST(ParseConfigTest, TopLevelSettings) {
  ServerConfig c = ParseOk(R"(
listen = "127.0.0.1:0"
threads = 3
max_body = 1024
max_wait = "5s"
run_timeout = 90
retention = "2h"
shutdown_grace = "250ms"
store = "memory"
)");
  EXPECT_EQ(c.listen, "127.0.0.1:0");
  EXPECT_EQ(c.threads, 3u);
  EXPECT_EQ(c.max_body, 1024);
  EXPECT_EQ(c.max_wait, Millis(5000));
  EXPECT_EQ(c.run_timeout, Millis(90'000));
  EXPECT_EQ(c.retention, Millis(2 * 3600 * 1000));
  EXPECT_EQ(c.shutdown_grace, Millis(250));
}

TEST(ParseConfigTest, ResourcesAndTasks) {
  ServerConfig c = ParseOk(R"(
[resources]
cpu = 6
gpu = 2

[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}
max_queued = 10
timeout = "30s"

[tasks.heavy]
run = "builtin:cpu"
uses = {cpu = 2, gpu = 2}
content_type = "text/plain"
)");
  EXPECT_EQ(c.resources, (std::map<std::string, std::int64_t>{{"cpu", 6}, {"gpu", 2}}));
  ASSERT_EQ(c.tasks.count("render"), 1u);
  const TaskConfig& r = c.tasks.at("render");
  EXPECT_EQ(r.name, "render");
  EXPECT_EQ(r.run, "builtin:sleep");
  EXPECT_EQ(r.uses, (std::map<std::string, std::int64_t>{{"gpu", 1}}))
      << "uses replaces the default {cpu = 1}, it does not add to it";
  EXPECT_EQ(r.max_queued, 10);
  EXPECT_EQ(r.timeout, Millis(30'000));

  const TaskConfig& h = c.tasks.at("heavy");
  EXPECT_EQ(h.uses, (std::map<std::string, std::int64_t>{{"cpu", 2}, {"gpu", 2}}));
  EXPECT_EQ(h.content_type, "text/plain");
  EXPECT_EQ(h.max_queued, 100000);
  EXPECT_EQ(h.timeout, Millis(0));

  // The built-ins stay available under their own names.
  for (const char* name : {"noop", "sleep", "cpu", "mandelbrot"}) EXPECT_EQ(c.tasks.count(name), 1u);
  EXPECT_EQ(c.tasks.size(), 6u);
}

TEST(ParseConfigTest, ResourcesMayComeAfterTheTasksThatUseThem) {
  ServerConfig c = ParseOk(R"(
[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}

[resources]
gpu = 1
)");
  EXPECT_EQ(c.tasks.at("render").uses.at("gpu"), 1);
}

TEST(ParseConfigTest, RedefiningABuiltinKeepsItsRunAndChangesItsUses) {
  ServerConfig c = ParseOk(R"(
[resources]
gpu = 1

[tasks.sleep]
uses = {gpu = 1}
)");
  const TaskConfig& s = c.tasks.at("sleep");
  EXPECT_EQ(s.run, "builtin:sleep");
  EXPECT_EQ(s.uses, (std::map<std::string, std::int64_t>{{"gpu", 1}}));
  EXPECT_EQ(c.tasks.at("noop").uses, (std::map<std::string, std::int64_t>{{"cpu", 1}}));
}

TEST(ParseConfigTest, OverridingCpuCapacity) {
  ServerConfig c = ParseOk("[resources]\ncpu = 64\n");
  EXPECT_EQ(c.resources.at("cpu"), 64);
}

TEST(ParseConfigErrorTest, BadTomlSyntaxNamesFileAndLine) {
  std::string e = ParseError("listen = \"127.0.0.1:1\"\nthreads = = 2\n");
  EXPECT_EQ(e.rfind(AtLine(2), 0), 0u) << e;
}

TEST(ParseConfigErrorTest, UnknownTopLevelKey) {
  std::string e = ParseError("listen = \"127.0.0.1:1\"\n\nlisten_port = 80\n");
  EXPECT_EQ(e.rfind(AtLine(3), 0), 0u) << e;
  EXPECT_NE(e.find("listen_port"), std::string::npos) << e;
}

TEST(ParseConfigErrorTest, UnknownTaskKey) {
  std::string e = ParseError("[tasks.render]\nrun = \"builtin:sleep\"\ngpus = 1\n");
  EXPECT_EQ(e.rfind(AtLine(3), 0), 0u) << e;
  EXPECT_NE(e.find("gpus"), std::string::npos) << e;
}

TEST(ParseConfigErrorTest, NegativeResourceCapacity) {
  std::string e = ParseError("[resources]\ncpu = 2\ngpu = -1\n");
  EXPECT_EQ(e.rfind(AtLine(3), 0), 0u) << e;
  EXPECT_NE(e.find("gpu"), std::string::npos) << e;
}

TEST(ParseConfigErrorTest, ZeroCapacity) {
  std::string e = ParseError("[resources]\ngpu = 0\n");
  EXPECT_EQ(e.rfind(AtLine(2), 0), 0u) << e;
}

TEST(ParseConfigErrorTest, NegativeUsesAndMaxQueuedAndTimeout) {
  EXPECT_EQ(ParseError("[tasks.a]\nrun = \"builtin:noop\"\nuses = {cpu = -1}\n").rfind(AtLine(3), 0), 0u);
  EXPECT_EQ(ParseError("[tasks.a]\nrun = \"builtin:noop\"\n\nmax_queued = -5\n").rfind(AtLine(4), 0), 0u);
  EXPECT_EQ(ParseError("[tasks.a]\nrun = \"builtin:noop\"\ntimeout = -1\n").rfind(AtLine(3), 0), 0u);
  EXPECT_EQ(ParseError("\n\nretention = -3\n").rfind(AtLine(3), 0), 0u);
}

TEST(ParseConfigErrorTest, WrongTypes) {
  EXPECT_EQ(ParseError("threads = \"four\"\n").rfind(AtLine(1), 0), 0u);
  EXPECT_EQ(ParseError("listen = 8080\n").rfind(AtLine(1), 0), 0u);
  EXPECT_EQ(ParseError("listen = \"nohostport\"\n").rfind(AtLine(1), 0), 0u);
  EXPECT_EQ(ParseError("max_wait = \"5 parsecs\"\n").rfind(AtLine(1), 0), 0u);
  EXPECT_EQ(ParseError("store = \"redis\"\n").rfind(AtLine(1), 0), 0u);
  EXPECT_EQ(ParseError("resources = 3\n").rfind(AtLine(1), 0), 0u);
  EXPECT_EQ(ParseError("[tasks.a]\nrun = \"builtin:noop\"\nuses = 1\n").rfind(AtLine(3), 0), 0u);
}

TEST(ParseConfigErrorTest, TaskUsingAnUndeclaredResource) {
  std::string e = ParseError(R"([resources]
cpu = 2

[tasks.render]
run = "builtin:sleep"
uses = {gpu = 1}
)");
  EXPECT_EQ(e.rfind(AtLine(6), 0), 0u) << e;
  EXPECT_NE(e.find("render"), std::string::npos) << e;
  EXPECT_NE(e.find("gpu"), std::string::npos) << e;
}

TEST(ParseConfigErrorTest, UsesAboveCapacity) {
  std::string e = ParseError(R"([resources]
gpu = 2

[tasks.render]
run = "builtin:sleep"
uses = {gpu = 3}
)");
  EXPECT_EQ(e.rfind(AtLine(6), 0), 0u) << e;
  EXPECT_NE(e.find("render"), std::string::npos) << e;
  EXPECT_NE(e.find("gpu"), std::string::npos) << e;
}

TEST(ParseConfigErrorTest, RedefinedBuiltinUsingAnUndeclaredResource) {
  std::string e = ParseError("[tasks.sleep]\nuses = {gpu = 1}\n");
  EXPECT_EQ(e.rfind(AtLine(2), 0), 0u) << e;
  EXPECT_NE(e.find("sleep"), std::string::npos) << e;
}

TEST(ParseConfigErrorTest, RunMustBeBuiltin) {
  std::string e = ParseError("[tasks.render]\n\nrun = \"/usr/bin/render\"\n");
  EXPECT_EQ(e.rfind(AtLine(3), 0), 0u) << e;
  EXPECT_NE(e.find("builtin:"), std::string::npos) << e;
}

TEST(ParseConfigErrorTest, NewTaskWithoutRun) {
  std::string e = ParseError("[tasks.render]\nuses = {cpu = 1}\n");
  EXPECT_EQ(e.rfind(AtLine(1), 0), 0u) << e;
  EXPECT_NE(e.find("run"), std::string::npos) << e;
}

TEST(ParseConfigErrorTest, EmptyUses) {
  std::string e = ParseError("[tasks.a]\nrun = \"builtin:noop\"\nuses = {}\n");
  EXPECT_EQ(e.rfind(AtLine(3), 0), 0u) << e;
}

TEST(ParseConfigErrorTest, HugeDurationsAreRejectedNotOverflowed) {
  EXPECT_EQ(ParseError("retention = 9223372036854775807\n").rfind(AtLine(1), 0), 0u);
  EXPECT_EQ(ParseError("retention = \"9223372036854775807h\"\n").rfind(AtLine(1), 0), 0u);
}

TEST(LoadConfigFileTest, MissingFileNamesThePath) {
  auto c = LoadConfigFile("/nonexistent/offload-test.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().detail.find("/nonexistent/offload-test.toml"), std::string::npos);
}

TEST(ParseDurationTest, Units) {
  Millis d{};
  ASSERT_TRUE(ParseDuration("250ms", &d));
  EXPECT_EQ(d, Millis(250));
  ASSERT_TRUE(ParseDuration("30s", &d));
  EXPECT_EQ(d, Millis(30'000));
  ASSERT_TRUE(ParseDuration("5m", &d));
  EXPECT_EQ(d, Millis(300'000));
  ASSERT_TRUE(ParseDuration("24h", &d));
  EXPECT_EQ(d, Millis(24 * 3'600'000));
  ASSERT_TRUE(ParseDuration("12", &d));
  EXPECT_EQ(d, Millis(12'000)) << "a bare number is seconds";
  ASSERT_TRUE(ParseDuration("0", &d));
  EXPECT_EQ(d, Millis(0));
}

TEST(ParseDurationTest, RejectsBadText) {
  for (const char* bad : {"", "ms", "-5s", "5d", "1.5s", "5 s", "s5", "5sec", "0x10", "+5s", "9223372036854775807h",
                          "9223372036854775807s", "99999999999999999999"}) {
    Millis d{12345};
    EXPECT_FALSE(ParseDuration(bad, &d)) << '"' << bad << '"';
    EXPECT_EQ(d, Millis(12345)) << "a failed parse leaves the output alone: " << bad;
  }
}

TEST(ParseDurationTest, LargestValuesThatFit) {
  Millis d{};
  ASSERT_TRUE(ParseDuration("9223372036854775807ms", &d));
  EXPECT_EQ(d.count(), INT64_MAX);
}

// [auth]: tokens inline or in a tokens file, and the errors that name where a token
// is wrong.

// One token's table, inline: {name = "...", sha256 = "...", scopes = [...]}.
std::string TokenTable(const std::string& name, const std::string& token, const std::string& scopes) {
  return "{name = \"" + name + "\", sha256 = \"" + HexDigestOfToken(token) + "\", scopes = " + scopes + "}";
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

TEST(AuthConfigTest, WithoutAuthNobodyIsAsked) {
  ServerConfig c = ParseOk("");
  EXPECT_FALSE(c.auth.enabled);
  EXPECT_TRUE(c.auth.tokens.empty());
  EXPECT_TRUE(c.auth.tokens_file.empty());
  EXPECT_EQ(c.auth.metrics_scope, "admin");
  EXPECT_FALSE(c.insecure_no_auth);
}

TEST(AuthConfigTest, InlineTokens) {
  ServerConfig c = ParseOk("[auth]\ntokens = [\n  " + TokenTable("alice", "ofl_a", "[\"submit\", \"read\"]") + ",\n  " +
                           TokenTable("alice", "ofl_b", "[\"read\"]") + ",\n  " +
                           TokenTable("ops", "ofl_c", "[\"admin\"]") + ",\n]\n");
  EXPECT_TRUE(c.auth.enabled);
  EXPECT_TRUE(c.auth.tokens_file.empty());
  EXPECT_TRUE(c.auth.file_tokens.empty());
  EXPECT_EQ(c.auth.metrics_scope, "admin");
  ASSERT_EQ(c.auth.tokens.size(), 3u);
  const TokenConfig& a = c.auth.tokens[0];
  EXPECT_EQ(a.name, "alice");
  EXPECT_EQ(a.sha256, HexDigestOfToken("ofl_a"));
  EXPECT_TRUE(a.scopes.Has(Scope::kSubmit));
  EXPECT_TRUE(a.scopes.Has(Scope::kRead));
  EXPECT_FALSE(a.scopes.Has(Scope::kCancel));
  EXPECT_FALSE(a.scopes.Has(Scope::kAdmin));
  EXPECT_EQ(a.where, AtLine(3) + " ");
  const TokenConfig& b = c.auth.tokens[1];
  EXPECT_EQ(b.name, "alice");
  EXPECT_TRUE(b.scopes.Has(Scope::kRead));
  EXPECT_FALSE(b.scopes.Has(Scope::kSubmit));
  const TokenConfig& ops = c.auth.tokens[2];
  EXPECT_EQ(ops.name, "ops");
  EXPECT_TRUE(ops.scopes.Has(Scope::kAdmin));
}

TEST(AuthConfigTest, ArrayOfTablesAndMetricsScope) {
  ServerConfig c = ParseOk(R"([auth]
metrics_scope = "read"

[[auth.tokens]]
name = "scraper"
sha256 = ")" + HexDigestOfToken("ofl_s") +
                           R"("
scopes = ["read"]

[[auth.tokens]]
name = "ci.bot-1"
sha256 = ")" + HexDigestOfToken("ofl_ci") +
                           R"("
scopes = ["submit", "cancel"]
)");
  EXPECT_TRUE(c.auth.enabled);
  EXPECT_EQ(c.auth.metrics_scope, "read");
  ASSERT_EQ(c.auth.tokens.size(), 2u);
  EXPECT_EQ(c.auth.tokens[0].name, "scraper");
  EXPECT_EQ(c.auth.tokens[1].name, "ci.bot-1");
  EXPECT_TRUE(c.auth.tokens[1].scopes.Has(Scope::kCancel));
  EXPECT_FALSE(c.auth.tokens[1].scopes.Has(Scope::kRead));
}

TEST(AuthConfigTest, UpperCaseDigestIsTaken) {
  std::string hex = HexDigestOfToken("ofl_a");
  for (char& ch : hex) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  ServerConfig c = ParseOk("[auth]\ntokens = [{name = \"a\", sha256 = \"" + hex + "\", scopes = [\"read\"]}]\n");
  ASSERT_EQ(c.auth.tokens.size(), 1u);
}

// A relative tokens_file is taken from the config file's folder, not the working
// directory; its tokens are kept beside the inline ones.
TEST(AuthConfigTest, TokensFileRelativeToTheConfigFile) {
  testing::DataDir dir;
  const std::string folder = dir.path() + "/etc";
  std::filesystem::create_directories(folder + "/auth");
  WriteFile(folder + "/auth/tokens.toml", "# tokens\n[[tokens]]\nname = \"bob\"\nsha256 = \"" +
                                              HexDigestOfToken("ofl_bob") +
                                              "\"\nscopes = [\"submit\"]\n\n[[tokens]]\nname = \"ops\"\nsha256 = \"" +
                                              HexDigestOfToken("ofl_ops") + "\"\nscopes = [\"admin\"]\n");
  WriteFile(folder + "/offload.toml", "[auth]\ntokens_file = \"auth/tokens.toml\"\ntokens = [" +
                                          TokenTable("alice", "ofl_a", "[\"read\"]") + "]\n");
  auto c = LoadConfigFile(folder + "/offload.toml");
  ASSERT_TRUE(c.has_value()) << c.error().detail;
  EXPECT_TRUE(c->auth.enabled);
  EXPECT_EQ(c->auth.tokens_file, folder + "/auth/tokens.toml");
  ASSERT_EQ(c->auth.tokens.size(), 1u);
  EXPECT_EQ(c->auth.tokens[0].name, "alice");
  ASSERT_EQ(c->auth.file_tokens.size(), 2u);
  EXPECT_EQ(c->auth.file_tokens[0].name, "bob");
  EXPECT_EQ(c->auth.file_tokens[0].sha256, HexDigestOfToken("ofl_bob"));
  EXPECT_TRUE(c->auth.file_tokens[0].scopes.Has(Scope::kSubmit));
  EXPECT_FALSE(c->auth.file_tokens[0].scopes.Has(Scope::kRead));
  EXPECT_EQ(c->auth.file_tokens[0].where, folder + "/auth/tokens.toml:2: ");
  EXPECT_EQ(c->auth.file_tokens[1].name, "ops");
  EXPECT_TRUE(c->auth.file_tokens[1].scopes.Has(Scope::kAdmin));
}

TEST(AuthConfigTest, TokensFileAloneIsEnough) {
  testing::DataDir dir;
  WriteFile(dir.path() + "/tokens.toml",
            "[[tokens]]\nname = \"bob\"\nsha256 = \"" + HexDigestOfToken("ofl_bob") + "\"\nscopes = [\"read\"]\n");
  WriteFile(dir.path() + "/offload.toml", "[auth]\ntokens_file = \"tokens.toml\"\n");
  auto c = LoadConfigFile(dir.path() + "/offload.toml");
  ASSERT_TRUE(c.has_value()) << c.error().detail;
  EXPECT_TRUE(c->auth.tokens.empty());
  ASSERT_EQ(c->auth.file_tokens.size(), 1u);
}

TEST(AuthConfigErrorTest, UnknownScope) {
  std::string e = ParseError("[auth]\n\ntokens = [{name = \"a\", sha256 = \"" + HexDigestOfToken("x") +
                             "\", scopes = [\"read\", \"write\"]}]\n");
  EXPECT_EQ(e.rfind(AtLine(3), 0), 0u) << e;
  EXPECT_NE(e.find("scope"), std::string::npos) << e;
  e = ParseError("[auth]\n[[auth.tokens]]\nname = \"a\"\nsha256 = \"" + HexDigestOfToken("x") +
                 "\"\nscopes = [\n  \"read\",\n  \"Admin\",\n]\n");
  EXPECT_EQ(e.rfind(AtLine(7), 0), 0u) << e;
}

TEST(AuthConfigErrorTest, ScopesMustBeANonEmptyArray) {
  const std::string head = "[auth]\n[[auth.tokens]]\nname = \"a\"\nsha256 = \"" + HexDigestOfToken("x") + "\"\n";
  for (const char* bad : {"scopes = []", "scopes = \"read\"", "scopes = [1]"}) {
    SCOPED_TRACE(bad);
    std::string e = ParseError(head + bad + "\n");
    EXPECT_EQ(e.rfind(AtLine(5), 0), 0u) << e;
    EXPECT_NE(e.find("scope"), std::string::npos) << e;
  }
}

TEST(AuthConfigErrorTest, Sha256MustBeSixtyFourHexDigits) {
  const std::string hex = HexDigestOfToken("x");
  for (const std::string& bad : {hex.substr(1), hex + "0", "z" + hex.substr(1), std::string("ofl_plaintext")}) {
    SCOPED_TRACE(bad);
    std::string e =
        ParseError("[auth]\n[[auth.tokens]]\nname = \"a\"\nsha256 = \"" + bad + "\"\nscopes = [\"read\"]\n");
    EXPECT_EQ(e.rfind(AtLine(4), 0), 0u) << e;
    EXPECT_NE(e.find("sha256"), std::string::npos) << e;
  }
  std::string e = ParseError("[auth]\n[[auth.tokens]]\nname = \"a\"\nsha256 = 12\nscopes = [\"read\"]\n");
  EXPECT_EQ(e.rfind(AtLine(4), 0), 0u) << e;
}

// A token's tenant keys: weight, max_queued, max_running, submit_rate (TenantPolicies).
TEST(AuthConfigTest, ATokenCarriesItsTenantsWeightAndQuotas) {
  const std::string table = "[resources]\ngpu = 4\n[auth]\n[[auth.tokens]]\nname = \"alice\"\nsha256 = \"" +
                            HexDigestOfToken("ofl_a") +
                            "\"\nscopes = [\"submit\"]\nweight = 3\nmax_queued = 100\nmax_running = {gpu = 1}\n"
                            "submit_rate = \"600/m\"\n[[auth.tokens]]\nname = \"alice\"\nsha256 = \"" +
                            HexDigestOfToken("ofl_b") + "\"\nscopes = [\"read\"]\n";
  ServerConfig c = ParseOk(table);
  auto policies = TenantPolicies(c.auth, c.resources);
  ASSERT_TRUE(policies) << policies.error().detail;
  const TenantPolicy& alice = policies->at("alice");
  EXPECT_EQ(alice.weight, 3);
  EXPECT_EQ(alice.max_queued, 100);
  EXPECT_EQ(alice.max_running, (std::map<std::string, std::int64_t>{{"gpu", 1}}));
  EXPECT_DOUBLE_EQ(alice.submit_rate, 10);
}

TEST(AuthConfigErrorTest, TenantKeysAreCheckedAndSharedByTheTokensOfAName) {
  auto token = [](const std::string& token, const std::string& more) {
    return "[[auth.tokens]]\nname = \"alice\"\nsha256 = \"" + HexDigestOfToken(token) + "\"\nscopes = [\"read\"]\n" +
           more;
  };
  const std::string head = "[resources]\ngpu = 1\n[auth]\n";
  for (const char* bad : {"weight = 0\n", "weight = \"3\"\n", "max_queued = 0\n", "max_running = 1\n",
                          "max_running = {gpu = 0}\n", "submit_rate = \"fast\"\n", "quota = 1\n"}) {
    SCOPED_TRACE(bad);
    std::string e = ParseError(head + token("ofl_a", bad));
    EXPECT_EQ(e.rfind(AtLine(8), 0), 0u) << e;
  }
  std::string e = ParseError(head + token("ofl_a", "max_running = {tpu = 1}\n"));
  EXPECT_NE(e.find("\"tpu\", which is not a resource"), std::string::npos) << e;
  e = ParseError(head + token("ofl_a", "weight = 3\n") + token("ofl_b", "weight = 2\n"));
  EXPECT_NE(e.find("the tokens of a tenant share its weight"), std::string::npos) << e;
  EXPECT_EQ(e.rfind(AtLine(9), 0), 0u) << e;  // The second token's table,
  EXPECT_NE(e.find("(at " + AtLine(4).substr(0, AtLine(4).size() - 1) + ")"), std::string::npos)
      << e;  // and the first's.
  // The same value twice is one policy; and only one token needs to set it.
  ParseOk(head + token("ofl_a", "weight = 3\n") + token("ofl_b", "weight = 3\n") + token("ofl_c", ""));
}

TEST(AuthConfigErrorTest, TokenNameMustBeAWord) {
  for (const char* bad : {"\"\"", "\"a b\"", "\"alice/ops\"", "3"}) {
    SCOPED_TRACE(bad);
    std::string e = ParseError("[auth]\n[[auth.tokens]]\nname = " + std::string(bad) + "\nsha256 = \"" +
                               HexDigestOfToken("x") + "\"\nscopes = [\"read\"]\n");
    EXPECT_EQ(e.rfind(AtLine(3), 0), 0u) << e;
    EXPECT_NE(e.find("name"), std::string::npos) << e;
  }
  ParseOk("[auth]\n[[auth.tokens]]\nname = \"" + std::string(64, 'n') + "\"\nsha256 = \"" + HexDigestOfToken("x") +
          "\"\nscopes = [\"read\"]\n");
  ParseError("[auth]\n[[auth.tokens]]\nname = \"" + std::string(65, 'n') + "\"\nsha256 = \"" + HexDigestOfToken("x") +
             "\"\nscopes = [\"read\"]\n");
}

TEST(AuthConfigErrorTest, UnknownKeyInAToken) {
  std::string e = ParseError("[auth]\n[[auth.tokens]]\nname = \"a\"\nsha256 = \"" + HexDigestOfToken("x") +
                             "\"\nscopes = [\"read\"]\ntoken = \"ofl_x\"\n");
  EXPECT_EQ(e.rfind(AtLine(6), 0), 0u) << e;
  EXPECT_NE(e.find("\"token\""), std::string::npos) << e;
}

TEST(AuthConfigErrorTest, TokenWithoutNameSha256OrScopes) {
  const std::string sha = "sha256 = \"" + HexDigestOfToken("x") + "\"\n";
  struct Case {
    std::string body;
    const char* missing;
  };
  for (const Case& c :
       {Case{sha + "scopes = [\"read\"]\n", "name"}, Case{"name = \"a\"\nscopes = [\"read\"]\n", "sha256"},
        Case{"name = \"a\"\n" + sha, "scopes"}}) {
    SCOPED_TRACE(c.missing);
    std::string e = ParseError("[auth]\n\n[[auth.tokens]]\n" + c.body);
    EXPECT_EQ(e.rfind(AtLine(3), 0), 0u) << e;
    EXPECT_NE(e.find(c.missing), std::string::npos) << e;
  }
  std::string e = ParseError("[auth]\ntokens = [{name = \"a\", scopes = [\"read\"]}]\n");
  EXPECT_EQ(e.rfind(AtLine(2), 0), 0u) << e;
  EXPECT_NE(e.find("sha256"), std::string::npos) << e;
}

TEST(AuthConfigErrorTest, TokensMustBeAnArrayOfTables) {
  EXPECT_EQ(ParseError("[auth]\n\ntokens = \"ofl_x\"\n").rfind(AtLine(3), 0), 0u);
  EXPECT_EQ(ParseError("[auth]\n\ntokens = [\"ofl_x\"]\n").rfind(AtLine(3), 0), 0u);
  EXPECT_EQ(ParseError("auth = true\n").rfind(AtLine(1), 0), 0u);
}

TEST(AuthConfigErrorTest, UnknownKeyInAuth) {
  std::string e = ParseError("[auth]\ntokens = [" + TokenTable("a", "x", "[\"read\"]") + "]\n\nrealm = \"offload\"\n");
  EXPECT_EQ(e.rfind(AtLine(4), 0), 0u) << e;
  EXPECT_NE(e.find("realm"), std::string::npos) << e;
  EXPECT_NE(e.find("[auth]"), std::string::npos) << e;
}

TEST(AuthConfigErrorTest, MetricsScopeIsAdminOrRead) {
  const std::string tokens = "tokens = [" + TokenTable("a", "x", "[\"read\"]") + "]\n";
  for (const char* bad : {"\"submit\"", "\"cancel\"", "\"none\"", "\"\"", "true"}) {
    SCOPED_TRACE(bad);
    std::string e = ParseError("[auth]\n" + tokens + "metrics_scope = " + bad + "\n");
    EXPECT_EQ(e.rfind(AtLine(3), 0), 0u) << e;
    EXPECT_NE(e.find("metrics_scope"), std::string::npos) << e;
  }
  EXPECT_EQ(ParseOk("[auth]\n" + tokens + "metrics_scope = \"admin\"\n").auth.metrics_scope, "admin");
}

// The tokens file is named by the config file's line that names it: that is the
// line to fix.
TEST(AuthConfigErrorTest, MissingTokensFile) {
  testing::DataDir dir;
  WriteFile(dir.path() + "/offload.toml", "[auth]\n\ntokens_file = \"nope.toml\"\n");
  auto c = LoadConfigFile(dir.path() + "/offload.toml");
  ASSERT_FALSE(c.has_value());
  const std::string& e = c.error().detail;
  EXPECT_EQ(e.rfind(dir.path() + "/offload.toml:3:", 0), 0u) << e;
  EXPECT_NE(e.find(dir.path() + "/nope.toml"), std::string::npos) << e;
  EXPECT_EQ(ParseError("[auth]\ntokens_file = \"\"\n").rfind(AtLine(2), 0), 0u);
}

// An error inside the tokens file names the tokens file and its line.
TEST(AuthConfigErrorTest, ErrorsInTheTokensFileNameIt) {
  testing::DataDir dir;
  const std::string tokens = dir.path() + "/tokens.toml";
  WriteFile(dir.path() + "/offload.toml", "[auth]\ntokens_file = \"tokens.toml\"\n");
  struct Case {
    std::string text;
    int line;
  };
  const std::string sha = "sha256 = \"" + HexDigestOfToken("x") + "\"\n";
  for (const Case& c : {Case{"[[tokens]]\nname = \"a\"\n" + sha + "scopes = [\"everything\"]\n", 4},
                        Case{"[[tokens]]\nname = \"a\"\n" + sha + "scopes = [\"read\"]\nuser = \"x\"\n", 5},
                        Case{"\n[[tokens]]\nname = \"a\"\n" + sha, 2},
                        Case{"[[tokens]]\nname = \"a\"\n" + sha + "scopes = [\"read\"]\n\n[auth]\nx = 1\n", 6},
                        Case{"[[tokens]]\nname = = \"a\"\n", 2}}) {
    SCOPED_TRACE(c.text);
    WriteFile(tokens, c.text);
    auto loaded = LoadConfigFile(dir.path() + "/offload.toml");
    ASSERT_FALSE(loaded.has_value());
    const std::string& e = loaded.error().detail;
    EXPECT_EQ(e.rfind(tokens + ":" + std::to_string(c.line) + ":", 0), 0u) << e;
  }
}

TEST(AuthConfigErrorTest, TwoTokensWithTheSameSha256) {
  const std::string hex = HexDigestOfToken("ofl_same");
  std::string upper = hex;
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  std::string e = ParseError("[auth]\n[[auth.tokens]]\nname = \"a\"\nsha256 = \"" + hex +
                             "\"\nscopes = [\"read\"]\n\n[[auth.tokens]]\nname = \"b\"\nsha256 = \"" + upper +
                             "\"\nscopes = [\"admin\"]\n");
  EXPECT_EQ(e.rfind(AtLine(7), 0), 0u) << e;
  EXPECT_NE(e.find("\"b\""), std::string::npos) << e;
  EXPECT_NE(e.find("same sha256"), std::string::npos) << e;
}

TEST(AuthConfigErrorTest, SameSha256InlineAndInTheTokensFile) {
  testing::DataDir dir;
  WriteFile(dir.path() + "/tokens.toml",
            "\n[[tokens]]\nname = \"b\"\nsha256 = \"" + HexDigestOfToken("ofl_same") + "\"\nscopes = [\"read\"]\n");
  WriteFile(dir.path() + "/offload.toml",
            "[auth]\ntokens_file = \"tokens.toml\"\ntokens = [" + TokenTable("a", "ofl_same", "[\"read\"]") + "]\n");
  auto c = LoadConfigFile(dir.path() + "/offload.toml");
  ASSERT_FALSE(c.has_value());
  const std::string& e = c.error().detail;
  EXPECT_EQ(e.rfind(dir.path() + "/tokens.toml:2:", 0), 0u) << e;
}

TEST(AuthConfigErrorTest, AuthWithoutTokens) {
  for (const char* text : {"[auth]\n", "\n[auth]\nmetrics_scope = \"read\"\n", "[auth]\ntokens = []\n"}) {
    SCOPED_TRACE(text);
    std::string e = ParseError(text);
    EXPECT_EQ(e.rfind(kFile + std::string(":"), 0), 0u) << e;
    EXPECT_NE(e.find("no tokens"), std::string::npos) << e;
  }
  EXPECT_EQ(ParseError("\n[auth]\nmetrics_scope = \"read\"\n").rfind(AtLine(2), 0), 0u);
  // A tokens file with no [[tokens]] leaves [auth] with none.
  testing::DataDir dir;
  WriteFile(dir.path() + "/tokens.toml", "# nobody yet\n");
  WriteFile(dir.path() + "/offload.toml", "[auth]\ntokens_file = \"tokens.toml\"\n");
  auto c = LoadConfigFile(dir.path() + "/offload.toml");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().detail.find("no tokens"), std::string::npos) << c.error().detail;
}

TEST(ParseConfigTest, InsecureNoAuthIsABoolean) {
  EXPECT_FALSE(ParseOk("").insecure_no_auth);
  EXPECT_TRUE(ParseOk("insecure_no_auth = true\n").insecure_no_auth);
  EXPECT_FALSE(ParseOk("insecure_no_auth = false\n").insecure_no_auth);
  for (const char* bad : {"insecure_no_auth = \"true\"\n", "insecure_no_auth = 1\n"}) {
    SCOPED_TRACE(bad);
    std::string e = ParseError(std::string("listen = \"0.0.0.0:8080\"\n") + bad);
    EXPECT_EQ(e.rfind(AtLine(2), 0), 0u) << e;
    EXPECT_NE(e.find("insecure_no_auth"), std::string::npos) << e;
  }
}

std::string ReadDoc(const std::string& relative) {
  std::ifstream in(std::string(OFFLOAD_SOURCE_DIR) + "/" + relative);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool MentionsWord(const std::string& text, const std::string& word) {
  return std::regex_search(text, std::regex("(^|[^A-Za-z0-9_])" + word + "($|[^A-Za-z0-9_])"));
}

TEST(ConfigTest, FileKeys) {
  ServerConfig c = ParseOk(R"(
files_dir = "/srv/files"
max_memory_result = "4MiB"
[tasks.thumb]
command = ["convert", "-", "-resize", "128x128", "png:-"]
accept = ["image/png", "image/*", "*/*"]
max_input = "5GiB"
input_as = "path"
)");
  EXPECT_EQ(c.files_dir, "/srv/files");
  EXPECT_EQ(c.max_memory_result, 4 << 20);
  const TaskConfig& t = c.tasks.at("thumb");
  EXPECT_EQ(t.accept, (std::vector<std::string>{"image/png", "image/*", "*/*"}));
  EXPECT_EQ(t.max_input, std::int64_t{5} << 30);
  EXPECT_EQ(t.input_as, "path");
  EXPECT_TRUE(ParseOk("").tasks.at("noop").accept.empty());
  for (const char* bad :
       {"accept = \"image/png\"", "accept = [\"png\"]", "accept = [\"*/png\"]", "accept = [\"image/png; q=1\"]",
        "accept = [\"application/json\"]", "accept = [\"multipart/form-data\"]"}) {
    SCOPED_TRACE(bad);
    EXPECT_NE(ParseError(std::string("[tasks.t]\ncommand = [\"cat\"]\n") + bad).find("accept"), std::string::npos);
  }
  EXPECT_NE(ParseError("[tasks.t]\ncommand = [\"cat\"]\ninput_as = \"file\"").find("input_as"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.t]\npython = \"m:f\"\npython_input = \"str\"").find("python_input"), std::string::npos);
}

TEST(ConfigTest, AllowedOriginsAndMaxListBytes) {
  ServerConfig d = ParseOk("");
  EXPECT_TRUE(d.allowed_origins.empty());
  EXPECT_EQ(d.max_list_bytes, 16 << 20);
  ServerConfig c = ParseOk(R"(
allowed_origins = ["http://localhost:3000", "https://app.example"]
max_list_bytes = "64MiB"
)");
  EXPECT_EQ(c.allowed_origins, (std::vector<std::string>{"http://localhost:3000", "https://app.example"}));
  EXPECT_EQ(c.max_list_bytes, std::int64_t{64} << 20);
  EXPECT_EQ(ParseOk(R"(allowed_origins = ["*"])").allowed_origins, std::vector<std::string>{"*"});
  for (const char* bad :
       {R"(allowed_origins = "http://app.example")", R"(allowed_origins = ["app.example"])",
        R"(allowed_origins = ["http://app.example/"])", R"(allowed_origins = ["null"])", R"(allowed_origins = [3])"}) {
    SCOPED_TRACE(bad);
    EXPECT_NE(ParseError(bad).find("allowed_origins"), std::string::npos);
  }
  EXPECT_NE(ParseError("max_list_bytes = 10").find("max_list_bytes"), std::string::npos);
  EXPECT_NE(ParseError(R"(max_list_bytes = "lots")").find("max_list_bytes"), std::string::npos);
}

// The cells of the row of `key` in a table of docs/config.md ("| `key` | a | b |"
// gives {"`key`", "a", "b"}); empty when no row names it.
std::vector<std::string> DocRow(const std::string& doc, const std::string& key) {
  const std::string start = "| `" + key + "` |";
  std::size_t at = doc.find("\n" + start);
  if (at == std::string::npos) return {};
  std::string line = doc.substr(at + 1, doc.find('\n', at + 1) - at - 1);
  std::vector<std::string> cells;
  std::size_t pos = 1;  // Past the leading '|'.
  while (pos < line.size()) {
    std::size_t bar = line.find(" |", pos);
    if (bar == std::string::npos) break;
    std::string cell = line.substr(pos, bar - pos);
    while (!cell.empty() && cell.front() == ' ') cell.erase(0, 1);
    cells.push_back(cell);
    pos = bar + 2;
  }
  return cells;
}

// The default column as docs/config.md writes it: the value as code, or the note.
std::string DocDefault(const SettingDoc& s) {
  return s.default_note.empty() ? "`" + s.default_value + "`" : s.default_note;
}

std::vector<SettingDoc> AllSettingDocs() {
  std::vector<SettingDoc> all = ServerSettingDocs();
  all.insert(all.end(), TaskSettingDocs().begin(), TaskSettingDocs().end());
  all.insert(all.end(), AuthSettingDocs().begin(), AuthSettingDocs().end());
  return all;
}

TEST(SettingsTableTest, DeclaresTheKeysTheParserTakes) {
  std::vector<std::string> top, task, auth;
  for (const SettingDoc& s : ServerSettingDocs()) top.push_back(s.key);
  for (const SettingDoc& s : TaskSettingDocs()) task.push_back(s.key);
  for (const SettingDoc& s : AuthSettingDocs()) auth.push_back(s.key);
  EXPECT_EQ(top, (std::vector<std::string>{"listen",
                                           "threads",
                                           "max_body",
                                           "max_wait",
                                           "run_timeout",
                                           "retention",
                                           "shutdown_grace",
                                           "store",
                                           "sqlite_synchronous",
                                           "sqlite_max_bytes",
                                           "postgres_connections",
                                           "role",
                                           "lease_ttl",
                                           "lease_grace",
                                           "claim_ahead",
                                           "idempotency_ttl",
                                           "max_connections",
                                           "idle_timeout",
                                           "header_timeout",
                                           "write_timeout",
                                           "allowed_origins",
                                           "max_list_bytes",
                                           "files_dir",
                                           "max_memory_result",
                                           "access_log",
                                           "access_log_format",
                                           "log_jobs",
                                           "insecure_no_auth",
                                           "tls_cert",
                                           "tls_key",
                                           "connection_rate"}));
  EXPECT_EQ(task, (std::vector<std::string>{"run",
                                            "uses",
                                            "max_queued",
                                            "timeout",
                                            "content_type",
                                            "retries",
                                            "retry_backoff",
                                            "retry_backoff_max",
                                            "command",
                                            "worker",
                                            "python",
                                            "python_path",
                                            "interpreter",
                                            "call",
                                            "workers",
                                            "cwd",
                                            "env",
                                            "kill_grace",
                                            "max_jobs_per_worker",
                                            "max_rss",
                                            "max_result",
                                            "accept",
                                            "max_input",
                                            "input_as",
                                            "python_input"}));
  EXPECT_EQ(auth, (std::vector<std::string>{"tokens_file", "tokens", "max_streams", "max_waits", "request_rate",
                                            "metrics_scope"}));
  for (const SettingDoc& s : AllSettingDocs()) {
    SCOPED_TRACE(s.key);
    EXPECT_FALSE(s.type.empty());
    EXPECT_FALSE(s.default_value.empty());
    EXPECT_FALSE(s.help.empty());
  }
}

TEST(SettingsTableTest, DefaultsAreReadFromTheStructs) {
  auto find = [](const std::vector<SettingDoc>& docs, const std::string& key) {
    for (const SettingDoc& s : docs) {
      if (s.key == key) return s;
    }
    ADD_FAILURE() << "no setting " << key;
    return SettingDoc{};
  };
  EXPECT_EQ(find(ServerSettingDocs(), "listen").default_value, "\"127.0.0.1:8080\"");
  EXPECT_EQ(find(ServerSettingDocs(), "max_body").default_value, std::to_string(kDefaultMaxBody));
  EXPECT_EQ(find(ServerSettingDocs(), "retention").default_value, "\"24h\"");
  EXPECT_EQ(find(ServerSettingDocs(), "header_timeout").default_value, "\"10s\"");
  EXPECT_EQ(find(ServerSettingDocs(), "max_list_bytes").default_value, "\"16MiB\"");
  EXPECT_EQ(find(ServerSettingDocs(), "sqlite_synchronous").default_value, "\"full\"");
  EXPECT_EQ(find(ServerSettingDocs(), "allowed_origins").default_value, "[]");
  EXPECT_EQ(find(TaskSettingDocs(), "uses").default_value, "{cpu = 1}");
  EXPECT_EQ(find(TaskSettingDocs(), "max_queued").default_value, "100000");
  EXPECT_EQ(find(TaskSettingDocs(), "retry_backoff_max").default_value, "\"5m\"");
  EXPECT_EQ(find(TaskSettingDocs(), "kill_grace").default_value, "\"5s\"");
  EXPECT_EQ(find(TaskSettingDocs(), "max_result").default_value, "\"64MiB\"");
  EXPECT_EQ(find(TaskSettingDocs(), "timeout").default_value, "\"0s\"");
  EXPECT_EQ(find(TaskSettingDocs(), "timeout").DefaultText(), "none");
  EXPECT_EQ(find(TaskSettingDocs(), "workers").only_for, "worker and python tasks");
  EXPECT_EQ(find(TaskSettingDocs(), "kill_grace").only_for, "command, worker and python tasks");
  EXPECT_EQ(find(TaskSettingDocs(), "call").only_for, "python tasks");
  EXPECT_EQ(find(TaskSettingDocs(), "call").default_value, "\"arg\"");
  EXPECT_EQ(find(TaskSettingDocs(), "uses").only_for, "");
  EXPECT_EQ(find(ServerSettingDocs(), "insecure_no_auth").default_value, "false");
  EXPECT_EQ(find(AuthSettingDocs(), "metrics_scope").default_value, "\"admin\"");
  EXPECT_EQ(find(AuthSettingDocs(), "tokens_file").DefaultText(), "none");
  EXPECT_EQ(find(AuthSettingDocs(), "tokens").DefaultText(), "none");
}

// A note stands for a default that is the type's empty value ("none" for an empty
// command); on any other default it would hide the value from the reader.
TEST(SettingsTableTest, NotesOnlyStandForEmptyDefaults) {
  for (const SettingDoc& s : AllSettingDocs()) {
    if (s.default_note.empty()) continue;
    SCOPED_TRACE(s.key);
    EXPECT_TRUE(s.default_value == "0" || s.default_value == "\"\"" || s.default_value == "[]" ||
                s.default_value == "{}" || s.default_value == "\"0s\"")
        << s.default_value;
  }
}

// The default each entry renders, written in a file, is accepted and gives that
// default back: the rendering and the parser agree.
TEST(SettingsTableTest, RenderedDefaultsParseBackToThemselves) {
  // Defaults that mean "unset" and cannot be written (threads = 0 is refused).
  const std::set<std::string> unwritable = {"threads", "run",         "command",  "worker", "python",
                                            "workers", "interpreter", "tls_cert", "tls_key"};
  const ServerConfig defaults = DefaultConfig();
  for (const auto& s : ServerSettings()) {
    if (unwritable.count(s.key)) continue;
    SCOPED_TRACE(s.key);
    const std::string value = s.render(defaults);
    ServerConfig c = ParseOk(std::string(s.key) + " = " + value + "\n");
    EXPECT_EQ(s.render(c), value);
  }
  for (const auto& s : TaskSettings()) {
    if (unwritable.count(s.key)) continue;
    SCOPED_TRACE(s.key);
    const std::string kind = s.scope == TaskScope::kWorker    ? "worker = [\"w\"]"
                             : s.scope == TaskScope::kPython  ? "python = \"m:f\""
                             : s.scope == TaskScope::kProcess ? "command = [\"true\"]"
                                                              : "run = \"builtin:noop\"";
    const std::string value = s.render(TaskConfig{});
    ServerConfig c = ParseOk("[tasks.x]\n" + kind + "\n" + s.key + " = " + value + "\n");
    ASSERT_EQ(c.tasks.count("x"), 1u);
    EXPECT_EQ(s.render(c.tasks.at("x")), value);
  }
  // [auth] needs a token; an empty tokens_file is refused, and tokens is that token.
  const std::string token = "tokens = [" + TokenTable("a", "ofl_a", "[\"read\"]") + "]\n";
  for (const auto& s : AuthSettings()) {
    if (std::string(s.key) == "tokens_file" || std::string(s.key) == "tokens") continue;
    SCOPED_TRACE(s.key);
    const std::string value = s.render(AuthConfig{});
    ServerConfig c = ParseOk("[auth]\n" + token + s.key + " = " + value + "\n");
    EXPECT_EQ(s.render(c.auth), value);
  }
}

// A key that only some kinds of task take is refused on the others, from the table.
TEST(SettingsTableTest, ScopedTaskKeysAreRefusedOnOtherKinds) {
  int checked = 0;
  for (const auto& s : TaskSettings()) {
    if (s.scope == TaskScope::kAll) continue;
    SCOPED_TRACE(s.key);
    const std::string value = std::string(s.key) == "workers"       ? "2"
                              : std::string(s.key) == "interpreter" ? "\"python3\""
                                                                    : s.render(TaskConfig{});
    const std::string line = std::string(s.key) + " = " + value + "\n";
    std::string e = ParseError("[tasks.x]\nrun = \"builtin:noop\"\n" + line);
    EXPECT_EQ(e.rfind(AtLine(3), 0), 0u) << e;
    EXPECT_NE(e.find(std::string(s.key) + " applies to " + TaskScopeName(s.scope) + " only"), std::string::npos) << e;
    const std::string only = std::string(TaskScopeName(s.scope)) + " only";
    if (s.scope == TaskScope::kProcess) {
      ParseOk("[tasks.x]\ncommand = [\"true\"]\n" + line);
    } else {
      EXPECT_NE(ParseError("[tasks.x]\ncommand = [\"true\"]\n" + line).find(only), std::string::npos);
    }
    if (s.scope == TaskScope::kPython) {
      EXPECT_NE(ParseError("[tasks.x]\nworker = [\"w\"]\n" + line).find(only), std::string::npos);
    } else {
      ParseOk("[tasks.x]\nworker = [\"w\"]\n" + line);
    }
    ParseOk("[tasks.x]\npython = \"m:f\"\n" + line);
    ++checked;
  }
  EXPECT_EQ(checked, 12);
}

TEST(ParseConfigErrorTest, UnknownTaskKeyListsTheKeysOfTheTable) {
  std::string e = ParseError("[tasks.render]\nrun = \"builtin:sleep\"\ngpus = 1\n");
  for (const SettingDoc& s : TaskSettingDocs()) EXPECT_TRUE(MentionsWord(e, s.key)) << s.key << ": " << e;
}

// `offload serve --help` prints SettingsHelp() after its flags (main.cc).
TEST(SettingsHelpTest, NamesEverySettingWithItsTypeAndDefault) {
  const std::string help = SettingsHelp();
  for (const SettingDoc& s : AllSettingDocs()) {
    std::string line = "\n  " + s.key + " (" + s.type + "), default " + s.DefaultText();
    if (!s.only_for.empty()) line += "; " + s.only_for + " only";
    EXPECT_NE(help.find(line + "\n"), std::string::npos) << "--help lacks: " << line;
    // The first words of its help follow on the next line.
    const std::string first_words = s.help.substr(0, s.help.find(' ', 12));
    EXPECT_NE(help.find(line + "\n      " + first_words), std::string::npos) << first_words;
  }
  EXPECT_NE(help.find("Top-level keys:"), std::string::npos);
  EXPECT_NE(help.find("[resources]"), std::string::npos);
  EXPECT_NE(help.find("[tasks.NAME] keys:"), std::string::npos);
  EXPECT_NE(help.find("[auth] keys"), std::string::npos);
}

TEST(SettingsHelpTest, LinesFitATerminal) {
  std::istringstream help(SettingsHelp());
  std::string line;
  while (std::getline(help, line)) EXPECT_LE(line.size(), 100u) << line;
}

// The settings table feeds --help; docs/config.md must not fall behind it: every key
// has a row with the table's type and default.
TEST(ConfigDocsTest, DocsListEverySettingWithItsTypeAndDefault) {
  const std::string doc = ReadDoc("docs/config.md");
  ASSERT_FALSE(doc.empty()) << OFFLOAD_SOURCE_DIR "/docs/config.md is missing or empty";
  for (const SettingDoc& s : AllSettingDocs()) {
    SCOPED_TRACE(s.key);
    const std::vector<std::string> row = DocRow(doc, s.key);
    ASSERT_EQ(row.size(), 4u) << "docs/config.md has no row | `" << s.key << "` | type | default | meaning |";
    EXPECT_EQ(row[1], s.type);
    EXPECT_EQ(row[2], DocDefault(s));
    EXPECT_FALSE(row[3].empty());
  }
}

TEST(ConfigDocsTest, DocsNameTheTables) {
  const std::string doc = ReadDoc("docs/config.md");
  ASSERT_FALSE(doc.empty()) << OFFLOAD_SOURCE_DIR "/docs/config.md is missing or empty";
  for (const char* section : {"## Top-level keys", "## `[resources]`", "## `[tasks.NAME]`", "## `[auth]`"}) {
    EXPECT_NE(doc.find(section), std::string::npos) << section;
  }
}

TEST(ValidateConfigTest, RefusesCrossReferencesTheStructsCannotHold) {
  ServerConfig c = DefaultConfig();
  ASSERT_TRUE(ValidateConfig(c).has_value());
  c.tasks.at("noop").uses = {{"gpu", 1}};
  Status s = ValidateConfig(c);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().detail.find("noop"), std::string::npos) << s.error().detail;
  c.resources["gpu"] = 1;
  EXPECT_TRUE(ValidateConfig(c).has_value());
  for (int i = 0; i < 62; ++i) c.resources[std::to_string(i) + "r"] = 1;
  ASSERT_EQ(c.resources.size(), 64u);
  EXPECT_TRUE(ValidateConfig(c).has_value());
  c.resources["one_more"] = 1;
  s = ValidateConfig(c);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().detail.find("64"), std::string::npos) << s.error().detail;
}

TEST(ConfigTest, RatesAreANumberPerSecondMinuteOrHour) {
  double r = 0;
  ASSERT_TRUE(ParseRate("100/s", &r));
  EXPECT_DOUBLE_EQ(r, 100);
  ASSERT_TRUE(ParseRate("600/m", &r));
  EXPECT_DOUBLE_EQ(r, 10);
  ASSERT_TRUE(ParseRate("0.5/s", &r));
  EXPECT_DOUBLE_EQ(r, 0.5);
  ASSERT_TRUE(ParseRate("36/h", &r));
  EXPECT_DOUBLE_EQ(r, 0.01);
  for (const char* bad : {"", "100", "/s", "0/s", "-1/s", "10/d", "10/ s", "ten/s", "1e999/s"}) {
    EXPECT_FALSE(ParseRate(bad, &r)) << bad;
  }
  EXPECT_EQ(FormatRate(100), "100/s");
  EXPECT_EQ(FormatRate(0), "0");
  const ServerConfig c = ParseOk(
      "connection_rate = \"120/m\"\n[auth]\nrequest_rate = \"5/s\"\nmax_streams = 0\n"
      "tokens = [{name = \"a\", sha256 = \"" +
      std::string(64, 'a') + "\", scopes = [\"read\"]}]\n");
  EXPECT_DOUBLE_EQ(c.connection_rate, 2);
  EXPECT_DOUBLE_EQ(c.auth.request_rate, 5);
  EXPECT_EQ(c.auth.max_streams, 0);
  EXPECT_EQ(c.auth.max_waits, 1024);
  EXPECT_NE(ParseError("connection_rate = \"fast\"\n").find("connection_rate must be a rate"), std::string::npos);
}

}  // namespace
}  // namespace offload
