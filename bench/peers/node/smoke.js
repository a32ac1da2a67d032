'use strict';
// Smoke test for server.js: starts it on 127.0.0.1:0 with a throwaway secret,
// drives it with the ws client, stops it with SIGTERM. Exit 0 when all pass.
//
//   node smoke.js

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const http = require('node:http');
const path = require('node:path');

const jwt = require('jsonwebtoken');
const WebSocket = require('ws');

const SECRET = crypto.randomBytes(32).toString('hex');
const ORIGIN = 'http://127.0.0.1:5173';
let failures = 0;

function check(name, ok, detail) {
  if (!ok) failures++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
}

function mint(claims = {}, secret = SECRET) {
  return jwt.sign({ sub: 'u1', name: 'alice', roles: ['student'], ...claims }, secret, {
    algorithm: 'HS256',
    issuer: 'palisade',
    audience: 'palisade',
    expiresIn: '10m',
  });
}

function startServer() {
  const child = spawn(process.execPath, [path.join(__dirname, 'server.js'), '--listen', '127.0.0.1:0'], {
    env: { ...process.env, PEER_SECRET: SECRET, PEER_ORIGINS: ORIGIN },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stderr.on('data', (d) => {
      buf += d;
      const m = /^listening on (ws:\/\/\S+)$/m.exec(buf);
      if (m) resolve({ child, url: m[1], line: m[0] });
    });
    child.on('exit', (code) => reject(new Error(`server exited early (${code}): ${buf}`)));
  });
}

// A client that queues incoming JSON frames so tests can await them in order.
function connect(url, opts = {}) {
  const ws = new WebSocket(url, opts.protocols || [], { headers: opts.headers || {} });
  const queue = [];
  const waiters = [];
  ws.on('message', (d) => {
    const msg = JSON.parse(d.toString());
    const w = waiters.shift();
    if (w) w(msg);
    else queue.push(msg);
  });
  ws.next = () =>
    new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift());
      const t = setTimeout(() => reject(new Error('timeout waiting for a frame')), 2000);
      waiters.push((m) => {
        clearTimeout(t);
        resolve(m);
      });
    });
  ws.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve(ws));
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => reject(Object.assign(new Error('refused'), { status: res.statusCode, body })));
    });
    ws.on('error', reject);
  });
}

async function refused(url, opts) {
  try {
    const ws = await connect(url, opts);
    ws.terminate();
    return { status: 101 };
  } catch (e) {
    return { status: e.status, body: e.body };
  }
}

