"""The package as a whole: layers that only import downwards, every entry point a Hydra app with
one command-line style, shell completion, and a wheel that works outside the checkout."""

import ast
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "segexp"
PLUGINS = REPO / "hydra_plugins"  # segexp's Hydra plugins (Hydra finds plugins only there)
# Lowest first. A module may import its own package and the packages of lower layers only.
LAYERS = [
    {"errors"},
    {"ops", "storage"},
    {"config"},
    {"runtime"},
    {"data", "models", "losses", "metrics"},
    {"visual"},
    {"evaluation"},
    {"training"},
    {"sweeps", "planning"},
    {"__init__", "__main__", "train", "evaluate", "predict", "export", "audit", "report", "plan"},
]
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}
TOOLS = ["segexp", "segexp.evaluate", "segexp.predict", "segexp.export", "segexp.audit",
         "segexp.report", "segexp.plan"]  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """segexp modules imported anywhere in the file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("segexp"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("segexp"))
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_and_entry_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    names -= {"__pycache__"}
    assert names == set(LAYER), names ^ set(LAYER)


def test_lower_layers_never_import_higher_ones_or_their_neighbours():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        source = module_name(path)
        for target in imports_of(path):
            here, there = top(source), top(target)
            entry_points = LAYER[here] == LAYER[there] == len(LAYERS) - 1  # __main__ -> train
            version = target == "segexp"  # segexp/__init__.py holds only __version__
            if here != there and LAYER[there] >= LAYER[here] and not (entry_points or version):
                wrong.append(f"{source} imports {target}")
    assert not wrong, wrong


def test_no_import_cycles():
    graph = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}
    done, stack = set(), []

    def visit(node: str) -> None:
        if node in stack:
            raise AssertionError(" -> ".join([*stack[stack.index(node) :], node]))
        if node in done:
            return
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt != node and not node.startswith(f"{nxt}."):  # a package's own __init__
                visit(nxt)
        stack.pop()
        done.add(node)

    for node in graph:
        visit(node)


def misplaced_tests(tests: Path) -> list[str]:
    """Test files under ``tests`` that do not mirror the package (see test_tests_mirror_...)."""
    entry_modules = LAYERS[-1] - {"__init__", "__main__"}
    wrong = []
    for path in sorted(tests.rglob("test_*.py")):
        relative = path.relative_to(tests)
        folder, name = relative.parts[:-1], relative.stem.removeprefix("test_")
        if not folder:
            fits = name in entry_modules or relative.name in ("test_package.py", "test_docs.py")
        elif folder[0] in ("end_to_end", "faults"):  # by theme, not by module
            fits = True
        elif folder[0] == "benchmarks":
            fits = len(folder) == 1 and (REPO / "benchmarks" / f"{name}.py").is_file()
        else:
            fits = PACKAGE.joinpath(*folder, f"{name}.py").is_file()
        if not fits:
            wrong.append(str(relative))
    wrong += [
        f"{folder.relative_to(tests)}/ has no __init__.py"
        for folder in sorted({p.parent for p in tests.rglob("test_*.py")})
        if not (folder / "__init__.py").is_file()
    ]
    return wrong


def test_tests_mirror_the_package():
    """tests/<package>/test_<module>.py for segexp/<package>/<module>.py, test_<entry>.py at the top
    for an entry point; end_to_end/ and faults/ by theme; benchmarks/ for the benchmark scripts.
    Every test folder is a package: basenames repeat (data/test_checks.py, ...)."""
    assert misplaced_tests(REPO / "tests") == []


def test_console_scripts_are_declared_for_every_entry_point():
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    scripts = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"$', section, flags=re.M))
    assert scripts == {
        "segexp": "segexp.train:cli",
        "segexp-evaluate": "segexp.evaluate:main",
        "segexp-predict": "segexp.predict:main",
        "segexp-export": "segexp.export:main",
        "segexp-audit": "segexp.audit:main",
        "segexp-report": "segexp.report:main",
        "segexp-plan": "segexp.plan:main",
    }


def test_pyproject_lists_every_subpackage_and_the_configs():
    block = (REPO / "pyproject.toml").read_text().split("\npackages = [", 1)[1].split("]")[0]
    listed = set(re.findall(r'"([\w.]+)"', block))
    packages = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert not (PLUGINS / "__init__.py").exists()  # a namespace package, shared with Hydra's
    packages |= {module_name(p) for p in PLUGINS.glob("*/__init__.py")}
    conf = REPO / "conf"
    groups = {
        ".".join(("segexp", "conf", *folder.relative_to(conf).parts))
        for folder in [conf, *conf.rglob("*")]
        if folder.is_dir() and folder.name != "__pycache__"
    }
    assert listed == packages | groups


def test_trainer_settings_are_read_from_their_object_only():
    """cfg.trainer reaches code through trainer_settings (config/trainer.py), never key by key
    with a default of the reader's own."""
    by_key = re.compile(r"cfg\.trainer\.\w|trainer\.get\(|\[\"trainer\"\]\[")
    wrong = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in [*PACKAGE.rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]
        # legacy.py brings stored trainer values up to date, for the object; trainer.py is it
        if path.name not in ("legacy.py", "trainer.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if by_key.search(line)
    ]
    assert not wrong, wrong


