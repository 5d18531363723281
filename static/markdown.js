// A small Markdown reader for the grading report. parseMarkdown() is pure (a block tree);
// renderMarkdown() builds DOM nodes with createElement/textContent only, so text from the
// server can never become markup. Supported: headings, paragraphs, bullet and numbered
// lists, block quotes, fenced code, rules, pipe tables, **strong**, *em*, `code`, and
// http(s) links.

/**
 * @typedef {{type: "text"|"code", text: string} | {type: "strong"|"em", children: Inline[]}
 *   | {type: "link", href: string, children: Inline[]}} Inline
 */

const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d{1,9}[.)]\s+(.*)$/;
const QUOTE = /^\s*>\s?(.*)$/;
const FENCE = /^\s*(```|~~~)/;
const TABLE_SEPARATOR = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

/** Parse Markdown text into blocks. */
export function parseMarkdown(source) {
  const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
    } else if (FENCE.test(line)) {
      i = readFence(lines, i, blocks);
    } else if (HEADING.test(line)) {
      const [, hashes, text] = line.match(HEADING);
      blocks.push({ type: "heading", level: hashes.length, children: parseInline(text) });
      i += 1;
    } else if (RULE.test(line)) {
      blocks.push({ type: "rule" });
      i += 1;
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      i = readList(lines, i, blocks);
    } else if (QUOTE.test(line)) {
      i = readQuote(lines, i, blocks);
    } else if (line.includes("|") && i + 1 < lines.length && TABLE_SEPARATOR.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      i = readTable(lines, i, blocks);
    } else {
      i = readParagraph(lines, i, blocks);
    }
  }
  return blocks;
}

function readFence(lines, i, blocks) {
  const marker = lines[i].trim().slice(0, 3);
  const body = [];
  i += 1;
  while (i < lines.length && !lines[i].trim().startsWith(marker)) body.push(lines[i++]);
  blocks.push({ type: "code", text: body.join("\n") });
  return i + 1;
}

function readList(lines, i, blocks) {
  const ordered = NUMBERED.test(lines[i]) && !BULLET.test(lines[i]);
  const items = [];
  while (i < lines.length && lines[i].trim()) {
    const m = lines[i].match(BULLET) || lines[i].match(NUMBERED);
    if (m) items.push(m[1]);
    else if (items.length && /^\s+/.test(lines[i])) items[items.length - 1] += " " + lines[i].trim();
    else break;
    i += 1;
  }
  blocks.push({ type: "list", ordered, items: items.map(parseInline) });
  return i;
}

function readQuote(lines, i, blocks) {
  const body = [];
  while (i < lines.length && QUOTE.test(lines[i])) body.push(lines[i++].match(QUOTE)[1]);
  blocks.push({ type: "quote", children: parseMarkdown(body.join("\n")) });
  return i;
}

function readTable(lines, i, blocks) {
  const header = splitRow(lines[i]);
  const rows = [];
  i += 2;
  while (i < lines.length && lines[i].includes("|") && lines[i].trim()) rows.push(splitRow(lines[i++]));
  blocks.push({
    type: "table",
    header: header.map(parseInline),
    rows: rows.map((row) => header.map((_, c) => parseInline(row[c] ?? ""))),
  });
  return i;
}

function splitRow(line) {
  let text = line.trim();
  if (text.startsWith("|")) text = text.slice(1);
  if (text.endsWith("|")) text = text.slice(0, -1);
  return text.split("|").map((cell) => cell.trim());
}

function readParagraph(lines, i, blocks) {
  const body = [];
  while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) body.push(lines[i++].trim());
  blocks.push({ type: "paragraph", children: parseInline(body.join(" ")) });
  return i;
}

function startsBlock(line) {
  return HEADING.test(line) || FENCE.test(line) || BULLET.test(line) || NUMBERED.test(line) || QUOTE.test(line) || RULE.test(line);
}

const INLINE = [
  { type: "code", re: /`([^`]+)`/ },
  { type: "strong", re: /\*\*(.+?)\*\*|__(.+?)__/ },
  { type: "em", re: /\*([^*\s](?:[^*]*[^*\s])?)\*/ },
  { type: "link", re: /\[([^\]]+)\]\(([^()\s]+)\)/ },
];

