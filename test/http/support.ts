import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

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

/**
 * One request written byte for byte on a socket (fetch would normalise the target: dot segments,
 * fragments, absolute-form). Answers the status and the headers (lower-case names).
 */
export function rawRequest(base: string, target: string, o: { method?: string; headers?: Record<string, string>; host?: string; body?: string } = {}): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname.replace(/^\[|\]$/g, ''), () => {
      const headers = { Host: o.host ?? u.host, Connection: 'close', ...(o.body !== undefined ? { 'Content-Length': String(Buffer.byteLength(o.body)) } : {}), ...o.headers };
      socket.write(`${o.method ?? 'GET'} ${target} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${o.body ?? ''}`);
    });
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (data += c));
    socket.on('error', reject);
    socket.on('end', () => {
      const [head = '', ...rest] = data.split('\r\n\r\n');
      const [status = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(status.split(' ')[1]), headers, body: rest.join('\r\n\r\n') });
    });
  });
}
