// TLS against the real binary (tls_cert, tls_key; docs/security.md#tls): curl
// --cacert on a certificate the test makes with openssl, TLS 1.2 and later only,
// plain HTTP refused, and SIGHUP: new connections get the new certificate while one
// already open (an event stream) goes on with its own; a certificate that does not
// load leaves the old one in place.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "support/command.h"
#include "support/server_fixture.h"

extern char** environ;

namespace offload::testing {
namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits up to 10 s for `ready`; a TLS reload or an event takes milliseconds.
template <typename Ready>
bool WaitFor(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ready()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

class TlsTest : public ServerTest {
 protected:
  void SetUp() override {
    dir_ = MakeTestDir("offload-tls-");
    ASSERT_NO_FATAL_FAILURE(MakeCertificate("a"));
    ASSERT_NO_FATAL_FAILURE(MakeCertificate("b"));
    fs::copy_file(dir_ / "a.pem", dir_ / "cert.pem");
    fs::copy_file(dir_ / "a.key", dir_ / "key.pem");
  }
  void TearDown() override {
    if (stream_pid_ > 0) {
      ::kill(stream_pid_, SIGTERM);
      ::waitpid(stream_pid_, nullptr, 0);
    }
    ServerTest::TearDown();
    fs::remove_all(dir_);
  }

  // A self-signed certificate for 127.0.0.1, NAME.pem and NAME.key.
  void MakeCertificate(const std::string& name) {
    CommandOutput made = RunCommand(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
        (dir_ / (name + ".key")).string() + " -out " + (dir_ / (name + ".pem")).string() + " 2>&1");
    ASSERT_TRUE(made.ExitedWith(0)) << made.out;
  }

  void StartTls() {
    ASSERT_NO_FATAL_FAILURE(StartServer("store = \"memory\"\nshutdown_grace = \"200ms\"\ntls_cert = \"" +
                                        (dir_ / "cert.pem").string() + "\"\ntls_key = \"" +
                                        (dir_ / "key.pem").string() + "\"\n"));
  }

  std::string Url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(server_.port()) + path;
  }

  // curl trusting the certificate NAME.pem; its exit code says whether TLS worked.
  CommandOutput Curl(const std::string& ca, const std::string& args) {
    return RunCommand("curl -sS --max-time 10 --cacert " + (dir_ / (ca + ".pem")).string() + " " + args + " 2>&1");
  }

  // Starts `curl -N` on /v1/events in the background, its output into events.txt.
  void OpenEventStream(const std::string& ca) {
    const std::string out = (dir_ / "events.txt").string();
    const std::string cacert = (dir_ / (ca + ".pem")).string();
    const std::string url = Url("/v1/events");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    std::vector<std::string> args = {"curl", "-sSN", "--cacert", cacert, url};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawnp(&stream_pid_, "curl", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(rc, 0);
  }

  fs::path dir_;
  pid_t stream_pid_ = -1;
};

TEST_F(TlsTest, ServesHttpsOnlyAndFromTlsOneTwoOn) {
  ASSERT_NO_FATAL_FAILURE(StartTls());
  EXPECT_NE(server_.log().find("listening on https://"), std::string::npos) << server_.log();
  CommandOutput health = Curl("a", Url("/healthz"));
  ASSERT_TRUE(health.ExitedWith(0)) << health.out;
  EXPECT_NE(health.out.find("\"ok\""), std::string::npos) << health.out;

  CommandOutput submitted = Curl("a", "-H 'Prefer: wait=10' --json '{\"task\": \"noop\"}' " + Url("/v1/jobs"));
  ASSERT_TRUE(submitted.ExitedWith(0)) << submitted.out;
  auto job = ParseJson(submitted.out);
  ASSERT_TRUE(job && job->is_object()) << submitted.out;
  EXPECT_EQ(Field(job->as_object(), "status"), "succeeded");

  // TLS 1.2 is taken; 1.1 is not (the client is allowed it, the server refuses).
  EXPECT_TRUE(Curl("a", "--tls-max 1.2 " + Url("/healthz")).ExitedWith(0));
  CommandOutput old = RunCommand("openssl s_client -connect 127.0.0.1:" + std::to_string(server_.port()) +
                                 " -tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null 2>&1");
  EXPECT_FALSE(old.ExitedWith(0)) << old.out;
  // A certificate the client does not trust, and plain HTTP, get nothing.
  EXPECT_FALSE(Curl("b", Url("/healthz")).ExitedWith(0));
  CommandOutput plain =
      RunCommand("curl -sS --max-time 10 http://127.0.0.1:" + std::to_string(server_.port()) + "/healthz 2>&1");
  EXPECT_FALSE(plain.ExitedWith(0)) << plain.out;
  EXPECT_EQ(plain.out.find("\"ok\""), std::string::npos) << plain.out;
  // The server goes on after all of that.
  EXPECT_TRUE(Curl("a", Url("/healthz")).ExitedWith(0));
}

TEST_F(TlsTest, SighupGivesNewConnectionsTheNewCertificateAndKeepsOpenOnes) {
  ASSERT_NO_FATAL_FAILURE(StartTls());
  ASSERT_NO_FATAL_FAILURE(OpenEventStream("a"));
  const fs::path events = dir_ / "events.txt";
  ASSERT_TRUE(WaitFor([&] { return ReadFile(events).find("retry:") != std::string::npos; })) << ReadFile(events);

  fs::copy_file(dir_ / "b.pem", dir_ / "cert.pem", fs::copy_options::overwrite_existing);
  fs::copy_file(dir_ / "b.key", dir_ / "key.pem", fs::copy_options::overwrite_existing);
  server_.Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return server_.log().find("SIGHUP: TLS certificate from") != std::string::npos; }))
      << server_.log();
  CommandOutput fresh = Curl("b", Url("/healthz"));
  EXPECT_TRUE(fresh.ExitedWith(0)) << fresh.out;
  CommandOutput stale = Curl("a", Url("/healthz"));
  EXPECT_FALSE(stale.ExitedWith(0)) << stale.out;

  // The stream opened under the old certificate still carries what happens now.
  CommandOutput submitted = Curl("b", "--json '{\"task\": \"noop\"}' " + Url("/v1/jobs"));
  ASSERT_TRUE(submitted.ExitedWith(0)) << submitted.out;
  auto job = ParseJson(submitted.out);
  ASSERT_TRUE(job && job->is_object()) << submitted.out;
  const std::string id = Field(job->as_object(), "id");
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(WaitFor([&] { return ReadFile(events).find(id) != std::string::npos; })) << ReadFile(events);
  int status = 0;
  EXPECT_EQ(::waitpid(stream_pid_, &status, WNOHANG), 0) << "the stream's curl ended: " << ReadFile(events);
}

