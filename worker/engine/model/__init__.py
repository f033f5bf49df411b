"""The model as loaded, read-only after: finding and loading a checkpoint (architecture,
weights, precision, the multilingual tokenizer), voice conditioning, and the random-weight
checkpoints tests and benchmarks run on.
"""