@pytest.mark.slow
@pytest.mark.parametrize("module", TOOLS)
def test_every_entry_point_has_help_and_prints_its_config(module, tmp_path, monkeypatch, capsys):
    """In-process (the same Hydra code path as the console script, without a new interpreter)."""
    main = importlib.import_module("segexp.train" if module == "segexp" else module).main
    monkeypatch.chdir(tmp_path)
    for args, expected in ((["--help"], "== Config =="), (["--cfg", "job"], "")):
        monkeypatch.setattr(sys, "argv", [module, *args])
        try:
            main()
        except SystemExit as done:  # Hydra ends --help with exit status 0
            assert done.code in (0, None)
        out = capsys.readouterr().out
        assert expected in out and out.strip(), (module, args)
    assert not list(tmp_path.iterdir())  # neither command wrote anything


@pytest.mark.slow
def test_shell_completion_completes_a_config_key(tmp_path):
    env = {**os.environ, "COMP_LINE": "segexp trainer.ep", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "segexp", "-sc", "query=bash"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-1000:]
    assert "trainer.epochs=" in result.stdout.split()


@pytest.mark.slow
def test_the_wheel_ships_the_configs_and_runs_outside_the_checkout(tmp_path):
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name if source.exists() else _mkdir(source) / name)
    shutil.copytree(
        REPO / "segexp", source / "segexp", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO / "conf", source / "conf")
    shutil.copytree(PLUGINS, source / "hydra_plugins", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
         str(source)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("segexp-*.whl"))
    target = tmp_path / "installed"
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert (target / "segexp" / "conf" / "config.yaml").is_file()
    assert (target / "hydra_plugins" / "segexp_decide_sweeper" / "config.py").is_file()
    assert (target / "hydra_plugins" / "segexp_sweeper" / "study_sweeper.py").is_file()
    assert not (target / "hydra_plugins" / "__init__.py").exists()  # other plugins' namespace
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import segexp.config.paths as p; print(p.__file__, p.CONFIG_DIR)"],
        env=env, cwd=elsewhere, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    module_file, config_dir = where.stdout.split()
    assert module_file.startswith(str(target)) and config_dir == "pkg://segexp.conf"
    result = subprocess.run(
        [str(target / "bin" / "segexp"), "trainer=debug", "model.net.depth=2",
         "model.net.base_channels=4", "dataset.image_size=[32,32]", "logger=none"],
        env=env, cwd=elsewhere, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summaries = list(elsewhere.glob("outputs/runs/*/*/summary.json"))
    assert len(summaries) == 1 and '"status": "completed"' in summaries[0].read_text()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_docker_image_runs_what_the_tests_run():
    dockerfile = (REPO / "Dockerfile").read_text()
    makefile = (REPO / "Makefile").read_text()
    (make_torch,) = re.findall(r"^TORCH := (.+)$", makefile, re.M)
    (image_torch,) = re.findall(r'^ARG TORCH="(.+)"$', dockerfile, re.M)
    assert image_torch == make_torch.strip()
    assert re.search(r"pip install \"\.\[[^]]*\bsweep\b", dockerfile)
    (user,) = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert user not in ("root", "0")
    assert 'VOLUME ["/workspace/segexp/outputs"]' in dockerfile
    assert "benchmarks" not in (REPO / ".dockerignore").read_text().split()  # gpu.sh runs inside
