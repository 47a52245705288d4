import os
import sys

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"          # nothing is ever downloaded by a test
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_model():
    """A random 2-layer Qwen2 whose lm_head is padded: 40 real tokens, 48 rows (like Qwen)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # sharpen the random model so samples are not uniform noise
        model.lm_head.weight.mul_(8.0)
    return model


@pytest.fixture(scope="session")
def tiny_gpt2():
    """A random GPT-2: learned ABSOLUTE positions, so wrong position ids change its logits
    (RoPE models like Qwen2 are blind to a constant shift of all positions)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=48, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                     tie_word_embeddings=False)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
        model.transformer.wpe.weight.mul_(20.0)   # make positions matter a lot
    return model
