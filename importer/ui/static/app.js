// The page: calls the server's JSON routes, shows what they answer. Every value from a file
// or from Eloqua goes into the page as text (textContent), never as HTML.
"use strict";

const TOKEN = document.querySelector('meta[name="token"]').content;
const FIELDS = [
  ["assetName", "Asset name", "what it happened at: the event, the webinar"],
  ["assetType", "Asset type", "an External Asset Type set up in Eloqua"],
  ["activityType", "Activity type", "what the person did"],
  ["activityDate", "Activity date", "when it happened"],
  ["contactId", "Contact", "whose activity it is"],
  ["campaignId", "Campaign", "optional: the campaign to credit"],
  ["name", "Activity name", "optional: the title (default: the asset name)"],
];
const ZONES = ["UTC", "America/New_York", "America/Chicago", "America/Denver",
  "America/Los_Angeles", "America/Sao_Paulo", "Europe/London", "Europe/Paris",
  "Europe/Berlin", "Asia/Kolkata", "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney"];

const state = { upload: null, header: [], doc: null, catalog: null, mappingName: "",
  checked: null, job: null, source: null };

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function call(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Eloqua-Import-Token": TOKEN },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  let data = {};
  try { data = await response.json(); } catch { data = { error: await response.text() }; }
  data.status = response.status;
  return data;
}

// --- 1. Connection ------------------------------------------------------------------------

async function showConnection() {
  const info = await call("/api/connection");
  state.catalog = info.catalog;
  $("connection").textContent = info.ok
    ? (info.sandbox ? "Sandbox (an Eloqua-compatible server on this computer; nothing reaches Eloqua)"
      : "Eloqua: " + info.label)
    : "Not connected: " + info.message;
  $("connection").className = info.ok ? "ok" : "problem";
}

// --- 2. Spreadsheet -----------------------------------------------------------------------

async function sendFile(file) {
  $("file-status").textContent = "Reading " + file.name + "…";
  const form = new FormData();
  form.append("file", file);
  const response = await fetch("/api/upload", { method: "POST", body: form,
    headers: { "X-Eloqua-Import-Token": TOKEN } });
  const data = await response.json().catch(() => ({ error: "the upload failed" }));
  if (!response.ok || data.error) {
    $("file-status").textContent = data.error || "the upload failed";
    $("file-status").className = "problem";
    return;
  }
  $("file-status").className = "";
  showPreview(data);
  await suggestIfChosen();
}

function showPreview(data) {
  state.upload = data;
  $("file-status").textContent = data.name + " (" + Math.ceil(data.size / 1024) + " KB)";
  $("table-options").hidden = false;
  $("sheet-box").hidden = !(data.sheets && data.sheets.length > 1);
  $("sheet").replaceChildren(...(data.sheets || []).map(
    (name) => el("option", { value: name, text: name, selected: name === data.sheet })));
  $("header-row").value = data.header_row;
  $("header-detected").textContent = "Found on row " + data.detected_header_row + ": "
    + data.header_why;
  const rows = data.rows || [];
  state.header = rows.length ? rows[0][1].filter((c) => c !== "") : [];
  const table = $("preview");
  table.replaceChildren();
  rows.forEach(([number, cells], i) => {
    const tr = el("tr", {}, el("th", { text: String(number), scope: "row" }));
    for (const cell of cells) tr.append(el(i === 0 ? "th" : "td", { text: cell }));
    table.append(tr);
  });
  $("check").disabled = !state.doc;
  if (state.doc) renderForm();
}

async function repreview() {
  if (!state.upload) return;
  const data = await call("/api/preview", { upload: state.upload.upload,
    sheet: $("sheet").value || null, header_row: Number($("header-row").value) || null });
  if (data.error) { $("file-status").textContent = data.error; return; }
  showPreview(data);
  if (state.doc) {
    state.doc.source = Object.assign(state.doc.source || {}, { header_row: data.header_row });
    await formChanged(true);  // the columns changed
  }
}

// --- 3. Mapping ---------------------------------------------------------------------------

async function listMappings() {
  const data = await call("/api/mappings");
  const select = $("mapping");
  select.replaceChildren(el("option", { value: "", text: "— choose —" }),
    el("option", { value: "@suggested", text: "Suggested from this file" }),
    ...data.names.map((name) => el("option", { value: name, text: name })));
}

