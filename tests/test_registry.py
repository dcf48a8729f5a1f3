"""The strategy registry: exact mace_run_train arguments and the traps of mace-torch 0.3.16."""

import pytest

from mlipft import registry
from mlipft.mace_flags import load_snapshot, snapshot_from_parser
from mlipft.registry import RegistryError, RunSpec, build_args, strategy_from_config

E0S = {1: -10.7, 6: -48.8}


def run(**kw):
    base = dict(name="r", seed=3, train_file="t.xyz", valid_file="v.xyz", e0s=E0S, out_dir="out",
                max_num_epochs=7, batch_size=4, foundation_model="f.model", replay_file="replay.xyz",
                num_samples_pt=50, common={"loss": "huber", "energy_weight": 10.0})
    base.update(kw)
    return RunSpec(**base)


def args_of(config, name, **kw):
    return build_args(strategy_from_config(name, config["strategies"][name]), run(**kw))


def flag(args, key):
    hits = [a.split("=", 1)[1] for a in args if a.startswith(f"--{key}=")]
    assert len(hits) <= 1, f"--{key} given twice"
    return hits[0] if hits else None


def test_snapshot_matches_installed_mace():
    assert load_snapshot() == snapshot_from_parser()


def test_eight_paper_strategies(config):
    assert list(config["strategies"]) == ["scratch", "naive", "freeze5", "freeze6", "lora", "replay",
                                          "pseudolabel", "replay_lora"]


@pytest.mark.parametrize("name,expected", [
    ("scratch", {"lr": "0.01", "ema_decay": "0.99", "clip_grad": "10.0", "foundation_model": None,
                 "multiheads_finetuning": None, "pt_train_file": None, "num_channels": "16"}),
    ("naive", {"lr": "0.001", "ema_decay": "0.999", "clip_grad": "1.0", "foundation_model": "f.model",
               "multiheads_finetuning": "False", "freeze": None, "lora": None, "num_channels": None}),
    ("freeze5", {"freeze": "5", "multiheads_finetuning": "False", "lr": "0.001"}),
    ("freeze6", {"freeze": "6", "multiheads_finetuning": "False"}),
    ("lora", {"lora": "True", "lora_rank": "4", "lora_alpha": "1.0", "lr": "0.01", "ema_decay": "0.99",
              "clip_grad": "10.0", "multiheads_finetuning": "False"}),
    ("replay", {"multiheads_finetuning": "True", "pt_train_file": "replay.xyz", "num_samples_pt": "50",
                "lr": "0.0001", "ema_decay": "0.9999", "force_mh_ft_lr": "True", "pseudolabel_replay": None}),
    ("pseudolabel", {"multiheads_finetuning": "True", "pseudolabel_replay": "True", "force_mh_ft_lr": "True"}),
    ("replay_lora", {"multiheads_finetuning": "True", "lora": "True", "lora_rank": "4", "force_mh_ft_lr": "True"}),
])
def test_exact_arguments(config, name, expected):
    scratch = config["foundations"]["omat_medium"]["model"]
    args = args_of(config, name, scratch_model=scratch)
    for key, value in expected.items():
        assert flag(args, key) == value, key
    assert "--ema" in args  # ema_decay means nothing without --ema
    assert flag(args, "E0s") == "{1: -10.7, 6: -48.8}"
    assert flag(args, "energy_key") == "REF_energy" and flag(args, "forces_key") == "REF_forces"
    assert flag(args, "max_num_epochs") == "7" and flag(args, "seed") == "3"
    assert flag(args, "loss") == "huber"


def test_multihead_is_always_explicit(config):
    for name in config["strategies"]:
        args = args_of(config, name)
        uses = config["strategies"][name]["uses_foundation"]
        assert (flag(args, "multiheads_finetuning") is not None) == uses


def test_multihead_without_replay_file_is_an_error(config):
    with pytest.raises(RegistryError, match="needs a replay file"):
        args_of(config, "replay", replay_file=None)


def test_multihead_lr_without_force_flag_is_refused():
    entry = {"uses_foundation": True, "multihead": True, "replay": "default", "mace_args": {"lr": 0.001}}
    with pytest.raises(RegistryError, match="force_mh_ft_lr"):
        strategy_from_config("bad", entry)


def test_unknown_flag_names_the_entry_and_suggests():
    entry = {"uses_foundation": True, "multihead": False, "mace_args": {"lorarank": 4}}
    with pytest.raises(RegistryError, match=r"strategies\.bad\.lorarank.*did you mean 'lora_rank'"):
        strategy_from_config("bad", entry)


def test_workflow_owned_flag_is_refused():
    entry = {"uses_foundation": True, "multihead": False, "mace_args": {"multiheads_finetuning": True}}
    with pytest.raises(RegistryError, match="set by the workflow"):
        strategy_from_config("bad", entry)


