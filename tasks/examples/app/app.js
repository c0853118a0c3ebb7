// Larkspur Supply: the demo app's shared code. Everything it knows lives in the browser:
//   sessionStorage "user"       who is signed in (this tab only)
//   localStorage "watchlist"    SKUs of the watched items, e.g. ["LS-1042"]
//   localStorage "settings"     {restockAlerts, frequency, compactRows, savedAt}, written by Save
// A task's success checks read the same keys.
"use strict";

const ACCOUNT = { username: "demo", password: "demo123" };

const PRODUCTS = [
  { sku: "LS-1001", name: "Oak bookshelf", category: "Furniture", price: 189, stock: 12 },
  { sku: "LS-1007", name: "Linen lamp shade", category: "Lighting", price: 24.5, stock: 40 },
  { sku: "LS-1013", name: "Brass floor lamp", category: "Lighting", price: 139, stock: 5 },
  { sku: "LS-1018", name: "Felt desk pad", category: "Stationery", price: 19, stock: 64 },
  { sku: "LS-1020", name: "Ash dining chair", category: "Furniture", price: 96, stock: 18 },
  { sku: "LS-1024", name: "Ceramic pen cup", category: "Stationery", price: 12, stock: 80 },
  { sku: "LS-1029", name: "Walnut side table", category: "Furniture", price: 149, stock: 3 },
  { sku: "LS-1031", name: "Opal glass pendant light", category: "Lighting", price: 119, stock: 9 },
  { sku: "LS-1035", name: "Notebook set of three", category: "Stationery", price: 16, stock: 120 },
  { sku: "LS-1038", name: "Wool throw blanket", category: "Textiles", price: 68, stock: 22 },
  { sku: "LS-1042", name: "Walnut desk lamp", category: "Lighting", price: 89, stock: 0 },
  { sku: "LS-1046", name: "Cotton cushion cover", category: "Textiles", price: 22, stock: 35 },
  { sku: "LS-1050", name: "Steel desk organiser", category: "Stationery", price: 29, stock: 0 },
  { sku: "LS-1053", name: "Clip-on reading lamp", category: "Lighting", price: 34, stock: 27 },
];

const DESCRIPTIONS = {
  "LS-1042": "A warm, dimmable desk lamp in oiled American walnut with a brushed steel arm. " +
             "The next batch is being finished in our workshop.",
};

const DEFAULT_SETTINGS = { restockAlerts: false, frequency: "immediately", compactRows: false };
const FREQUENCIES = { immediately: "as it happens", daily: "daily digest", weekly: "weekly digest" };

const store = {
  user: () => sessionStorage.getItem("user"),
  signIn: (name) => sessionStorage.setItem("user", name),
  signOut: () => sessionStorage.removeItem("user"),
  watchlist: () => JSON.parse(localStorage.getItem("watchlist") || "[]"),
  setWatchlist: (skus) => localStorage.setItem("watchlist", JSON.stringify(skus)),
  settings: () => ({ ...DEFAULT_SETTINGS, ...JSON.parse(localStorage.getItem("settings") || "{}") }),
  saved: () => localStorage.getItem("settings") !== null,
  saveSettings: (s) => localStorage.setItem("settings", JSON.stringify({ ...s, savedAt: new Date().toISOString() })),
};

function product(sku) {
  return PRODUCTS.find((p) => p.sku === sku) || null;
}

function money(amount) {
  return "$" + amount.toFixed(2);
}

function availability(p) {
  if (p.stock === 0) return { text: "Out of stock", kind: "out" };
  if (p.stock < 10) return { text: "Low stock (" + p.stock + ")", kind: "low" };
  return { text: "In stock (" + p.stock + ")", kind: "" };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

const LOGO = '<svg width="22" height="22" viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" ' +
  'd="M12 2c3 4 5 7 5 10a5 5 0 0 1-10 0c0-3 2-6 5-10zm-1 17h2v3h-2z"/></svg>';
const PERSON = '<svg width="20" height="20" viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="8" r="4" ' +
  'fill="currentColor"/><path fill="currentColor" d="M4 21c0-4 4-6 8-6s8 2 8 6z"/></svg>';

// Every page but the sign-in one: send a visitor who is not signed in to login.html,
// and draw the header (brand, navigation, who is signed in, Sign out).
function signedInPage(current) {
  const user = store.user();
  if (!user) {
    location.replace("login.html");
    throw new Error("not signed in");
  }
  const header = document.querySelector("header.topbar");
  const link = (href, label, page) => {
    const a = el("a", { href, text: label });
    if (page === current) a.setAttribute("aria-current", "page");
    return a;
  };
  const brand = el("a", { class: "brand", href: "catalogue.html" });
  brand.innerHTML = LOGO + "<span>Larkspur Supply</span>";
  const account = el("button", { class: "icon", type: "button", "aria-label": "Account: " + user,
                                 title: "Account: " + user });
  account.innerHTML = PERSON;
  const signOut = el("button", { type: "button", class: "small", text: "Sign out",
                                 onclick: () => { store.signOut(); location.href = "login.html"; } });
  header.append(
    brand,
    el("nav", { "aria-label": "Main" }, link("catalogue.html", "Catalogue", "catalogue"),
       link("settings.html", "Settings", "settings")),
    el("div", { class: "account" }, el("span", { text: "Signed in as " + user }), account, signOut),
  );
  return user;
}
