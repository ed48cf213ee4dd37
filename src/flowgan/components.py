"""Names and import paths resolved into modules: the edge between what a user types and what the
trainer takes.

A run's generator and critic come from one of three places, and each leaves a *recipe* in the
run's ``config.json`` and checkpoints (never a pickled module: checkpoints hold state dicts and
this recipe, read by the restricted unpickler of :mod:`flowgan.checkpoint`):

* a built-in name (``--model nice-mnist``, ``--critic dcgan-mnist``): recipe
  ``{"name": ..., "overrides": {...}}`` (:mod:`flowgan.models`, :mod:`flowgan.critics`);
* an import path ``pkg.module:factory`` or ``path/to/file.py:factory`` (``--model``,
  ``--critic``): the factory is called as ``factory(shape, **kwargs)`` with the image shape
  ``(C, H, W)`` and the keyword arguments of ``--model-option``/``--critic-option`` (values read as
  JSON); recipe ``{"factory": ..., "kwargs": {...}, "shape": [...]}``, from which ``--resume``,
  ``evaluate``, ``sample``, ``analyze``, ``report`` and ``reproduce`` rebuild the same module (a
  file path is recorded absolute);
* a module passed from Python (``flowgan.train(config, out, model=my_flow)``): recipe
  ``{"python": "<what it is>"}``; flowgan cannot rebuild it, so such a run is resumed and loaded
  from Python with the module passed again (``flowgan.train(None, out, resume=True, model=...)``,
  ``flowgan.load_model(run, model=...)``).

Every failure (an unimportable path, a factory that raises, a module that fails the generator
protocol) is one line (:class:`~flowgan.errors.FlowganError`; exit 2 from the CLI).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .errors import FlowganError
from .generator import check_generator, describe


def is_import_path(name: str) -> bool:
    """``pkg.module:factory`` or ``file.py:factory`` (a built-in name has no colon)."""
    return isinstance(name, str) and ":" in name and not name.startswith("python:")


def recorded_path(path: str) -> str:
    """The import path as a run records it: a file path made absolute (a resume may run elsewhere)."""
    where, _, attr = path.rpartition(":")
    if where.endswith(".py"):
        return f"{Path(where).expanduser().resolve()}:{attr}"
    return path


def import_factory(path: str, what: str) -> Callable:
    """The callable named by ``pkg.module:factory`` or ``file.py:factory`` (the current directory is
    searched after ``sys.path``, as ``python -m`` would)."""
    where, _, attr = path.rpartition(":")
    if not where or not attr:
        raise FlowganError(f"{what} {path!r} is not an import path of the form pkg.module:factory")
    try:
        if where.endswith(".py"):
            file = Path(where).expanduser()
            if not file.is_file():
                raise FlowganError(f"{what} {path!r}: no file {file}")
            spec = importlib.util.spec_from_file_location(f"flowgan_user_{file.stem}", file)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            try:
                module = importlib.import_module(where)
            except ModuleNotFoundError as e:
                if e.name is None or not where.startswith(e.name) or str(Path.cwd()) in sys.path:
                    raise
                sys.path.append(str(Path.cwd()))
                module = importlib.import_module(where)
    except FlowganError:
        raise
    except Exception as e:  # the user's module failed to import: say so in one line
        raise FlowganError(f"{what} {path!r} cannot be imported: {type(e).__name__}: {_first_line(e)}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise FlowganError(f"{what} {path!r}: module {where} has no callable {attr!r}")
    return factory


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else "(no message)"


def call_factory(path: str, shape, kwargs: dict[str, Any], what: str) -> nn.Module:
    """``factory(shape, **kwargs)`` of an import path, a module or a one-line error."""
    factory = import_factory(path, what)
    try:
        module = factory(tuple(int(s) for s in shape), **kwargs)
    except Exception as e:
        raise FlowganError(f"{what} factory {path} raised {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(module, nn.Module):
        raise FlowganError(f"{what} factory {path} returned a {type(module).__name__}, not a torch.nn.Module")
    return module


def import_recipe(path: str, shape, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"factory": recorded_path(path), "kwargs": dict(kwargs), "shape": [int(s) for s in shape]}


def python_recipe(module: nn.Module) -> dict[str, Any]:
    """The recipe of a module passed from Python: what it is, not how to rebuild it."""
    spec = getattr(module, "spec", None)
    return {"python": describe(module), **({"spec": spec} if isinstance(spec, dict) else {})}


def python_label(module: nn.Module) -> str:
    """``config.model``/``config.critic`` of a module passed from Python."""
    return f"python:{describe(module)}"


def rebuild_python_error(label: str, what: str) -> FlowganError:
    return FlowganError(
        f"this run's {what} ({label}) was passed from Python and cannot be rebuilt from its checkpoint; "
        f"pass the same module again (flowgan.train(None, RUN, resume=True, {what}=...), "
        "flowgan.load_model(RUN, model=...))"
    )


def build_generator(name: str, options: dict[str, Any], shape) -> tuple[nn.Module, dict[str, Any]]:
    """``(generator, recipe)`` of a built-in name or an import path, checked against the protocol."""
    if name.startswith("python:"):
        raise rebuild_python_error(name, "model")
    if is_import_path(name):
        model = call_factory(name, shape, options, "model")
        check_generator(model, shape)
        return model, import_recipe(name, shape, options)
    from .models import build_model

    try:
        model = build_model(name, shape=shape, **options)
    except (RuntimeError, ValueError, TypeError) as e:  # e.g. a negative width: torch's own message
        opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "its defaults"
        raise FlowganError(
            f"model {name} cannot be built for shape {tuple(shape)} with {opts}: {_first_line(e)}"
        ) from None
    return model, model.spec


def generator_from_recipe(recipe: dict[str, Any]) -> nn.Module:
    """Rebuild a generator from the recipe in a checkpoint (``model_spec``), of any version."""
    if "factory" in recipe:
        model = call_factory(recipe["factory"], recipe["shape"], recipe.get("kwargs", {}), "model")
        check_generator(model, tuple(recipe["shape"]))
        return model
    if "python" in recipe:
        raise rebuild_python_error(f"python:{recipe['python']}", "model")
    from .models import model_from_spec

    return model_from_spec(recipe)


def build_critic_module(name: str, options: dict[str, Any], shape, model_name: str) -> tuple[nn.Module, dict]:
    """``(critic, recipe)`` of ``--critic`` (``auto``: the paper's critic for the data shape and
    model size, :func:`flowgan.critics.default_critic`; the small one for a generator of one's own)."""
    from .critics import CRITIC_SIZE, build_critic, default_critic

    if name.startswith("python:"):
        raise rebuild_python_error(name, "critic")
    if is_import_path(name):
        critic = call_factory(name, shape, options, "critic")
        return critic, import_recipe(name, shape, options)
    if name == "auto":
        name = default_critic(shape, model_name if model_name in CRITIC_SIZE else "nice-small")
    try:
        critic = build_critic(name, shape, **options)
    except (RuntimeError, ValueError, TypeError) as e:
        raise FlowganError(f"critic {name} cannot be built for shape {tuple(shape)}: {_first_line(e)}") from None
    return critic, critic.spec


def check_critic(critic: nn.Module, shape, device: torch.device) -> None:
    """A critic maps a batch of images ``(N, C, H, W)`` to one score per image (``(N,)`` or
    ``(N, 1)``); anything else is refused in one line before training starts."""
    if not isinstance(critic, nn.Module):
        raise FlowganError(f"critic {type(critic).__name__} is not a torch.nn.Module")
    x = torch.full((2, *shape), 0.5, device=device, dtype=torch.float32)
    was_training = critic.training
    critic.eval()  # no batch statistics updated by this probe
    try:
        with torch.no_grad():
            out = critic(x)
    except Exception as e:
        dims = ", ".join(map(str, shape))
        raise FlowganError(
            f"critic {type(critic).__name__} fails on images of shape (2, {dims}): {type(e).__name__}: {_first_line(e)}"
        ) from None
    finally:
        critic.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) not in ((2,), (2, 1)):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise FlowganError(
            f"critic {type(critic).__name__} must map (N, C, H, W) images to (N,) scores, got {got} for N=2"
        )
