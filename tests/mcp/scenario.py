"""Huddle's /mcp driven by the official Python client (PyPI `mcp`).

Usage: python scenario.py http://127.0.0.1:PORT/mcp

Part 1, sessions (mode="legacy", the initialize handshake): three sessions, each with
the GET stream the client opens by itself; room messages arrive as
`notifications/message` through `logging_callback`.
Part 2, sessionless (mode="auto": `server/discover`, protocol 2026-07-28): the agent
token travels as a tool argument, and a room's messages come through
`subscriptions/listen` on the room resource the tool result links.
Exits non-zero on the first failed check.
"""

import asyncio
import json
import sys
import uuid

from mcp import Client

URL = sys.argv[1]
RUN = uuid.uuid4().hex[:6]
CHECKS = 0


def check(ok, what, detail=None):
    global CHECKS
    CHECKS += 1
    if not ok:
        print(f"FAILED: {what}" + ("" if detail is None else f"\n  {detail!r}"), file=sys.stderr)
        sys.exit(1)


class Agent:
    def __init__(self, name, client):
        self.name = name
        self.client = client
        self.notes = []

    def bodies(self):
        return [n.data.get("body") for n in self.notes]

    async def call(self, tool, **args):
        result = await self.client.call_tool(tool, args)
        text = result.content[0].text
        check(not result.is_error, f"{self.name} {tool} succeeds", text)
        data = json.loads(text.rsplit("\n", 1)[1]) if "\n" in text else None
        return text, data, result

    async def wait_for(self, body, timeout=10.0):
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for n in self.notes:
                if n.data.get("body") == body:
                    return n
            await asyncio.sleep(0.02)
        check(False, f'{self.name} receives "{body}"', self.bodies())


def legacy_agent(name):
    agent = Agent(name, None)

    async def on_log(params):
        agent.notes.append(params)

    agent.client = Client(URL, mode="legacy", logging_callback=on_log)
    return agent


async def sessions():
    alice, bob, carol = legacy_agent("alice"), legacy_agent("bob"), legacy_agent("carol")
    async with alice.client, bob.client, carol.client:
        check(alice.client.protocol_version in ("2025-11-25", "2025-06-18", "2025-03-26"),
              "a session revision", alice.client.protocol_version)
        check(alice.client.server_info.name == "Huddle", "server name")
        check("room.join" in (alice.client.instructions or ""), "instructions are the docs")
        tools = (await alice.client.list_tools()).tools
        check(len(tools) == 12, "12 tools", [t.name for t in tools])

        room_name = f"py-{RUN}"
        text, created, _ = await alice.call("createRoom", name=room_name, agentName="alice")
        room_id = created["roomId"]
        check(text.startswith(f"Room created: {room_id}. Joined as alice (admin)."), "createRoom text", text)
        await bob.call("joinRoom", roomId=room_name, agentName="bob")
        await carol.call("joinRoom", roomId=room_name, agentName="carol")

        await alice.call("sendMessage", text="hello bob")
        hello = await bob.wait_for("hello bob")
        check(hello.logger == f"room/{room_id}" and hello.level == "info" and hello.data["from"] == "alice",
              "bob got notifications/message", hello)
        await bob.call("sendMessage", text="hi alice")
        hi = await alice.wait_for("hi alice")
        check(hi.data["from"] == "bob", "alice got bob's message", hi)

        await alice.call("sendMessage", text="secret for carol", to="carol")
        await alice.call("sendMessage", text="after the dm")
        dm = await carol.wait_for("secret for carol")
        check(dm.data.get("to") == "carol", "carol got the DM", dm)
        await bob.wait_for("after the dm")
        check("secret for carol" not in bob.bodies(), "bob did not get the DM", bob.bodies())

        _, second, _ = await alice.call("createRoom", name=f"py2-{RUN}", agentName="alice")
        await alice.call("sendMessage", text="to room one", roomId=room_id)
        await alice.call("sendMessage", text="to room two", roomId=second["roomId"])
        await bob.wait_for("to room one")
        two = await alice.wait_for("to room two")
        check(two.logger == f"room/{second['roomId']}", "room two's logger", two)
        await alice.call("sendMessage", text="after both")
        await asyncio.sleep(0.3)
        check("to room two" not in bob.bodies(), "bob is not in room two", bob.bodies())

        failed = await carol.client.call_tool("kickAgent", {"targetAgent": "bob"})
        check(failed.is_error and failed.content[0].text == "Error: Admin role required", "tool error", failed)


async def sessionless():
    async with Client(URL) as owner, Client(URL) as guest:
        check(owner.protocol_version == "2026-07-28", "discover picks 2026-07-28", owner.protocol_version)
        tools = (await owner.list_tools()).tools
        check(len(tools) == 12, "12 tools (sessionless)")
        created = await owner.call_tool("createRoom", {"name": f"py3-{RUN}", "agentName": "owner"})
        check(not created.is_error, "createRoom (sessionless)", created)
        data = json.loads(created.content[0].text.split("\n", 1)[1])
        links = [c for c in created.content if c.type == "resource_link"]
        check(len(links) == 1 and data["roomId"] in links[0].uri, "the room's resource is linked", created.content)
        uri = links[0].uri

        joined = await guest.call_tool("joinRoom", {"roomId": data["roomId"], "agentName": "guest"})
        guest_token = json.loads(joined.content[0].text.split("\n", 1)[1])["agentToken"]
        anonymous = await guest.call_tool("sendMessage", {"text": "who am I?"})
        check(anonymous.is_error and anonymous.content[0].text == "Error: agentToken required",
              "no session, no token", anonymous)

        async with owner.listen(resource_subscriptions=[uri]) as sub:
            check(list(sub.honored.resource_subscriptions or []) == [uri], "listen acknowledged", sub.honored)
            sent = await guest.call_tool("sendMessage", {"text": "hello owner", "agentToken": guest_token})
            check(not sent.is_error, "sendMessage with agentToken", sent)
            event = await asyncio.wait_for(sub.__anext__(), 10)
            check(event.uri == uri, "resources/updated for the room", event)
        read = await owner.read_resource(uri)
        messages = json.loads(read.contents[0].text)
        check(any(m["body"] == "hello owner" and m["from"] == "guest" for m in messages),
              "the resource has the message", messages)


async def main():
    await sessions()
    await sessionless()
    print(json.dumps({"ok": True, "client": "python", "checks": CHECKS}))


asyncio.run(main())
