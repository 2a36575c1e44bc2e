#!/usr/bin/env python3
"""Counts the engine's public items from rustdoc's JSON: every item a user can name, reached from
the crate root through public modules and re-exports (modules, types, fields, variants,
functions and methods of inherent impls, traits and their items, constants, aliases). Trait
impls are not counted: they add no name. `make public-items` runs it on default features.

Usage: public-items.py target/doc/dynamodb_outbox.json [--list]
"""
import json
import sys
from collections import Counter

# The shapes (rustdoc's `kind` of a struct or a variant) whose fields are counted: a struct's
# named fields and tuple positions, a variant's named fields (not a tuple variant's positions).
FIELD_SHAPES = {"struct": ("plain", "tuple"), "variant": ("struct",)}


def fields(shape, counted):
    """The field ids of a struct's or a variant's `shape` if it is one of the `counted` shapes: a
    unit shape is a bare string, a tuple a list with None for each hidden position, and a shape
    with named fields holds them under `fields`."""
    for key in counted:
        if isinstance(shape, dict) and key in shape:
            found = shape[key]
            return [f for f in found if f is not None] if key == "tuple" else found["fields"]
    return []


def main() -> None:
    doc = json.load(open(sys.argv[1]))
    index = doc["index"]
    seen, counts, names = set(), Counter(), []

    def kind_of(item):
        return next(iter(item["inner"]))

    def walk(item_id, path):
        if item_id in seen or str(item_id) not in index:
            return
        seen.add(item_id)
        item = index[str(item_id)]
        kind = kind_of(item)
        inner = item["inner"][kind]
        if kind == "use":
            if inner.get("id") is not None:
                walk(inner["id"], path)
            return
        if kind == "impl":
            if inner.get("trait") is None:
                for child in inner["items"]:
                    if index.get(str(child), {}).get("visibility") == "public":
                        walk(child, path)
            return
        name = f"{path}::{item.get('name')}"
        counts[kind] += 1
        names.append(f"{name} ({kind})")
        children = []
        if kind in ("module", "trait"):
            children = inner["items"]
        elif kind == "enum":
            children = inner["variants"] + inner["impls"]
        elif kind in FIELD_SHAPES:
            children = fields(inner["kind"], FIELD_SHAPES[kind]) + inner.get("impls", [])
        for child in children:
            walk(child, name)

    walk(doc["root"], "")
    print(sum(counts.values()), "public items:", dict(sorted(counts.items())))
    if "--list" in sys.argv:
        print("\n".join(sorted(names)))


if __name__ == "__main__":
    main()
