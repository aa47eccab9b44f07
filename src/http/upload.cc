#include "http/upload.h"

#include <spdlog/spdlog.h>

#include <boost/beast/core/string.hpp>

namespace offload {

std::string_view MediaTypeOf(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  return type;
}

bool AcceptsMediaType(const std::vector<std::string>& ranges, std::string_view content_type) {
  const std::string_view type = MediaTypeOf(content_type);
  const std::size_t slash = type.find('/');
  if (slash == std::string_view::npos) return false;
  for (const std::string& range : ranges) {
    if (range == "*/*") return true;
    if (range.size() > 2 && range.compare(range.size() - 2, 2, "/*") == 0) {
      if (boost::beast::iequals(type.substr(0, slash + 1), std::string_view(range).substr(0, range.size() - 1))) {
        return true;
      }
    } else if (boost::beast::iequals(type, range)) {
      return true;
    }
  }
  return false;
}

ErrorOr<std::unique_ptr<Upload>> Upload::Binary(FileStore* files, UploadTarget target, std::string content_type) {
  std::unique_ptr<Upload> up(new Upload(files, std::move(target)));
  auto file = files->NewUpload();
  if (!file) return file.error();
  up->current_ = IncomingFile{"body", {}, std::move(content_type), std::move(*file)};
  return up;
}

std::unique_ptr<Upload> Upload::Multipart(FileStore* files, UploadTarget target, std::string boundary,
                                          std::vector<std::string> accept, std::size_t max_json) {
  std::unique_ptr<Upload> up(new Upload(files, std::move(target)));
  MultipartHandler* handler = up.get();  // A private base: converted here, where it is accessible.
  up->parser_ = std::make_unique<MultipartParser>(std::move(boundary), handler);
  up->accept_ = std::move(accept);
  up->max_json_ = max_json;
  return up;
}

Upload::~Upload() = default;

Status Upload::Failed(Error e) {
  if (e.code == ErrorCode::kInsufficientStorage || e.code == ErrorCode::kUnavailable) {
    // The detail names paths on this machine: the log has it, the client a summary.
    spdlog::warn("upload for task {} failed: {}", target_.task, e.detail);
    const std::size_t colon = e.detail.rfind(": ");
    e.detail = "files_dir cannot take the upload now" +
               (colon == std::string::npos ? std::string() : " (" + e.detail.substr(colon + 2) + ")");
  }
  failure_ = e;
  current_.reset();  // Removes the files received so far.
  done_.clear();
  return e;
}

Status Upload::Write(std::string_view bytes) {
  if (parser_) {
    if (auto fed = parser_->Feed(bytes); !fed) return Failed(fed.error());
    return {};
  }
  if (auto written = current_->upload->Write(bytes); !written) return Failed(written.error());
  return {};
}

Status Upload::Finish() {
  if (parser_) {
    if (auto finished = parser_->Finish(); !finished) return Failed(finished.error());
    return {};
  }
  if (auto finished = FinishFile(); !finished) return Failed(finished.error());
  return {};
}

Status Upload::FinishFile() {
  if (auto finished = current_->upload->Finish(); !finished) return finished;
  done_.push_back(std::move(*current_));
  current_.reset();
  return {};
}

Status Upload::OnPartBegin(const MultipartPartHeader& part) {
  const std::string_view type = MediaTypeOf(part.content_type);
  const bool json_type =
      type.empty() || boost::beast::iequals(type, "application/json") || boost::beast::iequals(type, "text/plain");
  if (part.name == "input" && json_type) {
    if (json_input_) return MakeError(ErrorCode::kInvalidArgument, "the form has more than one \"input\" part");
    in_json_ = true;
    json_input_.emplace();
    return {};
  }
  if (part.filename.empty() && type.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "form field \"" + part.name +
                         "\" is neither the JSON input (a part named \"input\") nor a file (a part with a filename "
                         "or a Content-Type); give priority and timeout in the query string");
  }
  const std::string content_type = part.content_type.empty() ? "application/octet-stream" : part.content_type;
  if (!AcceptsMediaType(accept_, content_type)) {
    std::string accepted;
    for (const std::string& a : accept_) accepted += (accepted.empty() ? "" : ", ") + a;
    return MakeError(ErrorCode::kUnsupportedMediaType, "task \"" + target_.task + "\" does not take files of type " +
                                                           content_type + " (part \"" + part.name + "\"); it takes " +
                                                           accepted);
  }
  auto file = files_->NewUpload();
  if (!file) return file.error();
  current_ = IncomingFile{part.name, part.filename, content_type, std::move(*file)};
  return {};
}

Status Upload::OnPartData(std::string_view bytes) {
  if (in_json_) {
    if (json_input_->size() + bytes.size() > max_json_) {
      return MakeError(ErrorCode::kTooLarge,
                       "the \"input\" part is larger than max_body (" + std::to_string(max_json_) + " bytes)");
    }
    json_input_->append(bytes);
    return {};
  }
  return current_->upload->Write(bytes);
}

Status Upload::OnPartEnd() {
  if (in_json_) {
    in_json_ = false;
    return {};
  }
  return FinishFile();
}

}  // namespace offload
