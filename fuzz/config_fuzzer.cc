// Fuzzes the config file reader (src/config/config.h): the bytes are a TOML file,
// read as ParseConfig reads `offload serve --config`. Either it is refused with an
// error that names the file (or the tokens file it names, for an error in that one),
// or it gives a config that ValidateConfig accepts.
//
// A file may name other files: [auth] tokens_file is read (relative to the config's
// folder, "." here), so scripts/fuzz.sh runs this target in an empty folder, with
// stdin from /dev/null.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  offload::ErrorOr<offload::ServerConfig> config = offload::ParseConfig(text, "fuzz.toml");
  if (!config) {
    // An error names the file it is in: this one, or the tokens file it names.
    const bool names_file =
        config.error().detail.rfind("fuzz.toml", 0) == 0 || text.find("tokens_file") != std::string_view::npos;
    if (!names_file) {
      std::fprintf(stderr, "config_fuzzer: an error that does not name the file: %s\n", config.error().detail.c_str());
      std::abort();
    }
    return 0;
  }
  if (offload::Status valid = offload::ValidateConfig(*config); !valid) {
    std::fprintf(stderr, "config_fuzzer: ParseConfig accepted what ValidateConfig refuses: %s\n",
                 valid.error().detail.c_str());
    std::abort();
  }
  return 0;
}
