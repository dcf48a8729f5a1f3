"""The conda env files pin the same versions as the pip set-up; the CUDA extras agree with each
other and with the Makefile that installs them."""

import re

import pytest
import yaml

#: Each conda environment of envs/ and the pip requirement files whose pins it carries.
ENV_FILES = {
    "mlipft.yaml": ["requirements.txt"],
    "mlipft-cuda.yaml": ["requirements.txt", "requirements-cuda13.txt"],
}
#: The cuEquivariance requirement files and the CUDA major version of the torch each one is for.
CUDA_FILES = {"requirements-cuda.txt": "12", "requirements-cuda13.txt": "13"}
#: Tools of the pip set-up that a rule's conda environment does not need.
NOT_IN_CONDA = {"snakemake", "snakemake-executor-plugin-slurm", "pytest", "pytest-xdist", "execnet"}


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _file_pins(root, name):
    return _pins((root / "envs" / name).read_text().splitlines())


def test_every_conda_env_is_known(root):
    assert sorted(p.name for p in (root / "envs").glob("*.yaml")) == sorted(ENV_FILES)


@pytest.mark.parametrize("env_name", sorted(ENV_FILES))
def test_conda_env_matches_requirements(root, env_name):
    req = {}
    for name in ENV_FILES[env_name]:
        req.update(_file_pins(root, name))
    env = yaml.safe_load((root / "envs" / env_name).read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pins = _pins(pip)
    assert conda_pins, env_name
    for name, version in conda_pins.items():
        assert req.get(name) == version, f"{env_name}: {name}=={version} but {ENV_FILES[env_name]} have {req.get(name)}"
    missing = set(req) - set(conda_pins) - NOT_IN_CONDA
    assert not missing, f"{env_name} lacks {sorted(missing)}"


def test_cuda_requirements_agree(root):
    versions = set()
    for name, cuda in CUDA_FILES.items():
        pins = _file_pins(root, name)
        assert set(pins) == {"cuequivariance", "cuequivariance-torch", f"cuequivariance-ops-torch-cu{cuda}"}, name
        versions |= set(pins.values())
    assert len(versions) == 1, f"cuEquivariance pinned at several versions: {sorted(versions)}"
    # torch itself comes from the set-up (its PyPI wheel or TORCH_INDEX's build), never from these files
    assert "torch" not in _file_pins(root, "requirements-cuda.txt")


def test_makefile_installs_the_cuda_file_of_the_torch_build(root):
    makefile = (root / "Makefile").read_text()
    for name, cuda in CUDA_FILES.items():
        assert re.search(rf"^\s*{cuda}\) req=envs/{re.escape(name)} ;;", makefile, re.M), name
    assert "install: $(STAMP) $(if $(CUDA),$(CUDA_STAMP))" in makefile


def test_installed_versions_are_the_pinned_ones(root):
    from importlib.metadata import version

    req = _file_pins(root, "requirements.txt")
    for name, pinned in req.items():
        assert version(name).split("+")[0] == pinned, name
