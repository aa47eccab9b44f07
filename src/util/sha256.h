// Sha256: an incremental SHA-256 (OpenSSL's EVP), for the checksums of uploaded
// files and file results, which clients compare and which make their ETags.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace offload {

// Not thread-safe: one hash, fed from one thread at a time.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view bytes);
  // The digest as 64 lowercase hex digits. Ends the hash: REQUIRES no Update after.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace offload
