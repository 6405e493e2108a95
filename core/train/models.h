// Models for the training experiments, behind a small type-erased handle so that this header needs
// no LibTorch: an MLP (D -> h -> ... -> classes), a small CNN for square images, the residual FFN
// block that DMoE experts reuse (x + Linear(4d,d)(GELU(Linear(d,4d)(LayerNorm(x))))), and a dense
// FFN network (the DMoE paper's baseline: Linear(D,d) -> blocks -> LayerNorm -> Linear(d,classes)).
// Helpers flatten parameters into one contiguous float32 vector and write one back (Moshpit
// averages flat vectors), and estimate FLOPs for Runtime::compute. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace at {
class Tensor;
}
namespace torch::nn {
class Module;
}

namespace crowdtrain::train {

enum class ModelKind { kMlp, kCnn, kFfnNet, kFfnBlock };

// Builder-style options; each kind reads the fields its comment names.
class ModelOptions {
 public:
  ModelOptions& kind(ModelKind v) {
    kind_ = v;
    return *this;
  }
  ModelKind kind() const { return kind_; }
  // all but kFfnBlock; kCnn: image_side^2 (one channel)
  ModelOptions& input_dim(int64_t v) {
    input_dim_ = v;
    return *this;
  }
  int64_t input_dim() const { return input_dim_; }
  // all but kFfnBlock
  ModelOptions& num_classes(int64_t v) {
    num_classes_ = v;
    return *this;
  }
  int64_t num_classes() const { return num_classes_; }
  // kMlp, kCnn: hidden width; kFfnNet, kFfnBlock: d
  ModelOptions& hidden(int64_t v) {
    hidden_ = v;
    return *this;
  }
  int64_t hidden() const { return hidden_; }
  // kMlp: hidden layers; kFfnNet: FFN blocks
  ModelOptions& depth(int64_t v) {
    depth_ = v;
    return *this;
  }
  int64_t depth() const { return depth_; }
  // kFfnNet, kFfnBlock: inner width = ffn_expansion * d
  ModelOptions& ffn_expansion(int64_t v) {
    ffn_expansion_ = v;
    return *this;
  }
  int64_t ffn_expansion() const { return ffn_expansion_; }
  // kCnn
  ModelOptions& conv1_channels(int64_t v) {
    conv1_channels_ = v;
    return *this;
  }
  int64_t conv1_channels() const { return conv1_channels_; }
  // kCnn
  ModelOptions& conv2_channels(int64_t v) {
    conv2_channels_ = v;
    return *this;
  }
  int64_t conv2_channels() const { return conv2_channels_; }
  // kCnn
  ModelOptions& image_side(int64_t v) {
    image_side_ = v;
    return *this;
  }
  int64_t image_side() const { return image_side_; }

 private:
  ModelKind kind_ = ModelKind::kMlp;
  int64_t input_dim_ = 784;
  int64_t num_classes_ = 10;
  int64_t hidden_ = 256;
  int64_t depth_ = 2;
  int64_t ffn_expansion_ = 4;
  int64_t conv1_channels_ = 16;
  int64_t conv2_channels_ = 32;
  int64_t image_side_ = 28;
};

// A model: forward on float32 [B, input] (kCnn reshapes to [B, 1, side, side]) returning logits
// [B, classes] (kFfnBlock: [B, d]); its torch module (parameters, train/eval); its FLOPs.
class Model {
 public:
  virtual ~Model() = default;
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  virtual torch::nn::Module& module() = 0;
  virtual const torch::nn::Module& module() const = 0;
  // Estimated FLOPs of one forward pass on `batch` samples: 2*in*out per sample for each linear
  // layer, 2*k*k*c_in*c_out per output pixel for each convolution; activations, norms, pooling
  // ignored.
  virtual double forward_flops(int64_t batch) const = 0;
  // Forward + backward: the backward pass costs about twice the forward (grads of inputs and
  // weights).
  double train_flops(int64_t batch) const { return 3.0 * forward_flops(batch); }
  virtual std::string describe() const = 0;
};

// Builds the model with parameters drawn after torch::manual_seed(init_seed): the same seed gives
// the same initial parameters whatever ran before (peers that must start equal share init_seed).
std::unique_ptr<Model> make_model(const ModelOptions& options, uint64_t init_seed);

// FLOP formulas used by forward_flops (exposed for other cost models, e.g. DMoE experts).
double linear_flops(int64_t in, int64_t out, int64_t batch);
double conv2d_flops(int64_t c_in, int64_t c_out, int64_t kernel, int64_t out_h, int64_t out_w,
                    int64_t batch);

// Number of scalar parameters (all of module.parameters()).
int64_t count_parameters(const torch::nn::Module& module);
// All parameters, in parameters() order, copied into one contiguous float32 CPU vector.
at::Tensor flatten_parameters(const torch::nn::Module& module);
// Writes `flat` (1-D, count_parameters() elements, any float dtype) back into the parameters,
// without recording gradients. An error, changing nothing, if the size or shape is wrong.
Status unflatten_parameters(const at::Tensor& flat, torch::nn::Module& module);

}  // namespace crowdtrain::train
