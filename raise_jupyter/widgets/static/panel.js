// Feature-group panel. Receives definitions, statistics and capped previews from the kernel;
// sends back the clicked feature, the open tab and button presses. User text is only ever set
// through textContent.

const SVG = "http://www.w3.org/2000/svg";

function formatNumber(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  const size = Math.abs(value);
  if (size !== 0 && (size >= 1e9 || size < 1e-3)) return value.toExponential(3);
  if (Number.isInteger(value)) return value.toLocaleString();
  // Five significant digits, but never fewer than one decimal for non-integers.
  return value.toLocaleString(undefined, { maximumSignificantDigits: Math.max(5, Math.ceil(Math.log10(size + 1)) + 1) });
}

function formatPercent(value) {
  if (value === null || value === undefined) return "";
  if (value > 0 && value < 0.001) return "<0.1%";
  return (value * 100).toFixed(1) + "%";
}

function sparkline(counts, labels) {
  const width = 120, height = 24;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "raise-spark");
  if (!counts || counts.length === 0) return svg;
  const top = Math.max(...counts, 1);
  const step = width / counts.length;
  counts.forEach((count, i) => {
    const bar = document.createElementNS(SVG, "rect");
    const size = count > 0 ? Math.max((height * count) / top, 1) : 0;
    bar.setAttribute("x", (i * step).toFixed(2));
    bar.setAttribute("y", (height - size).toFixed(2));
    bar.setAttribute("width", Math.max(step - 1, 0.5).toFixed(2));
    bar.setAttribute("height", size.toFixed(2));
    bar.setAttribute("class", "raise-bar");
    const title = document.createElementNS(SVG, "title");
    title.textContent = (labels && labels[i] !== undefined ? labels[i] + ": " : "") + count.toLocaleString();
    bar.append(title);
    svg.append(bar);
  });
  return svg;
}

function header(model) {
  const info = model.get("header") || {};
  const facts = [
    ["rows", formatNumber(info.rows)],
    ["version", String(info.version ?? "")],
    ["keys", (info.keys || []).join(", ") || "(none)"],
    ["event time", info.event_time || "(none)"],
    ["online", info.online ? "on" : "off"],
  ];
  if (info.ttl) facts.push(["ttl", info.ttl]);
  const refresh = h("button", { text: "Refresh", title: "Reload definitions and statistics",
    onclick: () => model.send({ type: "refresh" }) });
  return h("div", { class: "raise-header" },
    h("span", { class: "raise-title", text: `${info.namespace || ""}/${info.name || ""}` }),
    h("span", { class: "raise-facts" },
      ...facts.map(([label, value]) => h("span", {}, h("span", { class: "raise-muted", text: label + " " }), value))),
    refresh,
    info.description ? h("div", { class: "raise-muted", text: info.description }) : null);
}

function tabs(model) {
  const names = [["features", "Features"], ["preview", "Preview"], ["alerts", "Alerts"],
    ["live", "Live tables"], ["jobs", "Jobs"]];
  const current = model.get("tab");
  return h("div", { class: "raise-tabs", role: "tablist" },
    ...names.map(([key, label]) => h("button", {
      class: "raise-tab" + (key === current ? " raise-active" : ""), role: "tab", "data-tab": key, text: label,
      onclick: () => { model.set("tab", key); model.save_changes(); },
    })));
}

function featureTable(model, filter) {
  const stats = model.get("stats") || {};
  const selected = model.get("selected");
  const needle = filter.toLowerCase();
  const rows = (model.get("features") || []).filter((f) => f.name.toLowerCase().includes(needle));
  const body = rows.map((f) => {
    const s = stats[f.name] || {};
    const name = h("td", {}, h("span", { class: "raise-code", text: f.name }),
      f.derived ? h("span", { class: "raise-derived raise-code", text: "= " + f.derived }) : null);
    const title = [f.description, f.derived ? "derived: " + f.derived : ""].filter(Boolean).join("\n");
    return h("tr", {
      class: "raise-feature" + (f.name === selected ? " raise-selected" : ""), "data-feature": f.name, title,
      onclick: () => { model.set("selected", f.name); model.save_changes(); },
    },
      name,
      h("td", { class: "raise-code", text: f.dtype }),
      h("td", { class: "raise-muted", text: f.role }),
      h("td", { class: "raise-number", text: formatPercent(s.null_rate) }),
      h("td", { class: "raise-number", text: formatNumber(s.min) }),
      h("td", { class: "raise-number", text: formatNumber(s.max) }),
      h("td", { class: "raise-number", text: formatNumber(s.mean) }),
      h("td", {}, s.histogram ? sparkline(s.histogram, s.labels && s.labels.length ? s.labels : null) : null),
      h("td", { class: "raise-muted", text: f.description }));
  });
  const numeric = new Set(["null", "min", "max", "mean"]);
  const head = h("tr", {}, ...["feature", "dtype", "role", "null", "min", "max", "mean", "distribution", "description"]
    .map((label) => h("th", { text: label, class: numeric.has(label) ? "raise-number" : "" })));
  return h("div", { class: "raise-scroll" }, h("table", { class: "raise-features" }, h("thead", {}, head), h("tbody", {}, ...body)));
}

