// The zoo's built-in kinds: "ffn", "residual_ffn", "transformer" (expert_blocks.cpp) and
// "torchscript" (torchscript_block.cpp). Each kind describes itself from a config without
// allocating (sizes checked, FLOPs by the formulas documented beside each) and builds its
// ExpertModule, parameters initialised from config.seed. Internal to core/moe: the zoo
// (expert_zoo.cpp) wraps these into ExpertFactory entries. Stateless, callable from any thread.
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/moe/expert.h"
#include "core/moe/torch_expert.h"

namespace crowdtrain::moe {

struct BuiltinKind {
  const char* name;
  Result<ExpertInfo> (*info)(const ExpertConfig& config);
  Result<std::unique_ptr<ExpertModule>> (*build)(const ExpertConfig& config);
};

// The built-in kinds, sorted by name.
std::vector<BuiltinKind> builtin_kinds();

// "torchscript", defined in torchscript_block.cpp.
Result<ExpertInfo> torchscript_info(const ExpertConfig& config);
Result<std::unique_ptr<ExpertModule>> build_torchscript(const ExpertConfig& config);

// Limits on a config's sizes (a mistyped width must not allocate terabytes).
constexpr int64_t kMaxExpertWidth = int64_t{1} << 18;       // hidden, ffn_dim, sample dims
constexpr int64_t kMaxExpertSeqLen = 1 << 14;               // transformer tokens per sample
constexpr int64_t kMaxExpertParameters = int64_t{1} << 32;  // trainable scalars

// "[3, 64]" for messages.
std::string shape_text(const std::vector<int64_t>& shape);
// The informative line of a LibTorch exception: the first line of a c10::Error, the last line
// (the Python-style error) of the TorchScript interpreter's traceback.
std::string torch_error_text(const std::exception& e);

}  // namespace crowdtrain::moe
