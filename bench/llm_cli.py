#!/usr/bin/env python3
"""`footprint llm` on Llama-2-70B, whole process, against a baseline in the same run: one real
training step (AdamW, fp32, CPU, the pinned torch) of transformers' LlamaForCausalLM scaled down
to 1/80 of its layers and 1/8 of its width (what footprint spares the user: running the model to
measure it).

    llm_cli.py FOOTPRINT SOURCE_DIR [RUNS]

Target (issue 5): the Llama-2-70B training estimate under 2 s and under 1 GiB of RSS.
"""
import os
import sys
import time

from summary_cli import measure  # same directory: median and max wall, peak RSS


def real_step():
    import torch
    import transformers
    torch.set_num_threads(os.cpu_count())
    c = {"hidden_size": 1024, "intermediate_size": 3584, "num_hidden_layers": 1, "num_attention_heads": 8,
         "num_key_value_heads": 1, "vocab_size": 32000, "rms_norm_eps": 1e-5}
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**c)).train()
    opt = torch.optim.AdamW(model.parameters())
    ids = torch.randint(0, 32000, (1, 2048))
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    return time.perf_counter() - t


def main():
    footprint, source = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    config = os.path.join(source, "examples", "llm", "llama-2-70b.json")
    cases = [
        ("training, bf16-amp AdamW, 1 GPU", ["--train", "--gpu", "h100"]),
        ("training, ZeRO-3 over 64, TP 8, checkpointing", ["--train", "--shard", "zero3", "--gpus", "64", "--tp", "8",
                                                           "--checkpointing", "--gpu", "h100"]),
        ("inference, int4, batch 8", ["--weights", "int4", "--batch", "8", "--gpu", "h100"]),
    ]
    first = None
    for name, args in cases:
        med, worst, rss = measure([footprint, "llm", config, "--context", "4096"] + args, runs)
        first = first or med
        print(f"footprint llm llama-2-70b {name}, context 4096: median {med:.3f} s  max {worst:.3f} s  "
              f"peak RSS {rss:.0f} MiB  (target < 2 s, < 1024 MiB)")
    real = real_step()
    print(f"python3-torch: one real CPU training step of a 1-layer, 1024-wide llama at 2048 tokens: {real:.2f} s")
    print(f"ratio real step of the small model / footprint's 70B training estimate: {real / first:.1f}")


if __name__ == "__main__":
    main()
