// The error values are part of the public API (offload::Server returns them), so
// they live in include/offload/error.h; code inside src/ includes this name.
#pragma once

#include "offload/error.h"
