// What a task handler returns: a JSON value, bytes with a content type, or an error.
#pragma once

#include <boost/json/value.hpp>
#include <memory>
#include <string>
#include <utility>

namespace offload {

// The output of a succeeded job. Immutable once built; shared between the store and
// readers so that a large result is never copied.
struct Output {
  std::string content_type;  // "application/json" for JSON results.
  boost::json::value json;   // Set when content_type is JSON.
  std::string bytes;         // Set otherwise.
  bool is_json() const { return content_type == "application/json"; }
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
