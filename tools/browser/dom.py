"""What is under a point of the page: tag, ARIA role, accessible name and box.

`BrowserExecutor.element_at()` answers it, so that a caller can say what a point hits
(in a step log: "clicked the button 'Submit'"). The DOM grounder (agent/grounding/dom.py)
goes the other way, from words to an element, with Playwright's role, label and text
locators. The role and name here follow the common cases of WAI-ARIA and accname, not
the whole specification: an explicit role wins, then the implicit role of the tag; the
name comes from aria-labelledby, aria-label, a <label>, alt, a button's value, the text
content, and finally title or placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tools.executor import Geometry

__all__ = ["MAX_NAME", "ElementInfo", "element_at"]

MAX_NAME = 100  # characters of accessible name kept; longer names end in "…"


@dataclass(frozen=True)
class ElementInfo:
    """The element at a point. `box` is (left, top, right, bottom) in screenshot pixels,
    clipped to the screenshot."""

    tag: str
    role: str | None
    name: str
    box: tuple[int, int, int, int]

    @property
    def center(self) -> tuple[int, int]:
        left, top, right, bottom = self.box
        return ((left + right) // 2, (top + bottom) // 2)


# Descends through open shadow roots and same-origin iframes, adding each iframe's
# offset, so the box is in the top page's CSS pixels.
_ELEMENT_AT = """([x, y, maxName]) => {
  let root = document, el = null, ox = 0, oy = 0;
  for (let depth = 0; depth < 16; depth++) {
    const hit = root.elementFromPoint(x - ox, y - oy);
    if (!hit || hit === el) break;
    el = hit;
    if (hit.shadowRoot) { root = hit.shadowRoot; continue; }
    if (hit.tagName === "IFRAME" || hit.tagName === "FRAME") {
      let inner = null;
      try { inner = hit.contentDocument; } catch (e) { inner = null; }
      if (inner) {
        const r = hit.getBoundingClientRect();
        ox += r.left + hit.clientLeft; oy += r.top + hit.clientTop; root = inner; continue;
      }
    }
    break;
  }
  if (!el) return null;
  const tag = el.tagName.toLowerCase();
  const type = (el.getAttribute("type") || "text").toLowerCase();
  const implicit = () => {
    switch (tag) {
      case "a": case "area": return el.hasAttribute("href") ? "link" : null;
      case "button": return "button";
      case "input":
        if (["button", "submit", "reset", "image"].includes(type)) return "button";
        if (type === "checkbox" || type === "radio") return type;
        if (type === "range") return "slider";
        if (type === "number") return "spinbutton";
        if (type === "search") return "searchbox";
        if (type === "hidden") return null;
        return el.hasAttribute("list") ? "combobox" : "textbox";
      case "textarea": return "textbox";
      case "select": return el.multiple || el.size > 1 ? "listbox" : "combobox";
      case "option": return "option";
      case "img": return el.getAttribute("alt") === "" ? "presentation" : "img";
      case "h1": case "h2": case "h3": case "h4": case "h5": case "h6": return "heading";
      case "nav": return "navigation";
      case "main": return "main";
      case "header": return "banner";
      case "footer": return "contentinfo";
      case "aside": return "complementary";
      case "form": return "form";
      case "dialog": return "dialog";
      case "article": return "article";
      case "section":
        return el.hasAttribute("aria-label") || el.hasAttribute("aria-labelledby") ? "region" : null;
      case "ul": case "ol": case "menu": return "list";
      case "li": return "listitem";
      case "table": return "table";
      case "tr": return "row";
      case "td": return "cell";
      case "th": return "columnheader";
      case "p": return "paragraph";
      case "hr": return "separator";
      case "progress": return "progressbar";
      case "summary": return "button";
      default: return null;
    }
  };
  const explicit = (el.getAttribute("role") || "").trim().split(/\\s+/)[0];
  const role = explicit || implicit();
  const clean = (s) => (s || "").replace(/\\s+/g, " ").trim();
  const byIds = (ids) => ids.split(/\\s+/).map((id) => el.ownerDocument.getElementById(id))
    .filter(Boolean).map((n) => n.textContent).join(" ");
  let name = "";
  const labelledby = el.getAttribute("aria-labelledby");
  if (labelledby) name = clean(byIds(labelledby));
  if (!name) name = clean(el.getAttribute("aria-label"));
  if (!name && el.labels && el.labels.length) {
    name = clean([...el.labels].map((l) => l.textContent).join(" "));
  }
  if (!name && (tag === "img" || (tag === "input" && type === "image") || tag === "area")) {
    name = clean(el.getAttribute("alt"));
  }
  if (!name && tag === "input" && ["button", "submit", "reset"].includes(type)) {
    name = clean(el.value) || (type === "submit" ? "Submit" : type === "reset" ? "Reset" : "");
  }
  // A field's text is its value, not its name; the whole page's text names nothing.
  const noContent = ["input", "textarea", "select", "html", "body"].includes(tag);
  if (!name && !noContent) name = clean(el.innerText !== undefined ? el.innerText : el.textContent);
  if (!name) name = clean(el.getAttribute("title") || el.getAttribute("placeholder"));
  if (name.length > maxName) name = name.slice(0, maxName - 1) + "\\u2026";
  const r = el.getBoundingClientRect();
  return { tag, role, name, box: [r.left + ox, r.top + oy, r.right + ox, r.bottom + oy] };
}"""


def element_at(page: Page, geometry: Geometry, x: float, y: float) -> ElementInfo | None:
    """The element under screenshot pixel (x, y), or None outside the page or on nothing."""
    width, height = geometry.screenshot_size
    if not (0 <= x < width and 0 <= y < height):
        return None
    cx, cy = geometry.to_device(x, y)
    found: dict[str, Any] | None = page.evaluate(_ELEMENT_AT, [cx, cy, MAX_NAME])
    if found is None:
        return None
    left, top, right, bottom = found["box"]
    x1, y1 = geometry.to_screenshot(left, top)
    x2, y2 = geometry.to_screenshot(right, bottom)
    box = (
        max(0, min(width, round(x1))),
        max(0, min(height, round(y1))),
        max(0, min(width, round(x2))),
        max(0, min(height, round(y2))),
    )
    return ElementInfo(tag=found["tag"], role=found["role"], name=found["name"], box=box)
