// Files in and out (docs/api.md#files): binary bodies and multipart forms streamed to
// disk and handed to commands, results kept on disk and served by range, and what
// becomes of the files when an upload fails, the server crashes, or retention runs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "support/http_client.h"
#include "support/job_helpers.h"
#include "support/temp_dirs.h"
#include "support/test_server.h"

namespace offload::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Bytes that are not text: every value, NULs and CRLFs included.
std::string BinaryBytes(std::size_t n) {
  std::string out(n, '\0');
  std::uint32_t x = 12345;
  for (auto& c : out) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 23);
  }
  return out;
}

// sha256sum's answer for `bytes`, from the system's own tool.
std::string Sha256Of(const std::string& bytes) {
  char tmpl[] = "/tmp/offload-files-sha-XXXXXX";
  const int fd = mkstemp(tmpl);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
  FILE* p = ::popen(("sha256sum " + std::string(tmpl)).c_str(), "r");
  char hex[65] = {};
  EXPECT_EQ(std::fread(hex, 1, 64, p), 64u);
  ::pclose(p);
  ::unlink(tmpl);
  return hex;
}

std::size_t EntriesIn(const std::string& dir) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); ++it) ++n;
  return n;
}

// A server with its files in `files_dir` (under `data` when given) and these tasks:
//  sha      the sha256sum of its file, read from stdin
//  inspect  (input_as = "path") its JSON input and its file's size, as JSON
//  blob     a binary result of `n` bytes of 'x', from stdout
//  written  "hello" written to OFFLOAD_RESULT_PATH (its stdout is ignored)
//  images   takes image/png only
std::string Config(const std::string& files_dir, const std::string& extra = {}) {
  return "files_dir = \"" + files_dir +
         "\"\n"
         "max_memory_result = \"64KiB\"\n" +
         extra +
         "[tasks.sha]\n"
         "command = [\"sha256sum\"]\naccept = [\"*/*\"]\ncontent_type = \"text/plain\"\nmax_input = \"32MiB\"\n"
         "[tasks.inspect]\n"
         "command = [\"sh\", \"-c\", \"read line; printf '{\\\"input\\\": %s, \\\"size\\\": %s, \\\"dir\\\": "
         "\\\"%s\\\"}' "
         "\\\"$line\\\" $(wc -c < \\\"$OFFLOAD_INPUT_PATH\\\") \\\"$OFFLOAD_INPUT_DIR\\\"\"]\n"
         "accept = [\"application/octet-stream\"]\ninput_as = \"path\"\n"
         "[tasks.blob]\n"
         "command = [\"sh\", \"-c\", \"head -c $(cat) /dev/zero | tr '\\\\0' x\"]\n"
         "content_type = \"application/octet-stream\"\n"
         "[tasks.written]\n"
         "command = [\"sh\", \"-c\", \"printf hello > \\\"$OFFLOAD_RESULT_PATH\\\"; echo ignored\"]\n"
         "content_type = \"text/plain\"\n"
         "[tasks.images]\n"
         "command = [\"cat\"]\naccept = [\"image/png\"]\ncontent_type = \"image/png\"\n";
}

std::string Multipart(const std::string& boundary, const std::string& input, const std::string& file) {
  return "--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"input\"\r\nContent-Type: application/json\r\n\r\n" + input +
         "\r\n--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data.bin\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n" +
         file + "\r\n--" + boundary + "--\r\n";
}

