'use strict';
// Benchmark peer for Palisade: the stack users would otherwise pick
// (ws + jsonwebtoken + joi + sanitize-html), speaking the protocol v1 subset
// the load generator uses (join, leave, send chat.message). Not hardened:
// no rate limits, no anomaly scores, no replay or CSRF checks.
//
//   PEER_SECRET=... [PEER_ORIGINS=a,b] node server.js [--listen 127.0.0.1:0]

const crypto = require('node:crypto');
const http = require('node:http');
const net = require('node:net');

const Joi = require('joi');
const jwt = require('jsonwebtoken');
const sanitizeHtml = require('sanitize-html');
const { WebSocketServer, WebSocket } = require('ws');

const SUBPROTOCOL = 'palisade.v1';
const BEARER_PREFIX = 'palisade.bearer.';
const MAX_MESSAGE_BYTES = 65536;
const HEARTBEAT_MS = 20000;
const SLOW_CONSUMER_BYTES = 8 * 1024 * 1024;
const MAX_ID_LEN = 64;
const ROOM_RE = /^[A-Za-z0-9:._-]{1,128}$/;

const MESSAGES = {
  bad_request: 'malformed request',
  unknown_event: 'unknown event',
  invalid_payload: 'invalid payload',
  not_member: 'not a member of this room',
};

function fail(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

// ---- configuration -------------------------------------------------------

function parseArgs(argv) {
  let listen = '127.0.0.1:0';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--listen') {
      if (i + 1 >= argv.length) fail('--listen needs HOST:PORT');
      listen = argv[++i];
    } else if (a.startsWith('--listen=')) {
      listen = a.slice('--listen='.length);
    } else {
      fail(`unknown argument ${JSON.stringify(a)}; usage: node server.js [--listen HOST:PORT]`);
    }
  }
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  if (!m) fail(`--listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
  let host = m[1] || m[2];
  if (host === 'localhost') host = '127.0.0.1';
  const port = Number(m[3]);
  if (port > 65535) fail(`bad port ${m[3]}`);
  const family = net.isIP(host);
  const loopback =
    (family === 4 && host.split('.')[0] === '127') ||
    (family === 6 && new URL(`http://[${host}]/`).hostname === '[::1]');
  if (!loopback) fail(`refusing to bind non-loopback address ${host}`);
  return { host, port, family };
}

const { host, port, family } = parseArgs(process.argv.slice(2));
const SECRET = process.env.PEER_SECRET;
if (!SECRET) fail('PEER_SECRET (the HS256 secret) is required');
const ORIGINS = new Set(
  (process.env.PEER_ORIGINS || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

// ---- schemas and sanitizer ----------------------------------------------

// Joi objects reject unknown keys by default.
const chatMessage = Joi.object({
  content: Joi.string().min(1).max(2000).required(),
  replyTo: Joi.string().max(64),
  mentions: Joi.array().max(10).items(Joi.string().max(64)),
}).required();

const SANITIZE = {
  allowedTags: ['b', 'i', 'em', 'strong', 'code', 'pre', 'br', 'a'],
  allowedAttributes: { a: ['href'] },
  allowedSchemes: ['http', 'https'],
};

// ---- helpers --------------------------------------------------------------

const rand = (n) => crypto.randomBytes(n).toString('base64url');

function send(ws, obj) {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

function sendError(ws, id, code) {
  const frame = { type: 'error' };
  if (id !== undefined) frame.id = id;
  frame.code = code;
  frame.message = MESSAGES[code];
  frame.ref = `r_${rand(9)}`;
  send(ws, frame);
}

function reject(cb, status) {
  const body =
    status === 403
      ? '{"error":"forbidden","message":"origin not allowed"}'
      : '{"error":"unauthorized","message":"authentication required"}';
  cb(false, status, body, { 'Content-Type': 'application/json' });
}

// Exactly one credential: the Authorization header or a bearer subprotocol.
function findToken(req) {
  const found = [];
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^\s*(\S+)\s*(.*?)\s*$/.exec(auth);
    found.push(m && m[1].toLowerCase() === 'bearer' ? m[2] : '');
  }
  const protos = req.headers['sec-websocket-protocol'];
  if (protos) {
    const p = protos
      .split(',')
      .map((s) => s.trim())
      .find((s) => s.startsWith(BEARER_PREFIX));
    if (p !== undefined) found.push(p.slice(BEARER_PREFIX.length));
  }
  return found.length === 1 && found[0] ? found[0] : null;
}

function verifyToken(token) {
  try {
    const c = jwt.verify(token, SECRET, {
      algorithms: ['HS256'],
      issuer: 'palisade',
      audience: 'palisade',
    });
    if (typeof c !== 'object' || typeof c.sub !== 'string' || !c.sub) return null;
    if (typeof c.exp !== 'number') return null;
    if (c.name !== undefined && typeof c.name !== 'string') return null;
    if (c.roles !== undefined && !(Array.isArray(c.roles) && c.roles.every((r) => typeof r === 'string'))) {
      return null;
    }
    return c;
  } catch {
    return null;
  }
}

// ---- state ----------------------------------------------------------------

/** room name -> { seq, members: Set<WebSocket> }; rooms are kept so seq never restarts. */
const rooms = new Map();

function leaveAll(ws) {
  for (const name of ws.rooms) {
    const room = rooms.get(name);
    if (room) room.members.delete(ws);
  }
  ws.rooms.clear();
}

// ---- server ---------------------------------------------------------------

const server = http.createServer((req, res) => {
  res.writeHead(404, { 'Content-Type': 'application/json' });
  res.end('{"error":"not_found","message":"not found"}');
});

const wss = new WebSocketServer({
  server,
  path: '/ws',
  maxPayload: MAX_MESSAGE_BYTES,
  perMessageDeflate: false,
  clientTracking: true,
  handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  // Origin before token, like Palisade, so a cross-site page learns nothing
  // about tokens.
  verifyClient: (info, cb) => {
    const origin = info.req.headers.origin;
    if (origin !== undefined && !ORIGINS.has(origin)) return reject(cb, 403);
    const token = findToken(info.req);
    const claims = token && verifyToken(token);
    if (!claims) return reject(cb, 401);
    info.req.claims = claims;
    cb(true);
  },
});

wss.on('connection', (ws, req) => {
  const c = req.claims;
  ws.user = { id: c.sub, name: c.name || c.sub };
  ws.rooms = new Set();
  ws.isAlive = true;
  ws.on('pong', () => {
    ws.isAlive = true;
  });
  ws.on('close', () => leaveAll(ws));
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      ws.close(1003);
      return;
    }
    onText(ws, data.toString());
  });
  send(ws, {
    type: 'welcome',
    session: `s_${rand(16)}`,
    user: { id: ws.user.id, name: ws.user.name, roles: c.roles || [] },
    csrf: rand(32),
    heartbeat_ms: HEARTBEAT_MS,
    max_message_bytes: MAX_MESSAGE_BYTES,
    expires_at: c.exp * 1000,
  });
});

