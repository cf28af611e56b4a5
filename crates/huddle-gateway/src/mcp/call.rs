//! One tool call: pick the agent it acts as, run the room action through [`ops`], render
//! the result (docs/protocol.md, section 'Tool results': the action's text, then the
//! data as compact JSON), and remember the rooms a session joins.

use std::net::IpAddr;
use std::sync::Arc;

use huddle_cluster::Router;
use huddle_core::{AgentToken, RoomError, RoomId};
use serde_json::Value;

use super::session::{Joining, NoRoom, Session, too_many_rooms};
use super::tools::{Scope, ToolSpec};
use crate::ops::{self, Action, Outcome, Params};
use huddle_app::RoomApi;

/// A tool's answer, before it becomes an MCP `CallToolResult`.
#[derive(Debug, Clone)]
pub struct ToolAnswer {
    pub text: String,
    pub is_error: bool,
    /// The room and token a `createRoom`/`joinRoom` made (for sessionless clients'
    /// resource links).
    pub joined: Option<(RoomId, AgentToken)>,
}

impl ToolAnswer {
    fn error(message: impl std::fmt::Display) -> Self {
        Self {
            text: format!("Error: {message}"),
            is_error: true,
            joined: None,
        }
    }
}

/// A tool that needs an agent before any join (docs/protocol.md, section 'Tools').
pub const NOT_JOINED: &str = "Not joined to any room. Call joinRoom first.";

