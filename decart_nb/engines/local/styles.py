"""The local model's vocabulary: styles picked by prompt words, modifiers, and prompt enhancement.

A prompt compiles to a `Look`: a handful of numbers the renderer (render.py) honours. Words
are matched case-insensitively as whole words anywhere in the prompt, so "a Watercolor painting
of a cat" picks the watercolor style. A prompt that names no style still gets its own look, drawn
from a SHA-256 of the prompt (never Python's salted hash()), so it is the same in every process.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

__all__ = [
    "ENHANCE_MAX_WORDS",
    "IDENTITY",
    "MODIFIERS",
    "STYLES",
    "Look",
    "Style",
    "compile_look",
    "enhance_prompt",
    "match_style",
]

# Prompts this long are taken as already detailed: enhancement leaves them as they are.
ENHANCE_MAX_WORDS = 12


@dataclass(frozen=True)
class Look:
    """Everything the renderer needs to know about a prompt (hashable, so tables can be cached)."""

    # luma tone curve, in this order: invert, gamma, contrast about mid grey, brightness, lift, levels
    invert: bool = False
    gamma: float = 1.0
    contrast: float = 1.0
    brightness: float = 0.0
    lift: float = 0.0
    levels: int = 0
    # colour: rotate chroma by `hue` degrees, scale by `saturation`, add `tint` (U, V), posterize
    hue: float = 0.0
    saturation: float = 1.0
    tint: tuple[float, float] = (0.0, 0.0)
    chroma_levels: int = 0
    palette: tuple[tuple[int, int, int], ...] = ()  # RGB anchors dark to light: colour from luma
    # space
    pixel: int = 0  # block size of pixel art (even; 0 = off)
    blur: int = 0  # luma box blur radius
    chroma_blur: int = 0  # chroma box blur radius at chroma resolution
    edges: float = 0.0  # dark outline strength, 0..1
    edge_threshold: int = 20
    thick_edges: bool = False
    glow: float = 0.0  # bright outline strength, 0..1
    # texture
    texture: str = ""  # "", "hatch", "halftone", "paper", "canvas", "scanlines", "grid"
    texture_amount: float = 0.0
    grain: float = 0.0
    vignette: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self == IDENTITY


IDENTITY = Look()


@dataclass(frozen=True)
class Style:
    name: str
    triggers: tuple[str, ...]
    look: Look
    enhance: tuple[str, ...] = field(default=())  # phrases enhance_prompt() adds for this style


_SEPIA = ((24, 14, 6), (110, 66, 28), (198, 160, 112), (250, 238, 212))
_GRAPHITE = ((40, 40, 46), (128, 126, 122), (252, 249, 240))
_MONO = ((0, 0, 0), (255, 255, 255))
_IRONBOW = (
    (0, 0, 16),
    (48, 0, 110),
    (150, 0, 150),
    (225, 40, 40),
    (250, 145, 0),
    (255, 225, 50),
    (255, 255, 235),
)
_NEON = ((6, 0, 24), (70, 0, 130), (235, 0, 190), (0, 225, 255), (235, 255, 255))
_PHOSPHOR = ((0, 6, 0), (0, 90, 25), (40, 225, 80), (205, 255, 205))
_BLUEPRINT = ((10, 34, 96), (24, 74, 160), (120, 178, 238), (240, 250, 255))

STYLES: tuple[Style, ...] = (
    Style(
        "anime",
        ("anime", "cartoon", "manga", "cel shaded", "cel-shaded", "ghibli", "pixar", "animated"),
        Look(
            levels=6,
            brightness=10,
            contrast=1.1,
            saturation=1.7,
            chroma_levels=12,
            blur=2,
            edges=0.85,
            edge_threshold=18,
            thick_edges=True,
        ),
        ("cel shaded", "clean line art", "vibrant colours"),
    ),
    Style(
        "sketch",
        ("pencil", "sketch", "drawing", "charcoal", "graphite"),
        Look(
            gamma=0.55,
            lift=0.35,
            blur=1,
            palette=_GRAPHITE,
            edges=1.0,
            edge_threshold=6,
            texture="hatch",
            texture_amount=0.8,
        ),
        ("graphite on paper", "fine hatching"),
    ),
    Style(
        "oil painting",
        ("oil painting", "oil paint", "oil", "impasto", "van gogh", "brushstroke", "brush strokes"),
        Look(
            blur=2,
            levels=10,
            contrast=1.15,
            saturation=1.5,
            tint=(-6.0, 8.0),
            edges=0.35,
            edge_threshold=14,
            texture="canvas",
            texture_amount=0.6,
        ),
        ("thick impasto brushstrokes", "rich pigments"),
    ),
    Style(
        "watercolor",
        ("watercolor", "watercolour", "aquarelle", "gouache"),
        Look(
            blur=2,
            brightness=28,
            contrast=0.75,
            lift=0.1,
            levels=9,
            saturation=1.15,
            chroma_blur=3,
            edges=0.4,
            edge_threshold=16,
            texture="paper",
            texture_amount=0.7,
        ),
        ("soft washes of pigment", "textured paper"),
    ),
    Style(
        "noir",
        (
            "noir",
            "film noir",
            "black and white",
            "black & white",
            "b&w",
            "monochrome",
            "grayscale",
            "greyscale",
        ),
        Look(contrast=1.55, gamma=1.15, palette=_MONO, vignette=0.55, grain=0.35),
        ("deep shadows", "film grain"),
    ),
    Style(
        "neon",
        ("neon", "cyberpunk", "synthwave", "vaporwave", "tron", "blade runner"),
        Look(
            gamma=1.8,
            contrast=1.2,
            palette=_NEON,
            glow=1.0,
            edge_threshold=14,
            thick_edges=True,
            texture="scanlines",
            texture_amount=0.5,
        ),
        ("glowing neon lights", "rain-soaked night"),
    ),
    Style(
        "vintage",
        ("vintage", "sepia", "retro", "old photo", "antique", "1920s", "daguerreotype", "old film"),
        Look(contrast=0.85, lift=0.12, gamma=1.05, palette=_SEPIA, vignette=0.5, grain=0.45),
        ("faded sepia tones", "aged photograph"),
    ),
    Style(
        "thermal",
        ("thermal", "infrared", "heat map", "heatmap", "heat vision", "predator", "flir"),
        Look(blur=1, contrast=1.1, palette=_IRONBOW),
        ("heat signature", "false colour"),
    ),
    Style(
        "pixel art",
        ("pixel art", "pixel", "pixelated", "8-bit", "8 bit", "16-bit", "retro game", "minecraft"),
        Look(pixel=8, levels=6, saturation=1.35, chroma_levels=6, texture="grid", texture_amount=0.3),
        ("crisp sprites", "limited palette"),
    ),
    Style(
        "comic",
        ("comic", "comic book", "pop art", "graphic novel", "halftone", "superhero", "marvel"),
        Look(
            levels=4,
            blur=1,
            contrast=1.2,
            saturation=1.9,
            chroma_levels=6,
            edges=1.0,
            edge_threshold=16,
            thick_edges=True,
            texture="halftone",
            texture_amount=0.7,
        ),
        ("bold ink outlines", "halftone dots"),
    ),
    Style(
        "matrix",
        ("matrix", "hacker", "terminal", "night vision", "green screen"),
        Look(
            contrast=1.3,
            palette=_PHOSPHOR,
            glow=0.5,
            edge_threshold=16,
            texture="scanlines",
            texture_amount=0.6,
        ),
        ("green phosphor glow", "digital rain"),
    ),
    Style(
        "underwater",
        ("underwater", "under water", "under the sea", "ocean", "aquarium", "deep sea"),
        Look(
            brightness=-12,
            gamma=1.1,
            contrast=0.9,
            saturation=0.8,
            tint=(22.0, -26.0),
            hue=-15.0,
            blur=1,
            chroma_blur=2,
            vignette=0.45,
        ),
        ("caustic light rays", "deep blue water"),
    ),
    Style(
        "sunset",
        ("sunset", "golden hour", "sunrise", "dusk"),
        Look(contrast=1.15, saturation=1.3, tint=(-26.0, 30.0), hue=8.0, gamma=0.92, vignette=0.35),
        ("warm orange glow", "long shadows"),
    ),
    Style(
        "negative",
        ("negative", "inverted", "invert", "x-ray", "xray"),
        Look(invert=True, saturation=-1.0, contrast=1.1),
        ("photographic negative",),
    ),
    Style(
        "blueprint",
        ("blueprint", "cyanotype", "technical drawing"),
        Look(
            gamma=2.2,
            contrast=0.6,
            brightness=-40,
            palette=_BLUEPRINT,
            glow=1.0,
            edge_threshold=12,
            texture="grid",
            texture_amount=0.25,
        ),
        ("white technical lines", "grid paper"),
    ),
    Style(
        "winter",
        ("winter", "snow", "snowy", "frozen", "arctic"),
        Look(brightness=22, lift=0.08, contrast=0.9, saturation=0.55, tint=(16.0, -10.0), blur=1),
        ("frosty air", "pale cold light"),
    ),
)


Modifier = Callable[[Look], Look]

# Words any prompt may carry (and enhance_prompt adds); each nudges the look once.
MODIFIERS: tuple[tuple[tuple[str, ...], str, Modifier], ...] = (
    (
        ("high contrast", "dramatic", "contrasty"),
        "contrast x1.25",
        lambda k: replace(k, contrast=k.contrast * 1.25),
    ),
    (
        ("low contrast", "faded", "hazy"),
        "contrast x0.8, lifted blacks",
        lambda k: replace(k, contrast=k.contrast * 0.8, lift=k.lift + 0.06),
    ),
    (("vignette",), "darker corners", lambda k: replace(k, vignette=k.vignette + 0.45)),
    (
        ("vivid", "vibrant", "saturated", "colorful", "colourful"),
        "saturation x1.3",
        lambda k: replace(k, saturation=k.saturation * 1.3),
    ),
    (
        ("muted", "desaturated", "pastel", "washed out"),
        "saturation x0.6",
        lambda k: replace(k, saturation=k.saturation * 0.6),
    ),
    (("warm", "golden"), "warmer colours", lambda k: replace(k, tint=(k.tint[0] - 9.0, k.tint[1] + 11.0))),
    (
        ("cool", "cold", "icy"),
        "cooler colours",
        lambda k: replace(k, tint=(k.tint[0] + 11.0, k.tint[1] - 9.0)),
    ),
    (("bright", "sunny", "high key"), "brighter", lambda k: replace(k, brightness=k.brightness + 18)),
    (
        ("dark", "moody", "night", "low key", "deep shadows"),
        "darker",
        lambda k: replace(k, brightness=k.brightness - 18, gamma=k.gamma * 1.1),
    ),
    (
        ("cinematic", "cinematic lighting"),
        "contrast x1.1, vignette",
        lambda k: replace(k, contrast=k.contrast * 1.1, vignette=k.vignette + 0.25),
    ),
    (("grain", "grainy", "film grain"), "film grain", lambda k: replace(k, grain=k.grain + 0.45)),
    (
        ("sharp", "detailed", "highly detailed", "crisp"),
        "stronger outlines",
        lambda k: replace(k, edges=min(1.0, k.edges + 0.2)),
    ),
)

_GENERIC_ENHANCE = ("cinematic lighting", "high contrast", "vignette", "highly detailed")


@lru_cache(maxsize=512)
def _pattern(phrase: str) -> re.Pattern[str]:
    # Whole words, optional plural "s"; "8-bit" or "b&w" match as written.
    return re.compile(r"(?<![a-z0-9])" + re.escape(phrase) + r"s?(?![a-z0-9])")


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _finds(text: str, phrase: str) -> int:
    """Where `phrase` first occurs in normalised `text`, or -1."""
    match = _pattern(phrase).search(text)
    return -1 if match is None else match.start()


def match_style(prompt: str) -> Style | None:
    """The style named in a prompt: the trigger that starts earliest wins, the longer one on a tie."""
    text = _normal(prompt)
    best: tuple[int, int, Style] | None = None
    for style in STYLES:
        for trigger in style.triggers:
            at = _finds(text, trigger)
            if at >= 0 and (best is None or (at, -len(trigger)) < (best[0], best[1])):
                best = (at, -len(trigger), style)
    return None if best is None else best[2]


def enhance_prompt(text: str) -> str:
    """A richer, deterministic variant of a short prompt: the style's own phrases plus lighting,
    contrast, vignette and detail words the renderer honours. Prompts of ENHANCE_MAX_WORDS words
    or more are returned unchanged (already detailed)."""
    base = " ".join(text.split())
    if not base or len(base.split()) >= ENHANCE_MAX_WORDS:
        return base
    style = match_style(base)
    extra = (style.enhance if style else ()) + _GENERIC_ENHANCE
    present = _normal(base)
    added = [phrase for phrase in extra if _finds(present, phrase) < 0]
    return ", ".join([base, *added])


def _fallback(text: str) -> Look:
    """A look of its own for a prompt that names no style, drawn from the prompt's SHA-256."""
    b = hashlib.sha256(text.encode("utf-8")).digest()
    unit = [x / 255.0 for x in b]
    gamma = math.exp((0.18 + 0.3 * unit[4]) * (1 if b[5] & 1 else -1))
    palette: tuple[tuple[int, int, int], ...] = ()
    if b[10] < 64:  # a duotone: a dark and a light colour from the hash
        dark = (b[11] // 3, b[12] // 3, b[13] // 3)
        light = (155 + b[14] * 100 // 255, 155 + b[15] * 100 // 255, 155 + b[16] * 100 // 255)
        palette = (dark, light)
    return Look(
        hue=40.0 + 280.0 * unit[0],  # at least 40 degrees away from the input's hues
        saturation=0.65 + 1.1 * unit[1],
        tint=(round(40 * unit[2] - 20, 1), round(40 * unit[3] - 20, 1)),
        gamma=gamma,
        contrast=0.85 + 0.5 * unit[6],
        levels=0 if b[7] < 150 else 4 + b[7] % 6,
        edges=0.0 if b[8] < 128 else 0.3 + 0.4 * (b[8] % 64) / 64,
        vignette=0.5 * unit[9],
        palette=palette,
        blur=1 if b[17] < 50 else 0,
        grain=0.3 if b[18] < 60 else 0.0,
    )


@lru_cache(maxsize=256)
def compile_look(prompt: str | None, enhance: bool = True) -> Look:
    """The look of a prompt. The style comes from the prompt as written; with `enhance` the
    modifiers are read from enhance_prompt(prompt), so a short prompt gets a richer look."""
    if prompt is None or not prompt.strip():
        return IDENTITY
    style = match_style(prompt)
    look = style.look if style else _fallback(_normal(prompt))
    words = _normal(enhance_prompt(prompt) if enhance else prompt)
    for phrases, _effect, modify in MODIFIERS:
        if any(_finds(words, phrase) >= 0 for phrase in phrases):
            look = modify(look)
    return look
