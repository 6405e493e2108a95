// Adam and AMSGrad in one pass over memory. torch::optim::Adam::step walks each parameter tensor
// about ten times (a kernel per operation, with temporaries for the denominator); on a CPU, where
// an expert's step at a small batch is bound by memory traffic, that is most of a backward call's
// time. fused_adam_step does the same update with one loop per tensor that reads the parameter,
// its gradient and the moments once and writes them once, and keeps its state in the optimizer's
// own state objects, so checkpoints, loads and torch's step stay interchangeable with it.
#pragma once

namespace torch::optim {
class Adam;
}  // namespace torch::optim

namespace crowdtrain::train {

// One step of `adam` over every parameter with a gradient, as Adam::step computes it (to float
// rounding: the operations are the same, their order per element the same, but a compiler may
// contract a multiply-add). Parameters that are not contiguous float32 CPU tensors with dense
// gradients of the same layout take torch's own step instead (so do all, when any does).
void fused_adam_step(torch::optim::Adam& adam);

}  // namespace crowdtrain::train
