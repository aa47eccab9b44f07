#include "store/store.h"

#include "store/memory_store.h"

namespace offload {

ErrorOr<std::unique_ptr<Store>> OpenStore(const std::string& spec) {
  if (spec == "memory") return std::unique_ptr<Store>(std::make_unique<MemoryStore>());
  return MakeError(ErrorCode::kInvalidArgument, "unknown store \"" + spec + "\"");
}

}  // namespace offload
