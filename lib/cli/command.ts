/**
 * The CLI's table of commands: each command declares its flags once — type, default, help — and gets parsing,
 * validation with one-line errors that name the flag and value, and a generated `--help`. Defaults come from the
 * lib's `default*Config` functions where there is one, so they are never restated here.
 */
import { parseArgs } from "node:util";

interface FlagBase {
  help: string;
  /** How the value is shown in usage (`DIR`, `N`, …). */
  placeholder?: string;
}
export type FlagSpec =
  | (FlagBase & { type: "string"; default?: string; choices?: readonly string[]; multiple?: boolean })
  | (FlagBase & { type: "boolean" })
  | (FlagBase & { type: "int"; default?: number; min?: number })
  | (FlagBase & {
      type: "number";
      default?: number;
      /** The range a value must lie in (default: ≥ 0): min/max inclusive, above/below exclusive. */
      min?: number;
      max?: number;
      above?: number;
      below?: number;
    })
  | (FlagBase & { type: "ints"; default?: readonly number[] });

type ValueOf<S> = S extends { type: "boolean" }
  ? boolean
  : S extends { type: "int" | "number" }
    ? number
    : S extends { type: "ints" }
      ? number[]
      : S extends { multiple: true }
        ? string[]
        : S extends { choices: readonly (infer C)[] }
          ? C
          : string;
export type Values<F> = {
  [K in keyof F]: F[K] extends { type: "boolean" } | { default: unknown } | { multiple: true }
    ? ValueOf<F[K]>
    : ValueOf<F[K]> | undefined;
};

export interface Command<F extends Record<string, FlagSpec> = Record<string, FlagSpec>> {
  name: string;
  summary: string;
  /** Positional arguments in usage (`IMAGE...`), if the command takes any. */
  positionals?: string;
  flags: F;
  /** A paragraph after the flags (what it writes, an example). */
  details?: string;
  /** `given`: the flags on the command line (not filled in from defaults), e.g. to refuse ones --resume ignores. */
  run(values: Values<F>, positionals: string[], given: ReadonlySet<string>): Promise<void>;
}

/** Declares a command with its flag types inferred (the table in lib/cli/index.ts holds them). */
export function defineCommand<const F extends Record<string, FlagSpec>>(c: Command<F>): Command {
  return c as unknown as Command;
}

function showDefault(s: FlagSpec): string {
  if (s.type === "boolean" || s.default === undefined) return "";
  const d = Array.isArray(s.default)
    ? s.default.join(",")
    : typeof s.default === "number"
      ? String(Number(s.default.toPrecision(4)))
      : s.default;
  return ` (default ${d})`;
}

/** `attend-tell <command> --help`: each flag, its default and what it does. */
export function usage(c: Command): string {
  const flags = Object.entries(c.flags).map(([name, s]) => {
    const arg =
      s.type === "boolean"
        ? ""
        : ` ${s.placeholder ?? ("choices" in s && s.choices ? s.choices.join("|") : s.type === "string" ? "VALUE" : "N")}`;
    return [`  --${name}${arg}`, `${s.help}${showDefault(s)}${"multiple" in s && s.multiple ? "; repeatable" : ""}`];
  });
  const width = Math.min(34, Math.max(...flags.map(([f]) => f.length), 0) + 2);
  const lines = flags.map(([f, h]) => (f.length + 2 > width ? `${f}\n${" ".repeat(width)}${h}` : f.padEnd(width) + h));
  return [
    `attend-tell ${c.name}${c.positionals ? ` ${c.positionals}` : ""}${flags.length ? " [flags]" : ""}`,
    "",
    c.summary,
    ...(lines.length ? ["", "Flags:", ...lines] : []),
    ...(c.details ? ["", c.details] : []),
  ].join("\n");
}

