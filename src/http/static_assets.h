// StaticAssets: the files the server sends as they are — the dashboard (/ui), the
// OpenAPI document (/openapi.json) and the page that renders it (/docs) — from the
// copies compiled into the binary (cmake/embed_files.cmake), or, when the environment
// names a folder in OFFLOAD_UI_DIR, the dashboard's files from there, read at each
// request, so that it can be worked on without a rebuild.
//
// Thread-safe: constant after construction.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "http/exchange.h"
#include "util/embedded_file.h"

namespace offload {

// Generated: ui/*.{html,js,css}, ui/vendor/*.js and docs/openapi.json, named by their
// path in the repository.
const std::vector<EmbeddedFile>& WebFiles();

class StaticAssets {
 public:
  StaticAssets();

  // Whether `path` is one of the assets' paths: /ui, /ui/FILE, /openapi.json, /docs, /docs/FILE.
  static bool Owns(std::string_view path);
  // The answer to a GET or HEAD of `path`: the file (200, or 304 for an
  // If-None-Match of its ETag); nullopt when there is no such file.
  std::optional<HttpResponse> Serve(std::string_view path, const HttpRequestHeader& req) const;

 private:
  // The file's content, or nullopt when there is none of that name.
  std::optional<std::string> Read(const std::string& name) const;

  std::string ui_dir_;  // OFFLOAD_UI_DIR; empty: the embedded copies.
  // The ETag of each embedded file, computed once.
  std::unordered_map<std::string, std::string> etags_;
};

}  // namespace offload
