// Uses both halves of the installed API: a LibTorch module and a file on disk.
#include <footprint/torch.h>
#include <torch/torch.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  torch::nn::Linear layer(10, 5);  // 10*5 weights + 5 biases = 55
  auto from_module = footprint::params(*layer);
  auto from_file = footprint::params(footprint::read_model(argv[1]));
  std::cout << "consumer: Linear(10, 5) has " << from_module.params.numel << " parameters; "
            << "hybrid_network.safetensors has " << from_file.params.numel << "\n";
}
