// UploadFile: one file being received from a client, written to disk as it arrives
// and checksummed on the way, so that an upload of any size costs a buffer of memory,
// not its size.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/error.h"
#include "util/sha256.h"

namespace offload {

// Not thread-safe: one writer. The destructor removes the file unless Release was
// called, so that an upload that fails anywhere (a client gone, a full disk, a job
// refused) leaves nothing behind.
class UploadFile {
 public:
  // Creates `path`, which must not exist. kUnavailable (with errno's words) when it
  // cannot be created, kInsufficientStorage when the disk is full. With `sync`, Sync
  // waits until the file is on disk.
  static ErrorOr<std::unique_ptr<UploadFile>> Create(bool sync, std::string path);
  ~UploadFile();
  UploadFile(const UploadFile&) = delete;
  UploadFile& operator=(const UploadFile&) = delete;

  // Appends `bytes`. kInsufficientStorage when the disk (or a quota, or the file-size
  // limit) cannot take them; kUnavailable for another write error.
  Status Write(std::string_view bytes);
  // Ends the upload: the file is complete and read-only; size() and sha256() are
  // final. Cheap: what waits for the disk is Sync.
  Status Finish();
  // REQUIRES: Finish() succeeded. With `sync`, waits until the file is on disk (the
  // disk's errors come here); then closes it. Blocks: not for an I/O thread.
  Status Sync();

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }
  // REQUIRES: Finish() succeeded.
  const std::string& sha256() const { return digest_; }

  // The file has been moved to `path` and is no longer this upload's to remove.
  void Release(std::string path) {
    path_ = std::move(path);
    released_ = true;
  }

 private:
  UploadFile(bool sync, std::string path, int fd) : sync_(sync), path_(std::move(path)), fd_(fd) {}

  const bool sync_;
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t flushed_ = 0;  // Bytes whose write-back has been started.
  Sha256 hash_;
  std::string digest_;
  bool released_ = false;
};

// An upload received whole, as a request hands it to the service: the file and what
// the client said about it.
struct IncomingFile {
  std::string field;
  std::string filename;
  std::string content_type;
  std::unique_ptr<UploadFile> upload;  // Finished.
};

// The error of a failed write or sync: kInsufficientStorage for ENOSPC, EDQUOT and
// EFBIG (the client is told 507), kUnavailable otherwise.
Error FileError(int err, const std::string& what);

}  // namespace offload
