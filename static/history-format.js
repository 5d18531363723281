// How /history words a conversation: its date, length, score and outcome. Pure (tested in node).
import { fill } from "./i18n.js";

const LOCALES = Object.freeze({ ja: "ja-JP", en: "en-GB" });

/** A conversation's start as the page's language writes a date and time; "" when unknown. */
export function formatDate(iso, lang) {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return "";
  return new Intl.DateTimeFormat(LOCALES[lang] || LOCALES.ja, { dateStyle: "medium", timeStyle: "short" })
    .format(date);
}

/** `m:ss` (or `h:mm:ss`) from seconds, rounded to whole seconds; the same in both languages. */
export function formatDuration(seconds) {
  const whole = Math.max(0, Math.round(Number(seconds) || 0));
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor(whole / 60) % 60, whole % 60];
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** `78 点` / `78 points`, or "not graded". */
export function formatScore(score, t) {
  return typeof score === "number" && Number.isFinite(score)
    ? fill(t("history.item.score"), { score: Math.round(score) })
    : t("history.item.ungraded");
}

/**
 * The i18n key of a conversation's outcome: a meeting agreed, or none. `outcome` is what the API gives:
 * the evaluation's {appointment, details}, the socket's {name: "appointment", details}, or null.
 */
export function outcomeKey(outcome) {
  if (!outcome || typeof outcome !== "object") return "history.item.no_outcome";
  const agreed = outcome.appointment === true || outcome.name === "appointment";
  return agreed ? "history.item.appointment" : "history.item.no_outcome";
}

/** The session id a /history URL fragment names (`#<id>`), or null. */
export function sessionFromHash(hash) {
  const raw = String(hash || "").replace(/^#/, "");
  if (!raw) return null;
  try {
    const id = decodeURIComponent(raw);
    return /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/.test(id) ? id : null;
  } catch {
    return null;
  }
}

/** Today's use in words: conversations, minutes, and the limits (GET /api/me). */
export function usageText(me, t) {
  const usage = (me && me.usage_today) || {};
  const limits = (me && me.limits) || {};
  const line = fill(t("history.usage.line"), {
    conversations: usage.conversations ?? 0,
    time: formatDuration(usage.seconds ?? 0),
    limit: Math.round((limits.daily_seconds ?? 0) / 60),
    concurrent: limits.concurrent ?? 0,
  });
  const hours = Math.max(0, Math.ceil((me && me.resets_in_s ? me.resets_in_s : 0) / 3600));
  return `${line} ${fill(t("history.usage.resets"), { hours })}`;
}
