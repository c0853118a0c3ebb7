"""The in-page half of the DOM grounder: one script, evaluated in each frame.

`FIND` takes the query {role, roles, name, within, near} and returns every element that may
be the target, pierced through open shadow roots, each with its rectangle in the frame's CSS
pixels, a rank `tier` = [name match, role match, interactive] (higher is better: 4 an exact
accessible name or text, 2 the words inside a longer text, 1 a substring), whether it is
hidden, and its place in document order; and `anchors`, the rectangles of what `near` names.
Within one tier only the innermost elements are kept, so a block that merely contains the
words ("Click on the OK button") never outranks the smallest element that holds them.
Elements stay in `window.__igEls` for `SCROLL` and `RECT` to reach them by index.
"""

from __future__ import annotations

__all__ = ["FIND", "FRAME_OFFSET", "RECT", "SCROLL"]

FIND = r"""
(q) => {
  const norm = s => (s || '').replace(/\s+/g, ' ').trim().toLowerCase();
  const words = s => ' ' + norm(s).replace(/[^\p{L}\p{N}]+/gu, ' ').trim() + ' ';
  const INTERACTIVE = new Set(['button', 'link', 'textbox', 'searchbox', 'checkbox', 'radio', 'combobox',
    'menuitem', 'menuitemcheckbox', 'menuitemradio', 'tab', 'option', 'switch', 'slider', 'spinbutton']);
  const CONTAINERS = new Set(['dialog', 'alertdialog', 'form', 'group', 'region', 'navigation', 'menu',
    'menubar', 'toolbar', 'table', 'grid', 'tabpanel', 'list', 'complementary', 'banner', 'contentinfo']);
  const all = [];
  const walk = root => {
    for (const el of root.querySelectorAll('*')) {
      all.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  const parentOf = el => el.parentElement || (el.parentNode && el.parentNode.host) || null;
  const inside = (el, box) => {
    for (let p = el; p; p = parentOf(p)) if (p === box) return true;
    return false;
  };
  const roleOf = el => {
    const given = el.getAttribute('role');
    if (given) return given.trim().split(/\s+/)[0].toLowerCase();
    const tag = el.tagName.toLowerCase();
    if (tag === 'button' || tag === 'summary') return 'button';
    if (tag === 'a' && el.hasAttribute('href')) return 'link';
    if (tag === 'input') {
      const type = (el.getAttribute('type') || 'text').toLowerCase();
      if (['button', 'submit', 'reset', 'image'].includes(type)) return 'button';
      if (type === 'checkbox' || type === 'radio') return type;
      if (type === 'search') return 'searchbox';
      if (type === 'range') return 'slider';
      return type === 'hidden' ? null : 'textbox';
    }
    const implicit = {textarea: 'textbox', select: 'combobox', img: 'img', dialog: 'dialog', tr: 'row',
      td: 'cell', th: 'columnheader', li: 'listitem', option: 'option', table: 'table', form: 'form',
      nav: 'navigation', fieldset: 'group', menu: 'list', ul: 'list', ol: 'list', aside: 'complementary'};
    if (/^h[1-6]$/.test(tag)) return 'heading';
    // A rich-text editor: the outermost editable element (its children are editable too).
    if (el.isContentEditable && !(el.parentElement && el.parentElement.isContentEditable)) return 'textbox';
    return implicit[tag] || null;
  };
  const byId = (el, id) => {
    const root = el.getRootNode();
    return root.getElementById ? root.getElementById(id) : null;
  };
  const namesOf = el => {
    const out = [];
    const label = el.getAttribute('aria-label');
    if (label) out.push(label);
    const by = el.getAttribute('aria-labelledby');
    if (by) out.push(by.split(/\s+/).map(id => (byId(el, id) || {textContent: ''}).textContent).join(' '));
    const tag = el.tagName.toLowerCase();
    if (['input', 'textarea', 'select'].includes(tag)) {
      if (el.id) {
        try {
          const labels = el.getRootNode().querySelectorAll(`label[for="${CSS.escape(el.id)}"]`);
          for (const l of labels) out.push(l.textContent);
        } catch (e) { /* an id that no selector can hold */ }
      }
      const wrap = el.closest('label');
      if (wrap) out.push(wrap.textContent);
      if (el.getAttribute('placeholder')) out.push(el.getAttribute('placeholder'));
      const type = (el.getAttribute('type') || '').toLowerCase();
      if (['button', 'submit', 'reset'].includes(type)) out.push(el.value);
    }
    for (const attr of ['alt', 'title']) if (el.getAttribute(attr)) out.push(el.getAttribute(attr));
    return out;
  };
  const SILENT = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'TITLE']);
  // The text a person reads: textContent as a cheap first test, innerText (no script) to confirm.
  const textOf = (el, wanted) => {
    if (SILENT.has(el.tagName) || !norm(el.textContent).includes(wanted)) return '';
    return typeof el.innerText === 'string' ? el.innerText : el.textContent;
  };
  const level = (el, wanted) => {
    if (!wanted) return 0;
    const texts = [...namesOf(el), textOf(el, wanted)];
    let best = -1;
    for (const t of texts) {
      const n = norm(t);
      if (!n) continue;
      if (n === wanted) return 4;
      if (n.length > 2000) continue;
      if (words(t).includes(words(wanted))) best = Math.max(best, 2);
      else if (n.includes(wanted)) best = Math.max(best, 1);
    }
    return best;
  };
  const hidden = el => {
    const how = {checkOpacity: true, checkVisibilityCSS: true};
    if (el.checkVisibility && !el.checkVisibility(how)) return true;
    const r = el.getBoundingClientRect();
    return r.width <= 0 || r.height <= 0;
  };
  const innermost = found => found.filter(
    a => !found.some(b => b !== a && b.tierKey === a.tierKey && inside(b.el, a.el)));
  const matching = wanted => {
    const found = [];
    all.forEach((el, order) => {
      const lv = level(el, wanted);
      if (lv > 0) found.push({el, order, tierKey: String(lv), lv});
    });
    const top = Math.max(0, ...found.map(f => f.lv));
    return innermost(found.filter(f => f.lv === top));
  };
  let scope = null;
  if (q.within) {
    const wanted = norm(q.within);
    const boxes = [];
    for (const el of all) {
      const role = roleOf(el);
      if (!CONTAINERS.has(role) && !el.hasAttribute('aria-label')) continue;
      let names = namesOf(el);
      const head = el.querySelector('h1,h2,h3,h4,h5,h6,[role=heading],legend,caption,.title');
      if (head) names = names.concat([head.textContent]);
      if (names.some(n => norm(n) === wanted || words(n).includes(words(wanted)))) boxes.push(el);
    }
    scope = boxes.filter(a => !boxes.some(b => b !== a && inside(b, a)));
    if (!scope.length) return {cands: [], anchors: [], missing: 'within'};
  }
  const wanted = norm(q.name);
  const roles = q.roles || [];
  const cands = [];
  all.forEach((el, order) => {
    const role = roleOf(el);
    const roleOk = roles.includes(role);
    if (roles.length && !wanted && !roleOk) return;
    const lv = level(el, wanted);
    if (wanted && lv <= 0) return;
    if (roles.length && !roleOk && lv < 4) return;
    if (scope && !scope.some(s => s !== el && inside(el, s))) return;
    const tier = [lv, roleOk ? 1 : 0, INTERACTIVE.has(role) ? 1 : 0];
    cands.push({el, order, tier, tierKey: tier.join(',')});
  });
  const kept = innermost(cands);
  window.__igEls = kept.map(c => c.el);
  const rect = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; };
  const anchors = q.near ? matching(norm(q.near)).filter(a => !hidden(a.el)).map(a => rect(a.el)) : [];
  return {
    cands: kept.map((c, i) => ({i, order: c.order, tier: c.tier, hidden: hidden(c.el), rect: rect(c.el)})),
    anchors, view: [innerWidth, innerHeight], missing: null,
  };
}
"""

# Where a child frame's content starts, in its parent's CSS pixels (past border and padding).
FRAME_OFFSET = r"""
(e) => {
  const r = e.getBoundingClientRect(), s = getComputedStyle(e);
  const x = r.left + e.clientLeft + parseFloat(s.paddingLeft);
  const y = r.top + e.clientTop + parseFloat(s.paddingTop);
  return [x, y, e.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight),
          e.clientHeight - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom)];
}
"""

SCROLL = "(i) => window.__igEls[i].scrollIntoView({block: 'center', inline: 'center', behavior: 'instant'})"

RECT = "(i) => { const r = window.__igEls[i].getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }"
