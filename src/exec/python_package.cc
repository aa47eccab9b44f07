#include "exec/python_package.h"

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

namespace offload {
namespace {

// Owns the folder: removes it when static objects are destroyed at exit. By then
// every Server (and so every worker using the folder) is gone.
class InstalledPackage {
 public:
  InstalledPackage() : result_(Install()) {}
  ~InstalledPackage() {
    if (!result_) return;
    std::error_code ec;
    std::filesystem::remove_all(*result_, ec);
  }
  InstalledPackage(const InstalledPackage&) = delete;
  InstalledPackage& operator=(const InstalledPackage&) = delete;

  const ErrorOr<std::string>& result() const { return result_; }

 private:
  static ErrorOr<std::string> Install() {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string pattern = (base / "offload-python-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return MakeError(ErrorCode::kUnavailable, "cannot create a folder for the bundled Python runner under " +
                                                    base.string() + ": " + std::strerror(errno));
    }
    const std::filesystem::path package = std::filesystem::path(pattern) / "offload";
    std::filesystem::create_directories(package, ec);
    for (const EmbeddedFile& f : PythonPackageFiles()) {
      std::ofstream out(package / f.name, std::ios::binary);
      out.write(f.content.data(), static_cast<std::streamsize>(f.content.size()));
      out.close();
      if (ec || !out) {
        std::filesystem::remove_all(pattern, ec);
        return MakeError(ErrorCode::kUnavailable,
                         "cannot write the bundled Python runner to " + (package / f.name).string());
      }
    }
    return pattern;
  }

  ErrorOr<std::string> result_;
};

}  // namespace

ErrorOr<std::string> InstalledPythonPackageDir() {
  static const InstalledPackage installed;
  return installed.result();
}

}  // namespace offload
