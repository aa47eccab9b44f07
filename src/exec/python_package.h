// The Python package of clients/python/offload, compiled into the binary
// (cmake/embed_files.cmake), and the folder it is installed in for the
// workers of `python` tasks.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/embedded_file.h"
#include "util/error.h"

namespace offload {

// Every *.py file of the package, sorted by name.
const std::vector<EmbeddedFile>& PythonPackageFiles();

// A private folder (under TMPDIR, else /tmp) holding the package as `offload/`, so
// that putting the folder on sys.path makes `import offload` the server's own. It is
// written on the first call (thread-safe) and removed when the process exits
// normally. The same folder for every call in a process.
ErrorOr<std::string> InstalledPythonPackageDir();

}  // namespace offload
