// The seeds' two models as LibTorch C++ modules, layer for layer as the articles write them in
// Python (../shared/seeds/). Used by the example programs and the tests.
#pragma once

#include <torch/torch.h>

namespace footprint_examples {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

// The first seed's inception-style block: four parallel paths concatenated to 12+18+14+8 = 52
// channels.
struct MultiScaleModuleImpl : nn::Module {
  explicit MultiScaleModuleImpl(int64_t in)
      : path_1x1(register_module("path_1x1", nn::Conv2d(nn::Conv2dOptions(in, 12, 1)))),
        path_3x3_reduce(
            register_module("path_3x3_reduce", nn::Conv2d(nn::Conv2dOptions(in, 10, 1)))),
        path_3x3_expand(register_module("path_3x3_expand",
                                        nn::Conv2d(nn::Conv2dOptions(10, 18, 3).padding(1)))),
        path_5x5_reduce(
            register_module("path_5x5_reduce", nn::Conv2d(nn::Conv2dOptions(in, 8, 1)))),
        path_5x5_expand(
            register_module("path_5x5_expand", nn::Conv2d(nn::Conv2dOptions(8, 14, 5).padding(2)))),
        path_pool(register_module("path_pool", nn::Conv2d(nn::Conv2dOptions(in, 8, 1)))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    auto a = path_1x1(x);
    auto b = path_3x3_expand(path_3x3_reduce(x));
    auto c = path_5x5_expand(path_5x5_reduce(x));
    auto d = path_pool(F::avg_pool2d(x, F::AvgPool2dFuncOptions(3).stride(1).padding(1)));
    return torch::cat({a, b, c, d}, 1);
  }

  nn::Conv2d path_1x1, path_3x3_reduce, path_3x3_expand, path_5x5_reduce, path_5x5_expand,
      path_pool;
};
TORCH_MODULE(MultiScaleModule);

// The first seed's HybridNetwork, input N x 1 x 28 x 28.
struct HybridNetworkImpl : nn::Module {
  HybridNetworkImpl()
      : entry_conv(register_module("entry_conv", nn::Conv2d(nn::Conv2dOptions(1, 6, 5)))),
        stage_a(register_module("stage_a", MultiScaleModule(6))),
        transition(register_module("transition", nn::Conv2d(nn::Conv2dOptions(52, 12, 5)))),
        stage_b(register_module("stage_b", MultiScaleModule(12))),
        spatial_reduce(register_module("spatial_reduce", nn::MaxPool2d(nn::MaxPool2dOptions(2)))),
        predictor(register_module("predictor", nn::Linear(832, 10))) {}

  torch::Tensor forward(torch::Tensor x) {
    auto batch = x.size(0);
    x = torch::relu(spatial_reduce(entry_conv(x)));
    x = stage_a(x);
    x = torch::relu(spatial_reduce(transition(x)));
    x = stage_b(x);
    x = x.view({batch, -1});
    return predictor(x);
  }

  nn::Conv2d entry_conv;
  MultiScaleModule stage_a;
  nn::Conv2d transition;
  MultiScaleModule stage_b;
  nn::MaxPool2d spatial_reduce;
  nn::Linear predictor;
};
TORCH_MODULE(HybridNetwork);

// The second seed's pytorch_modelsize example: Conv2d(1,16,3,padding=5) -> Conv2d(16,32,3),
// input 1 x 1 x 32 x 32.
struct ModelSizeModelImpl : nn::Module {
  ModelSizeModelImpl()
      : conv0(register_module("conv0", nn::Conv2d(nn::Conv2dOptions(1, 16, 3).padding(5)))),
        conv1(register_module("conv1", nn::Conv2d(nn::Conv2dOptions(16, 32, 3)))) {}

  torch::Tensor forward(const torch::Tensor& x) { return conv1(conv0(x)); }

  nn::Conv2d conv0, conv1;
};
TORCH_MODULE(ModelSizeModel);

}  // namespace footprint_examples
