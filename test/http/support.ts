import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A real HTTP server on a free loopback port; `url` is its base. */
export async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Parses `"name";r=1;t=2` into { name, r, t }. */
export function parseRateLimit(value: string | null): { name: string; r: number; t: number } | null {
  const m = value ? /^"([^"]+)";r=(\d+);t=(\d+)$/.exec(value) : null;
  return m ? { name: m[1]!, r: Number(m[2]), t: Number(m[3]) } : null;
}
