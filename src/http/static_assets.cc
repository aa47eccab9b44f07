#include "http/static_assets.h"

#include <fmt/format.h>

#include <boost/beast/http.hpp>
#include <cstdlib>
#include <fstream>
#include <functional>

namespace offload {

namespace http = boost::beast::http;

namespace {

// The file a path names in the repository's layout, or "" for none. A name never
// climbs out of its folder.
std::string FileOf(std::string_view path) {
  if (path == "/ui" || path == "/ui/") return "ui/index.html";
  if (path == "/openapi.json") return "docs/openapi.json";
  if (path == "/docs" || path == "/docs/") return "ui/docs.html";
  auto leaf = [](std::string_view rest) {
    return !rest.empty() && rest.find('/') == std::string_view::npos && rest.find("..") == std::string_view::npos;
  };
  if (path.substr(0, 4) == "/ui/" && leaf(path.substr(4))) return "ui/" + std::string(path.substr(4));
  if (path.substr(0, 6) == "/docs/" && leaf(path.substr(6))) return "ui/vendor/" + std::string(path.substr(6));
  return "";
}

std::string_view ContentTypeOf(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".json")) return "application/json";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

// A validator that changes with the bytes: a browser revalidates (no-cache) and gets
// a 304 until the server it talks to has other files.
std::string ETagOf(std::string_view content) {
  return fmt::format("\"{:016x}\"", std::hash<std::string_view>{}(content));
}

}  // namespace

StaticAssets::StaticAssets() {
  if (const char* dir = std::getenv("OFFLOAD_UI_DIR"); dir && *dir) ui_dir_ = dir;
  for (const EmbeddedFile& f : WebFiles()) etags_.emplace(f.name, ETagOf(f.content));
}

bool StaticAssets::Owns(std::string_view path) {
  return path == "/ui" || path.substr(0, 4) == "/ui/" || path == "/openapi.json" || path == "/docs" ||
         path.substr(0, 6) == "/docs/";
}

std::optional<std::string> StaticAssets::Read(const std::string& name) const {
  if (!ui_dir_.empty() && name.substr(0, 3) == "ui/") {
    std::ifstream in(ui_dir_ + "/" + name.substr(3), std::ios::binary);
    if (in) return std::string(std::istreambuf_iterator<char>(in), {});
  }
  for (const EmbeddedFile& f : WebFiles()) {
    if (name == f.name) return std::string(f.content);
  }
  return std::nullopt;
}

std::optional<HttpResponse> StaticAssets::Serve(std::string_view path, const HttpRequestHeader& req) const {
  const std::string name = FileOf(path);
  std::optional<std::string> content = name.empty() ? std::nullopt : Read(name);
  if (!content) return std::nullopt;
  auto known = etags_.find(name);
  const std::string etag =
      known != etags_.end() && (ui_dir_.empty() || name.substr(0, 3) != "ui/") ? known->second : ETagOf(*content);
  if (req[http::field::if_none_match] == etag) {
    HttpResponse res{http::status::not_modified, 11};
    res.set(http::field::etag, etag);
    return res;
  }
  HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, ContentTypeOf(name));
  res.set(http::field::etag, etag);
  res.set(http::field::cache_control, "no-cache");
  if (name.substr(0, 3) == "ui/" && name != "ui/docs.html" && name.substr(0, 10) != "ui/vendor/") {
    // The dashboard loads its own files only and talks to this server only: a
    // result an attacker shaped (an SVG, a name) cannot run a script of theirs.
    res.set("Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  }
  if (name == "ui/docs.html") res.set("Content-Security-Policy", "frame-ancestors 'none'");
  res.body() = std::move(*content);
  return res;
}

}  // namespace offload
