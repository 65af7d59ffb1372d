/**
 * Field-by-field checks of what is read back from disk (a checkpoint's config, its manifest): every field known,
 * every value of its kind, so that an unknown or damaged value is refused by name instead of building a model that
 * silently means something else.
 */

/** A stored config of a variant that this version no longer has: the message names it and says what to do. */
export class RemovedVariantError extends Error {}

/** count: an integer ≥ 1; index: an integer ≥ 0; fraction: a number in [0, 1); a list: one of its strings. */
export type Rule = "count" | "index" | "number" | "fraction" | "boolean" | "string" | "object" | readonly string[];

function fits(rule: Rule, v: unknown): boolean {
  if (Array.isArray(rule)) return typeof v === "string" && rule.includes(v);
  switch (rule) {
    case "count":
      return Number.isInteger(v) && (v as number) >= 1;
    case "index":
      return Number.isInteger(v) && (v as number) >= 0;
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "fraction":
      return typeof v === "number" && v >= 0 && v < 1;
    case "boolean":
      return typeof v === "boolean";
    case "string":
      return typeof v === "string";
    case "object":
      return typeof v === "object" && v !== null && !Array.isArray(v);
  }
  return false;
}

function describe(rule: Rule): string {
  if (Array.isArray(rule)) return `one of ${rule.join(", ")}`;
  return (
    {
      count: "a positive integer",
      index: "an integer ≥ 0",
      number: "a finite number",
      fraction: "a number in [0, 1)",
      boolean: "true or false",
      string: "a string",
      object: "an object",
    } as Record<string, string>
  )[rule as string];
}

/**
 * Throws `<what>: …` naming the first unknown field, missing required field or value of the wrong kind.
 * `required` fields must be present; `optional` ones may be absent (or undefined).
 */
export function checkFields(
  what: string,
  value: unknown,
  required: Record<string, Rule>,
  optional: Record<string, Rule> = {},
): void {
  if (!fits("object", value)) throw new Error(`${what} is not an object: ${JSON.stringify(value)}`);
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(key in required) && !(key in optional)) throw new Error(`${what}: unknown field ${JSON.stringify(key)}`);
  }
  for (const [key, rule] of Object.entries(required)) {
    if (!(key in o)) throw new Error(`${what}: field ${JSON.stringify(key)} is missing`);
    if (!fits(rule, o[key]))
      throw new Error(`${what}: ${key} must be ${describe(rule)}, got ${JSON.stringify(o[key])}`);
  }
  for (const [key, rule] of Object.entries(optional)) {
    if (o[key] !== undefined && !fits(rule, o[key]))
      throw new Error(`${what}: ${key} must be ${describe(rule)}, got ${JSON.stringify(o[key])}`);
  }
}