async function chooseMapping() {
  const value = $("mapping").value;
  if (value === "@suggested") return suggest();
  if (!value) return;
  const data = await call("/api/mapping", { name: value });
  if ($("mapping").value !== value) return;  // another choice was made meanwhile
  state.mappingName = value;
  $("save-name").value = value;
  setMapping(data);
  $("mapping-status").textContent = "from " + value;
  const source = (data.document && data.document.source) || {};
  let again = false;
  if (state.upload && typeof source.sheet === "string" && source.sheet !== $("sheet").value
      && [...$("sheet").options].some((o) => o.value === source.sheet)) {
    $("sheet").value = source.sheet;
    again = true;
  }
  if (state.upload && source.header_row && source.header_row !== Number($("header-row").value)) {
    $("header-row").value = source.header_row;
    again = true;
  }
  if (again) await repreview();
}

async function suggestIfChosen() {
  if ($("mapping").value === "@suggested" || !$("mapping").value) {
    $("mapping").value = "@suggested";
    await suggest();
  }
}

async function suggest() {
  if (!state.upload) { $("mapping-status").textContent = "choose a spreadsheet first"; return; }
  const data = await call("/api/suggest", { upload: state.upload.upload,
    sheet: $("sheet").value || null, header_row: Number($("header-row").value) || null });
  if ($("mapping").value !== "@suggested") return;  // a mapping file was chosen meanwhile
  if (data.error) { $("mapping-status").textContent = data.error; return; }
  state.mappingName = data.name;
  $("save-name").value = data.name;
  setMapping(data);
  $("mapping-status").textContent = data.placeholders.length
    ? "Suggested. Still to choose: " + data.placeholders.join(", ")
    : "Suggested from this file: check each field";
}

function setMapping(data) {
  $("yaml").value = data.yaml;
  state.doc = data.document;
  $("yaml-problem").textContent = data.problem || "";
  $("check").disabled = !(state.doc && state.upload);
  renderForm();
}

function fieldKind(value) {
  if (value === undefined || value === null) return "none";
  if (typeof value === "object") {
    if (value.lookup === "contact") return "email";
    if (value.lookup === "campaign") return value.column ? "campaign-column" : "campaign-name";
    if ("column" in value) return "column";
    return "constant";
  }
  return String(value).includes("{") ? "template" : "constant";
}

function kindsFor(name) {
  const kinds = [["column", "Column"], ["constant", "Same for every row"], ["template", "Template"]];
  if (name === "contactId") return [["column", "Contact ID column"], ["email", "Email lookup"]];
  if (name === "activityDate") return [["column", "Column"]];
  if (name === "campaignId") kinds.push(["campaign-name", "Campaign by name"]);
  if (name === "campaignId" || name === "name") kinds.unshift(["none", "Not set"]);
  return kinds;
}

function renderForm() {
  const form = $("form");
  const active = document.activeElement;
  const focused = active && form.contains(active) ? (active.id || active.getAttribute("aria-label")) : null;
  form.replaceChildren();
  if (!state.doc || typeof state.doc !== "object") return;
  const activity = state.doc.activity || {};
  for (const [name, label, help] of FIELDS) {
    const value = activity[name];
    const kind = fieldKind(value);
    const row = el("fieldset", { class: "field" }, el("legend", { text: label }),
      el("span", { class: "hint", text: help }));
    const kindSelect = el("select", { id: "kind-" + name, "aria-label": label + ": from",
      onchange: () => setKind(name, kindSelect.value) });
    for (const [k, text] of kindsFor(name)) {
      kindSelect.append(el("option", { value: k, text, selected: k === kind }));
    }
    row.append(kindSelect);
    row.append(valueControl(name, label, kind, value));
    if (kind === "column" && !["activityDate", "contactId"].includes(name)) {
      row.append(valueMapEditor(name, label, value));
    }
    if (name === "activityDate" && value && typeof value === "object") {
      row.append(el("label", { for: "date-format", text: "Date format" }),
        el("input", { id: "date-format", type: "text", value: value.format || "",
          onchange: (e) => setPart(name, "format", e.target.value) }));
      const zone = el("input", { id: "timezone", type: "text", list: "zones",
        value: value.timezone || "", onchange: (e) => setPart(name, "timezone", e.target.value) });
      const list = el("datalist", { id: "zones" }, ...ZONES.map((z) => el("option", { value: z })));
      row.append(el("label", { for: "timezone", text: "Time zone" }), zone, list);
    }
    form.append(row);
  }
  form.append(skipEditor(), blankEditor());
  if (focused) {
    const again = [...form.querySelectorAll("input, select, button")].find(
      (node) => node.id === focused || node.getAttribute("aria-label") === focused);
    if (again) again.focus();
  }
  datePreview();
}

