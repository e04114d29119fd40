"""Training: Bisig & Wegner's recipe (seed 003 §3.3) on folder-per-class data sets.

`audiodream train DATA_DIR --arch model2 --out models/NAME --epochs N` loads the
clips, trains with a seeded stratified 80/20 split, checkpoints every epoch
(resumable), and writes a safetensors weight file plus a JSON model card.
"""
