// What the conversation achieved (evaluation.outcome: the customer agreed to a meeting through the
// AI's tool call), as a badge. outcomeOf() and outcomeText() are pure; renderOutcome() draws it.
// Page contract: `outcome`, present only when there is one, with data-outcome="appointment".
import { fill } from "./format.js";

/**
 * The outcome's name and details, or null. evaluation.outcome is {"<name>": true, "details": {...}}.
 * @returns {{name: string, details: object}|null}
 */
export function outcomeOf(evaluation) {
  const outcome = evaluation && evaluation.outcome;
  if (!outcome || typeof outcome !== "object") return null;
  const name = Object.keys(outcome).find((key) => key !== "details" && outcome[key] === true);
  if (!name) return null;
  const details = outcome.details && typeof outcome.details === "object" ? outcome.details : {};
  return { name, details };
}

/** The badge's words, e.g. "Meeting booked: 2026-12-03 14:00 (demo)". Pure. */
export function outcomeText(outcome, t) {
  const known = t(`outcome.${outcome.name}`);
  const title = known === `outcome.${outcome.name}` ? outcome.name : known;
  const { date, time, topic } = outcome.details;
  const when = [date, time].filter((part) => typeof part === "string" && part).join(" ");
  if (!when) return title;
  const withTopic = typeof topic === "string" && topic ? "outcome.when.topic" : "outcome.when";
  return `${title}: ${fill(t(withTopic), { when, topic })}`;
}

/** The badge for `evaluation`'s outcome, or null when the conversation reached none. */
export function renderOutcome(doc, evaluation, t) {
  const outcome = outcomeOf(evaluation);
  if (!outcome) return null;
  const badge = doc.createElement("p");
  badge.className = "outcome-badge";
  badge.dataset.testid = "outcome";
  badge.dataset.outcome = outcome.name;
  badge.textContent = outcomeText(outcome, t);
  return badge;
}
