// FileStore: the files of jobs, in one folder (files_dir), which one server holds
// (a lock on files_dir/LOCK):
//
//   incoming/NAME       uploads being received; cleared at start (a crash mid-upload)
//   inputs/ID/N         the N-th file of job ID, read-only, from its accept to its removal
//   results/ID          job ID's result when it lives on disk, read-only
//   results/ID.N        what attempt N of a process writes at OFFLOAD_RESULT_PATH
//
// A job's files are renamed into place and their folders synced before the job's
// insert is committed, so a 202 is sent only for a job whose files survive a crash;
// a crash between the two leaves files without a job, which Sweep removes at the
// next start. Files are named by job id only: nothing a client sends becomes a path.
// Syncing follows the store's promise (`sync`): with sqlite_synchronous = "normal" a
// job survives a crash of offload but not of the machine, and so do its files, which
// then cost no wait for the disk; the memory store's jobs do not survive at all.
//
// Thread-safe: the root is constant after Open and the rest is the file system's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "files/upload_file.h"
#include "offload/job.h"
#include "offload/result.h"
#include "util/error.h"

namespace offload {

class FileStore {
 public:
  // Creates the folders under `root` as needed. With `ephemeral` (a memory store,
  // whose jobs end with the process), the whole of `root` is removed by the destructor.
  // With `sync`, every file and folder change is synced to disk before it counts.
  static ErrorOr<std::unique_ptr<FileStore>> Open(std::string root, bool ephemeral, bool sync = true);
  // A fresh private folder under $TMPDIR (or /tmp), removed by the destructor; no
  // sync (what is in it ends with the process).
  static ErrorOr<std::unique_ptr<FileStore>> OpenTemporary();
  ~FileStore();

  const std::string& root() const { return root_; }

  // A new, empty file in incoming/ to receive an upload into.
  ErrorOr<std::unique_ptr<UploadFile>> NewUpload();

  // Syncs the received uploads of job `id`, moves them to inputs/ID/ and syncs the
  // folders; the JobFiles returned describe them (with their paths). On failure nothing
  // of the job's is left in inputs/ (the uploads remove themselves). Blocks on the disk.
  ErrorOr<std::vector<JobFile>> CommitInputs(const std::string& id, std::vector<IncomingFile> files);

  std::string InputPath(const std::string& id, std::size_t index) const;
  std::string ResultPath(const std::string& id) const;
  // Where attempt `attempt` of job `id` may write its result (OFFLOAD_RESULT_PATH).
  std::string AttemptResultPath(const std::string& id, int attempt) const;

  // Makes the file at `path` job `id`'s result: moves it to ResultPath(id) (copies it
  // when it is on another file system), makes it read-only, hashes and syncs it.
  // `max_size` bounds it (kTooLarge past it; the file is removed).
  ErrorOr<OutputFile> AdoptResult(const std::string& id, const std::string& path, std::uint64_t max_size);
  // Writes `bytes` as job `id`'s result file.
  ErrorOr<OutputFile> WriteResult(const std::string& id, std::string_view bytes);

  // Removes every file of job `id`; a missing one is no error.
  void RemoveJob(const std::string& id);

  // At start, before any job runs: empties incoming/, removes what attempts left in
  // results/, and the files of every job that `exists` says is gone. Returns how many
  // entries it removed.
  std::size_t Sweep(const std::function<bool(const std::string& id)>& exists);

 private:
  FileStore(std::string root, bool ephemeral, bool sync, int lock_fd)
      : root_(std::move(root)), ephemeral_(ephemeral), sync_(sync), lock_fd_(lock_fd) {}
  Status SyncDir(const std::string& dir) const;

  const std::string root_;
  const bool ephemeral_;
  const bool sync_;
  const int lock_fd_;  // Holds the flock on root/LOCK.
};

}  // namespace offload
