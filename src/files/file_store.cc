#include "files/file_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "util/sha256.h"

namespace offload {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIncoming = "incoming";
constexpr const char* kInputs = "inputs";
constexpr const char* kResults = "results";
constexpr std::size_t kReadChunk = 1 << 20;

Status MakeDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return FileError(errno, "cannot create " + dir);
  return {};
}

// Hashes, bounds and (with `sync`) syncs the file open as `fd` (read and written),
// making it read-only.
ErrorOr<OutputFile> SealFile(int fd, const std::string& path, std::uint64_t max_size, bool sync) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return FileError(errno, "cannot stat " + path);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_size) {
    return MakeError(ErrorCode::kTooLarge, "the result file is " + std::to_string(size) + " bytes, over max_result (" +
                                               std::to_string(max_size) + ")");
  }
  Sha256 hash;
  std::string buf(kReadChunk, '\0');
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileError(errno, "cannot read " + path);
    if (n == 0) break;
    hash.Update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    at += n;
  }
  if (sync && ::fsync(fd) != 0) return FileError(errno, "cannot sync " + path);
  if (::fchmod(fd, 0444) != 0) return FileError(errno, "cannot make " + path + " read-only");
  return OutputFile{path, size, hash.HexDigest()};
}

// Copies `from` to the new file `to` (a rename across file systems).
Status CopyFile(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) return FileError(ec.value(), "cannot copy " + from + " to " + to);
  fs::remove(from, ec);
  return {};
}

}  // namespace

ErrorOr<std::unique_ptr<FileStore>> FileStore::Open(std::string root, bool ephemeral, bool sync) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return FileError(ec.value(), "cannot create files_dir " + root);
  root = fs::absolute(root).lexically_normal().string();
  if (root.size() > 1 && root.back() == '/') root.pop_back();
  for (const char* sub : {kIncoming, kInputs, kResults}) {
    if (auto made = MakeDir(root + "/" + sub); !made) return made.error();
  }
  if (::access(root.c_str(), W_OK) != 0) return FileError(errno, "files_dir " + root + " is not writable");
  // One server per folder: another one's Sweep would remove this one's files.
  const std::string lock_path = root + "/LOCK";
  const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock < 0) return FileError(errno, "cannot open " + lock_path);
  if (::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock);
    return MakeError(ErrorCode::kUnavailable, "another offload server is using files_dir " + root + " (" + lock_path +
                                                  " is locked); give each server a files_dir of its own");
  }
  return std::unique_ptr<FileStore>(new FileStore(std::move(root), ephemeral, sync, lock));
}

// Makes a rename or a new entry in `dir` survive a crash of the machine.
Status FileStore::SyncDir(const std::string& dir) const {
  if (!sync_) return {};
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "cannot open " + dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return FileError(err, "cannot sync " + dir);
  return {};
}

ErrorOr<std::unique_ptr<FileStore>> FileStore::OpenTemporary() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/offload-files-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) return FileError(errno, "cannot create a folder like " + pattern);
  return Open(std::move(pattern), /*ephemeral=*/true, /*sync=*/false);
}

FileStore::~FileStore() {
  ::close(lock_fd_);
  if (!ephemeral_) return;
  std::error_code ec;
  fs::remove_all(root_, ec);
}

ErrorOr<std::unique_ptr<UploadFile>> FileStore::NewUpload() {
  // Unique among this process's uploads and any a crashed one left.
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return UploadFile::Create(sync_, root_ + "/" + kIncoming + "/" + std::to_string(::getpid()) + "-" +
                                       std::to_string(counter.fetch_add(1)) + "-" + std::to_string(rng() & 0xffffffff));
}

ErrorOr<std::vector<JobFile>> FileStore::CommitInputs(const std::string& id, std::vector<IncomingFile> files) {
  std::vector<JobFile> out;
  if (files.empty()) return out;
  const std::string dir = root_ + "/" + kInputs + "/" + id;
  if (auto made = MakeDir(dir); !made) return made.error();
  auto fail = [&](Error e) -> ErrorOr<std::vector<JobFile>> {
    for (auto& f : files) f.upload.reset();  // Removes what was not moved yet.
    RemoveJob(id);
    return e;
  };
  for (std::size_t i = 0; i < files.size(); ++i) {
    IncomingFile& f = files[i];
    if (auto synced = f.upload->Sync(); !synced) return fail(synced.error());
    const std::string to = InputPath(id, i);
    if (::rename(f.upload->path().c_str(), to.c_str()) != 0) {
      return fail(FileError(errno, "cannot move an upload to " + to));
    }
    f.upload->Release(to);
    out.push_back(JobFile{std::move(f.field), std::move(f.filename), std::move(f.content_type), f.upload->size(),
                          f.upload->sha256(), to});
  }
  if (auto synced = SyncDir(dir); !synced) return fail(synced.error());
  if (auto synced = SyncDir(root_ + "/" + kInputs); !synced) return fail(synced.error());
  return out;
}

