"""Stage recipes: the fixtures that build each stage, usable outside pytest.

A stage's ``conftest.py`` declares its build steps with ``@recipe.fixture``.
Each step is an ordinary pytest fixture (tests ask for it by name) *and* a
recorded step of the stage's ``Recipe``, so ``cnilab demo`` and the workbook
run exactly the code the tests run. Steps take the ``lab`` and earlier steps
as arguments, by name, like fixtures do.

A later stage builds on an earlier one with ``Recipe(4, ..., base=3)`` and
``recipe.reuse("bridge", "pods")``: the topology is written once, in stage 03.
"""

from __future__ import annotations

import contextvars
import dis
import functools
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from ..core.errors import LabError, Todo
from .stages import stage_dir  # noqa: F401 -- also this module's API (workbooks, cli)


#: The hook of the build in progress (a demo's narration); helpers announce themselves to it.
_on_step: contextvars.ContextVar[Callable[[str, Callable[..., Any] | None], Any] | None] = \
    contextvars.ContextVar("cnilab_on_step", default=None)


class Recipe:
    def __init__(self, stage: int, title: str, *, base: int | None = None, here: str | Path | None = None):
        """``here``: the stage's conftest.py (its ``__file__``); a later stage finds its base beside it."""
        self.stage, self.title = stage, title
        if here is None:  # workbooks exported before ``here`` existed: their caller's file
            here = sys._getframe(1).f_globals["__file__"]
        self.path = Path(here).resolve()
        self.steps: dict[str, Callable[..., Any]] = {}
        self.traces: dict[str, Callable[..., Any]] = {}
        self.base = load_stage(base, self.path.parent.parent) if base else None

    def fixture(self, fn: Callable[..., Any]) -> Any:
        """Record ``fn`` as a build step and return it as a function-scoped pytest fixture."""
        fn._cnilab_fixture = True  # type: ignore[attr-defined]
        self.steps[fn.__name__] = fn
        return _as_fixture(fn)

    def helper(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Record a building block that takes arguments (e.g. plug one pod into a bridge); not a fixture."""
        @functools.wraps(fn)
        def announced(*args: Any, **kwargs: Any) -> Any:
            hook = _on_step.get()
            if hook is None:
                return fn(*args, **kwargs)
            hook(fn.__name__, fn)
            value = fn(*args, **kwargs)
            hook(fn.__name__, None)
            return value

        self.steps[fn.__name__] = announced
        return announced

    def trace(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Record a packet view of this stage: ``fn(lab)`` sends something and returns a ``Trace``.

        Tests call it and assert on its packets; ``cnilab demo`` and ``cnilab trace`` print it.
        """
        self.traces[fn.__name__] = fn
        return fn

    def reuse(self, *names: str) -> tuple[Any, ...]:
        """Fixtures for steps of the base stages, unchanged (one home per topology step)."""
        found = []
        for name in names:
            fn = self.step(name)
            self.steps.setdefault(name, fn)
            found.append(_as_fixture(fn))
        return tuple(found)

    def step(self, name: str) -> Callable[..., Any]:
        recipe: Recipe | None = self
        while recipe is not None:
            if name in recipe.steps:
                return recipe.steps[name]
            recipe = recipe.base
        raise LabError(f"Stage {self.stage:02d} has no build step named {name!r}: check the fixture name, "
                       f"or pass it to build() when it is a test parameter (e.g. {name}=...).")

    def build(self, lab: Any, *targets: str, on_step: Callable[[str, Callable[..., Any]], Any] | None = None,
              **given: Any) -> dict[str, Any]:
        """Run the steps (all, or those ``targets`` need) in dependency order; return their values.

        ``given`` supplies values that are test parameters rather than steps (e.g. ``mode="routed"``).
        ``on_step(name, fn)`` is called before each step runs and again with ``fn=None`` after it (a demo
        narrates there).
        """
        values: dict[str, Any] = {"lab": lab, **given}

        def resolve(name: str) -> Any:
            if name not in values:
                fn = self.step(name)
                args = [resolve(arg) for arg in inspect.signature(fn).parameters]
                if on_step:
                    on_step(name, fn)
                values[name] = returned(fn, fn(*args))
                if on_step:
                    on_step(name, None)
            return values[name]

        fixtures = [n for n, fn in self.steps.items() if getattr(fn, "_cnilab_fixture", False)]
        token = _on_step.set(on_step)
        try:
            for name in targets or fixtures:
                resolve(name)
        finally:
            _on_step.reset(token)
        return values


def _as_fixture(fn: Callable[..., Any]) -> Any:
    @functools.wraps(fn)
    def fixture(*args: Any, **kwargs: Any) -> Any:
        return returned(fn, fn(*args, **kwargs))

    return pytest.fixture(name=fn.__name__)(fixture)


def returned(fn: Callable[..., Any], value: Any) -> Any:
    """A build step's value; ``None`` is a forgotten ``return`` (every step returns what it built), said
    here in one sentence instead of as an AttributeError in whichever test touches it first."""
    if value is None and getattr(fn, "_cnilab_fixture", False):
        raise LabError(f"fixture `{fn.__name__}` returned None: its step must end with `return ...` "
                       "(its docstring says what it returns).")
    return value


def load_stage(stage: int, tests_dir: Path) -> Recipe:
    """The ``recipe`` of stage ``stage``, imported from its conftest.py under ``tests_dir``."""
    return load_conftest(stage_dir(stage, tests_dir) / "conftest.py").recipe


def stage_module(test_file: str) -> Any:
    """The conftest module beside ``test_file``: a test's way to its stage's constants and helpers
    (pytest's importlib mode gives conftest modules no importable name)."""
    return load_conftest(Path(test_file).resolve().parent / "conftest.py")


def load_conftest(path: Path) -> Any:
    """A stage's conftest module, executed once per process: the one pytest imported if it did, else
    imported here (and then found here again). Two copies would mean two ``recipe``s and two sets of
    classes (a stage 06 ``Node`` that is not the other's)."""
    path = Path(path).resolve()
    module = _imported(path)
    if module is None:
        modname = f"cnilab_recipes.{path.parent.name}.{abs(hash(str(path)))}"
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[modname]
            raise
    if not isinstance(getattr(module, "recipe", None), Recipe):
        raise LabError(f"{path} defines no `recipe = Recipe(...)`: every stage conftest declares its recipe.")
    return module


def _imported(path: Path) -> Any:
    """The module already imported from ``path`` (by pytest's importlib mode, or by this module), if any."""
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == path:
            return module
    return None


def todo(stage: int, fixture: str, instruction: str) -> Any:
    """What a workbook stub calls: fail with one line that says what to build and where the hint is."""
    raise Todo(f"TODO in stage {stage:02d} fixture `{fixture}`: {instruction} (hint: `cnilab hint {stage}`)",
               stage, fixture)


def steps_using(recipe: Recipe, name: str) -> set[str]:
    """The fixtures of ``recipe`` (its base stages' included) that run step or helper ``name``, directly or
    through other steps: the tests asking for any of them wait for a TODO in ``name``."""
    steps: dict[str, Callable[..., Any]] = {}
    chain: Recipe | None = recipe
    while chain is not None:
        for key, fn in chain.steps.items():
            steps.setdefault(key, fn)
        chain = chain.base

    def names(fn: Callable[..., Any]) -> set[str]:
        """The fixtures ``fn`` takes as arguments and the globals its code (nested code included) loads:
        an attribute or a local that happens to share a step's name is neither."""
        code = inspect.unwrap(fn).__code__
        found, todo = set(inspect.signature(inspect.unwrap(fn)).parameters), [code]
        while todo:
            c = todo.pop()
            found |= {i.argval for i in dis.get_instructions(c) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
            todo += [k for k in c.co_consts if inspect.iscode(k)]
        return found

    uses = {key: names(fn) & set(steps) for key, fn in steps.items()}
    reach, grew = {name}, True
    while grew:
        more = {key for key, used in uses.items() if used & reach} - reach
        reach |= more
        grew = bool(more)
    return {key for key in reach if getattr(steps.get(key), "_cnilab_fixture", False)}
