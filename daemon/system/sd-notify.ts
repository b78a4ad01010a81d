// systemd notifications (Type=notify): READY, RELOADING, STOPPING, WATCHDOG,
// STATUS. Sent by the native addon; a no-op when not run by systemd.
import { native } from '../native';

export class SystemdNotifier {
  private watchdog: NodeJS.Timeout | undefined;

  constructor(private readonly onError: (err: Error) => void = () => {}) {}

  get enabled(): boolean {
    return !!process.env.NOTIFY_SOCKET;
  }

  send(...lines: string[]): void {
    try {
      native.sdNotify(lines.join('\n'));
    } catch (err) {
      this.onError(err as Error);
    }
  }

  ready(status: string): void {
    this.send('READY=1', `STATUS=${status}`, `MAINPID=${process.pid}`);
  }

  reloading(): void {
    // systemd >= 253 wants MONOTONIC_USEC with RELOADING=1.
    const usec = process.hrtime.bigint() / 1000n;
    this.send('RELOADING=1', `MONOTONIC_USEC=${usec}`);
  }

  status(text: string): void {
    this.send(`STATUS=${text}`);
  }

  stopping(): void {
    this.send('STOPPING=1');
  }

  /** Pings at half of WatchdogSec while `healthy()` holds (the event loop is turning). */
  startWatchdog(healthy: () => boolean): void {
    const usec = Number(process.env.WATCHDOG_USEC ?? 0);
    const pid = Number(process.env.WATCHDOG_PID ?? process.pid);
    if (!usec || pid !== process.pid) return;
    this.watchdog = setInterval(() => {
      if (healthy()) this.send('WATCHDOG=1');
    }, Math.max(100, usec / 2000));
    this.watchdog.unref();
  }

  stopWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
  }
}
