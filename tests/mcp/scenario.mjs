// Huddle's /mcp driven by the official TypeScript client (npm @modelcontextprotocol/sdk,
// StreamableHTTPClientTransport). Usage: node scenario.mjs http://127.0.0.1:PORT/mcp
//
// Three sessions: alice keeps the GET stream the client opens by itself; bob and carol
// use a fetch that refuses GET (as with a server that offers none), so their room
// messages come ahead of their next tool result. Exits non-zero on the first failed check.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const url = new URL(process.argv[2]);
const run = Math.random().toString(36).slice(2, 8);
let checks = 0;

function check(ok, what, detail) {
  checks++;
  if (!ok) {
    console.error(`FAILED: ${what}${detail === undefined ? '' : `\n  ${JSON.stringify(detail)}`}`);
    process.exit(1);
  }
}

const noGet = async (input, init) =>
  (init?.method ?? 'GET') === 'GET' ? new Response(null, { status: 405 }) : fetch(input, init);

async function connect(name, { get = true } = {}) {
  const notes = [];
  const client = new Client({ name: `ts-${name}`, version: '1.0.0' });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    notes.push(n.params);
  });
  const transport = new StreamableHTTPClientTransport(url, get ? {} : { fetch: noGet });
  await client.connect(transport);
  return { name, client, transport, notes };
}

async function call(who, tool, args) {
  const result = await who.client.callTool({ name: tool, arguments: args });
  const text = result.content[0].text;
  check(!result.isError, `${who.name} ${tool} succeeds`, text);
  const newline = text.lastIndexOf('\n');
  return { text, data: newline < 0 ? undefined : JSON.parse(text.slice(newline + 1)) };
}

const bodies = (who) => who.notes.map((n) => n.data.body);

async function waitFor(who, body, ms = 10000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (bodies(who).includes(body)) return who.notes.find((n) => n.data.body === body);
    await new Promise((r) => setTimeout(r, 20));
  }
  check(false, `${who.name} receives "${body}"`, bodies(who));
}

const alice = await connect('alice');
const bob = await connect('bob', { get: false });
const carol = await connect('carol', { get: false });

const tools = (await alice.client.listTools()).tools;
check(tools.length === 12, 'tools/list has 12 tools', tools.map((t) => t.name));
check(tools.every((t) => t.inputSchema?.type === 'object' && t.annotations), 'schemas and annotations');
check(alice.client.getServerVersion()?.name === 'Huddle', 'server name');
check((alice.client.getInstructions() ?? '').includes('room.join'), 'instructions are the docs');

const roomName = `ts-${run}`;
const created = await call(alice, 'createRoom', { name: roomName, agentName: 'alice' });
const roomId = created.data.roomId;
check(created.text.startsWith(`Room created: ${roomId}. Joined as alice (admin).`), 'createRoom text', created.text);
const joined = await call(bob, 'joinRoom', { roomId: roomName, agentName: 'bob' });
check(joined.text.startsWith(`Joined room ${roomId} as bob`), 'joinRoom text', joined.text);
const carolJoined = await call(carol, 'joinRoom', { roomId: roomName, agentName: 'carol' });

// alice → bob: ahead of bob's next tool result (bob has no GET stream).
await call(alice, 'sendMessage', { text: 'hello bob' });
await call(bob, 'listRooms', {});
const hello = bob.notes.find((n) => n.data.body === 'hello bob');
check(hello && hello.logger === `room/${roomId}` && hello.level === 'info' && hello.data.from === 'alice',
  'bob got "hello bob" as notifications/message', bob.notes);

// bob → alice: live on alice's GET stream.
await call(bob, 'sendMessage', { text: 'hi alice' });
const hi = await waitFor(alice, 'hi alice');
check(hi.data.from === 'bob' && typeof hi.data.timestamp === 'string', 'alice got "hi alice"', hi);

// A DM to carol is not seen by bob.
await call(alice, 'sendMessage', { text: 'secret for carol', to: 'carol' });
await call(alice, 'sendMessage', { text: 'after the dm' });
await call(carol, 'listRooms', {});
await call(bob, 'listRooms', {});
const dm = carol.notes.find((n) => n.data.body === 'secret for carol');
check(dm && dm.data.to === 'carol', 'carol got the DM', carol.notes);
check(bodies(bob).includes('after the dm') && !bodies(bob).includes('secret for carol'),
  'bob got the broadcast but not the DM', bodies(bob));

// alice in two rooms sends to each by roomId.
const second = await call(alice, 'createRoom', { name: `ts2-${run}`, agentName: 'alice' });
await call(alice, 'sendMessage', { text: 'to room one', roomId });
await call(alice, 'sendMessage', { text: 'to room two', roomId: second.data.roomId });
await call(alice, 'sendMessage', { text: 'default: room two' });
await call(bob, 'listRooms', {});
check(bodies(bob).includes('to room one') && !bodies(bob).some((b) => b.includes('room two')),
  'bob (room one) got only room one\'s message', bodies(bob));
const two = await waitFor(alice, 'default: room two');
check(two.logger === `room/${second.data.roomId}`, 'default room is the latest joined', two);

// A failing tool: isError with the contract's text.
const failed = await carol.client.callTool({ name: 'kickAgent', arguments: { targetAgent: 'bob' } });
check(failed.isError === true && failed.content[0].text === 'Error: Admin role required', 'tool error', failed);

// The server forgets carol's session (as after an idle expiry): her next call runs in a
// fresh session, which the client follows; she reconnects with her token.
const lost = carol.transport.sessionId;
await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': lost } });
const after = await carol.client.callTool({ name: 'sendMessage', arguments: { text: 'anyone?' } });
check(after.isError && after.content[0].text === 'Error: Not joined to any room. Call joinRoom first.',
  'a lost session is recovered with a fresh one', after);
check(carol.transport.sessionId && carol.transport.sessionId !== lost, 'the client follows the fresh session',
  carol.transport.sessionId);
const back = await call(carol, 'joinRoom',
  { roomId: roomName, agentName: 'carol', agentToken: carolJoined.data.agentToken });
check(back.text.startsWith(`Reconnected to room ${roomId} as carol`), 'reconnect in the fresh session', back.text);
await call(alice, 'sendMessage', { text: 'welcome back', roomId });
await call(carol, 'listRooms', {});
check(bodies(carol).includes('welcome back'), 'the fresh session gets the room again', bodies(carol));

// DELETE ends bob's session.
await bob.transport.terminateSession();
check(bob.transport.sessionId === undefined, 'session terminated');

for (const who of [alice, bob, carol]) await who.client.close();
console.log(JSON.stringify({ ok: true, client: 'typescript', checks }));
