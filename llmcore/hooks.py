"""Hook points: read or change any activation inside a model, by name.

This is TransformerLens's hooking API (`HookPoint` and `HookedRootModule`, version 4),
written out small: the same names, arguments and behaviour for everything llmcore and
its lessons use, without importing TransformerLens, whose package pulls in
`transformers` and `datasets` (about 130 MB of memory and seconds of start-up on a
server that needs neither; docs/architecture.md has the numbers).
tests/test_hooks.py runs the same calls through TransformerLens's own classes and
checks the names, values and hook calls are the same.

A `HookPoint` is an identity layer placed where an activation passes:

    x = self.hook_resid_pre(x)          # returns x unchanged... unless a hook is attached

A hook is a function `hook(activation, hook=the_hook_point)`. It may look at the
activation (return None) or replace it (return a tensor of the same shape).
`HookedRootModule.setup()` names every hook point by its path in the model
("blocks.0.attn.hook_pattern"), and then:

    logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_attn_out", zero)])
    logits, cache = model.run_with_cache(tokens)     # cache["blocks.0.attn.hook_pattern"]
    with model.hooks(fwd_hooks=[(lambda name: name.endswith("hook_z"), look)]):
        model(tokens)

Hooks added inside `hooks()` / `run_with_hooks` / `run_with_cache` are removed when
the block ends (unless `reset_hooks_end=False`); hooks added with `add_perma_hook`
stay until `reset_hooks(including_permanent=True)`. Backward hooks
(`bwd_hooks=...`) see the gradient flowing back through the point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

NamesFilter = Callable[[str], bool] | Sequence[str] | str | None


@dataclass
class LensHandle:
    """One attached hook: PyTorch's handle, whether it is permanent, and the `hooks()` level that added it."""

    hook: RemovableHandle
    is_permanent: bool = False
    context_level: int | None = None


class HookPoint(nn.Module):
    """An identity layer that hooks attach to. `name` is set by the root module's `setup()`."""

    def __init__(self):
        super().__init__()
        self.fwd_hooks: list[LensHandle] = []
        self.bwd_hooks: list[LensHandle] = []
        self.ctx: dict = {}  # scratch space a hook may keep between calls (TransformerLens's)
        self.name: str | None = None

    def add_hook(self, hook, dir: str = "fwd", is_permanent: bool = False, level: int | None = None,
                 prepend: bool = False) -> LensHandle:
        """Attach `hook(activation, hook=self)`; a tensor it returns replaces the activation (or the gradient)."""
        if dir not in ("fwd", "bwd"):
            raise ValueError(f"Invalid direction {dir}")

        def call(module, inputs, outputs):  # PyTorch's hook signature -> TransformerLens's
            if dir == "bwd":  # a backward hook gets (grad,) tuples: the gradient is outputs[0]
                result = hook(outputs[0], hook=self)
                return None if result is None else (result,)
            return hook(outputs, hook=self)

        # A readable name for debugging; partial's own repr can print whole tensors.
        call.__name__ = f"partial({hook.func!r},...)" if isinstance(hook, partial) else repr(hook)
        if dir == "fwd":
            handle = self.register_forward_hook(call, prepend=prepend)
        else:
            handle = self.register_full_backward_hook(call, prepend=prepend)
        handles = self.fwd_hooks if dir == "fwd" else self.bwd_hooks
        lens = LensHandle(handle, is_permanent, level)
        if prepend:
            handles.insert(0, lens)
        else:
            handles.append(lens)
        return lens

    def add_perma_hook(self, hook, dir: str = "fwd") -> LensHandle:
        return self.add_hook(hook, dir=dir, is_permanent=True)

    def remove_hooks(self, dir: str = "fwd", including_permanent: bool = False, level: int | None = None) -> None:
        """Remove this point's hooks in direction `dir` ("fwd", "bwd" or "both"), from one level if given."""
        if dir not in ("fwd", "bwd", "both"):
            raise ValueError(f"Invalid direction {dir}")

        def keep(handles):
            kept = []
            for h in handles:
                if (h.is_permanent and not including_permanent) or (level is not None and h.context_level != level):
                    kept.append(h)
                else:
                    h.hook.remove()
            return kept

        if dir in ("fwd", "both"):
            self.fwd_hooks = keep(self.fwd_hooks)
        if dir in ("bwd", "both"):
            self.bwd_hooks = keep(self.bwd_hooks)

    def clear_context(self):
        self.ctx = {}

    def forward(self, x):
        return x

    def layer(self) -> int:
        """The block number in a name like "blocks.3.attn.hook_pattern" -> 3."""
        if self.name is None:
            raise ValueError("Name cannot be None")
        return int(self.name.split(".")[1])


def _as_filter(names_filter: NamesFilter) -> Callable[[str], bool]:
    """None (every hook), one name, a list of names, or a function of the name -> a function of the name."""
    if names_filter is None:
        return lambda name: True
    if isinstance(names_filter, str):
        return lambda name: name == names_filter
    if isinstance(names_filter, (list, tuple, set, frozenset)):
        names = set(names_filter)
        return lambda name: name in names
    if callable(names_filter):
        return names_filter
    raise ValueError("names_filter must be a string, list of strings, or function")


def _drop_batch_dim(t: torch.Tensor) -> torch.Tensor:
    return t.squeeze(0) if t.ndim > 0 and t.shape[0] == 1 else t


