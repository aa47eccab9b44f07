// Folders for integration tests: one that outlives a server (DataDir), and a small
// real disk that a test can fill (SmallDisk).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace offload::testing {

// A folder that outlives one server, so that a second one opens the same database.
class DataDir {
 public:
  DataDir() {
    char tmpl[] = "/tmp/offload-durability-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~DataDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string db() const { return path_ + "/offload.db"; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A tmpfs of a few MiB, so that a test can fill a real disk. Needs root (or
// CAP_SYS_ADMIN); ok() is false where mounting is not allowed.
class SmallDisk {
 public:
  explicit SmallDisk(const std::string& size) {
    if (::geteuid() != 0) return;
    if (::mount("offload-test", dir_.path().c_str(), "tmpfs", MS_NOSUID | MS_NODEV, ("size=" + size).c_str()) == 0) {
      mounted_ = true;
    }
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool ok() const { return mounted_; }
  const std::string& path() const { return dir_.path(); }
  // Writes a ballast file until the disk refuses more.
  void Fill() {
    const std::string ballast = dir_.path() + "/ballast";
    FILE* f = std::fopen(ballast.c_str(), "w");
    ASSERT_NE(f, nullptr);
    static const std::string kChunk(64 * 1024, 'b');
    for (std::size_t size = kChunk.size(); size > 0; size /= 2) {
      while (std::fwrite(kChunk.data(), 1, size, f) == size && std::fflush(f) == 0) {
      }
      std::clearerr(f);
    }
    std::fclose(f);
  }
  void Free() { std::filesystem::remove(dir_.path() + "/ballast"); }

 private:
  DataDir dir_;
  bool mounted_ = false;
};

}  // namespace offload::testing
