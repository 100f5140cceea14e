"""Compression: PT2E int8 quantization (pt2e.py), pruning and recipes.

    recipe.py       YAML recipes -> typed frozen configs (load_recipe)
    quantize.py     ptq(), qat(), save_quantized()/load_quantized() (.pt2 + JSON sidecar)
    prune.py        prune_channels() (torch-pruning DepGraph), pruned checkpoints, load_any_checkpoint()
    finetune.py     finetune(): the trainer's loss/batching with a per-epoch atomic state file
    sensitivity.py  per-unit int8 sensitivity table and chart
    runner.py       run_recipe(recipe, checkpoint, out_dir, data) -> report dict (report.json/.md/.png)
    commands.py     `atpn-edge quantize` / `atpn-edge prune`
"""