// A value map: cell values (matched regardless of case) -> what Eloqua gets.
function valueMapEditor(name, label, value) {
  const map = (value && value.map) || {};
  const box = el("div", { class: "map" });
  Object.entries(map).forEach(([from, to], i) => {
    let key = from;  // follows renames, so the form need not be drawn again while typing
    const fromInput = el("input", { type: "text", value: from, "aria-label": `${label}: cell value ${i + 1}`,
      onchange: (e) => { renameKey(name, key, e.target.value); key = e.target.value; } });
    const toInput = el("input", { type: "text", value: String(to), "aria-label": `${label}: becomes ${i + 1}`,
      onchange: (e) => { state.doc.activity[name].map[key] = e.target.value; formChanged(); } });
    box.append(el("div", {}, fromInput, el("span", { text: " → " }), toInput,
      el("button", { type: "button", class: "small", text: "Remove", "aria-label": `${label}: remove ${from}`,
        onclick: () => { delete state.doc.activity[name].map[key]; tidyMap(name); formChanged(true); } })));
  });
  box.append(el("button", { type: "button", class: "small", text: "Add a value map entry",
    "aria-label": `${label}: add a value map entry`,
    onclick: () => {
      const spec = state.doc.activity[name];
      spec.map = Object.assign(spec.map || {}, { "": "" });
      formChanged(true);
    } }));
  return box;
}

function renameKey(name, from, to) {
  const spec = state.doc.activity[name];
  const entries = Object.entries(spec.map).map(([k, v]) => (k === from ? [to, v] : [k, v]));
  spec.map = Object.fromEntries(entries);
  formChanged();
}

function tidyMap(name) {
  const spec = state.doc.activity[name];
  if (spec.map && !Object.keys(spec.map).length) delete spec.map;
}

const SKIP_TESTS = [["equals", "is"], ["in", "is one of (comma-separated)"],
  ["not_in", "is not one of (comma-separated)"], ["blank", "is empty"]];
const LIST_TESTS = ["in", "not_in"];

// skip_if: rows to leave out, reported `skipped`.
function skipEditor() {
  const rules = Array.isArray(state.doc.skip_if) ? state.doc.skip_if : [];
  const box = el("fieldset", { class: "field" }, el("legend", { text: "Rows to leave out" }),
    el("span", { class: "hint", text: "reported as skipped, never sent" }));
  rules.forEach((rule, i) => {
    const test = SKIP_TESTS.map(([k]) => k).find((k) => k in rule) || "equals";
    const column = el("select", { "aria-label": `Leave out rule ${i + 1}: column`,
      onchange: (e) => { rule.column = e.target.value; formChanged(); } });
    const columns = state.header.includes(rule.column) ? state.header : [rule.column, ...state.header];
    for (const c of columns) column.append(el("option", { value: c, text: c, selected: c === rule.column }));
    const how = el("select", { "aria-label": `Leave out rule ${i + 1}: test`,
      onchange: (e) => { setSkipTest(rule, e.target.value); formChanged(true); } });
    for (const [k, text] of SKIP_TESTS) how.append(el("option", { value: k, text, selected: k === test }));
    const shown = LIST_TESTS.includes(test) ? (rule[test] || []).join(", ")
      : test === "equals" ? String(rule.equals ?? "") : "";
    const value = el("input", { type: "text", value: shown, "aria-label": `Leave out rule ${i + 1}: value`,
      disabled: test === "blank" ? "" : null,
      onchange: (e) => {
        if (LIST_TESTS.includes(test)) rule[test] = e.target.value.split(",").map((v) => v.trim()).filter(Boolean);
        else rule.equals = e.target.value;
        formChanged();
      } });
    box.append(el("div", {}, column, how, value, el("button", { type: "button", class: "small",
      text: "Remove", "aria-label": `Remove leave out rule ${i + 1}`,
      onclick: () => { rules.splice(i, 1); if (!rules.length) delete state.doc.skip_if; formChanged(true); } })));
  });
  box.append(el("button", { type: "button", class: "small", text: "Add a rule", onclick: () => {
    state.doc.skip_if = [...rules, { column: state.header[0] || "", equals: "" }];
    formChanged(true);
  } }));
  return box;
}