async function main() {
  const { child, url, line } = await startServer();
  console.log(`server: ${line}`);
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
  try {
    const auth = { headers: { Authorization: `Bearer ${mint()}` } };

    const a = await connect(url, auth);
    const welcome = await a.next();
    check(
      'welcome arrives',
      welcome.type === 'welcome' &&
        /^s_/.test(welcome.session) &&
        welcome.user.id === 'u1' &&
        welcome.user.name === 'alice' &&
        welcome.heartbeat_ms === 20000 &&
        welcome.max_message_bytes === 65536,
      JSON.stringify(welcome),
    );

    a.send(JSON.stringify({ type: 'join', id: '1', room: 'lobby' }));
    const join = await a.next();
    check('join -> ack', join.type === 'ack' && join.id === '1' && join.seq === undefined, JSON.stringify(join));

    a.send(
      JSON.stringify({
        type: 'send',
        id: '2',
        room: 'lobby',
        event: 'chat.message',
        data: { content: '<b>hi</b><script>x</script>' },
      }),
    );
    const f1 = await a.next();
    const f2 = await a.next();
    const ev = [f1, f2].find((f) => f.type === 'event');
    const ack = [f1, f2].find((f) => f.type === 'ack');
    check('send -> ack seq 1', ack && ack.id === '2' && ack.seq === 1, JSON.stringify(ack));
    check(
      'event is sanitized, from the token',
      ev &&
        ev.seq === 1 &&
        ev.room === 'lobby' &&
        ev.from.id === 'u1' &&
        !/script/i.test(ev.data.content) &&
        ev.data.content === '<b>hi</b>',
      JSON.stringify(ev),
    );

    a.send(JSON.stringify({ type: 'send', id: '3', room: 'lobby', event: 'chat.nope', data: { content: 'x' } }));
    const unk = await a.next();
    check('unknown event -> error unknown_event', unk.type === 'error' && unk.id === '3' && unk.code === 'unknown_event' && /^r_/.test(unk.ref), JSON.stringify(unk));

    a.send(JSON.stringify({ type: 'send', id: '4', room: 'lobby', event: 'chat.message', data: { content: 'x', admin: true } }));
    const inv = await a.next();
    check('unknown data key -> error invalid_payload', inv.code === 'invalid_payload' && inv.id === '4', JSON.stringify(inv));

    a.send(JSON.stringify({ type: 'send', id: '5', room: 'other', event: 'chat.message', data: { content: 'x' } }));
    const nm = await a.next();
    check('send to unjoined room -> error not_member', nm.code === 'not_member', JSON.stringify(nm));

    a.send('not json');
    const bad = await a.next();
    check('not JSON -> error bad_request without id', bad.code === 'bad_request' && bad.id === undefined, JSON.stringify(bad));

    a.send(JSON.stringify({ type: 'join', id: '6', room: 'bad room!' }));
    const br = await a.next();
    check('bad room name -> error bad_request', br.code === 'bad_request' && br.id === '6', JSON.stringify(br));

    // Second client through the browser path: token in the subprotocol list.
    const b = await connect(url, { protocols: ['palisade.v1', `palisade.bearer.${mint({ sub: 'u2', name: undefined })}`], headers: { Origin: ORIGIN } });
    const wb = await b.next();
    check('subprotocol token, allowed origin, palisade.v1 selected', wb.type === 'welcome' && wb.user.name === 'u2' && b.protocol === 'palisade.v1', `protocol=${b.protocol}`);
    b.send(JSON.stringify({ type: 'join', id: 'j', room: 'lobby' }));
    await b.next();
    b.send(JSON.stringify({ type: 'send', id: 's', room: 'lobby', event: 'chat.message', data: { content: 'yo', mentions: ['u1'] } }));
    const evA = await a.next();
    const own = [await b.next(), await b.next()];
    check('sender gets its own event and ack seq 2', own.some((f) => f.type === 'event' && f.seq === 2) && own.some((f) => f.type === 'ack' && f.id === 's' && f.seq === 2), JSON.stringify(own));
    check('broadcast reaches the other member with seq 2', evA.type === 'event' && evA.seq === 2 && evA.from.id === 'u2', JSON.stringify(evA));
    b.send(JSON.stringify({ type: 'leave', id: 'l', room: 'lobby' }));
    const l1 = await b.next();
    b.send(JSON.stringify({ type: 'leave', id: 'l2', room: 'lobby' }));
    const l2 = await b.next();
    check('leave -> ack, then not_member', l1.type === 'ack' && l1.id === 'l' && l2.code === 'not_member' && l2.id === 'l2', `${JSON.stringify(l1)} ${JSON.stringify(l2)}`);

    b.send(Buffer.from([1, 2, 3]));
    check('binary frame -> close 1003', (await b.closed) === 1003);

    const r1 = await refused(url, { headers: { Authorization: `Bearer ${mint({}, 'wrong-secret')}` } });
    check('bad token -> HTTP 401', r1.status === 401 && r1.body === '{"error":"unauthorized","message":"authentication required"}', `${r1.status} ${r1.body}`);
    const r2 = await refused(url, {});
    check('no token -> HTTP 401', r2.status === 401, String(r2.status));
    const r3 = await refused(url, { headers: { ...auth.headers, Origin: 'https://evil.example' } });
    check('foreign origin -> HTTP 403', r3.status === 403 && r3.body === '{"error":"forbidden","message":"origin not allowed"}', `${r3.status} ${r3.body}`);
    const r4 = await refused(url, { protocols: [`palisade.bearer.${mint()}`], headers: auth.headers });
    check('two credentials -> HTTP 401', r4.status === 401, String(r4.status));
    const r5 = await new Promise((resolve) => http.get(url.replace('ws://', 'http://').replace(/\/ws$/, '/'), (res) => resolve(res.statusCode)));
    check('plain HTTP elsewhere -> 404', r5 === 404, String(r5));

    child.kill('SIGTERM');
    const code = await a.closed;
    const ex = await exited;
    check('SIGTERM -> clients closed 1001, exit 0', code === 1001 && ex.code === 0, `close=${code} exit=${ex.code}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
