/**
 * A FastCGI client for the php-fpm test (t_51_phpfpm.sh), which has no web
 * server in front of php-fpm: sends REQUESTS GET requests for one script
 * over TCP, CONCURRENCY at a time, as a web server's mod_proxy_fcgi would.
 *
 *   $DENO run -A tests/vm/guest/fcgi_client.ts HOST:PORT SCRIPT_FILENAME \
 *     [REQUESTS] [CONCURRENCY]
 *
 * stdout: the body of the responses (once: they must all be the same);
 * stderr: `requests=N failed=M`. A request fails when the connection fails,
 * php-fpm ends it with a protocol status other than 0 (request complete),
 * writes to FCGI_STDERR, or answers a Status other than 200. Exit 0 when
 * none failed and every body was the same, else 1.
 *
 * @module
 */

const FCGI_BEGIN_REQUEST = 1;
const FCGI_END_REQUEST = 3;
const FCGI_PARAMS = 4;
const FCGI_STDIN = 5;
const FCGI_STDOUT = 6;
const FCGI_STDERR = 7;
const FCGI_RESPONDER = 1;

function record(type: number, body: Uint8Array): Uint8Array {
  const r = new Uint8Array(8 + body.length);
  r.set([1, type, 0, 1, body.length >> 8, body.length & 0xff, 0, 0]);
  r.set(body, 8);
  return r;
}

function nameValue(name: string, value: string): Uint8Array {
  const enc = new TextEncoder();
  const n = enc.encode(name), v = enc.encode(value);
  const len = (x: number) =>
    x < 128
      ? [x]
      : [(x >>> 24) | 0x80, (x >>> 16) & 0xff, (x >>> 8) & 0xff, x & 0xff];
  return new Uint8Array([...len(n.length), ...len(v.length), ...n, ...v]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

interface Response {
  status: number;
  body: string;
  stderr: string;
  protocolStatus: number;
}

async function request(
  hostname: string,
  port: number,
  script: string,
): Promise<Response> {
  const uri = "/" + script.split("/").pop();
  const params: Record<string, string> = {
    GATEWAY_INTERFACE: "CGI/1.1",
    REQUEST_METHOD: "GET",
    SCRIPT_FILENAME: script,
    SCRIPT_NAME: uri,
    REQUEST_URI: uri,
    DOCUMENT_URI: uri,
    DOCUMENT_ROOT: script.slice(0, script.length - uri.length),
    QUERY_STRING: "",
    SERVER_PROTOCOL: "HTTP/1.1",
    SERVER_NAME: "localhost",
    SERVER_ADDR: hostname,
    SERVER_PORT: "80",
    REMOTE_ADDR: "127.0.0.1",
    REMOTE_PORT: "40000",
  };
  const pairs = concat(
    Object.entries(params).map(([k, v]) => nameValue(k, v)),
  );
  const begin = new Uint8Array([0, FCGI_RESPONDER, 0, 0, 0, 0, 0, 0]);
  const conn = await Deno.connect({ hostname, port });
  try {
    await conn.write(concat([
      record(FCGI_BEGIN_REQUEST, begin),
      record(FCGI_PARAMS, pairs),
      record(FCGI_PARAMS, new Uint8Array()),
      record(FCGI_STDIN, new Uint8Array()),
    ]));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const data = concat(chunks);
    const out: Uint8Array[] = [], err: Uint8Array[] = [];
    let protocolStatus = -1;
    for (let o = 0; o + 8 <= data.length;) {
      const type = data[o + 1];
      const len = (data[o + 4] << 8) | data[o + 5];
      const body = data.subarray(o + 8, o + 8 + len);
      if (type === FCGI_STDOUT) out.push(body);
      else if (type === FCGI_STDERR) err.push(body);
      else if (type === FCGI_END_REQUEST) protocolStatus = body[4];
      o += 8 + len + data[o + 6];
    }
    const text = new TextDecoder().decode(concat(out));
    const split = text.indexOf("\r\n\r\n");
    const head = split < 0 ? text : text.slice(0, split);
    const m = /^Status: (\d+)/im.exec(head);
    return {
      status: m ? Number(m[1]) : 200,
      body: split < 0 ? "" : text.slice(split + 4),
      stderr: new TextDecoder().decode(concat(err)),
      protocolStatus,
    };
  } finally {
    conn.close();
  }
}

async function main(): Promise<number> {
  const [addr, script, n = "1", c = "1"] = Deno.args;
  if (!addr || !script) {
    console.error(
      "usage: fcgi_client.ts HOST:PORT SCRIPT_FILENAME [REQUESTS] [CONCURRENCY]",
    );
    return 2;
  }
  const [hostname, port] = addr.split(":");
  let next = 0, failed = 0;
  const bodies = new Set<string>();
  const worker = async () => {
    while (next < Number(n)) {
      next++;
      try {
        const r = await request(hostname, Number(port), script);
        if (r.status !== 200 || r.protocolStatus !== 0 || r.stderr !== "") {
          failed++;
          console.error(
            `failed: status ${r.status}, protocol status ${r.protocolStatus}, stderr ${
              JSON.stringify(r.stderr)
            }`,
          );
        } else {
          bodies.add(r.body);
        }
      } catch (e) {
        failed++;
        console.error(`failed: ${e}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Number(c) }, worker));
  console.error(
    `requests=${n} failed=${failed} distinct_bodies=${bodies.size}`,
  );
  for (const b of bodies) {
    await Deno.stdout.write(new TextEncoder().encode(b));
    break;
  }
  return failed === 0 && bodies.size === 1 ? 0 : 1;
}

Deno.exit(await main());
