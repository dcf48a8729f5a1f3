"""Fine-tuning in a dtype other than the foundation's (mlipft.train.foundation_in_dtype)."""

def test_foundation_cast_to_the_run_dtype(tmp_path):
    """mace_run_train cannot fine-tune across dtypes: a foundation of another dtype is cast into
    the work directory (values rounded to float32, nothing else changed); one of the run's dtype
    is used as it is."""
    import torch

    from mlipft.train import foundation_in_dtype

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4)).double()
    path = tmp_path / "f64.model"
    torch.save(model, path)
    assert foundation_in_dtype(str(path), "float64", tmp_path) == str(path)
    cast = foundation_in_dtype(str(path), "float32", tmp_path)
    assert cast == str(tmp_path / "foundation.float32.model")
    loaded = torch.load(cast, weights_only=False)
    weight = loaded[0].weight
    assert weight.dtype == torch.float32
    assert torch.equal(weight, model[0].weight.float())
    assert foundation_in_dtype(cast, "float32", tmp_path) == cast
