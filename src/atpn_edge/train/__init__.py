"""Training: config, data plumbing, losses, the trainer and checkpoints."""
