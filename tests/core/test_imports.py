"""nnexp.core stands alone: NumPy and the standard library only."""

import ast
import subprocess
import sys
from pathlib import Path

import nnexp.core

CORE = Path(nnexp.core.__file__).parent


def test_importing_core_imports_neither_hydra_nor_mlflow():
    code = ("import nnexp.core, sys; "
            "assert 'hydra' not in sys.modules and 'mlflow' not in sys.modules; "
            "assert not [m for m in sys.modules if m.startswith(('sklearn', 'omegaconf'))]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_core_modules_import_only_numpy_the_standard_library_and_each_other():
    allowed = set(sys.stdlib_module_names) | {"numpy", "__future__"}
    for source in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed or name.startswith("nnexp.core"), \
                    f"{source.name} imports {name}"


def test_the_public_api():
    for name in ["MLP", "SGD", "Momentum", "Nesterov", "RMSprop", "Adam", "AdaGrad", "EarlyStopping",
                 "fit", "gradcheck", "evaluate", "History", "Constant", "StepDecay", "ExponentialDecay",
                 "InverseTimeDecay", "ACTIVATIONS", "OUTPUTS", "LOSSES", "INITIALIZERS",
                 "VALID_OUTPUT_LOSS", "check_output_loss", "accuracy"]:
        assert hasattr(nnexp.core, name), name
    assert sorted(nnexp.core.__all__) == sorted(set(nnexp.core.__all__))
