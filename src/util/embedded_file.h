// A file compiled into the binary (cmake/embed_files.cmake writes their tables).
#pragma once

#include <string_view>

namespace offload {

struct EmbeddedFile {
  const char* name;  // Relative to the folder it was embedded from: "worker.py", "app.js".
  std::string_view content;
};

}  // namespace offload
