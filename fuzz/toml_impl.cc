// toml++'s implementation compiled into the config target, so that libFuzzer sees the
// branches of the TOML parser too: Debian's libtomlplusplus.so is built without the
// coverage hooks, and a fuzzer blind to the parser finds few new files. The symbols
// defined here take the place of the shared library's (an executable's own
// definitions come first), so config.cc parses with this copy. Compiled with NDEBUG
// (fuzz/CMakeLists.txt), as the shared library is.
#define TOML_IMPLEMENTATION 1
#include <toml++/toml.h>
