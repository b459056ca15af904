// The memory report as JSON, for the printers that embed it (footprint llm).
#pragma once

#include <nlohmann/json.hpp>

#include "footprint/memory.h"

namespace footprint {

nlohmann::ordered_json memory_report_json(const MemoryReport& r, const MemoryPrintOptions& o);

}  // namespace footprint
