"""The bytes a compiled step moves through collectives, by kind, read from its optimized HLO.

`--dry_run` reports them (research/train/plan.py) so that a layout that gathers activations
instead of weights shows before a run pays for it. Each collective counts the bytes of its
result on one device (an all-gather's gathered array, an all-reduce's reduced one); one inside
a loop (scanned blocks, gradient accumulation) counts once per iteration, by the trip count XLA
records on the loop. Asynchronous pairs (`all-gather-start`/`-done`) count once, at `-done`.

Written here because neither JAX nor XLA's Python API reports collective traffic; the HLO text
is the compiled step's own record of it.
"""

import math
import re

KINDS = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4,
          "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
_HEADER = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_INSTRUCTION = re.compile(r"=\s*(.*?)\s([a-z][\w\-]*)\(")
_ARRAY = re.compile(r"\b([a-z]+\d*(?:e\d+m\d+\w*)?)\[([\d,]*)\]")
_CALLEES = re.compile(r"\b(?:to_apply|calls|body)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')


def _array_bytes(type_text: str) -> int:
    total = 0
    for dtype, dims in _ARRAY.findall(type_text):
        size = _BYTES.get(dtype, 1 if dtype.startswith("f8") else None)
        if size is not None:
            total += size * math.prod(int(d) for d in dims.split(",") if d)
    return total


def _kind(opcode: str) -> str | None:
    """The collective an opcode is (counted at `-done` for an asynchronous pair), or None."""
    if opcode.endswith("-start"):
        return None
    base = opcode.removesuffix("-done")
    return base if base in KINDS else None


def collective_bytes(hlo_text: str) -> dict[str, int]:
    """Bytes moved by each kind of collective in one execution of the module `hlo_text` (the
    optimized HLO of a compiled step: `compiled.as_text()`), per device."""
    computations: dict[str, list[str]] = {}
    entry, current = None, None
    for line in hlo_text.splitlines():
        header = _HEADER.match(line)
        if header and not line.startswith(" "):
            current = header[1]
            computations[current] = []
            if line.startswith("ENTRY"):
                entry = current
        elif current is not None and line.strip() != "}":
            computations[current].append(line)
    totals: dict[str, dict[str, int]] = {}

    def total(name: str) -> dict[str, int]:
        if name in totals:
            return totals[name]
        totals[name] = sums = dict.fromkeys(KINDS, 0)  # Placed first: a cycle counts nothing twice.
        for line in computations.get(name, ()):
            instruction = _INSTRUCTION.search(line)
            if instruction is None:
                continue
            type_text, opcode = instruction.groups()
            kind = _kind(opcode)
            if kind is not None:
                sums[kind] += _array_bytes(type_text)
            times = 1
            if opcode == "while":
                trip = _TRIP_COUNT.search(line)
                times = int(trip[1]) if trip else 1
            callees = _CALLEES.findall(line)
            branches = _BRANCHES.search(line)
            for callee in callees:
                for key, value in total(callee).items():
                    sums[key] += times * value
            if branches:  # One branch runs: the most a branch moves.
                options = [total(b.strip().lstrip("%")) for b in branches[1].split(",") if b.strip()]
                for key in KINDS:
                    sums[key] += max((option[key] for option in options), default=0)
        return sums

    if entry is None:
        raise ValueError("no ENTRY computation in the HLO text")
    return dict(total(entry))