function setSkipTest(rule, test) {
  const old = rule.equals ?? (rule.in || rule.not_in || [])[0] ?? "";
  for (const [k] of SKIP_TESTS) delete rule[k];
  if (test === "blank") rule.blank = true;
  else if (LIST_TESTS.includes(test)) rule[test] = old === "" ? [] : [String(old)];
  else rule.equals = String(old);
}

// blank_values: cell texts that stand for "no value" (e.g. --, N/A).
function blankEditor() {
  const values = Array.isArray(state.doc.blank_values) ? state.doc.blank_values : [];
  return el("fieldset", { class: "field" }, el("legend", { text: "Cells that mean empty" }),
    el("label", { for: "blank-values", class: "sr", text: "Cells that mean empty" }),
    el("input", { id: "blank-values", type: "text", value: values.join(", "), placeholder: "--, N/A",
      onchange: (e) => {
        const list = e.target.value.split(",").map((v) => v.trim()).filter(Boolean);
        if (list.length) state.doc.blank_values = list; else delete state.doc.blank_values;
        formChanged();
      } }));
}

function valueControl(name, label, kind, value) {
  const id = "value-" + name;
  const box = el("span", {});
  if (kind === "none") return box;
  box.append(el("label", { for: id, class: "sr", text: label }));
  if (["column", "email", "campaign-column"].includes(kind)) {
    const current = typeof value === "object" ? value.column : "";
    const select = el("select", { id, onchange: (e) => setPart(name, "column", e.target.value) });
    const columns = state.header.includes(current) || !current ? state.header : [current, ...state.header];
    select.append(el("option", { value: "", text: "— column —" }));
    for (const c of columns) select.append(el("option", { value: c, text: c, selected: c === current }));
    box.append(select);
    return box;
  }
  const text = typeof value === "object" && value !== null ? (value.value ?? "") : (value ?? "");
  const choices = catalogChoices(name);
  if (kind === "constant" && choices) {
    const select = el("select", { id, onchange: (e) => setConstant(name, e.target.value) });
    select.append(el("option", { value: "", text: "— choose —" }));
    const all = choices.includes(String(text)) || !text || String(text).startsWith("<FILL IN")
      ? choices : [String(text), ...choices];
    for (const c of all) select.append(el("option", { value: c, text: c, selected: c === String(text) }));
    box.append(select);
    return box;
  }
  box.append(el("input", { id, type: "text", value: String(text),
    onchange: (e) => (kind === "campaign-name" ? setPart(name, "value", e.target.value)
      : setConstant(name, e.target.value)) }));
  return box;
}

function catalogChoices(name) {
  if (!state.catalog) return null;
  if (name === "assetType") return Object.keys(state.catalog);
  if (name === "activityType") {
    const asset = (state.doc.activity || {}).assetType;
    return state.catalog[asset] || [...new Set(Object.values(state.catalog).flat())];
  }
  return null;
}

function setKind(name, kind) {
  const activity = state.doc.activity = state.doc.activity || {};
  const old = activity[name];
  const column = typeof old === "object" && old !== null ? old.column : undefined;
  if (kind === "none") delete activity[name];
  else if (kind === "column") activity[name] = { column: column || state.header[0] || "" };
  else if (kind === "email") activity[name] = { lookup: "contact", column: column || "" };
  else if (kind === "campaign-name") activity[name] = { lookup: "campaign", value: "" };
  else if (kind === "template") activity[name] = "{" + (column || state.header[0] || "") + "}";
  else activity[name] = "";
  formChanged(true);
}

function setPart(name, part, value) {
  const activity = state.doc.activity;
  if (typeof activity[name] !== "object" || activity[name] === null) activity[name] = {};
  activity[name][part] = value;
  formChanged();
  if (name === "activityDate") datePreview();
}

function setConstant(name, value) {
  state.doc.activity[name] = value;
  formChanged(name === "assetType");  // its activity types are the next field's choices
}

// A change in the form: the YAML follows. The form is drawn again only when its shape
// changed (rerender), at once and keeping the focus, so nothing typed meanwhile is lost.
let renders = 0;
async function formChanged(rerender = false) {
  if (rerender) renderForm();
  const asked = ++renders;
  const data = await call("/api/render", { document: state.doc });
  if (asked !== renders) return;  // a later change is being rendered
  $("yaml").value = data.yaml;
  $("yaml-problem").textContent = "";
}

let yamlTimer = null;
function yamlEdited() {
  clearTimeout(yamlTimer);
  yamlTimer = setTimeout(async () => {
    const data = await call("/api/parse", { yaml: $("yaml").value });
    $("yaml-problem").textContent = data.problem || "";
    if (data.document) { state.doc = data.document; renderForm(); }
  }, 400);
}

