#include "store/store.h"

#include "store/memory_store.h"
#include "store/sqlite_store.h"

namespace offload {

ErrorOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options) {
  const std::string& spec = options.spec;
  if (spec == "memory") return std::unique_ptr<Store>(std::make_unique<MemoryStore>());
  if (spec.rfind("sqlite:", 0) == 0 && spec.size() > 7) {
    auto store =
        SqliteStore::Open(SqliteOptions{spec.substr(7), options.sqlite_synchronous_full, options.sqlite_max_bytes});
    if (!store) return store.error();
    return std::unique_ptr<Store>(std::move(*store));
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown store \"" + spec + "\" (expected \"memory\" or \"sqlite:PATH\")");
}

}  // namespace offload
