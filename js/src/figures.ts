// The kernel's figures (decart_nb/figures.py, the panel's too), as it names and formats them:
// "camera 1280×720 · output 640×360 · fps in 30.0 · ...", each with its meaning on hover.
import type { Figure } from "./model.ts";

export function showFigures(el: HTMLElement, figures: readonly Figure[]): void {
  const key = JSON.stringify(figures);
  if (el.dataset.figures === key) return; // unchanged: keep the nodes (and an open tooltip)
  el.dataset.figures = key;
  el.replaceChildren();
  figures.forEach(([name, value, title], i) => {
    if (i) el.append(" · ");
    const figure = document.createElement("span");
    figure.dataset.figure = name;
    figure.title = title;
    const number = document.createElement("b");
    number.textContent = value;
    figure.append(`${name} `, number);
    el.append(figure);
  });
}