function featuresTab(model, state) {
  const search = h("input", { type: "search", placeholder: "Filter features", value: state.filter });
  const table = h("div", { class: "raise-feature-table" }, featureTable(model, state.filter));
  search.addEventListener("input", () => {
    state.filter = search.value;
    table.replaceChildren(featureTable(model, state.filter));
  });
  const status = h("span", { class: "raise-muted raise-stats-status", text: model.get("stats_status") });
  const hint = h("span", { class: "raise-muted", text: "Click a feature for its distribution." });
  return h("div", {}, h("div", { class: "raise-toolbar" }, search, status, hint), table);
}

function previewTab(model) {
  const columns = model.get("preview_columns") || [];
  const raw = model.get("preview");
  if (!model.get("preview_note")) return h("div", { class: "raise-muted", text: "Loading preview\u2026" });
  if (!columns.length || !raw || !raw.byteLength) {
    return h("div", { class: "raise-muted raise-preview-empty", text: model.get("preview_note") + " No rows to show." });
  }
  const text = new TextDecoder().decode(raw);
  const cells = text.length ? text.split("\u001f") : [];
  const rows = [];
  for (let start = 0; start + columns.length <= cells.length; start += columns.length) {
    rows.push(h("tr", {}, ...cells.slice(start, start + columns.length).map((cell) => cell === "\u0000"
      ? h("td", { class: "raise-null", text: "null" })
      : h("td", { class: "raise-code", text: cell }))));
  }
  return h("div", {},
    h("div", { class: "raise-muted", text: model.get("preview_note") }),
    h("div", { class: "raise-scroll" }, h("table", { class: "raise-preview" },
      h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { class: "raise-code", text: c })))),
      h("tbody", {}, ...rows))));
}

function listTab(model, key, columns, empty, extra) {
  const related = model.get("related") || {};
  if (!(key in related)) return h("div", { class: "raise-muted", text: "Loading\u2026" });
  const items = related[key];
  const table = items.length
    ? h("table", {}, h("thead", {}, h("tr", {}, ...columns.map(([, label]) => h("th", { text: label })))),
      h("tbody", {}, ...items.map((item) => h("tr", { "data-name": item.name }, ...columns.map(([field]) => {
        const value = item[field];
        if (field === "state") return h("td", {}, h("span", { class: "raise-badge raise-" + value, text: value }));
        return h("td", { text: value === null || value === undefined ? "" : String(value) });
      })))))
    : h("div", { class: "raise-muted", text: empty });
  return h("div", {}, extra || null, table);
}

function body(model, state) {
  const tab = model.get("tab");
  if (tab === "preview") return previewTab(model);
  if (tab === "alerts") {
    const add = h("button", { class: "raise-primary raise-new-alert", text: "New alert",
      onclick: () => model.send({ type: "new_alert" }) });
    return listTab(model, "alerts",
      [["name", "alert"], ["metric", "metric"], ["condition", "condition"], ["state", "state"], ["schedule", "schedule"]],
      "No alerts watch this group.", h("div", { class: "raise-toolbar" }, add));
  }
  if (tab === "live") {
    return listTab(model, "live", [["name", "live table"], ["refresh", "refresh"], ["rows", "rows"], ["refreshed_at", "refreshed"]],
      "No live tables read this group.");
  }
  if (tab === "jobs") {
    return listTab(model, "jobs", [["name", "job"], ["role", "role"], ["transform", "transform"], ["schedule", "schedule"]],
      "No jobs read or write this group.");
  }
  return featuresTab(model, state);
}

function render({ model, el }) {
  const state = { filter: "" };
  const root = h("div", { class: "raise-widget raise-panel" });
  el.append(root);

  const draw = () => {
    const error = model.get("error");
    const parts = [header(model), tabs(model),
      error ? h("div", { class: "raise-error", text: error }) : null,
      h("div", { class: "raise-body" }, body(model, state))];
    root.replaceChildren(...parts.filter(Boolean));
    root.dataset.ready = "true";
    root.dataset.stats = model.get("stats_done") ? "ready" : "pending";
  };
  const redrawBody = () => {
    const holder = root.querySelector(".raise-body");
    if (!holder) return draw();
    holder.replaceChildren(body(model, state));
  };

  draw();
  model.on("change:header", draw);
  model.on("change:features", draw);
  model.on("change:tab", draw);
  model.on("change:error", draw);
  model.on("change:selected", redrawBody);
  // New statistics replace only the table, so the filter box keeps its focus and text.
  model.on("change:stats", () => {
    const holder = root.querySelector(".raise-feature-table");
    if (holder) holder.replaceChildren(featureTable(model, state.filter));
    else redrawBody();
  });
  model.on("change:related", redrawBody);
  model.on("change:preview", redrawBody);
  model.on("change:stats_done", () => { root.dataset.stats = model.get("stats_done") ? "ready" : "pending"; });
  model.on("change:stats_status", () => {
    const status = root.querySelector(".raise-stats-status");
    if (status) status.textContent = model.get("stats_status");
  });
}

export default { render };
