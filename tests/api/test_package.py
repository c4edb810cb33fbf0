"""Package boundaries: the contract is import-light, and serving runs with the serving category of the lock alone."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What only [training] in the Pipfile brings; the serving image must do without every one of them.
TRAINING_ONLY = ("scipy", "implicit", "pyarrow", "optuna")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_contract_imports_without_flask_or_numpy() -> None:
    code = "import sys, api.contract; heavy = {'flask', 'numpy', 'scipy'} & set(sys.modules); assert not heavy, heavy"
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_serving_category_of_the_lock_holds_no_training_library() -> None:
    lock = json.loads((ROOT / "Pipfile.lock").read_text())
    assert not set(TRAINING_ONLY) & set(lock["default"]), "a training library leaked into [packages]"
    assert set(TRAINING_ONLY) <= set(lock["training"])


def test_every_serving_and_model_module_imports_with_training_libraries_absent() -> None:
    # sys.modules[name] = None makes `import name` raise ImportError, as in the serving image where they are absent.
    code = f"""
import importlib, pkgutil, sys
for name in {TRAINING_ONLY!r}:
    sys.modules[name] = None
import api.model, api.serving
for package in (api.model, api.serving):
    for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if module.name != "api.serving.wsgi":  # loads the model at import; its imports are checked below
            importlib.import_module(module.name)
import ast
tree = ast.parse(open("api/serving/wsgi.py").read())
for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
        importlib.import_module(node.module)
print("ok")
"""
    result = run_python(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_the_training_check_would_catch_a_training_import() -> None:
    result = run_python("import sys; sys.modules['scipy'] = None; import scipy.sparse")
    assert result.returncode != 0 and "No module named 'scipy" in result.stderr
