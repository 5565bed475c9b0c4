"""The rollout is back-end neutral: over an HTTP back-end it must not pull in torch or transformers' models."""

import subprocess
import sys


def test_the_rollout_and_the_openai_backend_do_not_import_torch():
    code = (
        "import sys\n"
        "import zerosearch.rollout, zerosearch.generation.openai, zerosearch.engines.remote\n"
        "print(sorted(m for m in ('torch', 'transformers.modeling_utils') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
