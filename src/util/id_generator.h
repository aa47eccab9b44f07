// Job ids: 90 bits from the kernel's CSPRNG (getrandom), base64url-encoded to 15
// characters. Unguessable, URL-safe, and cheap: random bytes are drawn 4 KiB at a
// time so that minting an id costs no syscall on the common path.
#pragma once

#include <string>

namespace offload {

// Thread-safe: each thread keeps its own buffer of random bytes.
std::string NewJobId();

}  // namespace offload
