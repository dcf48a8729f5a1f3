"""The mini world: small, offline analogues of the paper's datasets, labelled by GFN-xTB.

Foundation level = GFN1-xTB (plays PBE / OMat24 / MPtrj); target level = GFN2-xTB (plays MP2,
revPBE-D3, wB97M). Every module here is deterministic given its seed.

Interface of a benchmark module (``sn2``, ``nacl``, ``ice``, ``spice``, ``lpsc``)::

    CARD: dict            # what it stands for in the paper: paper_counterpart, level, elements, notes
    def generate(params: dict, seed: int, out_dir: pathlib.Path) -> dict:
        '''Write the benchmark's files into out_dir and return a summary {file: n_configs}.'''

Files every benchmark writes (extxyz, canonical keys of :mod:`mlipft.keys`, target level):
``train.xyz``, ``valid.xyz``, ``test.xyz``, ``isolated_atoms.xyz``; benchmark-specific extras
(held-out sets, reference observables) are documented in the module.

Interface of the corpus module (foundation level)::

    def generate_corpus(kind: str, params: dict, seed: int, out_dir: pathlib.Path) -> dict
"""

#: The mini world's eleven elements (every corpus draws from them; the foundations know all).
ELEMENTS: tuple[str, ...] = ("H", "Li", "C", "N", "O", "F", "Na", "P", "S", "Cl", "Br")
