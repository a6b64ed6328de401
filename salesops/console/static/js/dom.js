// Small DOM, number and file helpers shared by the console's views.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Goods come in whole units: a forecast of 290.3 is shown as 290 (the exact figure stays in data-value).
export function units(value) {
  if (value === null || value === undefined) return "—";
  return (Math.round(value) || 0).toLocaleString("en-US");
}

export function pct(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`;
}

export function plainNumber(value) {
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 10) / 10);
}

export function setStatus(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

// ------------------------------------------------------------------ CSV export

// A spreadsheet runs a text cell that starts like a formula; such text is quoted as text. Numbers stay numbers.
function csvCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "";
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toCsv(rows) {
  return rows.map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

export function download(filename, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
  const link = el("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ------------------------------------------------------------------ forms and the services' field errors

export function clearFieldErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    const described = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.endsWith("-error"));
    if (described.length) input.setAttribute("aria-describedby", described.join(" "));
    else input.removeAttribute("aria-describedby");
  }
  for (const message of form.querySelectorAll(".field-error")) message.remove();
  const summary = form.querySelector(".form-error");
  if (summary) {
    summary.hidden = true;
    summary.textContent = "";
  }
}

// Puts each of a problem's `errors` beside the input it names (`fieldFor` maps the service's field path to an
// input name); what names no input goes to the form's summary. Focus moves to the first invalid input.
export function showFieldErrors(form, error, fieldFor) {
  clearFieldErrors(form);
  const unplaced = [];
  let first = null;
  for (const problem of error.errors || []) {
    const input = form.elements.namedItem(fieldFor(problem.field || ""));
    if (!(input instanceof HTMLElement) || !input.id) {
      unplaced.push(`${problem.field}: ${problem.message}`);
      continue;
    }
    const id = `${input.id}-error`;
    let message = document.getElementById(id);
    if (!message) {
      message = el("p", { id, className: "field-error" });
      input.after(message);
    }
    message.textContent = problem.message;
    input.setAttribute("aria-invalid", "true");
    const described = new Set((input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean));
    described.add(id);
    input.setAttribute("aria-describedby", [...described].join(" "));
    first = first || input;
  }
  if (!error.errors || !error.errors.length) unplaced.push(error.detail || error.message);
  const summary = form.querySelector(".form-error");
  if (summary && unplaced.length) {
    summary.textContent = unplaced.join("; ");
    summary.hidden = false;
  }
  if (first) first.focus();
}

export function numberOrNull(input) {
  const text = input.value.trim();
  return text === "" ? null : Number(text);
}
