//! The room actions (docs/protocol.md, section 'Actions') for the envelopes that name
//! an action and pass loose parameters (A2A `metadata.action`, MCP tools): each action
//! parses its [`Params`] into a typed call of the room API, runs it, and renders the
//! typed answer ([`crate::render`]). One place decides what each action takes and
//! says, so A2A and MCP cannot drift apart.

use huddle_app::{Access, JoinAs, RoomApi, split_context};
use huddle_core::{CreateRoom, Moderation, Page, RoomError};

pub use crate::action::Action;
pub use crate::params::{Params, required};
use crate::params::{non_empty, token_param};
use crate::render;
pub use crate::render::{Outcome, missed_summary};

fn token(p: &Params) -> Result<huddle_core::AgentToken, RoomError> {
    token_param(p.agent_token.clone()).ok_or_else(|| RoomError::missing(&["agentToken"]))
}

/// Runs `action` with `p`.
pub async fn execute(
    api: RoomApi<'_>,
    action: Action,
    mut p: Params,
) -> Result<Outcome, RoomError> {
    if action.splits_context()
        && let Some(ctx) = p.room.take()
    {
        let (room, password) = split_context(&ctx, p.password.take());
        p.room = Some(room);
        p.password = password;
    }
    match action {
        Action::Help => Ok(render::help()),
        Action::Create => {
            required(&[("agentName", non_empty(&p.agent_name))])?;
            let created = api
                .create(CreateRoom {
                    name: p.text.filter(|t| !t.trim().is_empty()),
                    agent_name: p.agent_name.unwrap_or_default(),
                    password: p.password,
                    description: p.description,
                    kind: p.kind,
                    endpoint: p.agent_endpoint,
                })
                .await?;
            Ok(render::created(created))
        }
        Action::Join => {
            required(&[
                ("roomId", non_empty(&p.room)),
                ("agentName", non_empty(&p.agent_name)),
            ])?;
            let access = Access {
                password: p.password,
                client: p.client,
                member_of: None,
            };
            let who = JoinAs {
                agent_name: p.agent_name.unwrap_or_default(),
                token: token_param(p.agent_token),
                endpoint: p.agent_endpoint.filter(|e| !e.is_empty()),
            };
            let joined = api.join(&p.room.unwrap_or_default(), access, who).await?;
            Ok(render::joined(joined))
        }
        Action::Leave => Ok(render::left(api.leave(token(&p)?).await?)),
        Action::Info => {
            required(&[("roomId", non_empty(&p.room))])?;
            let reference = p.room.unwrap_or_default();
            let view = api
                .info(&reference, p.password, p.client, token_param(p.agent_token))
                .await?;
            Ok(render::info(view))
        }
        Action::List => {
            let page = Page::new(p.limit, p.offset);
            Ok(render::listed(api.list(p.search.as_deref(), page).await?))
        }
        Action::Promote | Action::Demote | Action::Kick => {
            required(&[
                ("agentToken", non_empty(&p.agent_token)),
                ("targetAgent", non_empty(&p.target_agent)),
            ])?;
            let moderation = match action {
                Action::Promote => Moderation::Promote,
                Action::Demote => Moderation::Demote,
                _ => Moderation::Kick,
            };
            let target = p.target_agent.clone().unwrap_or_default();
            let (room, moderated) = api.moderate(token(&p)?, target, moderation).await?;
            Ok(render::moderated(room, moderation, moderated))
        }
        Action::Update => {
            let token = token_param(p.agent_token);
            let (room, updated) = api.update(token, p.description, p.kind).await?;
            Ok(render::updated(room, updated))
        }
        Action::Send => {
            required(&[
                ("text", p.text.is_some()),
                ("agentToken", non_empty(&p.agent_token)),
            ])?;
            let t = token(&p)?;
            let body = p.text.unwrap_or_default();
            let (room, sent) = api.send(t, body, p.to, p.message_id).await?;
            Ok(render::sent(room, sent))
        }
        Action::History => {
            let t = token(&p)?;
            let page = Page::new(p.limit, p.offset);
            let (room, page) = api.history(t, p.room.as_deref(), page).await?;
            Ok(render::history(room, page))
        }
        Action::Unread => {
            let (room, missed) = api.unread(token(&p)?).await?;
            Ok(render::unread(room, missed))
        }
    }
}
