#include "files/result_placement.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "offload/error_types.h"
#include "util/json_reader.h"

namespace offload {

namespace {

// Reads a JSON result file (at most `max` bytes) into a value.
Result ParseJsonFile(const std::string& path, std::uint64_t max) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return Result::Fail(error_type::kInvalidResult, "cannot open the result file: " + FileError(errno, path).detail);
  struct stat st {};
  std::string text;
  bool too_large = false;
  if (::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) > max) {
    too_large = true;
  } else {
    char buf[64 * 1024];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  ::unlink(path.c_str());
  if (too_large) {
    return Result::Fail(error_type::kResultTooLarge,
                        "the result file is larger than max_result (" + std::to_string(max) + " bytes)");
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return Result::Json(nullptr);
  ErrorOr<boost::json::value> v = ParseJson(text, "result");
  if (!v) return Result::Fail(error_type::kInvalidResult, "the result file is not JSON: " + v.error().detail);
  return Result::Json(std::move(*v));
}

Result Placed(const Output& out, ErrorOr<OutputFile> file) {
  if (!file) {
    if (file.error().code == ErrorCode::kTooLarge)
      return Result::Fail(error_type::kResultTooLarge, file.error().detail);
    // The task's fault (no file, not a file): trying again would not help.
    if (file.error().code == ErrorCode::kInvalidArgument) {
      return Result::Fail(error_type::kInvalidResult, file.error().detail);
    }
    return Result::Fail(error_type::kResultNotStored, "the result could not be kept: " + file.error().detail);
  }
  Result r = Result::File(out.content_type, file->path);
  auto placed = std::const_pointer_cast<Output>(r.output());  // Not shared yet.
  placed->file = std::move(*file);
  return r;
}

}  // namespace

bool NeedsPlacement(const Result& outcome, const ResultPlacementLimits& limits) {
  if (!outcome.ok()) return false;
  const Output& out = *outcome.output();
  if (out.file) return out.file->sha256.empty();
  return !out.is_json() && out.bytes.size() > limits.max_memory_result;
}

Result PlaceResult(FileStore& files, const std::string& id, Result outcome, const ResultPlacementLimits& limits) {
  if (!NeedsPlacement(outcome, limits)) return outcome;
  const Output& out = *outcome.output();
  if (!out.file) return Placed(out, files.WriteResult(id, out.bytes));
  if (out.content_type == "application/json") return ParseJsonFile(out.file->path, limits.max_result);
  return Placed(out, files.AdoptResult(id, out.file->path, limits.max_result));
}

}  // namespace offload
