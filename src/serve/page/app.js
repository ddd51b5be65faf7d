// papersim's search page: plain DOM, no framework, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const seeds = new Map(); // id -> title

// A server started with API keys answers 401 without one: the page asks
// its user once and keeps the key in this tab's session storage only (gone
// when the tab closes; never in local storage, a cookie or the URL).
const KEY_ITEM = "papersim-api-key";
let keyAsked = null; // one prompt shared by every request that got a 401

function askForKey(message) {
  if (!keyAsked) {
    keyAsked = new Promise((resolve) => {
      const form = $("key-form");
      $("key-message").textContent = message;
      form.hidden = false;
      $("api-key").focus();
      form.onsubmit = (ev) => {
        ev.preventDefault();
        const key = $("api-key").value.trim();
        if (!key) return;
        sessionStorage.setItem(KEY_ITEM, key);
        $("api-key").value = "";
        form.hidden = true;
        keyAsked = null;
        resolve();
      };
    });
  }
  return keyAsked;
}

async function api(method, path, body) {
  let resp;
  for (;;) {
    const headers = body ? { "Content-Type": "application/json" } : {};
    const key = sessionStorage.getItem(KEY_ITEM);
    if (key) headers.Authorization = `Bearer ${key}`;
    resp = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    if (resp.status !== 401) break;
    if (key && sessionStorage.getItem(KEY_ITEM) === key) sessionStorage.removeItem(KEY_ITEM);
    await askForKey(key ? "That key was refused; enter another:" : "This server needs an API key:");
  }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const field = data.field ? ` (${data.field})` : "";
    throw new Error((data.error || `HTTP ${resp.status}`) + field);
  }
  return data;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function setStatus(id, text, isError) {
  const s = $(id);
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

function filters() {
  const f = {};
  if ($("since").value.trim()) f.since = $("since").value.trim();
  if ($("until").value.trim()) f.until = $("until").value.trim();
  const cats = $("categories").value.split(",").map((c) => c.trim()).filter(Boolean);
  if (cats.length) f.categories = cats;
  return f;
}

function renderResults(heading, results) {
  $("results-heading").hidden = false;
  $("results-heading").textContent = heading;
  const list = $("results");
  list.replaceChildren();
  for (const r of results) list.append(resultItem(r));
  if (!results.length) list.append(el("li", { class: "muted" }, "No results."));
}

// The headline score is the cosine to the query; the ranking's own value
// (hybrid's fusion, keyword's BM25) goes in the tooltip.
function scoreTitle(r) {
  const parts = ["cosine similarity to the query"];
  if (r.fused !== undefined) parts.push(`fused rank value ${r.fused.toFixed(4)}`);
  if (r.bm25 !== undefined) parts.push(`BM25 ${r.bm25.toFixed(2)}`);
  return parts.join(" · ");
}

function whyBlock(w) {
  return el("div", { class: "why" },
    el("span", { class: "muted" }, `why (${w.source}): `),
    `“${w.paper_sentence}”`,
    w.shared_terms.length ? el("span", { class: "muted" }, ` — shared: ${w.shared_terms.join(", ")}`) : null);
}

function resultItem(r) {
  const year = (r.date || "").slice(0, 4);
  const authors = r.authors.length > 4 ? r.authors.slice(0, 4).join(", ") + " et al." : r.authors.join(", ");
  const title = r.url ? el("a", { href: r.url, target: "_blank", rel: "noopener" }, r.title) : r.title;
  const why = r.why ? whyBlock(r.why) : null;
  const more = el("button", { class: "secondary more-like-this", type: "button", onclick: () => moreLikeThis(r) }, "More like this");
  const seed = el("button", { class: "secondary add-seed", type: "button", onclick: () => addSeed(r.id, r.title) }, "Add as seed");
  const abs = el("button", { class: "secondary", type: "button", onclick: (e) => toggleAbstract(e.target, r.id) }, "Abstract");
  return el("li", { class: "result", "data-id": r.id },
    el("span", { class: "score", title: scoreTitle(r) }, r.score.toFixed(3)),
    el("h3", {}, title),
    el("div", { class: "meta" }, [authors, year, r.categories.join(" "), r.id].filter(Boolean).join(" · ")),
    why,
    el("div", { class: "actions" }, more, seed, abs));
}

async function toggleAbstract(button, id) {
  const item = button.closest(".result");
  const shown = item.querySelector(".abstract");
  if (shown) return shown.remove();
  try {
    const p = await api("GET", `/papers/${encodeURIComponent(id)}`);
    item.querySelector(".actions").before(el("p", { class: "abstract" }, p.abstract));
  } catch (e) {
    setStatus("status", e.message, true);
  }
}

// Bumped by each search: answers to an older one are dropped.
let searchSeq = 0;

async function search(ev) {
  if (ev) ev.preventDefault();
  const query = $("q").value.trim();
  if (!query) return;
  setStatus("status", "Searching…");
  const t0 = performance.now();
  const seq = ++searchSeq;
  const body = { query, k: Number($("k").value) || 10, mode: $("mode").value, filters: filters() };
  try {
    // Results first; the explanations (which embed the hits' sentences, far
    // slower than the search) are asked for next and filled in as they come.
    const data = await api("POST", "/search", body);
    if (seq !== searchSeq) return;
    renderResults(`Results for “${query}”`, data.results);
    setStatus("status", `${data.results.length} results (${data.mode}) in ${Math.round(performance.now() - t0)} ms`);
    if (!data.results.length) return;
    const explained = await api("POST", "/search", { ...body, why: true });
    if (seq !== searchSeq) return;
    for (const r of explained.results) {
      const item = [...$("results").children].find((li) => li.dataset.id === r.id);
      if (item && r.why && !item.querySelector(".why")) item.querySelector(".actions").before(whyBlock(r.why));
    }
  } catch (e) {
    if (seq === searchSeq) setStatus("status", e.message, true);
  }
}

async function moreLikeThis(r) {
  setStatus("status", `Finding papers like “${r.title}”…`);
  try {
    const k = Number($("k").value) || 10;
    const params = new URLSearchParams({ k, mode: $("mode").value });
    const f = filters();
    if (f.since) params.set("since", f.since);
    if (f.until) params.set("until", f.until);
    if (f.categories) params.set("category", f.categories.join(","));
    const data = await api("GET", `/papers/${encodeURIComponent(r.id)}/similar?${params}`);
    renderResults(`More like “${r.title}”`, data.results);
    setStatus("status", `${data.results.length} similar papers`);
    window.scrollTo({ top: 0, behavior: "smooth" });
  } catch (e) {
    setStatus("status", e.message, true);
  }
}

function addSeed(id, title) {
  seeds.set(id, title);
  renderSeeds();
}

function renderSeeds() {
  const ul = $("seeds");
  ul.replaceChildren();
  for (const [id, title] of seeds) {
    ul.append(el("li", { "data-id": id }, title,
      el("button", { class: "secondary", type: "button", title: "remove", onclick: () => { seeds.delete(id); renderSeeds(); } }, "×")));
  }
  $("no-seeds").hidden = seeds.size > 0;
}

async function buildRelated() {
  const draft = $("draft").value.trim();
  if (!draft && !seeds.size) {
    setStatus("related-status", "Paste a draft or add a seed first.", true);
    return;
  }
  setStatus("related-status", "Building…");
  $("build").disabled = true;
  try {
    const body = {
      seeds: [...seeds.keys()], k: Number($("related-k").value) || 15,
      diversity: Number($("diversity").value), format: $("format").value, filters: filters(),
    };
    if (draft) body.abstract = draft;
    const data = await api("POST", "/related", body);
    $("output").value = data.text || "";
    $("copy").disabled = !data.text;
    setStatus("related-status", `${data.results.length} papers`);
    renderResults("Related work", data.results);
  } catch (e) {
    setStatus("related-status", e.message, true);
  } finally {
    $("build").disabled = false;
  }
}

async function copyOutput() {
  const text = $("output").value;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API needs a secure context or permission: fall back to selection.
    $("output").select();
    document.execCommand("copy");
  }
  setStatus("related-status", "Copied.");
}

async function loadInfo() {
  try {
    const i = await api("GET", "/info");
    $("library-info").textContent = `${i.papers.toLocaleString()} papers · generation ${i.generation} · ${i.model.id}`;
  } catch (e) {
    $("library-info").textContent = e.message;
  }
}

$("search-form").addEventListener("submit", search);
$("build").addEventListener("click", buildRelated);
$("copy").addEventListener("click", copyOutput);
$("diversity").addEventListener("input", () => { $("diversity-value").textContent = $("diversity").value; });
loadInfo();