class HookedRootModule(nn.Module):
    """A module whose HookPoints can be found by name and hooked for one call at a time.

    Subclasses build their layers, then call `self.setup()` at the end of `__init__`.
    """

    def __init__(self, *args):
        super().__init__()
        self.is_caching = False
        self.context_level = 0  # how many hooks() blocks are open: their hooks are removed level by level

    def setup(self):
        """Name every submodule by its path, and index the HookPoints: `mod_dict`, `hook_dict`."""
        self.mod_dict: dict[str, nn.Module] = {}
        self.hook_dict: dict[str, HookPoint] = {}
        for name, module in self.named_modules():
            if name == "":
                continue
            module.name = name
            self.mod_dict[name] = module
            if isinstance(module, HookPoint):
                self.hook_dict[name] = module

    def hook_points(self):
        return self.hook_dict.values()

    # --- attaching and removing ---------------------------------------------------------

    def add_hook(self, name, hook, dir: str = "fwd", is_permanent: bool = False, level: int | None = None,
                 prepend: bool = False) -> None:
        """Attach `hook` at the point called `name`, or at every point whose name makes `name(...)` true."""
        if isinstance(name, str):
            point = self.mod_dict[name]
            if not isinstance(point, HookPoint):
                raise TypeError(f"{name} is a {type(point).__name__}, not a HookPoint")
            point.add_hook(hook, dir=dir, is_permanent=is_permanent, level=level, prepend=prepend)
        else:
            for point_name, point in self.hook_dict.items():
                if name(point_name):
                    point.add_hook(hook, dir=dir, is_permanent=is_permanent, level=level, prepend=prepend)

    def add_perma_hook(self, name, hook, dir: str = "fwd") -> None:
        self.add_hook(name, hook, dir=dir, is_permanent=True)

    def remove_all_hook_fns(self, direction: str = "both", including_permanent: bool = False,
                            level: int | None = None):
        for point in self.hook_points():
            point.remove_hooks(direction, including_permanent=including_permanent, level=level)

    def clear_contexts(self):
        for point in self.hook_points():
            point.clear_context()

    def reset_hooks(self, clear_contexts: bool = True, direction: str = "both", including_permanent: bool = False,
                    level: int | None = None):
        """Remove hooks (all but permanent ones by default) and, by default, the points' `ctx`."""
        if clear_contexts:
            self.clear_contexts()
        self.remove_all_hook_fns(direction, including_permanent, level=level)
        self.is_caching = False

    # --- hooks for one block or one call ---------------------------------------------------

    @contextmanager
    def hooks(self, fwd_hooks=(), bwd_hooks=(), reset_hooks_end: bool = True, clear_contexts: bool = False):
        """Attach [(name or filter, hook)] pairs for the `with` block; they go when it ends."""
        try:
            self.context_level += 1
            for name, hook in fwd_hooks:
                self.add_hook(name, hook, dir="fwd", level=self.context_level)
            for name, hook in bwd_hooks:
                self.add_hook(name, hook, dir="bwd", level=self.context_level)
            yield self
        finally:
            if reset_hooks_end:  # only this block's hooks: an enclosing block keeps its own
                self.reset_hooks(clear_contexts, including_permanent=False, level=self.context_level)
            self.context_level -= 1

    def run_with_hooks(self, *model_args, fwd_hooks=(), bwd_hooks=(), reset_hooks_end: bool = True,
                       clear_contexts: bool = False, **model_kwargs):
        """One forward pass with hooks attached. Backward hooks need `reset_hooks_end=False`
        (the pass ends before any `.backward()`); remove them afterwards with `reset_hooks()`."""
        with self.hooks(fwd_hooks, bwd_hooks, reset_hooks_end, clear_contexts) as model:
            return model.forward(*model_args, **model_kwargs)

    def get_caching_hooks(self, names_filter: NamesFilter = None, incl_bwd: bool = False, device=None,
                          remove_batch_dim: bool = False, cache: dict | None = None):
        """(cache, fwd_hooks, bwd_hooks): hooks that store each chosen activation in `cache` under its name.

        Gradients are stored as "<name>_grad". The hooks are returned, not attached.
        """
        cache = {} if cache is None else cache
        wanted = _as_filter(names_filter)
        self.is_caching = True

        def save(tensor, hook, is_backward=False):
            stored = tensor.detach().to(device)
            cache[hook.name + ("_grad" if is_backward else "")] = _drop_batch_dim(stored) if remove_batch_dim else stored

        names = [name for name in self.hook_dict if wanted(name)]
        fwd = [(name, partial(save, is_backward=False)) for name in names]
        bwd = [(name, partial(save, is_backward=True)) for name in names] if incl_bwd else []
        return cache, fwd, bwd

    def run_with_cache(self, *model_args, names_filter: NamesFilter = None, device=None,
                       remove_batch_dim: bool = False, incl_bwd: bool = False, reset_hooks_end: bool = True,
                       clear_contexts: bool = False, **model_kwargs):
        """(output, cache): one forward pass, every chosen activation kept by hook name.

        cache["blocks.0.attn.hook_pattern"] is the tensor that passed that point, detached,
        [batch, ...] (or without the batch dimension, for a batch of one, with
        `remove_batch_dim=True`). With `incl_bwd=True` the output (a scalar) is also
        back-propagated and gradients are kept as "<name>_grad".
        """
        if remove_batch_dim and model_args and isinstance(model_args[0], torch.Tensor):
            batch = model_args[0].shape[0] if model_args[0].ndim > 0 else 1
            assert batch == 1, f"Cannot remove batch dimension from cache with batch size {batch}"
        cache, fwd, bwd = self.get_caching_hooks(names_filter, incl_bwd, device, remove_batch_dim=remove_batch_dim)
        with self.hooks(fwd_hooks=fwd, bwd_hooks=bwd, reset_hooks_end=reset_hooks_end, clear_contexts=clear_contexts):
            out = self(*model_args, **model_kwargs)
            if incl_bwd:
                out.backward()
        return out, cache
