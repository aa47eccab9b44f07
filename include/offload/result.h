// What a task handler returns: a JSON value, bytes with a content type, or an error.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace offload {

// A result kept in a file rather than in memory: what a task wrote to the file it was
// given, or a binary result larger than max_memory_result.
struct OutputFile {
  // Where the bytes are. Once the server has taken the file in, it is the job's own
  // result file (FileStore::ResultPath), read-only.
  std::string path;
  std::uint64_t size = 0;
  std::string sha256;  // Of the bytes, 64 hex digits; empty until the server took it in.
  bool operator==(const OutputFile&) const = default;
};

// The output of a succeeded job. Immutable once built; shared between the store and
// readers so that a large result is never copied.
struct Output {
  std::string content_type;  // "application/json" for JSON results.
  boost::json::value json;   // Set when content_type is JSON (and file is not set).
  std::string bytes;         // Set otherwise, unless the bytes are in `file`.
  std::optional<OutputFile> file;
  bool is_json() const { return content_type == "application/json" && !file; }
  std::uint64_t size() const { return file ? file->size : bytes.size(); }
};

// Why a job failed. `type` is a short machine-readable word ("invalid_input",
// "timeout", "handler_error", "interrupted"...: offload/error_types.h names the ones
// offload sets); `message` is for a person; `detail`, often empty, is what helps
// them find the cause (the last lines of a worker's traceback).
struct JobError {
  std::string type;
  std::string message;
  std::string detail = {};  // A default, so that JobError{type, message} leaves it empty.
};

class Result {
 public:
  static Result Json(boost::json::value v) {
    auto out = std::make_shared<Output>();
    out->content_type = "application/json";
    out->json = std::move(v);
    return Result(std::move(out));
  }
  static Result Bytes(std::string content_type, std::string bytes) {
    auto out = std::make_shared<Output>();
    out->content_type = std::move(content_type);
    out->bytes = std::move(bytes);
    return Result(std::move(out));
  }
  // The bytes the handler wrote to the file at `path`: the server moves the file into
  // the job's folder (it must be on the same file system as files_dir, or it is
  // copied) and serves it from there, without reading it into memory.
  static Result File(std::string content_type, std::string path) {
    auto out = std::make_shared<Output>();
    out->content_type = std::move(content_type);
    out->file = OutputFile{std::move(path), 0, {}};
    return Result(std::move(out));
  }
  static Result Fail(std::string type, std::string message) {
    return Fail(JobError{std::move(type), std::move(message), {}});
  }
  static Result Fail(JobError error) {
    Result r(nullptr);
    r.error_ = std::move(error);
    return r;
  }

  bool ok() const { return output_ != nullptr; }
  // REQUIRES: ok().
  const std::shared_ptr<const Output>& output() const { return output_; }
  // REQUIRES: !ok().
  const JobError& error() const { return error_; }

 private:
  explicit Result(std::shared_ptr<const Output> out) : output_(std::move(out)) {}
  std::shared_ptr<const Output> output_;
  JobError error_;
};

}  // namespace offload
