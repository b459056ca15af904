// footprint/read.h: read a model file's tensors from its metadata only: TorchScript archives,
// torch.save zip checkpoints, safetensors files, sharded checkpoints through their index, GGUF
// files, ONNX models and torch.export programs (.pt2).
// Nothing inside a file is executed; the pickle is parsed as data against an allow-list
// (docs/formats.md).
#pragma once

#include <string>

#include "footprint/model.h"
#include "footprint/summary.h"

namespace footprint {

// Detects the format from the file's bytes (and ".index.json" names), then reads it.
// Throws footprint::Error with a one-line message naming the file and the problem.
Model read_model(const std::string& path);

// `footprint summary FILE.pt2`: a torch.export program's graph, summarized without LibTorch from
// the shapes it was exported with (`options.inputs`, when given, must be those). Throws
// footprint::Error for a program with symbolic sizes, and for --train or --dtype.
Summary summarize_program(const std::string& path, const SummaryOptions& options);

}  // namespace footprint
