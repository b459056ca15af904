"""The models the Python package is held to: real torchvision, timm and transformers models,
built with random weights at test time (the pinned versions of requirements.txt), each with the
input a user would give it. Shared by the tests and bench/python_versus.py."""
import torch

IMAGE = (3, 224, 224)


def _tv(name, **kw):
    def build():
        import torchvision
        return getattr(torchvision.models, name)(**kw)
    return build


def _timm(name):
    def build():
        import timm
        return timm.create_model(name, pretrained=False)
    return build


def _hf(kind):
    """A transformers model from a small config of its architecture (no download): two layers,
    hidden size 64, so that a real CPU run takes well under a second."""
    def build():
        import transformers as t
        small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, vocab_size=1000, max_position_embeddings=128)
        if kind == "llama":
            return t.LlamaForCausalLM(t.LlamaConfig(num_key_value_heads=2, **small))
        if kind == "mistral":
            return t.MistralForCausalLM(t.MistralConfig(num_key_value_heads=2, sliding_window=16, **small))
        if kind == "qwen2":
            return t.Qwen2ForCausalLM(t.Qwen2Config(num_key_value_heads=2, **small))
        if kind == "qwen3":
            return t.Qwen3ForCausalLM(t.Qwen3Config(num_key_value_heads=2, head_dim=16, **small))
        if kind == "mixtral":
            return t.MixtralForCausalLM(t.MixtralConfig(num_key_value_heads=2, num_local_experts=4,
                                                        num_experts_per_tok=2, **small))
        if kind == "gpt2":
            return t.GPT2LMHeadModel(t.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=1000,
                                                  n_positions=128))
        if kind == "bert":
            return t.BertForMaskedLM(t.BertConfig(**small))
        if kind == "t5":
            return t.T5ForConditionalGeneration(t.T5Config(d_model=64, d_ff=128, num_layers=2,
                                                           num_heads=4, d_kv=16, vocab_size=1000))
        if kind == "vit":
            return t.ViTForImageClassification(t.ViTConfig(hidden_size=64, intermediate_size=128,
                                                           num_hidden_layers=2, num_attention_heads=4,
                                                           image_size=64, patch_size=16))
        raise ValueError(kind)
    return build


def tokens(batch, length=32):
    return torch.randint(0, 1000, (batch, length), generator=torch.Generator().manual_seed(0))


# name -> (builder, inputs(batch) -> (args, kwargs)), grouped by library.
TORCHVISION = {n: (_tv(n), None) for n in [
    "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
    "densenet121", "vgg11", "squeezenet1_0", "shufflenet_v2_x0_5", "mnasnet0_5",
    "regnet_y_400mf", "convnext_tiny", "vit_b_16", "swin_t", "alexnet", "googlenet"]}
TORCHVISION["googlenet"] = (_tv("googlenet", aux_logits=False, init_weights=False), None)
TIMM = {n: (_timm(n), None) for n in [
    "vit_tiny_patch16_224", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224",
    "convnext_atto", "efficientnet_b0", "mobilenetv3_small_100", "resnet18", "regnetx_002",
    "ghostnet_100", "levit_128s"]}
TRANSFORMERS = {k: (_hf(k), "tokens") for k in [
    "llama", "mistral", "qwen2", "qwen3", "mixtral", "gpt2", "bert", "t5"]}
TRANSFORMERS["vit"] = (_hf("vit"), (3, 64, 64))


def inputs(name, batch):
    """The example input of a zoo model as (args, kwargs) of real CPU tensors."""
    kind = ALL[name][1]
    g = torch.Generator().manual_seed(0)
    if kind == "tokens":
        ids = tokens(batch)
        if name.endswith("t5"):
            return [], {"input_ids": ids, "decoder_input_ids": ids[:, :16]}
        return [ids], {}
    shape = kind or IMAGE
    return [torch.randn((batch,) + tuple(shape), generator=g)], {}


ALL = {}
ALL.update({"tv_" + k: v for k, v in TORCHVISION.items()})
ALL.update({"timm_" + k: v for k, v in TIMM.items()})
ALL.update({"hf_" + k: v for k, v in TRANSFORMERS.items()})


def build(name):
    torch.manual_seed(0)
    return ALL[name][0]()
