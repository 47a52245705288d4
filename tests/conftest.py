import os
import sys

# torch's OpenMP threads spin while they wait; beside other busy processes (a loaded CI
# machine) a spinning thread takes the core the other thread needs. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import string

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


CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny random Qwen2 and a character tokenizer with a chat template, saved like a
    downloaded model (padded lm_head rows, like Qwen)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    chars = sorted(set(string.printable) - set("\x0b\x0c"))
    vocab = {t: i for i, t in enumerate(specials + chars + ["<unk>"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", unk_token="<unk>",
                                  additional_special_tokens=specials[1:2])
    tok.chat_template = CHAT
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(vocab) + 6, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, eos_token_id=vocab["<|im_end|>"],
                      pad_token_id=vocab["<|endoftext|>"])   # padded lm_head, like Qwen
    d = tmp_path_factory.mktemp("tiny-qwen")
    Qwen2ForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)
