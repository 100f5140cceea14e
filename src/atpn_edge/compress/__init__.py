"""Compression: PT2E int8 quantization (pt2e.py), pruning and recipes.

    recipe.py       YAML recipes -> typed frozen configs (load_recipe)
    quantize.py     ptq(), qat(), save_quantized()/load_quantized() (.pt2 + JSON sidecar)
    prune.py        prune_channels() (torch-pruning DepGraph), pruned checkpoints, load_any_checkpoint()
    finetune.py     finetune(): the trainer's loss/batching with a per-epoch atomic state file
    sensitivity.py  per-unit int8 sensitivity table and chart

Running a recipe end to end (these steps, then export and measurement) is atpn_edge.runner's job:
compress/ never imports export/.
"""