def test_average_e0s_refused_with_multihead(config):
    strat = strategy_from_config("replay", config["strategies"]["replay"])
    with pytest.raises(RegistryError, match="average"):
        registry.effective_e0_mode(strat, "average")


def test_scratch_overrides_e0_mode(config):
    strat = strategy_from_config("scratch", config["strategies"]["scratch"])
    assert registry.effective_e0_mode(strat, "estimated") == "isolated"


def test_a_ninth_strategy_is_a_config_edit(config):
    config["strategies"]["lora16"] = {"label": "LoRA r16", "uses_foundation": True, "multihead": False,
                                      "mace_args": {"lora": True, "lora_rank": 16, "lr": 0.01}}
    strategies = registry.strategies_from_config(config)
    args = build_args(strategies["lora16"], run())
    assert flag(args, "lora_rank") == "16"


@pytest.mark.parametrize("key,value,message", [
    ("lr", float("inf"), "x.lr: inf is not finite (mace_run_train --lr)"),
    ("lr", float("nan"), "x.lr: nan is not finite (mace_run_train --lr)"),
    ("weight_decay", float("-inf"), "x.weight_decay: -inf is not finite (mace_run_train --weight_decay)"),
    ("swa_lr", "1e999", "x.swa_lr: '1e999' is not finite (mace_run_train --swa_lr)"),
    ("clip_grad", float("inf"), "x.clip_grad: inf is not finite (mace_run_train --clip_grad)"),
])
def test_non_finite_values_are_refused(key, value, message):
    with pytest.raises(RegistryError) as err:
        registry.check_flags({key: value}, "x")
    assert str(err.value) == message


@pytest.mark.parametrize("key,value,problem", [
    ("atomic_numbers", "[1, 3, x]", "cannot be read by ast.literal_eval (mace_run_train --atomic_numbers is evaluated"),
    ("atomic_numbers", "1, 3", "not a non-empty list"),
    ("atomic_numbers", "[]", "not a non-empty list"),
    ("atomic_numbers", "[1, 0]", "0 is not an atomic number (an int in 1..118)"),
    ("atomic_numbers", "[1, 119]", "119 is not an atomic number (an int in 1..118)"),
    ("atomic_numbers", "[1, 6.0]", "6.0 is not an atomic number (an int in 1..118)"),
    ("atomic_numbers", "[1, 'H']", "'H' is not an atomic number (an int in 1..118)"),
    ("atomic_numbers", "[8, 1, 8]", "8 is listed twice"),
    ("atomic_numbers", 6, "not a non-empty list"),
    ("radial_MLP", "[64, 64", "cannot be read by ast.literal_eval (mace_run_train --radial_MLP is evaluated"),
    ("radial_MLP", "(64, 64)", "not a non-empty list"),
    ("radial_MLP", "[64, -1]", "-1 is not a positive int"),
    ("radial_MLP", "[64, True]", "True is not a positive int"),
    ("foundation_model_kwargs", "[]", "not a dictionary (got list)"),
    ("config_type_weights", "{'Default': 1.0", "cannot be read by ast.literal_eval"),
    ("embedding_specs", "total_spin", "cannot be read by ast.literal_eval"),
    ("lr_params_factors", "{'embedding_lr_factor': 0.1}", "cannot be read by json.loads"),
    ("lr_params_factors", '{"readouts_lr_factor": -1}', "readouts_lr_factor: -1 is not a finite number >= 0"),
])
def test_literal_flags_are_evaluated_and_their_structure_checked(key, value, problem):
    """mace evaluates these string flags itself, in the job: a bad one is refused at the config check."""
    with pytest.raises(RegistryError) as err:
        registry.check_flags({key: value}, "config entry x")
    message = str(err.value)
    assert message.startswith(f"config entry x.{key}: {value!r}") and problem in message, message
    assert registry.LITERALS[key][1] in message  # what is expected


@pytest.mark.parametrize("key,value", [
    ("atomic_numbers", "[1, 3, 6, 7, 8, 9, 11, 15, 16, 17, 35]"), ("radial_MLP", "[64, 64, 64]"),
    ("foundation_model_kwargs", "{}"), ("config_type_weights", '{"Default": 1.0}'),
    ("lr_params_factors", '{"embedding_lr_factor": 0.1, "readouts_lr_factor": 1}'), ("lr", 1e-3), ("clip_grad", "None"),
])
def test_good_values_pass(key, value):
    registry.check_flags({key: value}, "x")


def test_every_literal_flag_is_a_string_flag_of_mace():
    snapshot = load_snapshot()
    assert all(snapshot[key] == {"kind": "value", "type": "str"} for key in registry.LITERALS)
