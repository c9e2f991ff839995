#!/usr/bin/env python3
"""Convert an official HRM/TRM PyTorch checkpoint (.pt state dict) to .safetensors for recur.

Tensors are kept exactly as stored: bf16 stays bf16, fp32 stays fp32, and persistent buffers
(H_init, L_init, puzzle_emb.weights) are included. Non-persistent buffers (rotary tables, the
puzzle embedding's training scratch), which a loader recomputes, are dropped if a dump contains
them. Names are kept as they are by default (`_orig_mod.model.inner.*`), since recur's loader
strips the official prefixes itself (specs/checkpoint-keys.md, "Prefix rules").

Needs only torch and safetensors:

    python3 tools/convert_torch_checkpoint.py step_12345 -o trm.safetensors
"""

import argparse
import os
import sys
import tempfile

# Wrappers the official code puts in front of module names, outermost first.
OFFICIAL_PREFIXES = ("_orig_mod.", "model.", "inner.")
# Persistent buffers: in the checkpoint, but not parameters (not counted in parameter totals).
PERSISTENT_BUFFERS = {"H_init", "L_init", "puzzle_emb.weights"}
# Non-persistent buffers (rotary tables, puzzle-embedding training scratch), by name prefix after
# stripping: never in a state_dict(), but present in dumps of all buffers.
NON_PERSISTENT_PREFIXES = ("rotary_emb.", "puzzle_emb.local_")
# Keys under which training scripts commonly nest the state dict inside a larger dict.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "ema", "ema_state_dict")


class ConversionError(Exception):
    """A problem with the input the user can fix; reported without a traceback."""


def strip_official_prefix(name):
    for prefix in OFFICIAL_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def find_state_dict(obj, torch):
    """The name -> tensor mapping inside what torch.load returned."""
    if not isinstance(obj, dict):
        raise ConversionError(
            f"expected a state dict (a dict of tensors), got {type(obj).__name__}"
        )
    if obj and all(torch.is_tensor(v) for v in obj.values()):
        return obj
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, dict) and inner and all(torch.is_tensor(v) for v in inner.values()):
            print(f"using the state dict under key {key!r}")
            return inner
    raise ConversionError(
        "no state dict found: the file holds a dict with keys "
        f"{sorted(map(str, obj.keys()))[:20]}, none of which is a dict of tensors "
        f"(looked under {', '.join(WRAPPER_KEYS)})"
    )


def select_tensors(state_dict, strip):
    """The tensors to write, renamed if asked, and the names of dropped non-persistent buffers."""
    kept, dropped, origin = {}, [], {}
    for name, tensor in state_dict.items():
        if not isinstance(name, str):
            raise ConversionError(f"state dict key {name!r} is not a string")
        short = strip_official_prefix(name)
        if short.startswith(NON_PERSISTENT_PREFIXES):
            dropped.append(name)
            continue
        out_name = short if strip else name
        if out_name in origin:
            raise ConversionError(
                f"{origin[out_name]!r} and {name!r} both become {out_name!r} after stripping"
            )
        origin[out_name] = name
        kept[out_name] = tensor
    return kept, dropped


def prepare_for_safetensors(tensors, torch):
    """Detached, contiguous CPU tensors; tied tensors (shared storage) get their own copy,
    since safetensors refuses to write shared memory twice."""
    seen_storages = set()
    out = {}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.numel():
            storage = t.untyped_storage().data_ptr()
            if storage in seen_storages:
                t = t.clone()
            else:
                seen_storages.add(storage)
        out[name] = t
    return out


def write_atomically(path, tensors, metadata, save_file):
    """safetensors save to a temp file in the target's directory, then rename over the target,
    so an interrupted conversion never leaves a truncated file behind."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".safetensors", dir=directory)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def print_summary(tensors, dropped):
    width = max((len(n) for n in tensors), default=4)
    print(f"{'name':<{width}}  {'shape':<16}  dtype")
    for name, t in sorted(tensors.items()):
        shape = "(" + ", ".join(str(d) for d in t.shape) + ("," if t.dim() == 1 else "") + ")"
        print(f"{name:<{width}}  {shape:<16}  {str(t.dtype).replace('torch.', '')}")
    for name in dropped:
        print(f"dropped non-persistent buffer {name}")
    total = sum(t.numel() for t in tensors.values())
    params = sum(
        t.numel() for n, t in tensors.items()
        if strip_official_prefix(n) not in PERSISTENT_BUFFERS
    )
    print(f"{len(tensors)} tensors, {total:,} elements; "
          f"{params:,} parameters (excluding buffers {', '.join(sorted(PERSISTENT_BUFFERS))})")


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Convert an official HRM/TRM .pt checkpoint to .safetensors for recur.")
    p.add_argument("checkpoint", help="the .pt file written by torch.save (a state dict, "
                   "or a dict holding one)")
    p.add_argument("-o", "--output", help="the .safetensors file to write "
                   "(default: the input path with a .safetensors suffix)")
    p.add_argument("--strip-prefix", action="store_true",
                   help="strip _orig_mod., model., inner. from names (default: keep names as "
                   "they are; recur's loader strips them)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError as e:
        print(f"error: this tool needs torch and safetensors ({e})", file=sys.stderr)
        return 2

    output = args.output or os.path.splitext(args.checkpoint)[0] + ".safetensors"
    try:
        if not os.path.isfile(args.checkpoint):
            raise ConversionError(f"{args.checkpoint}: no such file")
        if os.path.abspath(output) == os.path.abspath(args.checkpoint):
            raise ConversionError(f"{output}: the output would overwrite the input")
        if os.path.exists(output) and not args.force:
            raise ConversionError(f"{output} exists; pass --force to overwrite it")
        try:
            obj = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a bad file; all mean the same here
            raise ConversionError(f"{args.checkpoint}: torch.load failed: {e}") from e
        state_dict = find_state_dict(obj, torch)
        tensors, dropped = select_tensors(state_dict, args.strip_prefix)
        if not tensors:
            raise ConversionError(f"{args.checkpoint}: the state dict holds no tensors to write")
        tensors = prepare_for_safetensors(tensors, torch)
        metadata = {
            "source": os.path.basename(args.checkpoint),
            "converted_by": "recur tools/convert_torch_checkpoint.py",
            "prefix_stripped": str(bool(args.strip_prefix)).lower(),
        }
        write_atomically(output, tensors, metadata, save_file)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print_summary(tensors, dropped)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
