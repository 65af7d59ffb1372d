/**
 * A one-line progress bar on stderr: done/total, rate and ETA. Redrawn in place on a terminal; on a pipe
 * or log file, one line every `logEvery` seconds so logs stay readable.
 */
export class Progress {
  private readonly start = Date.now();
  private last = Date.now(); // on a pipe, the first line comes after logEvery seconds, not at the first tick
  private done = 0;

  constructor(
    readonly total: number,
    readonly label: string,
    readonly unit = "it",
    private readonly opts: { logEvery?: number; stream?: NodeJS.WriteStream } = {},
  ) {}

  get elapsed(): number {
    return (Date.now() - this.start) / 1000;
  }

  get rate(): number {
    return this.done / Math.max(this.elapsed, 1e-9);
  }

  tick(n = 1, extra = ""): void {
    this.done += n;
    const stream = this.opts.stream ?? process.stderr;
    const now = Date.now();
    const finished = this.done >= this.total;
    if (stream.isTTY) {
      if (now - this.last < 100 && !finished) return;
      this.last = now;
      stream.write(`\r${this.line(extra)}\x1b[K${finished ? "\n" : ""}`);
    } else if (finished || now - this.last >= (this.opts.logEvery ?? 10) * 1000) {
      this.last = now;
      stream.write(this.line(extra) + "\n");
    }
  }

  line(extra = ""): string {
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const width = 24;
    const bar = "█".repeat(Math.round(frac * width)).padEnd(width, "·");
    const eta = this.rate > 0 ? (this.total - this.done) / this.rate : 0;
    return `${this.label} ${bar} ${this.done}/${this.total} ${this.rate.toFixed(1)} ${this.unit}/s ETA ${formatSeconds(eta)}${extra ? " " + extra : ""}`;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  s = Math.round(s);
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}
