"""Write a tiny random Llama with a locally trained tokenizer (nothing is downloaded).

Run with the e2e environment's interpreter (it needs torch, transformers and tokenizers, which the
kit itself does not): ``python fleetkit/e2e/tiny_model.py OUT_DIR``. The model has 2 layers, hidden
size 128 and 2 attention heads (head_dim 64: vLLM's CPU attention rejects 16), random weights from
a fixed seed, float32 safetensors (~1.5 MB), and a byte-level BPE tokenizer trained on generated
text with a chat template, so ``/v1/chat/completions`` works. Standalone on purpose: no fleetkit
import, so it runs in an environment where fleetkit is not installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
WORDS = (
    "the model serves a request through the gateway and the engine schedules tokens for every tenant "
    "premium standard batch cluster region weights cache latency stream trace route alias"
).split()


def corpus(lines: int = 2000) -> list[str]:
    # deterministic pseudo-text: every word, in many orders (a linear congruential walk)
    out, x = [], 12345
    for _ in range(lines):
        words = []
        for _ in range(12):
            x = (1103515245 * x + 12345) % 2**31
            words.append(WORDS[x % len(WORDS)])
        out.append(" ".join(words))
    return out


def build(out: Path, *, max_len: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus(),
        trainers.BpeTrainer(
            vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", model_max_length=max_len
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_len,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    (out / "fleetkit-tiny.json").write_text(
        json.dumps({"head_dim": 64, "layers": 2, "vocab": config.vocab_size})
    )


if __name__ == "__main__":
    build(Path(sys.argv[1]), max_len=int(sys.argv[2]) if len(sys.argv) > 2 else 16384)