function onText(ws, text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    return sendError(ws, undefined, 'bad_request');
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    return sendError(ws, undefined, 'bad_request');
  }
  const { id } = msg;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LEN) {
    return sendError(ws, undefined, 'bad_request');
  }
  switch (msg.type) {
    case 'join':
      return onJoin(ws, id, msg.room);
    case 'leave':
      return onLeave(ws, id, msg.room);
    case 'send':
      return onSend(ws, id, msg);
    default:
      return sendError(ws, id, 'bad_request');
  }
}

function onJoin(ws, id, name) {
  if (typeof name !== 'string' || !ROOM_RE.test(name)) return sendError(ws, id, 'bad_request');
  let room = rooms.get(name);
  if (!room) {
    room = { seq: 0, members: new Set() };
    rooms.set(name, room);
  }
  room.members.add(ws);
  ws.rooms.add(name);
  send(ws, { type: 'ack', id });
}

function onLeave(ws, id, name) {
  if (typeof name !== 'string') return sendError(ws, id, 'bad_request');
  if (!ws.rooms.has(name)) return sendError(ws, id, 'not_member');
  ws.rooms.delete(name);
  const room = rooms.get(name);
  if (room) room.members.delete(ws);
  send(ws, { type: 'ack', id });
}

function onSend(ws, id, msg) {
  const { room: name, event, data } = msg;
  if (typeof name !== 'string' || typeof event !== 'string' || data === undefined) {
    return sendError(ws, id, 'bad_request');
  }
  if (event !== 'chat.message') return sendError(ws, id, 'unknown_event');
  const room = rooms.get(name);
  if (!ws.rooms.has(name) || !room) return sendError(ws, id, 'not_member');
  const { error, value } = chatMessage.validate(data);
  if (error) return sendError(ws, id, 'invalid_payload');
  value.content = sanitizeHtml(value.content, SANITIZE);

  const seq = ++room.seq;
  // One serialization, shared by every recipient.
  const frame = JSON.stringify({
    type: 'event',
    room: name,
    seq,
    event,
    from: { id: ws.user.id, name: ws.user.name },
    data: value,
    ts: Date.now(),
  });
  for (const member of room.members) {
    if (member.readyState !== WebSocket.OPEN) continue;
    if (member.bufferedAmount > SLOW_CONSUMER_BYTES) {
      leaveAll(member);
      member.close(4009);
      continue;
    }
    member.send(frame);
  }
  send(ws, { type: 'ack', id, seq });
}

// ---- heartbeat --------------------------------------------------------------

const heartbeat = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, HEARTBEAT_MS);

// ---- lifecycle --------------------------------------------------------------

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  clearInterval(heartbeat);
  for (const ws of wss.clients) ws.close(1001);
  server.close();
  const done = () => process.exit(0);
  // Give close frames a moment to flush and be answered, then leave anyway.
  const deadline = setTimeout(() => {
    for (const ws of wss.clients) ws.terminate();
    done();
  }, 1000);
  deadline.unref();
  const poll = setInterval(() => {
    if (wss.clients.size === 0) done();
  }, 20);
  poll.unref();
  if (wss.clients.size === 0) done();
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

// ws re-emits the HTTP server's errors (EADDRINUSE, ...) on the WebSocketServer.
wss.on('error', (err) => fail(`cannot listen on ${host}:${port}: ${err.message}`));
server.listen({ host, port }, () => {
  const shown = family === 6 ? `[${host}]` : host;
  process.stderr.write(`listening on ws://${shown}:${server.address().port}/ws\n`);
});
