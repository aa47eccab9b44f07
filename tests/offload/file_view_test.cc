#include "offload/file_view.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace offload {
namespace {

std::string TempFile(const std::string& bytes) {
  char path[] = "/tmp/offload-file-view-XXXXXX";
  const int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
  return path;
}

TEST(FileViewTest, ShowsTheFilesBytes) {
  const std::string bytes("a\0b\r\nc", 6);
  const std::string path = TempFile(bytes);
  auto view = FileView::Open(path);
  ASSERT_TRUE(view.has_value()) << view.error().detail;
  EXPECT_EQ(view->bytes(), bytes);
  FileView moved = std::move(*view);
  EXPECT_EQ(moved.bytes(), bytes);
  EXPECT_EQ(view->size(), 0u);
  std::remove(path.c_str());
  EXPECT_EQ(moved.bytes(), bytes) << "the mapping outlives the file's name";
}

TEST(FileViewTest, AnEmptyFileIsAnEmptyViewAndAMissingOneNotFound) {
  const std::string path = TempFile("");
  auto empty = FileView::Open(path);
  ASSERT_TRUE(empty.has_value()) << empty.error().detail;
  EXPECT_TRUE(empty->bytes().empty());
  std::remove(path.c_str());
  auto missing = FileView::Open(path);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace offload
