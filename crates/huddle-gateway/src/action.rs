//! The room actions as A2A (`metadata.action`) and MCP (tools) name them, with
//! join.cloud's aliases (docs/protocol.md, section 'Actions').

/// The action enum and both directions of its names from one table: each action's
/// canonical name, then join.cloud's alias.
macro_rules! actions {
    ($($variant:ident = $name:literal $(| $alias:literal)?),* $(,)?) => {
        /// The actions, after alias resolution.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Action {
            $($variant),*
        }

        impl Action {
            /// `metadata.action` with join.cloud's aliases.
            pub fn parse(name: &str) -> Option<Action> {
                Some(match name {
                    $($name $(| $alias)? => Action::$variant,)*
                    _ => return None,
                })
            }

            /// The action's canonical name (`room.create`, ..., `help`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name),*
                }
            }
        }
    };
}

actions! {
    Create = "room.create" | "create",
    Join = "room.join" | "join",
    Leave = "room.leave" | "leave",
    Info = "room.info" | "info",
    List = "room.list" | "list",
    Promote = "room.promote" | "promote",
    Demote = "room.demote" | "demote",
    Kick = "room.kick" | "kick",
    Update = "room.update" | "update",
    Send = "message.send" | "send",
    History = "message.history" | "history",
    Unread = "message.unread" | "unread",
    Help = "help",
}

impl Action {
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
