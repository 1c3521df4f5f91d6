"""The page's reader of decart_nb.media.stamp: 32 blocks (24 bits of frame number, 8 check bits)
along the top rows of a 1280x720 picture, read from any element drawn at any size."""

from __future__ import annotations

__all__ = ["STAMP_READER_JS"]

# Statements for the top of a page function: they define `stamp(src, width, height)`, the frame
# number in `src` (a <video> or <canvas> showing `width` x `height`), or null when unreadable.
STAMP_READER_JS = """
  const stampCanvas = document.createElement('canvas');
  stampCanvas.width = 1024; stampCanvas.height = 16;
  const stampCtx = stampCanvas.getContext('2d', {willReadFrequently: true});
  const stamp = (src, w, h) => {
    if (!src || !w || !h) return null;
    stampCtx.drawImage(src, 0, 0, w * 1024 / 1280, h * 16 / 720, 0, 0, 1024, 16);
    const d = stampCtx.getImageData(0, 0, 1024, 16).data;
    let word = 0;
    for (let i = 0; i < 32; i++) {
      let sum = 0, count = 0;
      for (let y = 5; y < 11; y++) for (let x = i * 32 + 10; x < i * 32 + 22; x += 2) {
        const p = (y * 1024 + x) * 4;
        sum += 0.299 * d[p] + 0.587 * d[p + 1] + 0.114 * d[p + 2]; count++;
      }
      word = word * 2 + (sum / count > 128 ? 1 : 0);
    }
    const n = Math.floor(word / 256), check = word % 256;
    return (((n >> 16) ^ (n >> 8) ^ n ^ 0xA5) & 255) === check ? n : null;
  };
"""
