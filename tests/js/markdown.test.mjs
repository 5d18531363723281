// Specification of static/markdown.js: the grading report is parsed into plain data, and
// nothing in it can turn into markup or a script URL.
import { test } from "node:test";
import assert from "node:assert/strict";

import { parseInline, parseMarkdown, safeHref } from "../../static/markdown.js";

test("headings, paragraphs and lists become blocks", () => {
  const blocks = parseMarkdown("# 評価\n\nよくできました。\n続けましょう。\n\n- 良い点\n- 改善点\n\n1. one\n2. two");
  assert.deepEqual(
    blocks.map((b) => b.type),
    ["heading", "paragraph", "list", "list"],
  );
  assert.equal(blocks[0].level, 1);
  assert.deepEqual(blocks[1].children, [{ type: "text", text: "よくできました。 続けましょう。" }]);
  assert.equal(blocks[2].ordered, false);
  assert.equal(blocks[2].items.length, 2);
  assert.equal(blocks[3].ordered, true);
});

test("inline strong, emphasis and code are recognised", () => {
  assert.deepEqual(parseInline("a **b** *c* `d`"), [
    { type: "text", text: "a " },
    { type: "strong", children: [{ type: "text", text: "b" }] },
    { type: "text", text: " " },
    { type: "em", children: [{ type: "text", text: "c" }] },
    { type: "text", text: " " },
    { type: "code", text: "d" },
  ]);
});

test("HTML in the report stays text", () => {
  const blocks = parseMarkdown('<img src=x onerror="alert(1)"> <script>alert(2)</script>');
  assert.deepEqual(blocks, [
    { type: "paragraph", children: [{ type: "text", text: '<img src=x onerror="alert(1)"> <script>alert(2)</script>' }] },
  ]);
});

test("only http(s) links become links; script and data URLs stay text", () => {
  assert.equal(safeHref("https://example.com/a"), "https://example.com/a");
  assert.equal(safeHref("javascript:alert(1)"), null);
  assert.equal(safeHref("data:text/html,hi"), null);
  assert.equal(safeHref("/relative"), null);
  assert.deepEqual(parseInline("[x](javascript:alert(1))")[0].type, "text");
  assert.equal(parseInline("[docs](https://example.com)")[0].type, "link");
});

test("pipe tables keep their header and rows", () => {
  const [table] = parseMarkdown("| 項目 | 点 |\n|---|---:|\n| ヒアリング | 80 |\n| 提案 | 70 |");
  assert.equal(table.type, "table");
  assert.equal(table.header.length, 2);
  assert.equal(table.rows.length, 2);
  assert.deepEqual(table.rows[1][1], [{ type: "text", text: "70" }]);
});

test("fenced code keeps its text verbatim", () => {
  const [code] = parseMarkdown("```\n**not bold** <b>\n```");
  assert.deepEqual(code, { type: "code", text: "**not bold** <b>" });
});

test("quotes and rules are recognised; empty or missing input gives nothing", () => {
  assert.deepEqual(parseMarkdown("> quoted\n\n---").map((b) => b.type), ["quote", "rule"]);
  assert.deepEqual(parseMarkdown(""), []);
  assert.deepEqual(parseMarkdown(undefined), []);
});
