"""The one place where the SEEM decoder draws random numbers.

SEEM's interactive decoding is stochastic: prompt points are subsampled when a prompt has more
pixels than ``MAX_SPATIAL_LEN``, v1 copies randomly chosen object queries into its spatial
queries, and v1 assigns its memory tokens to objects at random. Every such choice goes through a
:class:`Sampler`, so that

* :class:`TorchSampler` with a seed gives the app reproducible answers (same prompts, same image,
  same mask), and without a seed or generator follows torch's global generator, which reproduces
  the official code's draws after the same ``torch.manual_seed``;
* :class:`ReplaySampler` feeds recorded draws (the fixtures' ``rng_calls``) back in order;
* :class:`RecordingSampler` draws like :class:`TorchSampler` and records every draw (multinomial,
  randint, randperm) in the same format, so its ``calls`` replay through :class:`ReplaySampler`.

All draws are made on the CPU (index tensors are tiny) and returned as int64 CPU tensors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import torch
from torch import Tensor


class Sampler(Protocol):
    """Source of every random choice of the decoder."""

    def multinomial(self, probs: Tensor, num_samples: int, replacement: bool) -> Tensor:
        """Indices (num_samples,) int64 drawn from the 1-D weights ``probs``."""
        ...

    def randint(self, high: int, size: int) -> Tensor:
        """(size,) int64 uniform in [0, high)."""
        ...

    def randperm(self, n: int) -> Tensor:
        """A random permutation (n,) int64 of 0..n-1."""
        ...


class TorchSampler:
    """Draws with a torch CPU generator.

    ``TorchSampler(seed)`` owns a generator seeded once (reproducible sequence of answers);
    ``TorchSampler(generator=g)`` uses ``g``; ``TorchSampler()`` uses torch's global generator.
    """

    def __init__(self, seed: int | None = None, generator: torch.Generator | None = None) -> None:
        if seed is not None and generator is not None:
            raise ValueError("give a seed or a generator, not both")
        if seed is not None:
            generator = torch.Generator(device="cpu")
            generator.manual_seed(int(seed))
        self.generator = generator

    def multinomial(self, probs: Tensor, num_samples: int, replacement: bool) -> Tensor:
        return torch.multinomial(probs.cpu(), num_samples, replacement=replacement, generator=self.generator)

    def randint(self, high: int, size: int) -> Tensor:
        return torch.randint(0, high, (size,), generator=self.generator)

    def randperm(self, n: int) -> Tensor:
        return torch.randperm(n, generator=self.generator)


class RecordingSampler(TorchSampler):
    """A :class:`TorchSampler` that records each draw as ``{"fn", "args", "kwargs", "out"}``
    (the fixtures' ``rng_calls`` format) in :attr:`calls`, in call order."""

    def __init__(self, seed: int | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__(seed, generator)
        self.calls: list[dict[str, Any]] = []

    def _record(self, fn: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> Tensor:
        self.calls.append({"fn": f"torch.{fn}", "args": args, "kwargs": kwargs, "out": out.clone()})
        return out

    @property
    def draws(self) -> list[Tensor]:
        """The drawn tensors alone, in order."""
        return [c["out"] for c in self.calls]

    def multinomial(self, probs: Tensor, num_samples: int, replacement: bool) -> Tensor:
        out = super().multinomial(probs, num_samples, replacement)
        return self._record("multinomial", (probs.detach().cpu().clone(), num_samples),
                            {"replacement": replacement}, out)

    def randint(self, high: int, size: int) -> Tensor:
        return self._record("randint", (0, high, (size,)), {}, super().randint(high, size))

    def randperm(self, n: int) -> Tensor:
        return self._record("randperm", (n,), {}, super().randperm(n))


class ReplayError(RuntimeError):
    """The decoder asked for a draw that does not match the next recorded one."""


class ReplaySampler:
    """Replays recorded draws in order.

    ``calls``: records with ``fn`` (``"torch.multinomial"``, ``"torch.randint"``,
    ``"torch.randperm"``) and ``out`` (the drawn tensor), e.g. a fixture's ``rng_calls``.
    A mismatch in kind or size raises :class:`ReplayError` (the call order diverged).
    """

    def __init__(self, calls: Iterable[Mapping[str, Any]]) -> None:
        self.calls = list(calls)
        self.position = 0

    @property
    def exhausted(self) -> bool:
        return self.position == len(self.calls)

    def _next(self, fn: str, size: int, first_arg: Any = None, replacement: bool | None = None) -> Tensor:
        if self.position >= len(self.calls):
            raise ReplayError(f"no recorded draw left for {fn} (used {self.position})")
        call = self.calls[self.position]
        name = str(call["fn"]).split(".")[-1]
        out = torch.as_tensor(call["out"]).to(torch.int64).cpu()
        where = f"draw {self.position}: decoder asked for {fn}({size})"
        if name != fn or out.numel() != size:
            raise ReplayError(f"{where}, record has {name}({out.numel()})")
        # When the record carries the call's arguments, they must agree too.
        args, kwargs = call.get("args") or (), call.get("kwargs") or {}
        if first_arg is not None and args:
            rec = args[0]
            rec_n = rec.numel() if isinstance(rec, Tensor) else rec
            if isinstance(rec_n, int) and rec_n != first_arg:
                raise ReplayError(f"{where} over {first_arg}, record drew over {rec_n}")
        if replacement is not None and "replacement" in kwargs and bool(kwargs["replacement"]) != replacement:
            raise ReplayError(f"{where} with replacement={replacement}, record differs")
        self.position += 1
        return out.reshape(size)

    def multinomial(self, probs: Tensor, num_samples: int, replacement: bool) -> Tensor:
        return self._next("multinomial", num_samples, probs.numel(), replacement)

    def randint(self, high: int, size: int) -> Tensor:
        out = self._next("randint", size)
        if size and (out.min() < 0 or out.max() >= high):
            raise ReplayError(f"recorded randint values out of range [0, {high})")
        return out

    def randperm(self, n: int) -> Tensor:
        return self._next("randperm", n)
