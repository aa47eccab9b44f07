// FileView: a job's file (Job::files) mapped read-only into memory, for an in-process
// handler that wants its bytes without reading them into a buffer of its own. The
// pages are read from the file as the handler touches them; a 2 GiB upload costs
// address space, not 2 GiB of memory.
//
//   for (const offload::JobFile& f : job.files) {
//     auto view = offload::FileView::Open(f.path);
//     if (!view) return offload::Result::Fail("invalid_input", view.error().detail);
//     Decode(view->bytes());
//   }
#pragma once

#include <string>
#include <string_view>

#include "offload/error.h"

namespace offload {

// Immutable once open, so any number of threads may read it. Move-only; unmapped by
// the destructor. REQUIRES: the file does not shrink while viewed (a job's files are
// read-only and live until the job is removed).
class FileView {
 public:
  // kNotFound when there is no such file, kUnavailable when it cannot be read.
  static ErrorOr<FileView> Open(const std::string& path);
  FileView(FileView&& other) noexcept;
  FileView& operator=(FileView&& other) noexcept;
  FileView(const FileView&) = delete;
  FileView& operator=(const FileView&) = delete;
  ~FileView();

  std::string_view bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }

 private:
  FileView(const char* data, std::size_t size) : data_(data), size_(size) {}

  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace offload