/** Parse one line of inline Markdown. @returns {Inline[]} */
export function parseInline(text) {
  const out = [];
  let rest = String(text);
  while (rest) {
    let best = null;
    for (const rule of INLINE) {
      const m = rest.match(rule.re);
      if (m && (best === null || m.index < best.m.index)) best = { rule, m };
    }
    if (!best) {
      pushText(out, rest);
      break;
    }
    const { rule, m } = best;
    if (m.index > 0) pushText(out, rest.slice(0, m.index));
    out.push(inlineNode(rule.type, m));
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}

function inlineNode(type, m) {
  if (type === "code") return { type, text: m[1] };
  if (type === "link") {
    const href = safeHref(m[2]);
    return href ? { type, href, children: parseInline(m[1]) } : { type: "text", text: m[0] };
  }
  return { type, children: parseInline(m[1] ?? m[2]) };
}

function pushText(out, text) {
  const last = out[out.length - 1];
  if (last && last.type === "text") last.text += text;
  else out.push({ type: "text", text });
}

/** Only absolute http(s) links survive; anything else (javascript:, data:) stays text. */
export function safeHref(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * Build DOM nodes for parsed blocks. Headings are shifted down by `headingOffset`
 * so a report's "#" fits under the page's own headings.
 * @param {ReturnType<typeof parseMarkdown>} blocks
 * @param {Document} doc
 * @returns {DocumentFragment}
 */
export function renderMarkdown(blocks, doc, headingOffset = 2) {
  const fragment = doc.createDocumentFragment();
  for (const block of blocks) fragment.append(renderBlock(block, doc, headingOffset));
  return fragment;
}

function renderBlock(block, doc, headingOffset) {
  switch (block.type) {
    case "heading":
      return withInline(doc.createElement(`h${Math.min(6, block.level + headingOffset)}`), block.children, doc);
    case "paragraph":
      return withInline(doc.createElement("p"), block.children, doc);
    case "rule":
      return doc.createElement("hr");
    case "code": {
      const pre = doc.createElement("pre");
      const code = doc.createElement("code");
      code.textContent = block.text;
      pre.append(code);
      return pre;
    }
    case "quote": {
      const quote = doc.createElement("blockquote");
      quote.append(renderMarkdown(block.children, doc, headingOffset));
      return quote;
    }
    case "list": {
      const list = doc.createElement(block.ordered ? "ol" : "ul");
      for (const item of block.items) list.append(withInline(doc.createElement("li"), item, doc));
      return list;
    }
    case "table":
      return renderTable(block, doc);
    default:
      return doc.createTextNode("");
  }
}

function renderTable(block, doc) {
  const wrap = doc.createElement("div");
  wrap.className = "table-scroll";
  const table = doc.createElement("table");
  const head = table.createTHead().insertRow();
  for (const cell of block.header) {
    const th = doc.createElement("th");
    th.scope = "col";
    head.append(withInline(th, cell, doc));
  }
  const body = table.createTBody();
  for (const row of block.rows) {
    const tr = body.insertRow();
    for (const cell of row) withInline(tr.insertCell(), cell, doc);
  }
  wrap.append(table);
  return wrap;
}

function withInline(el, inlines, doc) {
  for (const node of inlines) el.append(renderInline(node, doc));
  return el;
}

function renderInline(node, doc) {
  switch (node.type) {
    case "text":
      return doc.createTextNode(node.text);
    case "code": {
      const code = doc.createElement("code");
      code.textContent = node.text;
      return code;
    }
    case "link": {
      const a = doc.createElement("a");
      a.href = node.href;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      return withInline(a, node.children, doc);
    }
    default:
      return withInline(doc.createElement(node.type), node.children, doc);
  }
}
