// footprint/footprint.h: the whole torch-free API. For torch::nn::Module and torch::jit::Module,
// include footprint/torch.h as well.
#pragma once

#include "footprint/dtype.h"
#include "footprint/error.h"
#include "footprint/flops.h"
#include "footprint/hf_config.h"
#include "footprint/hub.h"
#include "footprint/llm.h"
#include "footprint/memory_viz.h"
#include "footprint/model.h"
#include "footprint/params.h"
#include "footprint/plan.h"
#include "footprint/read.h"
#include "footprint/report.h"
#include "footprint/shape.h"
#include "footprint/summary.h"
#include "footprint/trace.h"
#include "footprint/version.h"
#include "footprint/versions.h"
