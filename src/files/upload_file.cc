#include "files/upload_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace offload {

namespace {

// Write-back of what was written is started every this many bytes, so that the sync
// at the end waits for the last few megabytes rather than for the whole file, and a
// large upload does not fill the page cache with dirty pages first.
constexpr std::uint64_t kWriteBackEvery = 8 << 20;

}  // namespace

Error FileError(int err, const std::string& what) {
  const std::string msg = what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) return MakeError(ErrorCode::kInsufficientStorage, msg);
  return MakeError(ErrorCode::kUnavailable, msg);
}

ErrorOr<std::unique_ptr<UploadFile>> UploadFile::Create(bool sync, std::string path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return FileError(errno, "cannot create " + path);
  return std::unique_ptr<UploadFile>(new UploadFile(sync, std::move(path), fd));
}

UploadFile::~UploadFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!released_) ::unlink(path_.c_str());
}

Status UploadFile::Write(std::string_view bytes) {
  hash_.Update(bytes);
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileError(errno, "cannot write " + path_);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
    size_ += static_cast<std::uint64_t>(n);
  }
  if (sync_ && size_ - flushed_ >= kWriteBackEvery) {
    // Starts write-back without waiting for it (a hint: its failure is seen by fsync).
    (void)::sync_file_range(fd_, static_cast<off_t>(flushed_), static_cast<off_t>(size_ - flushed_),
                            SYNC_FILE_RANGE_WRITE);
    flushed_ = size_;
  }
  return {};
}

Status UploadFile::Finish() {
  if (::fchmod(fd_, 0444) != 0) return FileError(errno, "cannot make " + path_ + " read-only");
  digest_ = hash_.HexDigest();
  return {};
}

Status UploadFile::Sync() {
  if (fd_ < 0) return {};
  const int rc = sync_ ? ::fsync(fd_) : 0;
  const int err = errno;
  ::close(fd_);
  fd_ = -1;
  if (rc != 0) return FileError(err, "cannot sync " + path_);
  return {};
}

}  // namespace offload
