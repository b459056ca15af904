// footprint/read.h: read a model file's tensors from its metadata only: TorchScript archives,
// torch.save zip checkpoints, safetensors files and sharded checkpoints through their index.
// Nothing inside a file is executed; the pickle is parsed as data against an allow-list
// (docs/formats.md).
#pragma once

#include <string>

#include "footprint/model.h"

namespace footprint {

// Detects the format from the file's bytes (and ".index.json" names), then reads it.
// Throws footprint::Error with a one-line message naming the file and the problem.
Model read_model(const std::string& path);

}  // namespace footprint
