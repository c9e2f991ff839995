//! Checkpoints: safetensors files of named tensors, written atomically.