let datePreviews = 0;
async function datePreview() {
  const asked = ++datePreviews;
  const table = $("date-preview");
  const spec = state.doc && state.doc.activity && state.doc.activity.activityDate;
  if (!state.upload || !spec || typeof spec !== "object" || !spec.column) {
    table.replaceChildren();
    return;
  }
  const data = await call("/api/dates", { upload: state.upload.upload, column: spec.column,
    format: spec.format || "", timezone: spec.timezone && !spec.timezone.startsWith("<") ? spec.timezone : "UTC",
    sheet: $("sheet").value || null, header_row: Number($("header-row").value) || null });
  if (asked !== datePreviews) return;  // an answer to an earlier question: a newer one is due
  const head = el("tr", {}, ...["In the file", "Read as", "In UTC"].map((t) => el("th", { text: t })));
  table.replaceChildren(head);
  if (data.problem) table.append(el("tr", {}, el("td", { colspan: 3, class: "problem", text: data.problem })));
  for (const v of data.values || []) {
    table.append(el("tr", {}, el("td", { text: v.value }),
      el("td", { text: v.problem || v.local, class: v.problem ? "problem" : "" }), el("td", { text: v.utc })));
  }
}

async function save(overwrite = false) {
  const name = $("save-name").value.trim();
  const data = await call("/api/save", { name, yaml: $("yaml").value, overwrite });
  if (data.status === 409 && data.exists) {
    if (window.confirm(data.error)) return save(true);
    $("save-status").textContent = "not saved";
    return;
  }
  $("save-status").textContent = data.error || "Saved as " + data.saved;
  if (!data.error) {
    state.mappingName = data.saved;
    await listMappings();
    $("mapping").value = data.name;
  }
}

// --- 4./5. Check and Import ---------------------------------------------------------------

async function start(kind) {
  const out = kind === "check" ? $("check-out") : $("import-out");
  out.replaceChildren(el("p", { text: "Starting…" }));
  const data = await call("/api/" + kind, { upload: state.upload.upload, yaml: $("yaml").value,
    mapping_name: state.mappingName || $("save-name").value || "MAPPING.yaml",
    sheet: $("sheet").value || null, header_row: Number($("header-row").value) || null });
  if (data.error) {
    out.replaceChildren(el("p", { class: "problem", role: "alert", text: data.error }));
    return;
  }
  follow(data);
}

function follow(job) {
  if (state.source) state.source.close();
  const out = job.kind === "check" ? $("check-out") : $("import-out");
  const view = jobView(job, out);
  if (job.kind === "import") state.currentImport = job.id;
  if (job.kind === "import") { $("stop").disabled = false; $("import").disabled = true; }
  const source = new EventSource("/api/jobs/" + job.id + "/events");
  state.source = source;
  source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    view.update(data);
    if (data.state === "finished" || data.state === "failed") {
      source.close();
      finished(data, view);
    }
  };
}

function jobView(job, out) {
  const bar = el("progress", { max: 1, value: 0, "aria-label": job.kind + " progress" });
  const line = el("p", { role: "status", class: "progress-line" });
  const counts = el("dl", { class: "counts" });
  const notices = el("p", { class: "hint" });
  const filter = el("input", { type: "search", id: job.kind + "-filter", placeholder: "row, status, reason…" });
  const status = el("select", { id: job.kind + "-status" }, el("option", { value: "", text: "all statuses" }));
  const table = el("table", { class: "rows", "aria-label": job.kind + " rows" });
  const summary = el("pre", { class: "summary" });
  const rows = [];
  out.replaceChildren(bar, line, counts, notices,
    el("label", { for: filter.id, text: "Filter rows " }), filter,
    el("label", { for: status.id, text: " Status " }), status,
    el("div", { class: "scroll" }, table), summary);
  const draw = () => {
    const needle = filter.value.toLowerCase();
    const wanted = status.value;
    table.replaceChildren(el("tr", {}, ...["Row", "Status", "Activity id", "Reason", "Values"]
      .map((t) => el("th", { text: t }))));
    let shown = 0;
    for (const r of rows) {
      const values = Object.entries(r.record).map(([k, v]) => k + ": " + v).join(" · ");
      const hay = (r.row + " " + r.status + " " + r.error + " " + values).toLowerCase();
      if ((wanted && r.status !== wanted) || (needle && !hay.includes(needle))) continue;
      if (++shown > 500) break;
      table.append(el("tr", { class: "st-" + r.status }, el("td", { text: String(r.row) }),
        el("td", { text: r.status }), el("td", { text: r.activity_id }),
        el("td", { text: r.error }), el("td", { text: values })));
    }
  };
  filter.addEventListener("input", draw);
  status.addEventListener("change", draw);
  return {
    update(data) {
      rows.push(...(data.rows || []));
      const total = data.total || 0;
      bar.max = Math.max(total, 1);
      bar.value = data.done;
      const rate = data.elapsed > 0 ? data.done / data.elapsed : 0;
      const eta = rate > 0 && total > data.done ? Math.ceil((total - data.done) / rate) + " s left" : "";
      line.textContent = `${data.state}: ${data.done}${total ? " of " + total : ""} rows, `
        + `${rate.toFixed(1)} rows/s ${eta}`;
      counts.replaceChildren(...Object.entries(data.counts).flatMap(([k, v]) =>
        [el("dt", { text: k }), el("dd", { text: String(v), "data-status": k })]));
      for (const k of Object.keys(data.counts)) {
        if (![...status.options].some((o) => o.value === k)) status.append(el("option", { value: k, text: k }));
      }
      notices.textContent = (data.notices || []).join(" ");
      summary.textContent = data.error || data.summary;
      if (data.error) summary.className = "summary problem";
      draw();
    },
  };
}

