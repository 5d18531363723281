// Small pure formatting helpers the result view shares: times on a clock, numbers, templates.

/** Seconds as a clock, "m:ss" (whole seconds, rounded down), e.g. 312.4 -> "5:12". */
export function clock(seconds) {
  const whole = Math.max(0, Math.floor(Number(seconds) || 0));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/** A number with at most `digits` decimals, without trailing zeros: 24.10 -> "24.1". */
export function decimal(value, digits = 1) {
  return String(Number(Number(value).toFixed(digits)));
}

/** `template` with each {name} replaced by values[name]. */
export function fill(template, values) {
  return String(template).replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** A finite number, or null (for values that were not measured). */
export function numberOrNull(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}