// One raw connection, for requests the HttpClient cannot send: a body cut short.
class RawConnection {
 public:
  explicit RawConnection(unsigned short port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // What the server sends until it closes the connection (or 10 s pass).
  std::string ReadAll() {
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class FilesTest : public ::testing::Test {
 protected:
  void Start(const std::string& extra = {}) {
    files_dir_ = data_.path() + "/files";
    ASSERT_EQ(server_.Start(Config(files_dir_, extra)), "");
    client_ = std::make_unique<HttpClient>(server_.port());
  }

  DataDir data_;
  std::string files_dir_;
  TestServer server_;
  std::unique_ptr<HttpClient> client_;
};

// Larger than max_body (16 MiB): an upload has its task's limit, not the JSON body's.
TEST_F(FilesTest, ABinaryBodyReachesACommandOnStdinWhole) {
  Start();
  const std::string bytes = BinaryBytes(20 << 20);
  Response res =
      client_->Post("/v1/tasks/sha/run", bytes, {{"Content-Type", "application/octet-stream"}}, milliseconds(30'000));
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.body.substr(0, 64), Sha256Of(bytes));
}

TEST_F(FilesTest, AnEmptyBodyOfAFileTypeIsAnEmptyFile) {
  Start();
  Response res = client_->Post("/v1/jobs?task=sha", "", {{"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(res.status, 202) << Describe(res);
  ASSERT_TRUE(res.json().as_object().contains("files")) << Describe(res);
  EXPECT_EQ(res.json().at("files").as_array()[0].at("size"), 0);
  Response run = client_->Post("/v1/tasks/sha/run", "", {{"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(run.status, 200) << Describe(run);
  EXPECT_EQ(run.body.substr(0, 64), Sha256Of(""));
}

TEST_F(FilesTest, AnUploadedJobShowsItsFileAndKeepsItUntilRetention) {
  Start("retention = \"1s\"\n");
  const std::string bytes = BinaryBytes(100'000);
  Response res = client_->Post("/v1/jobs?task=sha&priority=3", bytes, {{"Content-Type", "image/jpeg"}});
  ASSERT_EQ(res.status, 202) << Describe(res);
  const std::string id = Field(res.json().as_object(), "id");
  EXPECT_EQ(res.json().at("priority"), 3);
  const json::array& files = res.json().at("files").as_array();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].at("field"), "body");
  EXPECT_EQ(files[0].at("content_type"), "image/jpeg");
  EXPECT_EQ(files[0].at("size"), 100'000);
  EXPECT_EQ(files[0].at("sha256"), json::value(Sha256Of(bytes)));
  EXPECT_TRUE(fs::exists(files_dir_ + "/inputs/" + id + "/0"));
  json::object job = WaitFinished(*client_, id);
  EXPECT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);

  // And a job whose result is kept in a file.
  Response blob = client_->Post("/v1/jobs", R"({"task":"blob","input":100000})");
  const std::string blob_id = Field(blob.json().as_object(), "id");
  ASSERT_EQ(Field(WaitFinished(*client_, blob_id), "status"), "succeeded");
  EXPECT_TRUE(fs::exists(files_dir_ + "/results/" + blob_id));

  // Retention removes the jobs (rows first), and their files after them.
  auto gone = [&] {
    return client_->Get("/v1/jobs/" + id).status == 404 && client_->Get("/v1/jobs/" + blob_id).status == 404 &&
           !fs::exists(files_dir_ + "/inputs/" + id) && !fs::exists(files_dir_ + "/results/" + blob_id);
  };
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (!gone() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(50));
  EXPECT_TRUE(gone()) << "the jobs or their files are still there";
  EXPECT_EQ(EntriesIn(files_dir_ + "/results"), 0u);
}

TEST_F(FilesTest, ARefusedOrRepeatedUploadKeepsNoFile) {
  Start();
  // A replay under the same Idempotency-Key: the first job, and only its files.
  const Headers idem = {{"Content-Type", "application/octet-stream"}, {"Idempotency-Key", "k1"}};
  Response first = client_->Post("/v1/jobs?task=sha", "same bytes", idem);
  ASSERT_EQ(first.status, 202) << Describe(first);
  Response again = client_->Post("/v1/jobs?task=sha", "same bytes", idem);
  EXPECT_EQ(again.status, 200) << Describe(again);
  EXPECT_EQ(Field(again.json().as_object(), "id"), Field(first.json().as_object(), "id"));
  // The same key for other bytes: another request, refused.
  EXPECT_EQ(client_->Post("/v1/jobs?task=sha", "other bytes", idem).status, 422);
  // A JSON input beside a file for a command that reads the file on stdin: refused.
  Response both = client_->Post("/v1/jobs?task=sha", Multipart("b0", R"({"x":1})", "abc"),
                                {{"Content-Type", "multipart/form-data; boundary=b0"}});
  EXPECT_EQ(both.status, 422) << Describe(both);
  EXPECT_NE(both.body.find("input_as"), std::string::npos) << both.body;
  // An unknown query parameter, a missing task.
  EXPECT_EQ(client_->Post("/v1/jobs?task=sha&prio=1", "x", {{"Content-Type", "image/png"}}).status, 422);
  EXPECT_EQ(client_->Post("/v1/jobs?task=nope", "x", {{"Content-Type", "image/png"}}).status, 422);
  EXPECT_EQ(EntriesIn(files_dir_ + "/inputs"), 1u);
  EXPECT_EQ(EntriesIn(files_dir_ + "/incoming"), 0u);
}

TEST_F(FilesTest, AMultipartFormGivesTheCommandItsInputOnStdinAndItsFileByPath) {
  Start();
  const std::string file = BinaryBytes(200'000);
  Response res = client_->Post("/v1/tasks/inspect/run", Multipart("XyZ123", R"({"scale":2})", file),
                               {{"Content-Type", "multipart/form-data; boundary=XyZ123"}});
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.json().at("input"), (json::object{{"scale", 2}}));
  EXPECT_EQ(res.json().at("size"), 200'000);
  EXPECT_NE(std::string(res.json().at("dir").as_string()).find(files_dir_ + "/inputs/"), std::string::npos);
}

TEST_F(FilesTest, ATypeTheTaskDoesNotTakeIs415BeforeTheBodyIsRead) {
  Start();
  {
    // The header alone, announcing 10 MB: the answer comes without the body, and
    // without a 100 Continue that would ask for it.
    RawConnection conn(server_.port());
    ASSERT_TRUE(conn.connected());
    ASSERT_TRUE(conn.Send("POST /v1/tasks/images/run HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server_.port()) +
                          "\r\nContent-Type: image/gif\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n"));
    const std::string answer = conn.ReadAll();
    EXPECT_EQ(answer.rfind("HTTP/1.1 415 ", 0), 0u) << answer;
    EXPECT_NE(answer.find("Accept: application/json, multipart/form-data, image/png"), std::string::npos) << answer;
  }
  Response res = client_->Post("/v1/tasks/images/run", BinaryBytes(1000), {{"Content-Type", "image/gif"}});
  EXPECT_EQ(res.status, 415) << Describe(res);
  EXPECT_NE(res.body.find("image/png"), std::string::npos) << res.body;
  // A task without accept takes JSON only.
  res = client_->Post("/v1/tasks/written/run", "abc", {{"Content-Type", "text/plain"}});
  EXPECT_EQ(res.status, 415) << Describe(res);
  // A multipart file part of the wrong type, too.
  HttpClient other(server_.port());
  res = other.Post("/v1/tasks/images/run",
                   "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.gif\"\r\nContent-Type: "
                   "image/gif\r\n\r\nGIF89a\r\n--b--\r\n",
                   {{"Content-Type", "multipart/form-data; boundary=b"}});
  EXPECT_EQ(res.status, 415) << Describe(res);
  EXPECT_EQ(EntriesIn(files_dir_ + "/incoming"), 0u);
  EXPECT_EQ(EntriesIn(files_dir_ + "/inputs"), 0u);
}

TEST_F(FilesTest, AnUploadOverMaxInputIs413AndKeepsNothing) {
  Start();
  // Said by Content-Length: refused before a byte of the body is read.
  Response res = client_->Post("/v1/tasks/sha/run", BinaryBytes((32 << 20) + 1),
                               {{"Content-Type", "application/octet-stream"}}, milliseconds(30'000));
  EXPECT_EQ(res.status, 413) << Describe(res);
  // Chunked, the size known only as it arrives: refused once it passes the limit.
  HttpClient chunked(server_.port());
  res = chunked.Post("/v1/tasks/sha/run", BinaryBytes((32 << 20) + 1000),
                     {{"Content-Type", "application/octet-stream"}, {"Transfer-Encoding", "chunked"}},
                     milliseconds(30'000));
  EXPECT_EQ(res.status, 413) << Describe(res);
  EXPECT_EQ(EntriesIn(files_dir_ + "/incoming"), 0u);
  EXPECT_EQ(EntriesIn(files_dir_ + "/inputs"), 0u);
}

TEST_F(FilesTest, ALargeResultLivesOnDiskAndIsServedByRange) {
  Start();
  constexpr int kSize = 5'000'000;
  Response run = client_->Post("/v1/tasks/blob/run", std::to_string(kSize), {}, milliseconds(30'000));
  ASSERT_EQ(run.status, 200) << Describe(run);
  EXPECT_EQ(run.body, std::string(kSize, 'x'));

  Response submitted = client_->Post("/v1/jobs", R"({"task":"blob","input":)" + std::to_string(kSize) + "}");
  ASSERT_EQ(submitted.status, 202) << Describe(submitted);
  const std::string id = Field(submitted.json().as_object(), "id");
  json::object job = WaitFinished(*client_, id);
  ASSERT_EQ(Field(job, "status"), "succeeded") << json::serialize(job);
  EXPECT_EQ(job.at("result_size"), kSize);
  EXPECT_EQ(job.at("result_sha256"), json::value(Sha256Of(std::string(kSize, 'x'))));
  EXPECT_EQ(fs::file_size(files_dir_ + "/results/" + id), static_cast<std::uintmax_t>(kSize));

  const std::string url = "/v1/jobs/" + id + "/result";
  Response whole = client_->Get(url);
  ASSERT_EQ(whole.status, 200) << Describe(whole);
  EXPECT_EQ(whole.body.size(), static_cast<std::size_t>(kSize));
  EXPECT_EQ(whole.header("accept-ranges"), "bytes");
  const std::string etag = whole.header("etag");
  EXPECT_EQ(etag, "\"" + std::string(job.at("result_sha256").as_string()) + "\"");

  Response part = client_->Request(http::verb::get, url, {}, {{"Range", "bytes=100-199"}});
  EXPECT_EQ(part.status, 206) << Describe(part);
  EXPECT_EQ(part.body, std::string(100, 'x'));
  EXPECT_EQ(part.header("content-range"), "bytes 100-199/" + std::to_string(kSize));
  Response tail = client_->Request(http::verb::get, url, {}, {{"Range", "bytes=-10"}});
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body.size(), 10u);
  Response past = client_->Request(http::verb::get, url, {}, {{"Range", "bytes=9999999-"}});
  EXPECT_EQ(past.status, 416) << Describe(past);
  EXPECT_EQ(past.header("content-range"), "bytes */" + std::to_string(kSize));
  // A stale If-Range: the whole result, not a piece of a different one.
  Response stale = client_->Request(http::verb::get, url, {}, {{"Range", "bytes=0-9"}, {"If-Range", "\"other\""}});
  EXPECT_EQ(stale.status, 200);
  EXPECT_EQ(client_->Request(http::verb::get, url, {}, {{"If-None-Match", etag}}).status, 304);
  Response head = client_->Request(http::verb::head, url);
  EXPECT_EQ(head.status, 200) << Describe(head);
  EXPECT_EQ(head.header("content-length"), std::to_string(kSize));
  EXPECT_TRUE(head.body.empty());
}

TEST_F(FilesTest, AResultWrittenToOffloadResultPathWinsOverStdout) {
  Start();
  Response res = client_->Post("/v1/tasks/written/run", "");
  ASSERT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.body, "hello");
  EXPECT_EQ(res.header("content-type"), "text/plain");
}

TEST_F(FilesTest, FilesAndFileResultsSurviveARestart) {
  const std::string store = "store = \"sqlite:" + data_.db() + "\"\n";
  Start(store);
  Response up = client_->Post("/v1/jobs?task=sha", "abc", {{"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(up.status, 202) << Describe(up);
  const std::string up_id = Field(up.json().as_object(), "id");
  Response blob = client_->Post("/v1/jobs", R"({"task":"blob","input":300000})");
  const std::string blob_id = Field(blob.json().as_object(), "id");
  ASSERT_EQ(Field(WaitFinished(*client_, up_id), "status"), "succeeded");
  ASSERT_EQ(Field(WaitFinished(*client_, blob_id), "status"), "succeeded");
  server_.Stop();

  TestServer again;
  ASSERT_EQ(again.Start(Config(files_dir_, store)), "");
  HttpClient client(again.port());
  json::object job = GetJob(client, up_id);
  ASSERT_TRUE(job.contains("files")) << json::serialize(job);
  EXPECT_EQ(job.at("files").as_array()[0].at("sha256"), json::value(Sha256Of("abc")));
  Response result = client.Get("/v1/jobs/" + blob_id + "/result");
  EXPECT_EQ(result.status, 200) << Describe(result);
  EXPECT_EQ(result.body, std::string(300000, 'x'));
  EXPECT_FALSE(result.header("etag").empty());
}

TEST_F(FilesTest, ACrashMidUploadLeavesNoFileAfterTheNextStart) {
  const std::string store = "store = \"sqlite:" + data_.db() + "\"\n";
  Start(store);
  {
    RawConnection conn(server_.port());
    ASSERT_TRUE(conn.connected());
    ASSERT_TRUE(conn.Send("POST /v1/jobs?task=sha HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server_.port()) +
                          "\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n" +
                          BinaryBytes(1 << 20)));
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (EntriesIn(files_dir_ + "/incoming") == 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    ASSERT_EQ(EntriesIn(files_dir_ + "/incoming"), 1u) << "the upload is not being received";
    server_.Signal(SIGKILL);
    ASSERT_TRUE(server_.WaitForExit(milliseconds(5000)).has_value());
  }
  TestServer again;
  ASSERT_EQ(again.Start(Config(files_dir_, store)), "");
  EXPECT_EQ(EntriesIn(files_dir_ + "/incoming"), 0u);
  EXPECT_EQ(EntriesIn(files_dir_ + "/inputs"), 0u);
}

// A second server's start-up sweep would remove the first one's files.
TEST_F(FilesTest, TwoServersCannotShareAFilesDir) {
  Start();
  TestServer second;
  TestServerOptions options;
  options.config_toml = Config(files_dir_);
  options.start_deadline = milliseconds(5000);
  const std::string error = second.Start(options);
  EXPECT_NE(error.find("another offload server is using files_dir"), std::string::npos) << error;
  EXPECT_EQ(client_->Post("/v1/tasks/sha/run", "abc", {{"Content-Type", "application/octet-stream"}}).status, 200);
}

TEST(FilesDiskTest, AFullDiskMidUploadIs507AndKeepsNothing) {
  SmallDisk disk("4m");
  if (!disk.ok()) GTEST_SKIP() << "mounting a tmpfs needs root (or CAP_SYS_ADMIN)";
  TestServer server;
  ASSERT_EQ(server.Start(Config(disk.path() + "/files")), "");
  HttpClient client(server.port());
  Response res = client.Post("/v1/tasks/sha/run", BinaryBytes(8 << 20), {{"Content-Type", "application/octet-stream"}},
                             milliseconds(30'000));
  EXPECT_EQ(res.status, 507) << Describe(res);
  EXPECT_EQ(EntriesIn(disk.path() + "/files/incoming"), 0u);
  // Once the failed upload is gone, there is room again.
  HttpClient again(server.port());
  res = again.Post("/v1/tasks/sha/run", "abc", {{"Content-Type", "application/octet-stream"}});
  EXPECT_EQ(res.status, 200) << Describe(res);
  EXPECT_EQ(res.body.substr(0, 64), Sha256Of("abc"));
}

}  // namespace
}  // namespace offload::testing