fn arg_str(args: &Value, key: &str) -> Option<String> {
    args.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Runs `spec` with `args` for `session` (absent for sessionless requests), called from
/// `client` (the address failed password attempts are throttled by).
pub async fn run(
    router: &dyn Router,
    session: Option<&Arc<Session>>,
    spec: &ToolSpec,
    args: &Value,
    client: Option<IpAddr>,
) -> ToolAnswer {
    let mut p = match params(spec, session, args) {
        Ok(p) => p,
        Err(message) => return ToolAnswer::error(message),
    };
    p.client = client;
    // A session remembers a bounded number of rooms; refused before the action,
    // so that no room is made or joined that the session could not follow.
    if let Some(session) = session {
        let reference = match spec.action {
            Action::Create => Some(None),
            Action::Join => Some(p.room.as_deref().map(room_name)),
            _ => None,
        };
        if let Some(reference) = reference
            && !session.may_join(reference)
        {
            return ToolAnswer::error(too_many_rooms(session.room_limit()));
        }
    }
    let reference = p.room.clone();
    let run = ops::execute(RoomApi::new(router), spec.action, p);
    match crate::observe::timed(huddle_metrics::Protocol::Mcp, spec.action.name(), run).await {
        Ok(outcome) => match remember(router, session, spec.action, &outcome, reference).await {
            Ok(joined) => ToolAnswer {
                text: render(&outcome),
                is_error: false,
                joined,
            },
            Err(message) => ToolAnswer::error(message),
        },
        Err(e) => ToolAnswer::error(e),
    }
}

/// The arguments `spec`'s schema requires, all there (else the actions' own
/// `<names> required`): an absent or null one is missing, and a `roomId` that is not a
/// non-blank string names no room (`messageHistory` and `roomInfo` have no default room,
/// as in join.cloud's schema). Other empty values are for the action to judge.
fn required_args(spec: &ToolSpec, args: &Value) -> Result<(), RoomError> {
    let present: Vec<(&str, bool)> = spec
        .required
        .iter()
        .map(|&name| {
            let given = match args.get(name) {
                None | Some(Value::Null) => false,
                Some(v) if name == "roomId" => v.as_str().is_some_and(|s| !s.trim().is_empty()),
                Some(_) => true,
            };
            (name, given)
        })
        .collect();
    ops::required(&present)
}

/// The action's parameters from the tool's arguments, the agent filled in from the
/// session; `Err`: the text of a tool error (a required argument missing, or no room
/// joined that the call needs).
pub fn params(
    spec: &ToolSpec,
    session: Option<&Arc<Session>>,
    args: &Value,
) -> Result<Params, String> {
    required_args(spec, args).map_err(|e| e.to_string())?;
    let mut p = Params::from_json(args);
    match spec.action {
        Action::Create => p.text = arg_str(args, "name"),
        Action::Send => p.text = arg_str(args, "text"),
        _ => {}
    }
    pick_agent(spec, session, &mut p)?;
    Ok(p)
}

/// The room a `joinRoom` reference names: the id or name without `:password`.
fn room_name(reference: &str) -> &str {
    reference.split(':').next().unwrap_or_default()
}

/// Fills in the agent token (and for history, the room) from the session's rooms.
fn pick_agent(
    spec: &ToolSpec,
    session: Option<&Arc<Session>>,
    p: &mut Params,
) -> Result<(), String> {
    let explicit = p.agent_token.as_deref().is_some_and(|t| !t.is_empty());
    match spec.scope {
        Scope::Anyone | Scope::Joins => Ok(()),
        Scope::Names => {
            if !explicit
                && let (Some(session), Some(reference)) = (session, p.room.as_deref())
                && let Ok(room) = session.choose(Some(reference))
            {
                p.agent_token = Some(room.token.as_str().to_string());
            }
            Ok(())
        }
        Scope::Member if explicit => {
            if spec.action != Action::History {
                p.room = None;
            }
            Ok(())
        }
        Scope::Member => {
            // Sessionless and no token: the action says what it needs (`agentToken required`).
            let Some(session) = session else {
                return Ok(());
            };
            let reference = p.room.take();
            let room = match session.choose(reference.as_deref()) {
                Ok(room) => room,
                Err(NoRoom::NotJoined) => return Err(NOT_JOINED.to_string()),
                // History of a room the session is not in: the action itself answers
                // (`agentToken does not belong to this room`, `Room not found`).
                Err(NoRoom::NotInRoom(other)) if spec.action == Action::History => {
                    let own = session.choose(None).map_err(|_| NOT_JOINED.to_string())?;
                    p.agent_token = Some(own.token.as_str().to_string());
                    p.room = Some(other);
                    return Ok(());
                }
                Err(NoRoom::NotInRoom(other)) => {
                    return Err(format!(
                        "Not joined to room \"{other}\". Call joinRoom first."
                    ));
                }
            };
            p.agent_token = Some(room.token.as_str().to_string());
            if spec.action == Action::History {
                p.room = Some(room.room_id.to_string());
            }
            Ok(())
        }
    }
}

/// The action's text and, when there is data, a newline and the data as compact JSON
/// (docs/protocol.md, section 'Tool results').
pub fn render(outcome: &Outcome) -> String {
    match &outcome.data {
        Some(data) => format!("{}\n{}", outcome.text, data),
        None => outcome.text.clone(),
    }
}

/// After `createRoom`/`joinRoom` the session subscribes to the room (creating
/// subscribes too); after `leaveRoom` it forgets it. `Err`: the session is at its room
/// limit (a concurrent call took the last place).
async fn remember(
    router: &dyn Router,
    session: Option<&Arc<Session>>,
    action: Action,
    outcome: &Outcome,
    reference: Option<String>,
) -> Result<Option<(RoomId, AgentToken)>, String> {
    match action {
        Action::Create | Action::Join => {
            let Some(member) = outcome.joined.clone() else {
                return Ok(None);
            };
            let token = member.agent_token;
            if let Some(session) = session {
                let name = match member.room_name {
                    Some(name) => Some(name),
                    // A name the client may use again as roomId (not `name:password`).
                    None => reference
                        .map(|r| room_name(&r).to_lowercase())
                        .filter(|n| !n.is_empty() && n.parse::<RoomId>().is_err()),
                };
                // Delivery carries on from the agent's cursor after the join: nothing
                // committed after the join is skipped, nothing handed out is repeated.
                let joining = Joining {
                    room_id: member.room_id,
                    name,
                    token: token.clone(),
                    agent_name: member.agent_name,
                    baseline: member.cursor,
                };
                let slot = session.join(joining).map_err(too_many_rooms)?;
                session.delivery().start_room(router, slot).await;
            }
            Ok(Some((member.room_id, token)))
        }
        Action::Leave => {
            if let (Some(session), Some(room)) = (session, outcome.room_id)
                && let Some(slot) = session.leave(room)
            {
                // Its POST-path subscription goes with it (the GET stream drops its own).
                session.delivery().forget_room(slot).await;
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}
