"""Running a compression recipe end to end: compress (compress/), export (export/), measure.

It sits above export/ because a recipe's last step deploys: compress/ holds the techniques and
never imports export/; this package chains them.

    run.py       run_recipe(recipe, checkpoint, out_dir, data) -> report dict; STEPS, one function per step kind
    steps.py     iterative pruning, fine-tuning, the unpruned control, mixed-precision keep-float choice
    context.py   RunContext (the run's settings and training pool), eval_set, fingerprints for resume
    scoring.py   a variant's accuracy row (evaluation set + built-in real photographs)
    deploy.py    export_and_measure: the .tflite / .onnx artifacts, each scored in its own runtime
    report.py    headline (what to ship), report.json/.md/.png, read_report
    commands.py  `atpn-edge quantize` / `atpn-edge prune`
"""
