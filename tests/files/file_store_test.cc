// FileStore and UploadFile: where a job's files go, what a crash leaves and what Sweep
// removes, and how a result file is taken in.
#include "files/file_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "files/result_placement.h"
#include "offload/error_types.h"
#include "util/sha256.h"

namespace offload {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Sha(std::string_view bytes) {
  Sha256 h;
  h.Update(bytes);
  return h.HexDigest();
}

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/offload-file-store-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    auto files = FileStore::Open(root_ + "/files", /*ephemeral=*/false);
    ASSERT_TRUE(files.has_value()) << files.error().detail;
    files_ = std::move(*files);
  }
  void TearDown() override {
    files_.reset();
    fs::remove_all(root_);
  }

  IncomingFile Received(const std::string& field, const std::string& bytes) {
    auto up = files_->NewUpload();
    EXPECT_TRUE(up.has_value());
    EXPECT_TRUE((*up)->Write(bytes.substr(0, bytes.size() / 2)).has_value());
    EXPECT_TRUE((*up)->Write(bytes.substr(bytes.size() / 2)).has_value());
    EXPECT_TRUE((*up)->Finish().has_value());
    return IncomingFile{field, field + ".bin", "application/octet-stream", std::move(*up)};
  }

  std::size_t Entries(const std::string& sub) {
    std::size_t n = 0;
    for (auto it = fs::directory_iterator(files_->root() + "/" + sub); it != fs::directory_iterator(); ++it) ++n;
    return n;
  }

  std::string root_;
  std::unique_ptr<FileStore> files_;
};