function finished(data, view) {
  if (data.kind === "check") {
    const valid = data.counts.valid || 0;
    state.checked = data.state === "finished" ? valid : null;
    $("import").disabled = !(valid > 0);
    $("import").textContent = valid > 0 ? `Import ${valid} rows` : "Import";
  } else {
    $("stop").disabled = true;
    $("import").disabled = !(state.upload && state.checked);
    showResults(data);
  }
  loadRecent();
}

function showResults(data) {
  const box = $("results");
  const links = el("p", {}, el("a", { href: `/api/jobs/${data.id}/results.csv`, download: "",
    text: "Download results" }));
  if (data.errors_file) {
    links.append(" ", el("a", { href: `/api/jobs/${data.id}/errors.csv`, download: "", text: "Download errors" }));
  }
  const counts = Object.entries(data.counts).map(([k, v]) => `${k}: ${v}`).join(", ");
  box.replaceChildren(el("p", { id: "result-counts", text: `${data.file}: ${counts || "no rows"}` }),
    links, el("p", { text: "The same import from a terminal (rows created already are not sent again):" }),
    el("code", { id: "command", text: data.command }));
}

async function loadRecent() {
  const data = await call("/api/jobs");
  const list = $("recent");
  list.replaceChildren();
  for (const job of data.jobs) {
    const counts = Object.entries(job.counts || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const item = el("li", {}, el("span", { text: `${job.started} ${job.kind} of ${job.file}`
      + `${job.sandbox ? " (sandbox)" : ""}: ${job.state}${counts ? " — " + counts : ""} ` }));
    item.append(el("button", { type: "button", text: "Show",
      "aria-label": "Show " + job.kind + " of " + job.file + " at " + job.started,
      onclick: () => (job.state === "running" || job.state === "stopping" ? reattach(job.id) : showResults(job)) }));
    list.append(item);
  }
  return data.jobs;
}

async function reattach(id) {
  const job = await call("/api/jobs/" + id);
  if (job.status === 200) follow(job);
}

// --- wiring -------------------------------------------------------------------------------

function wire() {
  $("file").addEventListener("change", (e) => e.target.files[0] && sendFile(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) sendFile(e.dataTransfer.files[0]);
  });
  $("sheet").addEventListener("change", () => { $("header-row").value = ""; repreview(); });
  $("header-row").addEventListener("change", repreview);
  $("mapping").addEventListener("change", chooseMapping);
  $("yaml").addEventListener("input", yamlEdited);
  $("save").addEventListener("click", () => save());
  $("check").addEventListener("click", () => start("check"));
  $("import").addEventListener("click", () => start("import"));
  $("stop").addEventListener("click", async () => {
    if (state.currentImport) await call("/api/jobs/" + state.currentImport + "/stop", {});
  });
}

async function main() {
  wire();
  await Promise.all([showConnection(), listMappings()]);
  const jobs = await loadRecent();
  const running = jobs.find((j) => j.state === "running" || j.state === "stopping");
  if (running) reattach(running.id);  // the tab was closed while it ran
}

main();
