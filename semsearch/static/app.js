// The search page. Every piece of document text goes into the page as a text node (never as
// HTML), so a document containing markup shows that markup instead of running it.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(url) {
  const response = await fetch(url);
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: say what the server said in its status line
  }
  if (!response.ok || body === null) {
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function clean(text) {
  return text.replace(/\s+/g, " ").trim();
}

// ---- search -------------------------------------------------------------------------------

function searchParams() {
  const params = new URLSearchParams({ q: $("q").value.trim(), mode: $("mode").value,
                                       k: $("k").value || "10", context: "2" });
  for (const pair of $("where").value.split(",")) {
    if (pair.trim()) params.append("where", pair.trim());
  }
  if ($("cluster").value.trim()) params.set("cluster", $("cluster").value.trim());
  if ($("by-document").checked) params.set("by_document", "true");
  return params;
}

function renderHit(hit) {
  const before = hit.context.filter((c) => c.ordinal < hit.ordinal);
  const after = hit.context.filter((c) => c.ordinal > hit.ordinal);
  const around = (units) => units.length ? el("span", { class: "context" },
    ` ${units.map((c) => clean(c.text)).join(" ")} `) : null;
  const scores = [`score ${hit.score.toFixed(3)}`];
  if (hit.dense_score !== null) scores.push(`cosine ${hit.dense_score.toFixed(3)}`);
  if (hit.keyword_score !== null) scores.push(`bm25 ${hit.keyword_score.toFixed(2)}`);
  const metadata = Object.entries(hit.metadata).map(([k, v]) => `${k}=${v}`).join("  ");
  return el("li", { class: "hit", "data-unit": hit.unit_id },
    el("div", { class: "meta" },
      el("span", { class: "rank" }, `${hit.rank}.`),
      el("span", { class: "title" }, hit.title || hit.document_id),
      hit.heading ? el("span", { class: "heading" }, `› ${hit.heading}`) : null,
      hit.page ? el("span", { class: "page" }, `p. ${hit.page}`) : null,
      el("a", { href: `/documents/${encodeURIComponent(hit.document_id)}`, target: "_blank" },
         "document"),
      el("span", { class: "scores" }, scores.join(" · "))),
    el("p", { class: "passage" }, around(before), el("mark", {}, clean(hit.text)), around(after)),
    metadata ? el("div", { class: "metadata" }, metadata) : null);
}

async function search(event) {
  if (event) event.preventDefault();
  const params = searchParams();
  if (!params.get("q")) return;
  history.replaceState(null, "", `?${params}`);
  $("status").textContent = "searching…";
  const started = performance.now();
  try {
    const result = await getJSON(`/search?${params}`);
    const ms = Math.round(performance.now() - started);
    $("results").replaceChildren(...result.hits.map(renderHit));
    $("status").textContent = `${result.hits.length} hits · ${params.get("mode")} · ${ms} ms`;
  } catch (error) {
    $("results").replaceChildren();
    $("status").textContent = `error: ${error.message}`;
  }
}

// ---- clusters -----------------------------------------------------------------------------

async function loadRuns() {
  const { runs } = await getJSON("/clusters");
  if (!runs.length) {
    $("run-summary").textContent = "no cluster runs yet: run `semsearch cluster` on this index";
    $("run").replaceChildren();
    return;
  }
  $("run").replaceChildren(...runs.slice().reverse().map((run) =>
    el("option", { value: run.id }, `${run.id}: ${run.method}, ${run.clusters} clusters`)));
  await showRun($("run").value);
}

async function showRun(id) {
  const run = await getJSON(`/clusters/${encodeURIComponent(id)}`);
  $("run-summary").textContent = `${run.method} over ${run.items} ${run.target}s: ` +
    `${run.clusters} clusters, ${run.outliers} outliers (${run.created})`;
  const map = $("cluster-map");
  map.hidden = !run.map;
  if (run.map) map.src = run.map;
  else map.removeAttribute("src");
  $("clusters").tBodies[0].replaceChildren(...run.cluster_list.map((cluster) => {
    const searchHere = el("button", { type: "button" }, "search in it");
    searchHere.addEventListener("click", () => {
      $("cluster").value = `${run.id}:${cluster.cluster}`;
      show("search");
      $("q").focus();
    });
    return el("tr", { class: "cluster" },
      el("td", { class: "number" }, cluster.cluster),
      el("td", { class: "number" }, cluster.size),
      el("td", {}, cluster.keywords.join(" ")),
      el("td", {}, el("ul", {}, ...cluster.representatives.map((r) =>
        el("li", {}, clean(r.text).slice(0, 200))))),
      el("td", {}, searchHere));
  }));
}

// ---- page ---------------------------------------------------------------------------------

function show(view) {
  for (const name of ["search", "clusters"]) {
    $(`${name}-view`).hidden = name !== view;
    $(`tab-${name}`).setAttribute("aria-pressed", String(name === view));
  }
  if (view === "clusters") loadRuns().catch((e) => { $("run-summary").textContent = `error: ${e.message}`; });
}

async function start() {
  $("search-form").addEventListener("submit", search);
  $("mode").addEventListener("change", () => search());
  $("tab-search").addEventListener("click", () => show("search"));
  $("tab-clusters").addEventListener("click", () => show("clusters"));
  $("run").addEventListener("change", () => showRun($("run").value).catch((e) => {
    $("run-summary").textContent = `error: ${e.message}`;
  }));
  // A shared link restores the whole search, filters included.
  const params = new URLSearchParams(location.search);
  if (params.get("q")) {
    $("q").value = params.get("q");
    if (params.get("mode")) $("mode").value = params.get("mode");
    if (params.get("k")) $("k").value = params.get("k");
    $("where").value = params.getAll("where").join(", ");
    $("cluster").value = params.get("cluster") || "";
    $("by-document").checked = params.get("by_document") === "true";
    search();
  }
  try {
    const health = await getJSON("/health");
    $("health").textContent = `${health.documents} documents · ${health.units} ${health.unit}s · ${health.model}`;
  } catch (error) {
    $("health").textContent = `server unreachable: ${error.message}`;
  }
}

start();
