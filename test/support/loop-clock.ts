/**
 * Time this process could run, measured the way the limiter's deadline sweep measures it: a tick
 * every `tickMs`, and whatever a tick comes late by is time the event loop could not run (a busy
 * loop here, or a loaded machine giving the CPU to others) and is left out. A deadline promises
 * "within timeoutMs of time this process could have read the reply", so latency is checked on
 * this clock: on a machine under stress-ng a wall-clock window would measure the machine.
 */
export class LoopClock {
  private stalled = 0;
  private last = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly tickMs = 5) {
    this.timer = setInterval(() => {
      const t = performance.now();
      const late = t - this.last - this.tickMs;
      if (late > 0) this.stalled += late;
      this.last = t;
    }, tickMs);
    this.timer.unref();
  }

  /** ms of loop-available time since an arbitrary origin (a stall in progress is left out too). */
  now(): number {
    const t = performance.now();
    return t - this.stalled - Math.max(0, t - this.last - this.tickMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
