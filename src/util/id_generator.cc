#include "util/id_generator.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace offload {
namespace {

constexpr size_t kIdBytes = 12;
constexpr size_t kPoolBytes = 4096 - 4096 % kIdBytes;
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct RandomPool {
  unsigned char bytes[kPoolBytes];
  size_t next = kPoolBytes;

  const unsigned char* Take() {
    if (next == kPoolBytes) {
      size_t filled = 0;
      while (filled < kPoolBytes) {
        ssize_t n = getrandom(bytes + filled, kPoolBytes - filled, 0);
        if (n < 0) {
          if (errno == EINTR) continue;
          std::abort();  // No entropy source: ids would be guessable; refuse to go on.
        }
        filled += static_cast<size_t>(n);
      }
      next = 0;
    }
    const unsigned char* out = bytes + next;
    next += kIdBytes;
    return out;
  }
};

}  // namespace

std::string NewJobId() {
  thread_local RandomPool pool;
  const unsigned char* b = pool.Take();
  std::string id;
  id.resize(kIdBytes / 3 * 4);
  for (size_t i = 0, o = 0; i < kIdBytes; i += 3, o += 4) {
    std::uint32_t v = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    id[o] = kAlphabet[(v >> 18) & 63];
    id[o + 1] = kAlphabet[(v >> 12) & 63];
    id[o + 2] = kAlphabet[(v >> 6) & 63];
    id[o + 3] = kAlphabet[v & 63];
  }
  // 15 characters (90 bits) rather than 16: a std::string keeps up to 15 in place, so
  // the several copies of each id (service, store, scheduler, responses) allocate
  // nothing. 90 bits stays far above the 64 an unguessable id needs.
  id.resize(15);
  return id;
}

}  // namespace offload