TEST_F(TlsTest, ACertificateThatDoesNotLoadOnSighupLeavesTheOldOne) {
  ASSERT_NO_FATAL_FAILURE(StartTls());
  {
    std::ofstream half(dir_ / "cert.pem", std::ios::trunc);
    half << "-----BEGIN CERTIFICATE-----\nMIIB\n";
  }
  server_.Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return server_.log().find("the TLS certificate is unchanged") != std::string::npos; }))
      << server_.log();
  CommandOutput still = Curl("a", Url("/healthz"));
  EXPECT_TRUE(still.ExitedWith(0)) << still.out;
  // The key of another certificate is refused as well.
  fs::copy_file(dir_ / "a.pem", dir_ / "cert.pem", fs::copy_options::overwrite_existing);
  fs::copy_file(dir_ / "b.key", dir_ / "key.pem", fs::copy_options::overwrite_existing);
  server_.Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return server_.log().find("is not the key of the certificate") != std::string::npos; }))
      << server_.log();
  EXPECT_TRUE(Curl("a", Url("/healthz")).ExitedWith(0));
}

TEST_F(TlsTest, TheCliSpeaksHttpsAndChecksTheCertificate) {
  ASSERT_NO_FATAL_FAILURE(StartTls());
  const std::string cli = "env -u OFFLOAD_CACERT " + std::string(OffloadBinary());
  const std::string cacert = (dir_ / "a.pem").string();
  // By address and by name: the certificate names both.
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    const std::string url = "https://" + host + ":" + std::to_string(server_.port());
    CommandOutput ran = RunCommand(cli + " submit noop --wait --url " + url + " --cacert " + cacert + " 2>&1");
    EXPECT_TRUE(ran.ExitedWith(0)) << host << ": " << ran.out;
    EXPECT_NE(ran.out.find("succeeded"), std::string::npos) << ran.out;
  }
  const std::string url = Url("");
  CommandOutput from_env =
      RunCommand("OFFLOAD_CACERT=" + cacert + " " + std::string(OffloadBinary()) + " ls --url " + url + " 2>&1");
  EXPECT_TRUE(from_env.ExitedWith(0)) << from_env.out;
  // A certificate no CA it trusts signed: no request is sent.
  CommandOutput untrusted = RunCommand(cli + " ls --url " + url + " --cacert " + (dir_ / "b.pem").string() + " 2>&1");
  EXPECT_TRUE(untrusted.ExitedWith(3)) << untrusted.out;
  EXPECT_NE(untrusted.out.find("certificate verify failed"), std::string::npos) << untrusted.out;
}

