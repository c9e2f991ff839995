//! How official PyTorch state-dict names map to recur's parameter names
//! (specs/checkpoint-keys.md, "Prefix rules" and "Dtypes and kinds").

/// The wrappers the official code puts in front of a module's own names, outermost first:
/// `torch.compile` adds `_orig_mod.`, the loss head `model.`, the ACT wrapper `inner.`.
pub const OFFICIAL_PREFIXES: [&str; 3] = ["_orig_mod.", "model.", "inner."];

/// Persistent buffers of the official models: saved in checkpoints but not parameters (not
/// trained by the optimizer, not counted in parameter totals, not EMA-averaged).
pub const PERSISTENT_BUFFERS: [&str; 3] = ["H_init", "L_init", "puzzle_emb.weights"];

/// Strips `_orig_mod.`, then `model.`, then `inner.`, each only if present, so
/// `_orig_mod.model.inner.q_head.bias`, `model.inner.q_head.bias`, `inner.q_head.bias` and
/// `q_head.bias` all become `q_head.bias`.
pub fn strip_official_prefix(name: &str) -> &str {
    OFFICIAL_PREFIXES.iter().fold(name, |rest, prefix| {
        rest.strip_prefix(prefix).unwrap_or(rest)
    })
}

/// True for the non-persistent buffers a loader recomputes instead of reading, given a stripped
/// name: the rotary tables (`rotary_emb.cos_cached`, `rotary_emb.sin_cached`) and the puzzle
/// embedding's training scratch (`puzzle_emb.local_weights`, `puzzle_emb.local_ids`).
/// Checkpoints written from `state_dict()` never contain them, but dumps of all buffers (like the
/// golden fixture's `buffers_nonpersistent.safetensors`) do.
pub fn is_non_persistent(stripped_name: &str) -> bool {
    stripped_name.starts_with("rotary_emb.") || stripped_name.starts_with("puzzle_emb.local_")
}

/// True for a known persistent buffer, given a stripped name.
pub fn is_persistent_buffer(stripped_name: &str) -> bool {
    PERSISTENT_BUFFERS.contains(&stripped_name)
}