TEST(Sha256Test, MatchesTheKnownDigests) {
  EXPECT_EQ(Sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(FileStoreTest, AnUploadDroppedBeforeItsCommitLeavesNothing) {
  {
    auto up = files_->NewUpload();
    ASSERT_TRUE(up.has_value());
    ASSERT_TRUE((*up)->Write("partial").has_value());
    EXPECT_EQ(Entries("incoming"), 1u);
  }
  EXPECT_EQ(Entries("incoming"), 0u);
  { IncomingFile finished = Received("f", "done"); }
  EXPECT_EQ(Entries("incoming"), 0u);
}

TEST_F(FileStoreTest, CommittedInputsAreReadOnlyInTheJobsFolderWithTheirChecksums) {
  std::vector<IncomingFile> in;
  in.push_back(Received("body", "first file"));
  in.push_back(Received("extra", std::string(100'000, '\0')));
  auto files = files_->CommitInputs("JOB1", std::move(in));
  ASSERT_TRUE(files.has_value()) << files.error().detail;
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].path, files_->InputPath("JOB1", 0));
  EXPECT_EQ((*files)[0].field, "body");
  EXPECT_EQ((*files)[0].size, 10u);
  EXPECT_EQ((*files)[0].sha256, Sha("first file"));
  EXPECT_EQ((*files)[1].sha256, Sha(std::string(100'000, '\0')));
  EXPECT_EQ(Slurp((*files)[0].path), "first file");
  struct stat st {};
  ASSERT_EQ(::stat((*files)[0].path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_EQ(Entries("incoming"), 0u);
  files_->RemoveJob("JOB1");
  EXPECT_FALSE(fs::exists(files_->root() + "/inputs/JOB1"));
}

TEST_F(FileStoreTest, SweepRemovesWhatACrashLeftAndKeepsTheFilesOfKnownJobs) {
  std::vector<IncomingFile> kept, orphan;
  kept.push_back(Received("body", "kept"));
  orphan.push_back(Received("body", "orphan"));
  ASSERT_TRUE(files_->CommitInputs("KNOWN", std::move(kept)).has_value());
  ASSERT_TRUE(files_->CommitInputs("GONE", std::move(orphan)).has_value());
  std::ofstream(files_->ResultPath("KNOWN")) << "result";
  std::ofstream(files_->ResultPath("GONE")) << "result";
  std::ofstream(files_->AttemptResultPath("KNOWN", 2)) << "half written";
  auto crashed = files_->NewUpload();  // As a crash leaves it: not removed.
  ASSERT_TRUE(crashed.has_value());
  (*crashed)->Release((*crashed)->path());
  crashed->reset();

  const std::size_t removed = files_->Sweep([](const std::string& id) { return id == "KNOWN"; });
  EXPECT_EQ(removed, 4u);
  EXPECT_EQ(Entries("incoming"), 0u);
  EXPECT_TRUE(fs::exists(files_->InputPath("KNOWN", 0)));
  EXPECT_TRUE(fs::exists(files_->ResultPath("KNOWN")));
  EXPECT_FALSE(fs::exists(files_->AttemptResultPath("KNOWN", 2)));
  EXPECT_FALSE(fs::exists(files_->root() + "/inputs/GONE"));
  EXPECT_FALSE(fs::exists(files_->ResultPath("GONE")));
}

TEST_F(FileStoreTest, AResultFileIsMovedHashedAndBounded) {
  const std::string written = files_->AttemptResultPath("J", 1);
  std::ofstream(written) << "the result";
  auto adopted = files_->AdoptResult("J", written, 100);
  ASSERT_TRUE(adopted.has_value()) << adopted.error().detail;
  EXPECT_EQ(adopted->path, files_->ResultPath("J"));
  EXPECT_EQ(adopted->size, 10u);
  EXPECT_EQ(adopted->sha256, Sha("the result"));
  EXPECT_FALSE(fs::exists(written));

  const std::string big = files_->AttemptResultPath("K", 1);
  std::ofstream(big) << std::string(101, 'x');
  auto refused = files_->AdoptResult("K", big, 100);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kTooLarge);
  EXPECT_FALSE(fs::exists(files_->ResultPath("K")));
}

TEST_F(FileStoreTest, PlaceResultKeepsSmallBytesInMemoryAndLargeOnesOnDisk) {
  const ResultPlacementLimits limits{16, 1000};
  Result small = PlaceResult(*files_, "S", Result::Bytes("image/png", "tiny"), limits);
  ASSERT_TRUE(small.ok());
  EXPECT_FALSE(small.output()->file);
  Result large = PlaceResult(*files_, "L", Result::Bytes("image/png", std::string(17, 'p')), limits);
  ASSERT_TRUE(large.ok());
  ASSERT_TRUE(large.output()->file);
  EXPECT_EQ(large.output()->file->size, 17u);
  EXPECT_EQ(Slurp(files_->ResultPath("L")), std::string(17, 'p'));
  EXPECT_EQ(large.output()->content_type, "image/png");

  // A JSON result written to a file is parsed and kept as a value.
  const std::string json_path = files_->AttemptResultPath("J", 1);
  std::ofstream(json_path) << R"({"n": 2.5})";
  Result parsed = PlaceResult(*files_, "J", Result::File("application/json", json_path), limits);
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed.output()->file);
  EXPECT_EQ(parsed.output()->json, (boost::json::object{{"n", 2.5}}));
  EXPECT_FALSE(fs::exists(json_path));

  const std::string over = files_->AttemptResultPath("O", 1);
  std::ofstream(over) << std::string(1001, 'o');
  Result refused = PlaceResult(*files_, "O", Result::File("video/mp4", over), limits);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().type, error_type::kResultTooLarge);
}

TEST(FileStoreTemporaryTest, ATemporaryStoreRemovesItsFolder) {
  std::string root;
  {
    auto files = FileStore::OpenTemporary();
    ASSERT_TRUE(files.has_value()) << files.error().detail;
    root = (*files)->root();
    EXPECT_TRUE(fs::is_directory(root + "/incoming"));
  }
  EXPECT_FALSE(fs::exists(root));
}

}  // namespace
}  // namespace offload