TEST_F(TlsTest, AClientThatLeavesARunOverTlsCancelsItsJob) {
  ASSERT_NO_FATAL_FAILURE(StartTls());
  // openssl s_client sends the request, holds the connection for a second, then
  // closes it as TLS clients do: close_notify, then FIN.
  const std::string body = R"({"ms": 60000})";
  CommandOutput sent = RunCommand(
      "(printf 'POST /v1/tasks/sleep/run HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nContent-Type: "
      "application/json\\r\\nContent-Length: " +
      std::to_string(body.size()) + "\\r\\n\\r\\n" + body +
      "'; sleep 1) | timeout 20 openssl s_client -quiet -no_ign_eof -connect 127.0.0.1:" +
      std::to_string(server_.port()) + " 2>&1");
  ASSERT_TRUE(sent.ExitedWith(0)) << sent.out;
  std::string listing;
  EXPECT_TRUE(WaitFor([&] {
    listing = Curl("a", "'" + Url("/v1/jobs?task=sleep") + "'").out;
    return listing.find("client_disconnected") != std::string::npos;
  })) << listing;
}

TEST_F(TlsTest, AKeyThatIsNotTheCertificatesOrAHalfPairIsAStartError) {
  const std::string binary = OffloadBinary();
  auto serve = [&](const std::string& config) {
    const fs::path file = dir_ / "offload.toml";
    std::ofstream(file, std::ios::trunc) << "store = \"memory\"\n" << config;
    // Bounded: a server that starts after all is stopped, and the test fails.
    return RunCommand("timeout 20 " + binary + " serve --listen 127.0.0.1:0 --config " + file.string() + " 2>&1");
  };
  CommandOutput mismatched =
      serve("tls_cert = \"" + (dir_ / "a.pem").string() + "\"\ntls_key = \"" + (dir_ / "b.key").string() + "\"\n");
  EXPECT_TRUE(mismatched.ExitedWith(2)) << mismatched.out;
  EXPECT_NE(mismatched.out.find("is not the key of the certificate"), std::string::npos) << mismatched.out;
  CommandOutput half = serve("tls_cert = \"" + (dir_ / "a.pem").string() + "\"\n");
  EXPECT_TRUE(half.ExitedWith(2)) << half.out;
  EXPECT_NE(half.out.find("tls_cert and tls_key go together"), std::string::npos) << half.out;
  CommandOutput missing = serve("tls_cert = \"nope.pem\"\ntls_key = \"nope.key\"\n");
  EXPECT_TRUE(missing.ExitedWith(2)) << missing.out;
  EXPECT_NE(missing.out.find("nope.pem"), std::string::npos) << missing.out;
}

}  // namespace
}  // namespace offload::testing
