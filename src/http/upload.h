// Upload: a request body the API takes as files — a binary body (an image posted as
// image/png) or a multipart/form-data form (files, and a JSON part named "input") —
// written to disk as it arrives (files/upload_file.h), so that a body of any size
// costs a read buffer, never its size in memory.
//
// The session feeds it the body piece by piece (Write) and ends it (Finish); the API
// then turns it into a SubmitRequest. Not thread-safe: one session, one thread.
#pragma once

#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "files/file_store.h"
#include "files/multipart.h"
#include "files/upload_file.h"
#include "util/error.h"

namespace offload {

// The type/subtype of a Content-Type value, parameters and spaces left out.
std::string_view MediaTypeOf(std::string_view content_type);

// Whether one of `ranges` ("image/png", "image/*", "*/*") takes `content_type`
// (parameters ignored, case-insensitive).
bool AcceptsMediaType(const std::vector<std::string>& ranges, std::string_view content_type);

// Where an upload goes: the task, and what the query said of the job.
struct UploadTarget {
  std::string task;
  bool run = false;  // POST /v1/tasks/NAME/run; else POST /v1/jobs?task=NAME.
  int priority = 0;
  Millis timeout{0};
  std::string tenant;  // Who uploads it (Caller::tenant).
};

class Upload final : private MultipartHandler {
 public:
  // A binary body: one file, field "body", without a filename.
  static ErrorOr<std::unique_ptr<Upload>> Binary(FileStore* files, UploadTarget target, std::string content_type);
  // A multipart/form-data body with this boundary. A part named "input" without a file
  // type is the job's JSON input (at most max_json bytes); every other part is a file,
  // whose type must be one `accept` lists (a part without one is
  // application/octet-stream).
  static std::unique_ptr<Upload> Multipart(FileStore* files, UploadTarget target, std::string boundary,
                                           std::vector<std::string> accept, std::size_t max_json);
  ~Upload() override;

  // The next bytes of the body. On failure (a full disk, a malformed or refused part)
  // nothing of it is kept, and failure() says why.
  Status Write(std::string_view bytes);
  // The body is complete.
  Status Finish();
  // What the last failed Write or Finish returned.
  const Error& failure() const { return failure_; }

  const UploadTarget& target() const { return target_; }
  // After Finish: the files, in the order received.
  std::vector<IncomingFile> TakeFiles() { return std::move(done_); }
  // After Finish: the text of the "input" part, if there was one.
  const std::optional<std::string>& json_input() const { return json_input_; }

 private:
  Upload(FileStore* files, UploadTarget target) : files_(files), target_(std::move(target)) {}

  Status OnPartBegin(const MultipartPartHeader& part) override;
  Status OnPartData(std::string_view bytes) override;
  Status OnPartEnd() override;
  Status Failed(Error e);
  // The current file is complete: it joins the received ones.
  Status FinishFile();

  FileStore* const files_;
  const UploadTarget target_;
  std::unique_ptr<MultipartParser> parser_;  // Set for a multipart body.
  std::vector<std::string> accept_;
  std::size_t max_json_ = 0;
  std::optional<IncomingFile> current_;  // The file being received.
  bool in_json_ = false;                 // The current part is "input".
  std::optional<std::string> json_input_;
  std::vector<IncomingFile> done_;
  Error failure_;
};

// A request body streamed into an Upload as Beast reads it. A write
// the upload refuses ends the read with io_error; the upload's failure() says why.
struct UploadBody {
  using value_type = std::unique_ptr<Upload>;

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>&, boost::beast::error_code& ec) { ec = {}; }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      std::size_t n = 0;
      for (const auto b : boost::beast::buffers_range_ref(buffers)) {
        if (!body_->Write(std::string_view(static_cast<const char*>(b.data()), b.size()))) {
          ec = make_error_code(boost::system::errc::io_error);
          return n;
        }
        n += b.size();
      }
      ec = {};
      return n;
    }

    void finish(boost::beast::error_code& ec) {
      ec = body_->Finish() ? boost::beast::error_code() : make_error_code(boost::system::errc::io_error);
    }

   private:
    value_type& body_;
  };
};

}  // namespace offload
