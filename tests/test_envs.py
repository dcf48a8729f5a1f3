"""The conda env files pin the same versions as the pip set-up."""

import re

import yaml


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_conda_env_matches_requirements(root):
    req = _pins((root / "envs" / "requirements.txt").read_text().splitlines())
    for env_file in sorted((root / "envs").glob("*.yaml")):
        env = yaml.safe_load(env_file.read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
        conda_pins = _pins(pip)
        assert conda_pins, env_file
        for name, version in conda_pins.items():
            assert req.get(name) == version, f"{env_file.name}: {name}=={version} but requirements.txt has {req.get(name)}"
        missing = {n for n in req if n not in conda_pins} - {"snakemake", "snakemake-executor-plugin-slurm", "pytest"}
        assert not missing, f"{env_file.name} lacks {sorted(missing)}"


def test_installed_versions_are_the_pinned_ones(root):
    from importlib.metadata import version

    req = _pins((root / "envs" / "requirements.txt").read_text().splitlines())
    for name, pinned in req.items():
        assert version(name).split("+")[0] == pinned, name
