//! The room actions as A2A (`metadata.action`) and MCP (tools) name them, with
//! join.cloud's aliases (docs/protocol.md, section 'Actions').

/// The actions, after alias resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Join,
    Leave,
    Info,
    List,
    Promote,
    Demote,
    Kick,
    Update,
    Send,
    History,
    Unread,
    Help,
}

impl Action {
    /// `metadata.action` with join.cloud's aliases.
    pub fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "room.create" | "create" => Action::Create,
            "room.join" | "join" => Action::Join,
            "room.leave" | "leave" => Action::Leave,
            "room.info" | "info" => Action::Info,
            "room.list" | "list" => Action::List,
            "room.promote" | "promote" => Action::Promote,
            "room.demote" | "demote" => Action::Demote,
            "room.kick" | "kick" => Action::Kick,
            "room.update" | "update" => Action::Update,
            "message.send" | "send" => Action::Send,
            "message.history" | "history" => Action::History,
            "message.unread" | "unread" => Action::Unread,
            "help" => Action::Help,
            _ => return None,
        })
    }

    /// The action's canonical name (`room.create`, ..., `help`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "room.create",
            Action::Join => "room.join",
            Action::Leave => "room.leave",
            Action::Info => "room.info",
            Action::List => "room.list",
            Action::Promote => "room.promote",
            Action::Demote => "room.demote",
            Action::Kick => "room.kick",
            Action::Update => "room.update",
            Action::Send => "message.send",
            Action::History => "message.history",
            Action::Unread => "message.unread",
            Action::Help => "help",
        }
    }

    /// Whether a `name:password` context is split for this action.
    pub(crate) fn splits_context(self) -> bool {
        !matches!(self, Action::Create | Action::List) && self.is_room_action()
    }

    fn is_room_action(self) -> bool {
        matches!(
            self,
            Action::Create
                | Action::Join
                | Action::Leave
                | Action::Info
                | Action::List
                | Action::Promote
                | Action::Demote
                | Action::Kick
                | Action::Update
        )
    }
}
