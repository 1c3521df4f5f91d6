"""Sweep items (one combination of the axes) and their identity, a stable hash used to resume."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..images import MAX_ARRAY_PIXELS, ImageInput

__all__ = ["IDENTITY_VERSION", "Item", "build_items", "digest_image", "digest_source", "source_label"]

IDENTITY_VERSION = 1  # bump when the measurement changes, so old rows are not taken for new ones
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Item:
    """One combination: what is set on a session, and where its session's frames come from."""

    index: int  # position in this sweep's order (source, prompt, image, seed, repeat)
    prompt: str | None
    image: ImageInput | None
    label: str  # the image's short name
    source: object
    source_label: str
    source_id: str  # the source's digest: lanes compare sources by it
    seed: int | None
    repeat: int
    key: str  # the identity: a hash of everything that makes the result (see item_key)
    arm: str | None = None  # the arm's name in an arms sweep (one item per combination and arm)
    group: int = 0  # the combination's place: an arms sweep's items of one combination run together

    @property
    def stem(self) -> str:
        """File name stem of the item's snapshot/clip; the key part keeps repeats and resumed runs apart."""
        arm = "" if self.arm is None else f"_{_slug(self.arm)}"
        return f"{self.index:02d}_{_slug(self.prompt or 'no-prompt')}_{_slug(self.label)}{arm}_{self.key[:8]}"

    def describe(self) -> dict[str, object]:
        """The item's axes as row values (also what a metrics hook is told)."""
        return {
            "index": self.index,
            "key": self.key,
            "prompt": self.prompt or "",
            "image": self.label,
            "source": self.source_label,
            "arm": self.arm,
            "seed": self.seed,
            "repeat": self.repeat,
        }


def build_items(
    prompts: Sequence[str | None],
    images: Sequence[ImageInput | None],
    labels: Sequence[str],
    sources: Sequence[object],
    seeds: Sequence[int | None],
    repeats: int,
    settings: Mapping[str, object],
    arms: Sequence[tuple[str, Mapping[str, object]]] | None = None,
) -> list[Item]:
    """Every combination, source-major (a session serves one source: fewer reconnections). With
    `arms` ((name, identity) pairs), one item per combination and arm, the arms of a combination
    next to each other; the arm's identity is part of the key, so a resumed run never takes
    another arm's row (a plain sweep's keys are as before: older folders resume)."""
    per_arm: Sequence[tuple[str | None, Mapping[str, object] | None]] = arms or [(None, None)]
    image_digests = [digest_image(i) for i in images]
    items: list[Item] = []
    seen: dict[str, int] = {}  # the same combination twice (a repeated prompt) is two items
    group = -1
    for source in sources:
        src_digest, src_label = digest_source(source), source_label(source)
        for prompt in prompts:
            for image, label, img_digest in zip(images, labels, image_digests, strict=True):
                for seed in seeds:
                    for repeat in range(repeats):
                        group += 1
                        for arm, arm_ident in per_arm:
                            ident: dict[str, object] = {
                                "prompt": prompt,
                                "image": img_digest,
                                "source": src_digest,
                            }
                            ident |= {"seed": seed, "repeat": repeat}
                            if arm_ident is not None:
                                ident["arm"] = arm_ident
                            key = item_key(ident, settings)
                            seen[key] = seen.get(key, -1) + 1
                            if seen[key]:
                                key = item_key(ident | {"occurrence": seen[key]}, settings)
                            items.append(
                                Item(
                                    len(items),
                                    prompt,
                                    image,
                                    label,
                                    source,
                                    src_label,
                                    src_digest,
                                    seed,
                                    repeat,
                                    key,
                                    arm,
                                    group,
                                )
                            )
    return items


def item_key(ident: Mapping[str, object], settings: Mapping[str, object]) -> str:
    blob = json.dumps({"v": IDENTITY_VERSION, **ident, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def digest_image(image: ImageInput | None) -> str:
    """The image's content, not its name: a re-saved file with other pixels is another item."""
    if image is None:
        return "none"
    h = hashlib.sha256()
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():  # a URL, a missing file: it fails its row; its text is its identity
            return "text:" + str(image)
        _hash_file(h, path)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        h.update(bytes(image))
    elif isinstance(image, np.ndarray):
        if image.ndim >= 2 and image.shape[0] * image.shape[1] > MAX_ARRAY_PIXELS:
            return f"array:{image.shape}{image.dtype}"  # its row fails in load_image, uncopied
        h.update(f"{image.shape}{image.dtype}".encode())
        for row in image if image.ndim else (image,):  # a row at a time: a broadcast view stays small
            h.update(np.ascontiguousarray(row).tobytes())
    elif isinstance(image, Image.Image):
        h.update(f"{image.mode}{image.size}".encode())
        h.update(image.tobytes())
    else:
        return "repr:" + repr(image)[:200]
    return h.hexdigest()


def digest_source(source: object) -> str:
    """'pattern'/'camera' by name, a file or an image by its content, anything else by its label."""
    if isinstance(source, (Image.Image, np.ndarray)):
        return digest_image(source)
    if (
        isinstance(source, (str, os.PathLike))
        and str(source) not in ("pattern", "camera")
        and Path(source).is_file()
    ):
        h = hashlib.sha256()
        _hash_file(h, Path(source))
        return h.hexdigest()
    return "label:" + source_label(source)


def source_label(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    return type(source).__name__


def _hash_file(h: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"
