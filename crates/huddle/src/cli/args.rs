//! The client commands' command line: one [`Command`] variant per verb, each with the
//! shared [`ClientOpts`] (`--url`, `--json`, `--no-persist`) flattened in, so every
//! option is spelled after the verb (`huddle send ROOM TEXT --name a --url ...`).

use clap::{Args, Subcommand, ValueEnum};

/// The client verbs. `main.rs` flattens this enum into its own subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the public (password-less) rooms.
    Rooms(RoomsArgs),
    /// Create a room and join it as its admin.
    Create(CreateArgs),
    /// Join a room and chat interactively.
    ///
    /// Prints what you missed and the recent messages, then live messages as they
    /// arrive; a typed line is sent to the room. Commands: /dm AGENT TEXT (a direct
    /// message), /history [N], /help, /quit (or end of input). A dropped connection is
    /// resumed after the last message shown, without gaps. Joining again later reconnects
    /// as the same agent with the stored token.
    Join(MemberArgs),
    /// Show a room: description, type and members.
    Info(InfoArgs),
    /// Print the most recent messages of a room.
    History(HistoryArgs),
    /// Print the messages this agent has not seen yet (and mark them seen).
    Unread(MemberArgs),
    /// Send a message to a room (or a direct message with --to).
    Send(SendArgs),
    /// Leave a room; the stored token is forgotten.
    Leave(MemberArgs),
    /// Make a member an admin (admins only).
    Promote(TargetArgs),
    /// Make an admin a plain member (admins only).
    Demote(TargetArgs),
    /// Remove a member from the room (admins only).
    Kick(TargetArgs),
    /// Change a room's description or type (admins only).
    Update(UpdateArgs),
}

/// Options every client command takes.
#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// Base URL of a join.cloud-compatible server.
    #[arg(
        long,
        env = "HUDDLE_URL",
        default_value = "http://localhost:3000",
        value_name = "URL"
    )]
    pub url: String,

    /// Machine-readable output: JSON on stdout (one object per line for `join`).
    #[arg(long)]
    pub json: bool,

    /// Neither read nor store agent tokens in the config dir ($HUDDLE_CONFIG_DIR, else
    /// $XDG_CONFIG_HOME/huddle, else ~/.config/huddle).
    #[arg(long)]
    pub no_persist: bool,
}

/// Who acts: the agent's name, and optionally its token.
#[derive(Args, Debug, Clone)]
pub struct AgentOpts {
    /// The agent's display name in the room.
    #[arg(long = "name", short = 'n', value_name = "AGENT")]
    pub name: String,

    /// Act with this agent token instead of the stored one (or a fresh join).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

#[derive(Args, Debug)]
pub struct RoomsArgs {
    /// Only rooms whose name contains this text.
    #[arg(long, short = 's')]
    pub search: Option<String>,
    /// At most this many rooms (the server clamps it to 1..100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Skip this many rooms.
    #[arg(long)]
    pub offset: Option<u32>,
    #[command(flatten)]
    pub opts: ClientOpts,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoomType {
    /// Everyone posts.
    Group,
    /// Only admins post.
    Channel,
}

impl RoomType {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomType::Group => "group",
            RoomType::Channel => "channel",
        }
    }
}

/// What a room is and who may post: set at creation, changed by `update`.
#[derive(Args, Debug)]
pub struct RoomSettings {
    /// What the room is for.
    #[arg(long, short = 'd')]
    pub description: Option<String>,
    /// group: everyone posts; channel: only admins post.
    #[arg(long = "type", short = 't', value_enum)]
    pub room_type: Option<RoomType>,
}

impl RoomSettings {
    /// The settings given, as the metadata fields of `room.create` / `room.update`.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 2] {
        [
            ("description", self.description.as_deref()),
            ("type", self.room_type.map(RoomType::as_str)),
        ]
    }
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The room's name (stored lower-cased).
    pub room: String,
    #[command(flatten)]
    pub settings: RoomSettings,
    /// Protect the room with a password.
    #[arg(long, short = 'p')]
    pub password: Option<String>,
    #[command(flatten)]
    pub agent: AgentOpts,
    #[command(flatten)]
    pub opts: ClientOpts,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The room: its name, `name:password`, or its id.
    #[arg(value_name = "ROOM[:PASSWORD]")]
    pub room: String,
    #[command(flatten)]
    pub opts: ClientOpts,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The room: its name, `name:password`, or its id.
    #[arg(value_name = "ROOM[:PASSWORD]")]
    pub room: String,
    /// How many of the most recent messages (the server allows at most 100).
    #[arg(long, short = 'l')]
    pub limit: Option<u32>,
    /// Skip this many of the most recent messages first.
    #[arg(long)]
    pub offset: Option<u32>,
    #[command(flatten)]
    pub agent: AgentOpts,
    #[command(flatten)]
    pub opts: ClientOpts,
}

/// Commands that only need the room and the acting agent (`join` among them).
#[derive(Args, Debug)]
pub struct MemberArgs {
    /// The room: its name, `name:password`, or its id.
    #[arg(value_name = "ROOM[:PASSWORD]")]
    pub room: String,
    #[command(flatten)]
    pub agent: AgentOpts,
    #[command(flatten)]
    pub opts: ClientOpts,
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The room: its name, `name:password`, or its id.
    #[arg(value_name = "ROOM[:PASSWORD]")]
    pub room: String,
    /// The message.
    pub text: String,
    /// Send a direct message, visible only to this agent (and you).
    #[arg(long, value_name = "AGENT")]
    pub to: Option<String>,
    #[command(flatten)]
    pub agent: AgentOpts,
    #[command(flatten)]
    pub opts: ClientOpts,
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    /// The room: its name, `name:password`, or its id.
    #[arg(value_name = "ROOM[:PASSWORD]")]
    pub room: String,
    /// The agent acted upon.
    #[arg(value_name = "TARGET")]
    pub target: String,
    #[command(flatten)]
    pub agent: AgentOpts,
    #[command(flatten)]
    pub opts: ClientOpts,
}

#[derive(Args, Debug)]
#[command(group(
    clap::ArgGroup::new("change").required(true).multiple(true).args(["description", "room_type"])
))]
pub struct UpdateArgs {
    /// The room: its name, `name:password`, or its id.
    #[arg(value_name = "ROOM[:PASSWORD]")]
    pub room: String,
    #[command(flatten)]
    pub settings: RoomSettings,
    #[command(flatten)]
    pub agent: AgentOpts,
    #[command(flatten)]
    pub opts: ClientOpts,
}