std::string FileStore::InputPath(const std::string& id, std::size_t index) const {
  return root_ + "/" + kInputs + "/" + id + "/" + std::to_string(index);
}

std::string FileStore::ResultPath(const std::string& id) const { return root_ + "/" + kResults + "/" + id; }

std::string FileStore::AttemptResultPath(const std::string& id, int attempt) const {
  return ResultPath(id) + "." + std::to_string(attempt);
}

ErrorOr<OutputFile> FileStore::AdoptResult(const std::string& id, const std::string& path, std::uint64_t max_size) {
  const std::string to = ResultPath(id);
  // What a task left there: only a regular file of its own is taken, never what a
  // link points to (the database, say).
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    const bool missing = errno == ENOENT;
    ::unlink(path.c_str());
    return MakeError(ErrorCode::kInvalidArgument, missing ? "the task said its result is in a file, but wrote none"
                                                          : "the result file is not a regular file");
  }
  if (path != to && ::rename(path.c_str(), to.c_str()) != 0) {
    if (errno != EXDEV) {
      Error e = FileError(errno, "cannot move the result " + path + " to " + to);
      ::unlink(path.c_str());
      return e;
    }
    if (auto copied = CopyFile(path, to); !copied) {
      ::unlink(to.c_str());
      ::unlink(path.c_str());
      return copied.error();
    }
  }
  const int fd = ::open(to.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    Error e = FileError(errno, "cannot open " + to);
    ::unlink(to.c_str());
    return e;
  }
  ErrorOr<OutputFile> sealed = SealFile(fd, to, max_size, sync_);
  ::close(fd);
  if (sealed) {
    if (auto synced = SyncDir(root_ + "/" + kResults); !synced) sealed = synced.error();
  }
  if (!sealed) ::unlink(to.c_str());
  return sealed;
}

ErrorOr<OutputFile> FileStore::WriteResult(const std::string& id, std::string_view bytes) {
  const std::string path = AttemptResultPath(id, 0);
  ::unlink(path.c_str());  // What a failed try left.
  {
    auto file = UploadFile::Create(sync_, path);
    if (!file) return file.error();
    if (auto written = (*file)->Write(bytes); !written) return written.error();
    if (auto done = (*file)->Finish(); !done) return done.error();
    if (auto synced = (*file)->Sync(); !synced) return synced.error();
    (*file)->Release(path);
  }
  return AdoptResult(id, path, UINT64_MAX);
}

void FileStore::RemoveJob(const std::string& id) {
  std::error_code ec;
  fs::remove_all(root_ + "/" + kInputs + "/" + id, ec);
  if (ec) spdlog::warn("files: cannot remove the inputs of job {}: {}", id, ec.message());
  if (::unlink(ResultPath(id).c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("files: cannot remove {}: {}", ResultPath(id), std::strerror(errno));
  }
}

std::size_t FileStore::Sweep(const std::function<bool(const std::string& id)>& exists) {
  std::size_t removed = 0;
  std::error_code ec;
  auto remove = [&](const fs::path& p) {
    std::error_code rec;
    fs::remove_all(p, rec);
    if (rec) {
      spdlog::warn("files: cannot remove {}: {}", p.string(), rec.message());
    } else {
      ++removed;
    }
  };
  for (const auto& e : fs::directory_iterator(root_ + "/" + kIncoming, ec)) remove(e.path());
  // (LOCK, at the top, is not in these folders.)
  for (const auto& e : fs::directory_iterator(root_ + "/" + kResults, ec)) {
    const std::string name = e.path().filename().string();
    // ID.N: an attempt that did not finish; ID: a result, kept with its job.
    if (name.find('.') != std::string::npos || !exists(name)) remove(e.path());
  }
  for (const auto& e : fs::directory_iterator(root_ + "/" + kInputs, ec)) {
    if (!exists(e.path().filename().string())) remove(e.path());
  }
  if (removed > 0) spdlog::info("files: removed {} files left without a job in {}", removed, root_);
  return removed;
}

}  // namespace offload
