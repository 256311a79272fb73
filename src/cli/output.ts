/** What the CLI says: its output (text or JSON), a progress counter, and failures with their exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text() + '\n');
}

/** A live counter on stderr while something takes seconds (only on a terminal). */
export function progress(label: string) {
  const tty = process.stderr.isTTY;
  let last = 0;
  return {
    tick(done: number, total?: number) {
      const now = Date.now();
      if (!tty || now - last < 100) return;
      last = now;
      process.stderr.write(`\r${label}: ${done}${total ? ` / ${total}` : ''}   `);
    },
    end() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