function convert(name: string, s: FlagSpec, raw: string): unknown {
  const bad = (what: string) => new Error(`--${name} must be ${what}, got ${JSON.stringify(raw)}`);
  switch (s.type) {
    case "int": {
      const n = Number(raw);
      const min = s.min ?? 1;
      if (raw.trim() === "" || !Number.isInteger(n) || n < min)
        throw bad(min === 1 ? "a positive integer" : `an integer ≥ ${min}`);
      return n;
    }
    case "number": {
      const n = Number(raw);
      const { min = s.above === undefined ? 0 : undefined, max, above, below } = s;
      const range = [
        min !== undefined ? `≥ ${min}` : "",
        above !== undefined ? `> ${above}` : "",
        max !== undefined ? `≤ ${max}` : "",
        below !== undefined ? `< ${below}` : "",
      ].filter(Boolean);
      const ok =
        (min === undefined || n >= min) &&
        (max === undefined || n <= max) &&
        (above === undefined || n > above) &&
        (below === undefined || n < below);
      if (raw.trim() === "" || !Number.isFinite(n) || !ok) throw bad(`a number ${range.join(" and ")}`);
      return n;
    }
    case "ints":
      return raw.split(",").map((p) => {
        const n = Number(p);
        if (p.trim() === "" || !Number.isInteger(n) || n < 1) throw bad("a comma-separated list of positive integers");
        return n;
      });
    case "string":
      if (s.choices && !s.choices.includes(raw)) throw bad(`one of ${s.choices.join(", ")}`);
      return raw;
    default:
      return raw;
  }
}

/** Parses argv for `c`: typed values with defaults filled in, or an error naming the flag or value. */
export function parseCommand(
  c: Command,
  argv: string[],
): { values: Record<string, unknown>; positionals: string[]; given: Set<string> } {
  // "--beam -1": a value that looks like a flag is taken as the flag's value (and then validated), as a user means it
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const spec = /^--[^=]+$/.test(argv[i]) ? c.flags[argv[i].slice(2)] : undefined;
    if (spec && spec.type !== "boolean" && /^-[\d.]/.test(argv[i + 1] ?? "")) args.push(`${argv[i]}=${argv[++i]}`);
    else args.push(argv[i]);
  }
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  for (const [name, s] of Object.entries(c.flags)) {
    options[name] = {
      type: s.type === "boolean" ? "boolean" : "string",
      ...("multiple" in s && s.multiple ? { multiple: true } : {}),
    };
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true, tokens: true });
  } catch (e) {
    const first = (e as Error).message.split(/\n|\. (?=To specify)/)[0];
    throw new Error(`${c.name}: ${first} (attend-tell ${c.name} --help lists the flags)`, { cause: e });
  }
  if (!c.positionals && parsed.positionals.length) {
    throw new Error(
      `${c.name} takes no arguments, got ${JSON.stringify(parsed.positionals[0])} (attend-tell ${c.name} --help)`,
    );
  }
  const values: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(c.flags)) {
    const raw = (parsed.values as Record<string, string | string[] | boolean | undefined>)[name];
    if (s.type === "boolean") values[name] = raw === true;
    else if (raw === undefined)
      values[name] = "multiple" in s && s.multiple ? [] : "default" in s ? s.default : undefined;
    else if (Array.isArray(raw)) values[name] = raw.map((r) => convert(name, s, r));
    else values[name] = convert(name, s, raw as string);
  }
  const given = new Set(parsed.tokens?.flatMap((t) => (t.kind === "option" ? [t.name] : [])) ?? []);
  return { values, positionals: parsed.positionals, given };
}

/** Throws "<command> needs --a and --b" when a required flag is missing. */
export function requireFlags(command: string, values: Record<string, unknown>, ...names: string[]): void {
  const missing = names.filter(
    (n) => values[n] === undefined || (Array.isArray(values[n]) && (values[n] as unknown[]).length === 0),
  );
  if (missing.length)
    throw new Error(`${command} needs ${missing.map((n) => `--${n}`).join(" and ")} (attend-tell ${command} --help)`);
}
